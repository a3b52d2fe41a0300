/**
 * Where a MirroredStrategy fit with checkpoints starts: from the newest
 * complete checkpoint in its folder (weights and optimizer state loaded into
 * the model, History refilled, the partial epoch's sums restored), or from
 * the beginning when there is none. A checkpoint written for other data or
 * another batch size is refused rather than resumed wrongly.
 *
 * @module
 */
import type * as tf from "../../tf.ts";
import type { History, Logs } from "../../training/callbacks.ts";
import type { FitReporterOptions } from "../../training/reporter.ts";
import { latestCheckpoint, loadCheckpointFiles, removeStaleTemp } from "../../io/checkpoint.ts";

/** A position in training: the next step to run. */
export interface Position {
  /** Epoch. */
  epoch: number;
  /** Step within it. */
  step: number;
}

/** The newest complete checkpoint's position in `dir`, or null when there is none. */
export async function newestPosition(dir: string): Promise<Position | null> {
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleTemp(dir);
  const found = await latestCheckpoint(dir);
  return found === undefined ? null : { epoch: found.state.epoch, step: found.state.step };
}

/** The position a fit starts from. */
export interface ResumePoint {
  /** Epoch to start in. */
  startEpoch: number;
  /** Step of `startEpoch` to start at. */
  startStep: number;
  /** The shuffle seed (the checkpoint's, when resuming). */
  seed: number;
  /** The partial epoch's sums, when resuming mid-epoch. */
  resumed: FitReporterOptions["resumed"];
  /** The checkpoint folder every replica loads first, or null. */
  resumeFrom: string | null;
}

/**
 * Finds the newest complete checkpoint in `dir` (made if missing; stale
 * temporary folders removed) and, if there is one, loads it into `model`
 * and its History into `history`.
 */
export async function resumePoint(
  dir: string,
  model: tf.LayersModel,
  history: History,
  run: { batchSize: number; trainCount: number; initialEpoch: number; seed: number },
  options: { notAfter?: Position | null } = {},
): Promise<ResumePoint> {
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleTemp(dir);
  // null: the cluster agreed to start afresh (a node has no checkpoint).
  const found = options.notAfter === null
    ? undefined
    : await latestCheckpoint(dir, { notAfter: options.notAfter });
  if (found === undefined) {
    return {
      startEpoch: run.initialEpoch,
      startStep: 0,
      seed: run.seed,
      resumed: undefined,
      resumeFrom: null,
    };
  }
  const st = found.state;
  for (const key of ["batchSize", "trainCount"] as const) {
    if (st[key] !== run[key]) {
      throw new RangeError(
        `The checkpoint in ${found.path} was written with ${key} ${st[key]}, ` +
          `this fit has ${run[key]}: use the same data and batchSize, or another checkpoint dir`,
      );
    }
  }
  await loadCheckpointFiles(model, found.path);
  st.history.epoch.forEach((e, i) => {
    const logs: Logs = {};
    for (const [k, v] of Object.entries(st.history.history)) logs[k] = v[i]!;
    history.record(e, logs);
  });
  return {
    startEpoch: st.epoch,
    startStep: st.step,
    seed: st.seed,
    resumed: st.step > 0 ? { epoch: st.epoch, ...st.partial } : undefined,
    resumeFrom: found.path,
  };
}
