// Private test helpers: the small seeded classifier and dataset the strategy
// tests train (8 features -> 16 relu -> 3 softmax classes), the 2-input,
// 2-output model and its data, and the oracle comparisons against model.fit.
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";

/**
 * The classifier with seeded initial weights, compiled with a fresh
 * `optimizer()` and `loss`, categorical cross-entropy by default (uncompiled when `null`).
 */
export function classifier(
  optimizer: (() => tf.Optimizer) | null,
  metrics = ["accuracy"],
  loss = "categoricalCrossentropy",
): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 16,
        activation: "relu",
        inputShape: [8],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 3,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
  if (optimizer !== null) {
    model.compile({ optimizer: optimizer(), loss, metrics });
  }
  return model;
}

/** `n` samples of 8 features in [-1, 1), one-hot labelled by a seeded linear map. */
export function dataset(n: number, seed = 3): { x: tf.Tensor2D; y: tf.Tensor2D } {
  return tf.tidy(() => {
    const x = tf.randomUniform([n, 8], -1, 1, "float32", seed) as tf.Tensor2D;
    const w = tf.randomNormal([8, 3], 0, 1, "float32", seed + 1);
    const y = tf.cast(tf.oneHot(tf.argMax(tf.matMul(x, w), 1), 3), "float32") as tf.Tensor2D;
    return { x, y };
  });
}

/** The largest |difference| between two models' weights, entry by entry. */
export function maxWeightDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() => {
    const wa = a.getWeights(), wb = b.getWeights();
    assert.equal(wa.length, wb.length, "the models have as many weights");
    return Math.max(...wa.map((w, i) => tf.max(tf.abs(tf.sub(w, wb[i]!))).dataSync()[0]!));
  });
}

/**
 * Asserts that every value of every key of `want` (a `model.fit` History)
 * matches `got`'s within `tol` (`scale` maps a key's values first); returns
 * the largest gap.
 */
export function assertHistory(
  got: Record<string, number[] | undefined>,
  want: Record<string, unknown[]>,
  keys: string[],
  what: string,
  options: { tol: number; scale?: Record<string, number> },
): number {
  let worst = 0;
  for (const key of keys) {
    const w = want[key] as number[] | undefined;
    assert.ok(w !== undefined && w.length > 0, `${what}: model.fit has ${key}`);
    assert.equal(got[key]?.length, w.length, `${what}: ${key} has one value per epoch`);
    w.forEach((v, i) => {
      const g = got[key]![i]! * (options.scale?.[key] ?? 1);
      const gap = Math.abs(g - v);
      worst = Math.max(worst, gap);
      assert.ok(gap <= options.tol, `${what}: ${key}[${i}] ${g} vs ${v}`);
    });
  }
  return worst;
}

/** A loss function as tfjs compiles it. */
export type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;
/** What `twoByTwo` compiles as `loss`. */
export type LossSpec = string[] | Record<string, string> | LossFn[];

/**
 * Two inputs `in_a` [8] and `in_b` [4], a shared trunk with an L2 penalty,
 * heads `cls` (softmax 3) and `reg` (linear 1); seeded initial weights,
 * compiled with `loss` and `cls: accuracy`, `reg: mae` metrics.
 */
export function twoByTwo(
  optimizer: () => tf.Optimizer,
  loss: LossSpec = ["categoricalCrossentropy", "meanSquaredError"],
): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const a = tf.input({ shape: [8], name: "in_a" });
  const b = tf.input({ shape: [4], name: "in_b" });
  const ha = tf.layers.dense({ units: 12, activation: "relu", kernelInitializer: init(1) })
    .apply(a) as tf.SymbolicTensor;
  const hb = tf.layers.dense({ units: 6, activation: "relu", kernelInitializer: init(2) })
    .apply(b) as tf.SymbolicTensor;
  const trunk = tf.layers.dense({
    units: 16,
    activation: "relu",
    kernelInitializer: init(3),
    kernelRegularizer: tf.regularizers.l2({ l2: 1e-3 }),
  }).apply(tf.layers.concatenate().apply([ha, hb])) as tf.SymbolicTensor;
  const cls = tf.layers.dense({
    units: 3,
    activation: "softmax",
    name: "cls",
    kernelInitializer: init(4),
  }).apply(trunk) as tf.SymbolicTensor;
  const reg = tf.layers.dense({ units: 1, name: "reg", kernelInitializer: init(5) })
    .apply(trunk) as tf.SymbolicTensor;
  const model = tf.model({ inputs: [a, b], outputs: [cls, reg] });
  model.compile({
    optimizer: optimizer(),
    loss: loss as tf.ModelCompileArgs["loss"],
    metrics: { cls: ["accuracy"], reg: ["mae"] } as unknown as tf.ModelCompileArgs["metrics"],
  });
  return model;
}

/** The inputs and targets of `twoByTwo`. */
export interface TwoByTwoData {
  xa: tf.Tensor2D;
  xb: tf.Tensor2D;
  cls: tf.Tensor2D;
  reg: tf.Tensor2D;
}

/** `n` samples: classes from a seeded linear map of both inputs, a regression target from another. */
export function twoByTwoData(n: number, seed = 7): TwoByTwoData {
  return tf.tidy(() => {
    const xa = tf.randomUniform([n, 8], -1, 1, "float32", seed) as tf.Tensor2D;
    const xb = tf.randomUniform([n, 4], -1, 1, "float32", seed + 1) as tf.Tensor2D;
    const both = tf.concat([xa, xb], 1);
    const logits = tf.matMul(both, tf.randomNormal([12, 3], 0, 1, "float32", seed + 2));
    const cls = tf.cast(tf.oneHot(tf.argMax(logits, 1), 3), "float32") as tf.Tensor2D;
    const reg = tf.matMul(both, tf.randomNormal([12, 1], 0, 0.5, "float32", seed + 3));
    return { xa, xb, cls, reg: reg as tf.Tensor2D };
  });
}

/** Disposes every tensor of `d`. */
export function disposeTwoByTwoData(d: TwoByTwoData): void {
  tf.dispose([d.xa, d.xb, d.cls, d.reg]);
}
