/**
 * Materialises a tfjs-data `Dataset` (or anything with the same `iterator()`
 * shape) of `{ xs, ys }` elements into flat arrays, once, so a strategy can
 * place it in shared memory: one column per model input and output.
 * Elements may be single samples or batches (`dataset.batch(n)`); tensors
 * are disposed as they are read.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { splitColumns } from "./_inputs.ts";

/** The part of a tfjs-data `Dataset` dtrain needs. */
export interface DatasetLike<T = unknown> {
  /** Returns a fresh iterator over the elements. */
  iterator(): Promise<{ next(): Promise<IteratorResult<T>> }>;
}

type Value = tf.Tensor | number[] | number[][] | Float32Array | number;

function flat(value: Value, what: string, index: number): { data: number[]; shape: number[] } {
  if (value instanceof tf.Tensor) {
    const data = Array.from(value.dataSync());
    const shape = value.shape;
    value.dispose();
    return { data, shape };
  }
  if (typeof value === "number") return { data: [value], shape: [] };
  if (ArrayBuffer.isView(value)) return { data: Array.from(value), shape: [value.length] };
  if (Array.isArray(value)) {
    const shape: number[] = [];
    let probe: unknown = value;
    while (Array.isArray(probe)) {
      shape.push(probe.length);
      probe = probe[0];
    }
    return { data: (value as unknown[]).flat(Infinity) as number[], shape };
  }
  throw new TypeError(
    `Dataset element ${index}: ${what} must be a tensor, a number array or a number, ` +
      `received ${Object.prototype.toString.call(value)}`,
  );
}

/** One input's (output's) samples read so far. */
interface Gathered {
  values: number[];
  /** Per-sample shape, from the first element. */
  shape: number[] | undefined;
}

/**
 * Reads every element of `dataset`; returns one tensor per model input and
 * per model output, shaped `[count, ...sampleShape]` (a sample of shape
 * `[]` becomes `[1]`). An element's `xs` (`ys`) is one input's (output's)
 * values or, for a model with several, an array in model order or a dict by
 * layer name, as tfjs' `model.fitDataset` reads it; an element is a batch
 * when its first input has one more dimension than the model's samples.
 */
export async function materializeDataset(
  dataset: DatasetLike,
  model: tf.LayersModel,
): Promise<{ xs: tf.Tensor[]; ys: tf.Tensor[] }> {
  if (typeof (dataset as { iterator?: unknown })?.iterator !== "function") {
    throw new TypeError("fitDataset() expects a tfjs-data Dataset (an object with iterator())");
  }
  const single = model.inputs.length === 1 && model.outputs.length === 1;
  const sampleRank = model.inputs[0]!.shape.length - 1;
  const gathered: Gathered[] = [...model.inputs, ...model.outputs].map(() => ({
    values: [],
    shape: undefined,
  }));
  let count = 0;
  const it = await dataset.iterator();
  for (let i = 0;; i++) {
    const { value, done } = await it.next();
    if (done) break;
    const el = value as { xs?: Value; ys?: Value };
    if (el === null || typeof el !== "object" || el.xs === undefined || el.ys === undefined) {
      throw new TypeError(
        `Dataset element ${i} must be { xs, ys }, received ${JSON.stringify(value)?.slice(0, 80)}`,
      );
    }
    const at = `Dataset element ${i}`;
    const xs = splitColumns(model, el.xs, "input", `${at}: xs`);
    const ys = splitColumns(model, el.ys, "output", `${at}: ys`);
    const labels = [...xs.labels, ...ys.labels].map((l) => l.slice(at.length + 2));
    const columns = [...xs.values, ...ys.values].map((v, c) => flat(v as Value, labels[c]!, i));
    // A batched element has one more dimension than a sample.
    const batched = columns[0]!.shape.length === sampleRank + 1;
    const n = batched ? columns[0]!.shape[0]! : 1;
    columns.forEach((column, c) => {
      if ((batched ? column.shape[0] : 1) !== n) {
        throw new RangeError(
          `${at}: ${labels[0]} has ${n} samples, ${labels[c]} has ${column.shape[0]}`,
        );
      }
    });
    const shapes = columns.map((column) => batched ? column.shape.slice(1) : column.shape);
    shapes.forEach((shape, c) => (gathered[c]!.shape ??= shape));
    const bad = shapes.findIndex((shape, c) => shape.join() !== gathered[c]!.shape!.join());
    if (bad >= 0 && single) {
      throw new RangeError(
        `${at} has sample shapes [${shapes[0]}] / [${shapes[1]}], expected ` +
          `[${gathered[0]!.shape}] / [${gathered[1]!.shape}] like the first element`,
      );
    }
    if (bad >= 0) {
      throw new RangeError(
        `${at}: ${labels[bad]} has sample shape [${shapes[bad]}], expected ` +
          `[${gathered[bad]!.shape}] like the first element`,
      );
    }
    columns.forEach((column, c) => {
      const into = gathered[c]!.values;
      for (const v of column.data) into.push(v);
    });
    count += n;
  }
  if (count === 0) {
    throw new RangeError("The dataset is empty: expected at least one { xs, ys } element");
  }
  const tensors = gathered.map((g, c) => {
    const shape = c >= model.inputs.length && g.shape!.length === 0 ? [1] : g.shape!;
    return tf.tensor(g.values, [count, ...shape]);
  });
  return { xs: tensors.slice(0, model.inputs.length), ys: tensors.slice(model.inputs.length) };
}
