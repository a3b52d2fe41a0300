// Private test helpers: a small deterministic model and batch.
import * as tf from "../../src/tf.ts";

/** A 4 -> 8 -> 3 softmax classifier with seeded initial weights. */
export function smallModel(seed = 1): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 8,
        inputShape: [4],
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 3,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

/** A fixed batch of 6 examples for smallModel(). */
export function batch(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const xs = tf.tensor2d(
    Array.from({ length: 24 }, (_, i) => Math.sin(i) * 2),
    [6, 4],
  );
  const labels = [0, 1, 2, 0, 1, 2];
  const ys = tf.tensor2d(
    labels.flatMap((label) => [0, 1, 2].map((c) => (c === label ? 1 : 0))),
    [6, 3],
  );
  return { xs, ys };
}

/** Temp dir for one test, removed afterwards. */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtrain_io_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
