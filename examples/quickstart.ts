/**
 * The smallest complete use of dtrain: build a tfjs model with dtrain's `tf`,
 * train it with MirroredStrategy on every core, evaluate it.
 *
 *   deno run -A examples/quickstart.ts
 *
 * @module
 */
import { MirroredStrategy, tf } from "../mod.ts";

// y = 1 when x0 + x1 > 1: a tiny classification problem.
const xs = Array.from({ length: 2048 }, (_, i) => [(i * 37 % 101) / 100, (i * 53 % 97) / 96]);
const ys = xs.map(([a, b]) => (a! + b! > 1 ? [0, 1] : [1, 0]));

const model = tf.sequential({
  layers: [
    tf.layers.dense({ units: 16, activation: "relu", inputShape: [2] }),
    tf.layers.dense({ units: 2, activation: "softmax" }),
  ],
});
model.compile({
  optimizer: tf.train.adam(0.01),
  loss: "categoricalCrossentropy",
  metrics: ["accuracy"],
});

await using strategy = new MirroredStrategy(); // one replica per core, backend "auto"
const history = await strategy.fit(model, xs, ys, { epochs: 10, batchSize: 64, seed: 1 });
const scores = await strategy.evaluate(model, xs, ys);
console.log(`replicas: ${strategy.replicas}, backend: ${strategy.stats!.backends[0]}`);
console.log(`final training loss ${history.history.loss!.at(-1)!.toFixed(4)}`);
console.log(`accuracy ${(scores.acc! * 100).toFixed(1)}%`);
