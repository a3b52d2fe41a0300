/**
 * Keras-style training callbacks, History and logs.
 *
 * @module
 */

/** Loss and metric values keyed by name (`loss`, `acc`, `val_loss`, ...). */
export type Logs = Record<string, number>;

/**
 * Callbacks called by `fit`, in Keras order: `onTrainBegin`, then per epoch
 * `onEpochBegin`, `onBatchEnd` for each step, `onEpochEnd`, and finally
 * `onTrainEnd`. They may be async; training waits for them only when the
 * step record ring is full. Setting `model.stopTraining = true` in a callback
 * stops training after the current step.
 */
export interface TrainingCallbacks {
  /** Before the first epoch. */
  onTrainBegin?: (logs?: Logs) => void | Promise<void>;
  /** After the last epoch. */
  onTrainEnd?: (logs?: Logs) => void | Promise<void>;
  /** Before an epoch's first step. */
  onEpochBegin?: (epoch: number, logs?: Logs) => void | Promise<void>;
  /** After an epoch, with averaged training and validation logs. */
  onEpochEnd?: (epoch: number, logs?: Logs) => void | Promise<void>;
  /** After every step, with the step's loss and metrics over the global batch. */
  onBatchEnd?: (batch: number, logs?: Logs) => void | Promise<void>;
}

/**
 * What `fit` returns: per-epoch logs, shaped like tfjs' `History`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { History } from "./callbacks.ts";
 * const h = new History();
 * h.record(0, { loss: 0.5 });
 * assert.ok(h.history.loss?.[0] === 0.5);
 * ```
 */
export class History {
  /** Epoch indices that were recorded. */
  readonly epoch: number[] = [];
  /** One array per log name, one entry per epoch. */
  readonly history: Record<string, number[]> = {};

  /** Appends one epoch's logs. */
  record(epoch: number, logs: Logs): void {
    this.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (this.history[k] ??= []).push(v);
  }
}

/** Calls a hook on every callback object, in order. */
export async function callAll<K extends keyof TrainingCallbacks>(
  callbacks: TrainingCallbacks[],
  hook: K,
  ...args: Parameters<NonNullable<TrainingCallbacks[K]>>
): Promise<void> {
  for (const c of callbacks) {
    const fn = c[hook] as
      | ((...a: unknown[]) => void | Promise<void>)
      | undefined;
    if (fn !== undefined) await fn.apply(c, args);
  }
}
