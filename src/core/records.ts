/**
 * The step records replica 0 writes into the shared record ring and the main
 * thread reads back (History, callbacks, progress, checkpoints): their kinds
 * and the named offsets of their fields.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RECORD_HEADER, RecordField, RecordKind } from "./records.ts";
 * const rec = [RecordKind.Batch, 0, 3, 32, 1.5, 0.2, Date.now(), 1.2, 0.4, 0.7];
 * assert.equal(rec[RecordField.step], 3);
 * assert.equal(rec[RECORD_HEADER], 0.7); // the loss follows the header
 * ```
 * @module
 */

/** Record kinds in the step ring. */
export const RecordKind = {
  /** `[kind, epoch, step, samples, computeMs, exchangeMs, startedAt, gradMs, reduceMs, loss, ...metrics]` */
  Batch: 1,
  /** `[kind, epoch, 0, samples, 0 x 5, valLoss, ...valMetrics]` (samples 0 = no validation) */
  EpochEnd: 2,
  /** `[kind, epoch, step, 0 x 6, loss]` */
  NonFinite: 3,
  /** `[kind, epoch, step]`: replica 0 wrote the files of a checkpoint at this next position. */
  Checkpoint: 4,
} as const;

/** Offsets of the header fields every record shares. */
export const RecordField = {
  /** One of {@linkcode RecordKind}. */
  kind: 0,
  /** Epoch of the record. */
  epoch: 1,
  /** Step within the epoch. */
  step: 2,
  /** Samples the step (or the validation) covered. */
  samples: 3,
  /** Compute time of the step, ms. */
  computeMs: 4,
  /** Gradient exchange time of the step, ms. */
  exchangeMs: 5,
  /** When the step started, ms since the Unix epoch (comparable across threads and hosts). */
  startedAt: 6,
  /** Time to compute the shard's gradients, ms. */
  gradMs: 7,
  /** Time in the all-reduce (summing, waiting, the optimizer's chunk), ms. */
  reduceMs: 8,
} as const;

/** Fixed fields before the loss in every ring record. */
export const RECORD_HEADER = 9;
