/**
 * Gradient buckets: summing a step's gradients across hosts while the
 * backward pass is still running, as PyTorch DDP and Horovod do. The fused
 * vector's trainable part is cut into buckets in reverse weight order (the
 * order a backward pass produces gradients: last layer first), and a hook on
 * each weight's read hands its gradient over the moment tfjs has computed it,
 * so a full bucket can go on the wire while earlier layers are differentiated.
 *
 * The plan depends only on the weight sizes and the bucket size, never on
 * the backend or the timing, so every replica of every host makes the same
 * exchanges in the same order; where no hook fires (a weight read twice, a
 * backend that cannot be read synchronously), the bucket is simply sent when
 * the backward pass ends.
 *
 * @module
 */
import * as tf from "../tf.ts";

/** One bucket: a range of the fused vector and the trainable weights in it. */
export interface Bucket {
  /** First float of the range. */
  offset: number;
  /** Floats in the range. */
  length: number;
  /** Indices (in trainable order) of the weights the range holds. */
  vars: number[];
}

/**
 * Cuts weights of `sizes` floats (trainable order, laid out back to back
 * from 0) into buckets of at least `bucketFloats` floats, starting from the
 * last weight; the final bucket takes what is left. `bucketFloats <= 0` is
 * one bucket of everything.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planBuckets } from "./_buckets.ts";
 * // An MLP's kernels and biases: 784x512, 512, 512x512, 512, 512x10, 10.
 * const plan = planBuckets([401408, 512, 262144, 512, 5120, 10], 262144);
 * assert.deepEqual(plan.map((b) => [b.offset, b.length]), [[401920, 267786], [0, 401920]]);
 * assert.deepEqual(plan.map((b) => b.vars), [[5, 4, 3, 2], [1, 0]]);
 * ```
 */
export function planBuckets(sizes: readonly number[], bucketFloats: number): Bucket[] {
  const offsets: number[] = [];
  let total = 0;
  for (const size of sizes) {
    offsets.push(total);
    total += size;
  }
  const buckets: Bucket[] = [];
  let end = total;
  let vars: number[] = [];
  for (let i = sizes.length - 1; i >= 0; i--) {
    vars.push(i);
    const length = end - offsets[i]!;
    if ((bucketFloats > 0 && length >= bucketFloats) || i === 0) {
      buckets.push({ offset: offsets[i]!, length, vars });
      end = offsets[i]!;
      vars = [];
    }
  }
  return buckets;
}

/** A LayerVariable as the hooks see it (tfjs-layers 4.22: `read()` returns its tf.Variable). */
interface Readable {
  read(): tf.Tensor;
}

interface HookState {
  reads: Int32Array;
  onGradient: (index: number, grad: tf.Tensor) => void;
}

const hooks = new WeakMap<
  tf.LayersModel,
  { state: HookState; fns: ((x: tf.Tensor) => tf.Tensor)[] }
>();

/**
 * Runs `run` (one training step's `tf.variableGrads`) with a hook on every
 * trainable weight of `model`: `onGradient(i, grad)` is called inside the
 * backward pass with the complete gradient of trainable weight `i` as soon
 * as tfjs has computed it, while the rest of the pass is still to run.
 * `grad` belongs to tfjs (read it, do not keep or dispose it); the values
 * returned by `run` are unchanged. A weight read more than once in the step
 * (a shared layer, a regulariser) gets partial gradients, so it gets no call;
 * its gradient is only in what `run` returns. Runs on the Worker's thread; not
 * reentrant.
 */
export function withGradientHooks<T>(
  model: tf.LayersModel,
  onGradient: (index: number, grad: tf.Tensor) => void,
  run: () => T,
): T {
  const weights = model.trainableWeights as unknown as Readable[];
  let entry = hooks.get(model);
  if (entry === undefined || entry.fns.length !== weights.length) {
    const state: HookState = { reads: new Int32Array(weights.length), onGradient };
    const fns = weights.map((_, i) =>
      tf.customGrad((x) => ({
        value: (x as tf.Tensor).clone(),
        gradFunc: (dy: tf.Tensor) => {
          if (state.reads[i] === 1) state.onGradient(i, dy);
          return dy;
        },
      }))
    );
    entry = { state, fns };
    hooks.set(model, entry);
  }
  const { state, fns } = entry;
  state.reads.fill(0);
  state.onGradient = onGradient;
  weights.forEach((w, i) => {
    const read = Object.getPrototypeOf(w).read as () => tf.Tensor;
    w.read = function () {
      state.reads[i]!++;
      return fns[i]!(read.call(this));
    };
  });
  try {
    return run();
  } finally {
    for (const w of weights) delete (w as Partial<Readable>).read;
  }
}
