/**
 * Training checkpoints that resume exactly (TF's BackupAndRestore, for dtrain).
 *
 * Layout of a checkpoint folder:
 * ```
 * <dir>/ckpt-00000002-00000040/   next position to run: epoch 2, step 40
 *   model.json, weights.bin       the weights (tfjs layers format)
 *   optimizer.json, optimizer.bin the optimizer state (Adam moments, iterations)
 *   state.json                    position, seed, batch size, History so far
 * <dir>/.tmp-...                  a checkpoint being written (ignored)
 * ```
 * A checkpoint is written into a temporary folder and renamed into place only
 * once complete, so a crash (even SIGKILL during the write) leaves either the
 * previous checkpoints or the new one, never a torn one.
 *
 * @module
 */
import { join } from "node:path";
import * as tf from "../tf.ts";
import { writeFileAtomic } from "./_atomic_write.ts";
import { fileHandler } from "./file_handler.ts";
import { loadOptimizerState, saveOptimizerState } from "./optimizer_state.ts";

const FORMAT = "dtrain-checkpoint";
const NAME = /^ckpt-(\d{8})-(\d{8})$/;

/** Options of the `checkpoint` fit option. */
export interface CheckpointOptions {
  /** Folder holding the checkpoints (created when missing). */
  dir: string;
  /**
   * Also checkpoint every this many steps (counted across epochs).
   * @default 0 (only at epoch ends)
   */
  everySteps?: number;
  /**
   * Checkpoint at the end of every epoch.
   * @default true
   */
  everyEpoch?: boolean;
  /**
   * How many checkpoints to keep (the oldest are removed).
   * @default 3
   */
  keep?: number;
}

/** What `state.json` holds: everything besides weights needed to resume. */
export interface CheckpointState {
  format: typeof FORMAT;
  version: 1;
  /** Next epoch to run (zero-based). */
  epoch: number;
  /** Next step within `epoch` to run. */
  step: number;
  seed: number;
  batchSize: number;
  shuffle: boolean;
  trainCount: number;
  /** `History` so far: epochs and their logs. */
  history: { epoch: number[]; history: Record<string, number[]> };
  /** Running sums of the interrupted epoch's step logs (weighted by samples). */
  partial: { sums: number[]; samples: number };
  createdAt: string;
}

/** A complete checkpoint found on disk. */
export interface FoundCheckpoint {
  path: string;
  state: CheckpointState;
}

/** Validates checkpoint options; returns them with defaults applied. */
export function checkCheckpointOptions(options: CheckpointOptions): Required<CheckpointOptions> {
  if (typeof options?.dir !== "string" || options.dir === "") {
    throw new TypeError(`checkpoint.dir must be a non-empty string, received ${options?.dir}`);
  }
  const everySteps = options.everySteps ?? 0;
  const keep = options.keep ?? 3;
  if (!Number.isInteger(everySteps) || everySteps < 0) {
    throw new RangeError(`checkpoint.everySteps must be an integer >= 0, received ${everySteps}`);
  }
  if (!Number.isInteger(keep) || keep < 1) {
    throw new RangeError(`checkpoint.keep must be an integer >= 1, received ${keep}`);
  }
  return { dir: options.dir, everySteps, everyEpoch: options.everyEpoch ?? true, keep };
}

function folderName(epoch: number, step: number): string {
  return `ckpt-${String(epoch).padStart(8, "0")}-${String(step).padStart(8, "0")}`;
}

/** The temporary folder a checkpoint at `(epoch, step)` of run `runId` is written into. */
export function checkpointTempPath(
  dir: string,
  epoch: number,
  step: number,
  runId: string,
): string {
  return join(dir, `.tmp-${folderName(epoch, step)}-${runId}`);
}

/**
 * Writes a model's weights and optimizer state into `path` (a fresh folder).
 *
 * @example
 * ```ts
 * import * as tf from "../tf.ts";
 * import { writeCheckpointFiles } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * model.compile({ optimizer: "adam", loss: "meanSquaredError" });
 * await writeCheckpointFiles(model, `${dir}/c`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeCheckpointFiles(model: tf.LayersModel, path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
  await model.save(fileHandler(path));
  await saveOptimizerState(model, path);
}

/** Loads a checkpoint's weights and optimizer state into `model`. */
export async function loadCheckpointFiles(model: tf.LayersModel, path: string): Promise<void> {
  const saved = await tf.loadLayersModel(fileHandler(join(path, "model.json")));
  try {
    model.setWeights(saved.getWeights());
  } finally {
    saved.dispose();
  }
  await loadOptimizerState(model, path);
}

/**
 * Completes a checkpoint: writes `state.json` into the temporary folder,
 * renames it into place and removes all but the newest `keep` checkpoints.
 */
export async function commitCheckpoint(
  dir: string,
  tempPath: string,
  state: Omit<CheckpointState, "format" | "version" | "createdAt">,
  keep: number,
): Promise<string> {
  const full: CheckpointState = {
    format: FORMAT,
    version: 1,
    ...state,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(
    join(tempPath, "state.json"),
    new TextEncoder().encode(JSON.stringify(full)),
  );
  const final = join(dir, folderName(state.epoch, state.step));
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(tempPath, final);
  const all = await listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    await Deno.remove(join(dir, old), { recursive: true });
  }
  return final;
}

async function listCheckpoints(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory && NAME.test(e.name)) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return names.sort();
}

/**
 * The newest complete checkpoint in `dir`, or `undefined` when there is none;
 * with `notAfter`, the newest at or before that position (the one every node
 * of a cluster has). Temporary folders (interrupted writes) are ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { latestCheckpoint } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * assert.ok((await latestCheckpoint(dir)) === undefined);
 * await Deno.remove(dir);
 * ```
 */
export async function latestCheckpoint(
  dir: string,
  options: { notAfter?: { epoch: number; step: number } } = {},
): Promise<FoundCheckpoint | undefined> {
  const names = await listCheckpoints(dir);
  const bound = options.notAfter;
  for (const name of names.reverse()) {
    const path = join(dir, name);
    try {
      const state = JSON.parse(
        await Deno.readTextFile(join(path, "state.json")),
      ) as CheckpointState;
      const after = bound !== undefined &&
        (state.epoch > bound.epoch || (state.epoch === bound.epoch && state.step > bound.step));
      if (state.format === FORMAT && state.version === 1 && !after) return { path, state };
    } catch {
      // An unreadable checkpoint is skipped in favour of an older one.
    }
  }
  return undefined;
}

/** Removes temporary folders left by interrupted checkpoint writes. */
export async function removeStaleTemp(dir: string): Promise<void> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory && e.name.startsWith(".tmp-ckpt-")) {
        await Deno.remove(join(dir, e.name), { recursive: true });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
