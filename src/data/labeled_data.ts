/**
 * The plain-array shape every dtrain data source returns: row-major features
 * and one label per example. No tensors, so the arrays can be copied into a
 * `SharedArrayBuffer` or transferred to replica Workers as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { LabeledData } from "./labeled_data.ts";
 * const data: LabeledData = {
 *   x: new Float32Array([0, 1, 1, 0]),
 *   y: new Uint8Array([1, 0]),
 *   count: 2,
 *   featureShape: [2],
 * };
 * assert.ok(data.x.length === data.count * 2);
 * ```
 * @module
 */

/**
 * Examples with row-major features `x` (`count * product(featureShape)`
 * floats) and labels `y` (`count` entries: class indices as `Uint8Array`, or
 * arbitrary numbers as `Float32Array`).
 */
export interface LabeledData<
  Y extends Uint8Array | Float32Array = Uint8Array | Float32Array,
> {
  /** Features, one row of `product(featureShape)` values per example. */
  x: Float32Array;
  /** One label per example. */
  y: Y;
  /** Number of examples. */
  count: number;
  /** Shape of one example, e.g. `[28, 28]` for an image or `[4]` for a CSV row. */
  featureShape: readonly number[];
}

/** A train split and a test split, as returned by the dataset loaders. */
export interface TrainTestData<
  Y extends Uint8Array | Float32Array = Uint8Array,
> {
  /** Training examples. */
  train: LabeledData<Y>;
  /** Held-out test examples. */
  test: LabeledData<Y>;
}
