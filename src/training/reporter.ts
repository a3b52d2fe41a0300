/**
 * Turns the step records replica 0 writes into what the user sees: Keras
 * callbacks, the History, the progress bar, and committed checkpoints. Runs
 * on the main thread; never blocks a training step.
 *
 * @module
 */
import { NonFiniteLossError } from "../errors.ts";
import { checkpointTempPath, commitCheckpoint } from "../io/checkpoint.ts";
import { RECORD_HEADER, RecordField, RecordKind } from "../core/records.ts";
import { callAll, type History, type Logs, type TrainingCallbacks } from "./callbacks.ts";
import { EpochMean } from "./epoch_mean.ts";
import { ProgressBar } from "./progress.ts";
import type { Trace } from "./trace.ts";

/** Where and how checkpoints are committed. */
export interface ReporterCheckpoint {
  dir: string;
  keep: number;
  runId: string;
  /** Run parameters saved with every checkpoint. */
  run: { seed: number; batchSize: number; shuffle: boolean; trainCount: number };
}

/** Options of {@linkcode FitReporter}. */
export interface FitReporterOptions {
  /** Metric names, `loss` first, as the replicas report them. */
  names: string[];
  epochs: number;
  steps: number;
  callbacks: TrainingCallbacks[];
  verbose: 0 | 1 | 2;
  /** Where replica 0's steps go on the fit's timeline, when one is kept. */
  trace?: Trace;
  history: History;
  /** Step-log sums of a resumed, half-done epoch. */
  resumed?: { epoch: number; sums: number[]; samples: number };
  checkpoint?: ReporterCheckpoint;
  /** Called after every epoch end (e.g. to copy weights into the user's model). */
  onEpochSynced: () => void;
  /** Polled after every callback: true requests a stop. */
  stopRequested: () => boolean;
  requestStop: () => void;
}

/**
 * Consumes step records in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FitReporter } from "./reporter.ts";
 * import { History } from "./callbacks.ts";
 * import { RECORD_HEADER, RecordField, RecordKind } from "../core/records.ts";
 * const r = new FitReporter({
 *   names: ["loss"], epochs: 1, steps: 1, callbacks: [], verbose: 0, history: new History(),
 *   onEpochSynced: () => {}, stopRequested: () => false, requestStop: () => {},
 * });
 * const batch = new Float64Array(RECORD_HEADER + 1);
 * batch[RecordField.kind] = RecordKind.Batch;
 * batch[RecordField.samples] = 8;
 * batch[RECORD_HEADER] = 0.5; // the step's loss
 * await r.handle(batch);
 * const end = new Float64Array(RECORD_HEADER + 1);
 * end[RecordField.kind] = RecordKind.EpochEnd;
 * await r.handle(end);
 * assert.ok(r.history.history.loss?.[0] === 0.5);
 * ```
 */
export class FitReporter {
  /** The History being filled. */
  readonly history: History;
  /** The error a record reported (a non-finite loss), if any. */
  failure: Error | undefined;
  /** Steps seen, and their summed compute and exchange times (ms). */
  readonly timing = { steps: 0, computeMs: 0, exchangeMs: 0 };
  #o: FitReporterOptions;
  #bar: ProgressBar | undefined;
  #epoch = -1;
  #mean: EpochMean;

  constructor(options: FitReporterOptions) {
    this.#o = options;
    this.#mean = new EpochMean(options.names);
    this.history = options.history;
    if (options.verbose === 1) {
      this.#bar = new ProgressBar({ epochs: options.epochs, steps: options.steps });
    }
  }

  async #beginEpoch(epoch: number): Promise<void> {
    this.#epoch = epoch;
    const r = this.#o.resumed;
    this.#mean.reset(r?.epoch === epoch ? r : undefined);
    this.#bar?.epochBegin(epoch);
    await callAll(this.#o.callbacks, "onEpochBegin", epoch, {});
  }

  /** Handles one record; resolves once its callbacks have run. */
  async handle(rec: Float64Array): Promise<void> {
    const kind = rec[RecordField.kind]!, epoch = rec[RecordField.epoch]!;
    const step = rec[RecordField.step]!, n = rec[RecordField.samples]!;
    const names = this.#o.names;
    if (kind === RecordKind.NonFinite) {
      this.failure = new NonFiniteLossError(epoch, step, rec[RECORD_HEADER]!);
      return;
    }
    if (kind === RecordKind.Checkpoint) {
      await this.#commit(epoch, step);
      return;
    }
    if (this.#epoch !== epoch) await this.#beginEpoch(epoch);
    if (kind === RecordKind.Batch) {
      const values = rec.subarray(RECORD_HEADER, RECORD_HEADER + names.length);
      const logs: Logs = {};
      names.forEach((name, i) => (logs[name] = values[i]!));
      this.#mean.add(values, n);
      this.timing.steps++;
      this.timing.computeMs += rec[RecordField.computeMs]!;
      this.timing.exchangeMs += rec[RecordField.exchangeMs]!;
      this.#o.trace?.step({
        epoch,
        step,
        startedAt: rec[RecordField.startedAt]!,
        gradMs: rec[RecordField.gradMs]!,
        reduceMs: rec[RecordField.reduceMs]!,
        totalMs: rec[RecordField.computeMs]! + rec[RecordField.exchangeMs]!,
      });
      this.#bar?.step(step + 1, logs, n);
      await callAll(this.#o.callbacks, "onBatchEnd", step, { ...logs, batch: step, size: n });
    } else if (kind === RecordKind.EpochEnd) {
      const logs = this.#mean.logs();
      if (n > 0) names.forEach((name, i) => (logs[`val_${name}`] = rec[RECORD_HEADER + i]!));
      this.#o.onEpochSynced();
      this.history.record(epoch, logs);
      this.#bar?.epochEnd(logs);
      if (this.#o.verbose === 2) {
        const text = Object.entries(logs).map(([k, v]) => `- ${k}: ${v.toFixed(4)}`).join(" ");
        console.error(`Epoch ${epoch + 1}/${this.#o.epochs} ${text}`);
      }
      await callAll(this.#o.callbacks, "onEpochEnd", epoch, logs);
    }
    if (this.#o.stopRequested()) this.#o.requestStop();
  }

  async #commit(epoch: number, step: number): Promise<void> {
    const c = this.#o.checkpoint;
    if (c === undefined) return;
    const midEpoch = step > 0 && epoch === this.#epoch;
    await commitCheckpoint(c.dir, checkpointTempPath(c.dir, epoch, step, c.runId), {
      epoch,
      step,
      ...c.run,
      history: { epoch: [...this.history.epoch], history: structuredClone(this.history.history) },
      partial: midEpoch ? this.#mean.snapshot() : { sums: [], samples: 0 },
    }, c.keep);
  }
}
