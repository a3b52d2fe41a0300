/**
 * A dataset's inputs and outputs as a Worker reads them from shared memory:
 * one column of rows per model input and per model output, each with its own
 * per-sample shape, the batch tensors made from the same rows of every
 * column, and the evaluation sums over a range of rows.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { epochOrder } from "../core/random.ts";
import type { SharedColumn, SharedData } from "./protocol.ts";
import { evaluationSums } from "./_model.ts";
import { gatherRows } from "./_sharding.ts";

/** Every input and every output of `data`, in model order: its lists, or `x` and `y` alone. */
function columnsOf(data: SharedData): { inputs: SharedColumn[]; outputs: SharedColumn[] } {
  return {
    inputs: data.inputs ?? [{ buffer: data.x, shape: data.xShape }],
    outputs: data.outputs ?? [{ buffer: data.y, shape: data.yShape }],
  };
}

/** One column's rows and the shape of its batch tensor (dimension 0 rewritten per batch). */
interface Column {
  rows: Float32Array;
  width: number;
  /** Floats from one row to the next, and from a row's start to the column's values. */
  stride: number;
  offset: number;
  shape: number[];
  /** Rows are gathered here when set (a backend that copies new tensors' values). */
  into: Float32Array | undefined;
}

function column(c: SharedColumn, reuseRows: number): Column {
  const width = c.shape.reduce((a, b) => a * b, 1);
  return {
    rows: new Float32Array(c.buffer),
    width,
    stride: c.stride ?? width,
    offset: c.offset ?? 0,
    shape: [0, ...c.shape],
    into: reuseRows > 0 ? new Float32Array(reuseRows * width) : undefined,
  };
}

/**
 * Makes the batch tensors of a dataset in shared memory: rows
 * `order[from .. from + count)` of every input and every output, one tensor
 * each, written into {@linkcode BatchReader.xs} and
 * {@linkcode BatchReader.ys} (arrays reused batch after batch).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../../mod.ts";
 * import { BatchReader } from "./_columns.ts";
 * const buffer = new SharedArrayBuffer(16);
 * new Float32Array(buffer).set([1, 2, 3, 4]);
 * const column = { buffer, shape: [2] };
 * const data = {
 *   x: buffer, y: buffer, xShape: [2], yShape: [2], count: 2,
 *   inputs: [column, column], outputs: [column],
 * };
 * const reader = new BatchReader(data);
 * reader.read(new Uint32Array([1, 0]), 0, 1);
 * assert.deepEqual(reader.xs.map((t) => t.shape), [[1, 2], [1, 2]]);
 * assert.deepEqual(Array.from(reader.ys[0]!.dataSync()), [3, 4]);
 * tf.dispose([...reader.xs, ...reader.ys]);
 * ```
 */
export class BatchReader {
  /** The last batch's input tensors, in `model.inputs` order (the caller owns them). */
  readonly xs: tf.Tensor[] = [];
  /** The last batch's target tensors, in `model.outputs` order (the caller owns them). */
  readonly ys: tf.Tensor[] = [];
  /**
   * The last batch's per-sample loss weights, one `[count]` tensor per
   * weighted output (null: not weighted), or null when the data has none
   * (the caller owns them).
   */
  readonly ws: (tf.Tensor | null)[] | null;
  #inputs: Column[];
  #outputs: Column[];
  #weights: (Column | null)[] | null;

  /**
   * Views over `data`'s columns. With `reuseRows`, each column gathers into
   * one buffer of that many rows (fine where new tensors copy their values,
   * as on wasm), else into a new array per batch.
   */
  constructor(data: SharedData, options: { reuseRows?: number } = {}) {
    const { inputs, outputs } = columnsOf(data);
    const reuse = options.reuseRows ?? 0;
    this.#inputs = inputs.map((c) => column(c, reuse));
    this.#outputs = outputs.map((c) => column(c, reuse));
    const weights = data.sampleWeights;
    this.#weights = weights === undefined
      ? null
      : weights.map((b) => b === null ? null : column({ buffer: b, shape: [] }, reuse));
    this.ws = this.#weights === null ? null : this.#weights.map(() => null);
  }

  /**
   * Makes new tensors of rows `order[from .. from + count)` of every input
   * and output into `xs` and `ys`; the caller disposes them.
   */
  read(order: Uint32Array, from: number, count: number): void {
    fill(this.#inputs, this.xs, order, from, count);
    fill(this.#outputs, this.ys, order, from, count);
    const weights = this.#weights;
    if (weights === null) return;
    for (let i = 0; i < weights.length; i++) {
      const c = weights[i]!;
      if (c === null) continue;
      c.shape[0] = count;
      this.ws![i] = tf.tensor(gatherRows(c.rows, 1, order, from, count, c.into), c.shape);
    }
  }
}

function fill(
  columns: Column[],
  into: tf.Tensor[],
  order: Uint32Array,
  from: number,
  count: number,
): void {
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!;
    c.shape[0] = count;
    into[i] = tf.tensor(
      gatherRows(c.rows, c.width, order, from, count, c.into, c.stride, c.offset),
      c.shape,
    );
  }
}

/**
 * Sums of the total loss and of every metric (see `evaluationSums`), in
 * `model.metricsNames` order, over samples `[from, to)` of `data`, in
 * batches of `batchSize`; `onBatch` runs before each batch (a heartbeat).
 */
export async function evaluateRows(
  model: tf.LayersModel,
  data: SharedData,
  rows: { from: number; to: number; batchSize: number },
  lossWeights: readonly number[] | null,
  onBatch?: () => void,
): Promise<number[]> {
  const batches = new BatchReader(data);
  const order = epochOrder(data.count, { seed: 0, epoch: 0, shuffle: false });
  const sums = new Array<number>(model.metricsNames.length).fill(0);
  for (let at = rows.from; at < rows.to; at += rows.batchSize) {
    onBatch?.();
    batches.read(order, at, Math.min(rows.batchSize, rows.to - at));
    let partial: tf.Scalar[];
    try {
      partial = evaluationSums(model, batches.xs, batches.ys, lossWeights);
    } finally {
      tf.dispose(batches.xs);
      tf.dispose(batches.ys);
    }
    for (let i = 0; i < partial.length; i++) {
      sums[i]! += (await partial[i]!.data())[0]!;
    }
    tf.dispose(partial);
  }
  return sums;
}
