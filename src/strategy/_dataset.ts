/**
 * Materialises a tfjs-data `Dataset` (or anything with the same `iterator()`
 * shape) of `{ xs, ys }` elements into flat arrays, once, so a strategy can
 * place it in shared memory. Elements may be single samples or batches
 * (`dataset.batch(n)`); tensors are disposed as they are read.
 *
 * @module
 */
import * as tf from "../tf.ts";

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

/**
 * Reads every element of `dataset`; returns samples as flat `Float32Array`s
 * shaped `[count, ...sampleShape]`.
 */
export async function materializeDataset(
  dataset: DatasetLike,
  sampleShapes: { x: (number | null)[]; y: (number | null)[] },
): Promise<{ x: tf.Tensor; y: tf.Tensor }> {
  if (typeof (dataset as { iterator?: unknown })?.iterator !== "function") {
    throw new TypeError("fitDataset() expects a tfjs-data Dataset (an object with iterator())");
  }
  const xs: number[] = [], ys: number[] = [];
  let xShape: number[] | undefined, yShape: number[] | undefined;
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
    const x = flat(el.xs, "xs", i), y = flat(el.ys, "ys", i);
    // A batched element has one more dimension than a sample.
    const batched = x.shape.length === sampleShapes.x.length + 1;
    const n = batched ? x.shape[0]! : 1;
    const xs1 = batched ? x.shape.slice(1) : x.shape;
    const ys1 = batched ? y.shape.slice(1) : y.shape;
    if ((batched ? y.shape[0] : 1) !== n) {
      throw new RangeError(`Dataset element ${i}: xs has ${n} samples, ys has ${y.shape[0]}`);
    }
    xShape ??= xs1;
    yShape ??= ys1;
    if (xs1.join() !== xShape.join() || ys1.join() !== yShape.join()) {
      throw new RangeError(
        `Dataset element ${i} has sample shapes [${xs1}] / [${ys1}], expected [${xShape}] / ` +
          `[${yShape}] like the first element`,
      );
    }
    for (const v of x.data) xs.push(v);
    for (const v of y.data) ys.push(v);
    count += n;
  }
  if (count === 0 || xShape === undefined || yShape === undefined) {
    throw new RangeError("The dataset is empty: expected at least one { xs, ys } element");
  }
  return {
    x: tf.tensor(xs, [count, ...xShape]),
    y: tf.tensor(ys, [count, ...(yShape.length === 0 ? [1] : yShape)]),
  };
}
