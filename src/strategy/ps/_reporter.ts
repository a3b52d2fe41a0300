/**
 * Turns what the parameter server applies into what the user sees for an
 * asynchronous run: Keras callbacks, the History, the progress bar, and the
 * per-epoch counts of stale and dropped gradients and worker restarts.
 *
 * @module
 */
import {
  callAll,
  type History,
  type Logs,
  type TrainingCallbacks,
} from "../../training/callbacks.ts";
import { EpochMean } from "../../training/epoch_mean.ts";
import { ProgressBar } from "../../training/progress.ts";

/** Options of {@linkcode AsyncFitReporter}. */
export interface AsyncFitReporterOptions {
  /** Loss and metric names, `loss` first. */
  names: string[];
  epochs: number;
  /** Applied gradients per epoch. */
  steps: number;
  callbacks: TrainingCallbacks[];
  verbose: 0 | 1 | 2;
  history: History;
}

/** One applied gradient, as reported. */
export interface AppliedStep {
  /** Loss then metrics of the batch. */
  values: number[];
  samples: number;
  worker: number;
  staleness: number;
}

/**
 * Accumulates one epoch at a time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AsyncFitReporter } from "./_reporter.ts";
 * import { History } from "../../training/callbacks.ts";
 * const r = new AsyncFitReporter({
 *   names: ["loss"], epochs: 1, steps: 1, callbacks: [], verbose: 0, history: new History(),
 * });
 * await r.beginEpoch(0);
 * await r.step(0, { values: [0.5], samples: 8, worker: 0, staleness: 0 });
 * r.stale(true);
 * const logs = await r.endEpoch(0, undefined);
 * assert.ok(logs.loss === 0.5 && logs.dropped === 1 && logs.stale === 1);
 * ```
 */
export class AsyncFitReporter {
  /** The History being filled. */
  readonly history: History;
  #o: AsyncFitReporterOptions;
  #bar: ProgressBar | undefined;
  #mean: EpochMean;
  #stale = 0;
  #dropped = 0;
  #restarts = 0;

  constructor(options: AsyncFitReporterOptions) {
    this.#o = options;
    this.#mean = new EpochMean(options.names);
    this.history = options.history;
    if (options.verbose === 1) {
      this.#bar = new ProgressBar({ epochs: options.epochs, steps: options.steps });
    }
  }

  /** Starts an epoch: resets the sums, calls `onEpochBegin`. */
  async beginEpoch(epoch: number): Promise<void> {
    this.#mean.reset();
    this.#stale = 0;
    this.#dropped = 0;
    this.#restarts = 0;
    this.#bar?.epochBegin(epoch);
    await callAll(this.#o.callbacks, "onEpochBegin", epoch, {});
  }

  /** Reports the `step`-th applied gradient of the epoch (from 0). */
  async step(step: number, applied: AppliedStep): Promise<void> {
    const logs: Logs = {};
    this.#o.names.forEach((name, i) => (logs[name] = applied.values[i]!));
    this.#mean.add(applied.values, applied.samples);
    this.#bar?.step(step + 1, logs, applied.samples);
    await callAll(this.#o.callbacks, "onBatchEnd", step, {
      ...logs,
      batch: step,
      size: applied.samples,
      worker: applied.worker,
      staleness: applied.staleness,
    });
  }

  /** Counts a gradient beyond the staleness bound; `dropped` when it was discarded. */
  stale(dropped: boolean): void {
    this.#stale++;
    if (dropped) this.#dropped++;
  }

  /** Counts a replaced worker. */
  restart(): void {
    this.#restarts++;
  }

  /**
   * Ends the epoch: sample-weighted means of the step logs, `val_*` from
   * `validation`, and `stale`, `dropped`, `restarts`; records them in the
   * History and calls `onEpochEnd`. Resolves with the logs.
   */
  async endEpoch(epoch: number, validation: Logs | undefined): Promise<Logs> {
    const logs = this.#mean.logs();
    if (validation !== undefined) {
      for (const [k, v] of Object.entries(validation)) logs[`val_${k}`] = v;
    }
    const shown = { ...logs };
    logs.stale = this.#stale;
    logs.dropped = this.#dropped;
    logs.restarts = this.#restarts;
    this.history.record(epoch, logs);
    this.#bar?.epochEnd(shown);
    if (this.#o.verbose === 2) {
      const text = Object.entries(logs).map(([k, v]) =>
        `- ${k}: ${Number.isInteger(v) ? v : v.toFixed(4)}`
      ).join(" ");
      console.error(`Epoch ${epoch + 1}/${this.#o.epochs} ${text}`);
    }
    await callAll(this.#o.callbacks, "onEpochEnd", epoch, logs);
    return logs;
  }
}
