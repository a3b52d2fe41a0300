// Private test helpers: the small seeded classifier and dataset the strategy
// tests train (8 features -> 16 relu -> 3 softmax classes).
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
