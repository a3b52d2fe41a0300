/**
 * Weight packing: a model's weights (tfjs `LayerVariable`s) to and from one
 * flat Float32 vector, in the order given (`model.weights`, or trainable then
 * non-trainable). Strategies keep weights this way in shared memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { packWeights, unpackWeights, weightsLength } from "./weights.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * const flat = new Float32Array(weightsLength(model.weights)); // 3 x 2 kernel + 2 bias
 * assert.equal(packWeights(model.weights, flat), 8);
 * const tensors = unpackWeights(flat, model.weights);
 * assert.deepEqual(tensors.map((t) => t.shape), [[3, 2], [2]]);
 * tf.dispose(tensors);
 * ```
 * @module
 */
import * as tf from "../tf.ts";

/** Floats in one weight. */
export function weightSize(w: tf.LayerVariable): number {
  return (w.shape as number[]).reduce((a, b) => a * b, 1);
}

/** Floats in all of `weights`. */
export function weightsLength(weights: readonly tf.LayerVariable[]): number {
  return weights.reduce((n, w) => n + weightSize(w), 0);
}

/** Copies `weights` into `into` from `offset` on; returns the offset after the last. */
export function packWeights(
  weights: readonly tf.LayerVariable[],
  into: Float32Array,
  offset = 0,
): number {
  for (const w of weights) {
    const data = w.read().dataSync() as Float32Array;
    into.set(data, offset);
    offset += data.length;
  }
  return offset;
}

/** {@linkcode packWeights} reading each weight asynchronously (any backend, GPU included). */
export async function packWeightsAsync(
  weights: readonly tf.LayerVariable[],
  into: Float32Array,
  offset = 0,
): Promise<number> {
  for (const w of weights) {
    const data = await w.read().data() as Float32Array;
    into.set(data, offset);
    offset += data.length;
  }
  return offset;
}

/**
 * New tensors, one per weight in `weights` order, holding copies of `flat`
 * from `offset` on (copies: `flat` may be reused or shared). The caller owns
 * them (`model.setWeights(t)`, then `tf.dispose(t)`).
 */
export function unpackWeights(
  flat: Float32Array,
  weights: readonly tf.LayerVariable[],
  offset = 0,
): tf.Tensor[] {
  return weights.map((w) => {
    const size = weightSize(w);
    const t = tf.tensor(flat.slice(offset, offset + size), w.shape as number[]);
    offset += size;
    return t;
  });
}
