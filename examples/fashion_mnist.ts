/**
 * Fashion-MNIST (Debian's `dataset-fashion-mnist`: 60,000 train / 10,000
 * test images) with an MLP (256-128) or a two-conv CNN, trained with
 * MirroredStrategy on every core.
 *
 *   apt-get install dataset-fashion-mnist
 *   deno run -A examples/fashion_mnist.ts --model mlp [--epochs 15]
 *   deno run -A examples/fashion_mnist.ts --model cnn [--epochs 12]
 *
 * Published references (Fashion-MNIST benchmark table): MLP 256-128-64 0.900,
 * 2-conv CNN 0.916.
 *
 * @module
 */
import { loadFashionMnist, MirroredStrategy, tf, toTensors } from "../mod.ts";
import { buildPreset } from "../src/models/presets.ts";
import { flags } from "./_args.ts";

const f = flags({ model: "mlp", epochs: "", limit: "60000", replicas: "0", backend: "auto" });
if (f.model !== "mlp" && f.model !== "cnn") {
  console.error(`--model must be mlp or cnn, received "${f.model}"`);
  Deno.exit(2);
}
const cnn = f.model === "cnn";
const epochs = Number(f.epochs || (cnn ? 12 : 15));
await tf.setBackend("cpu"); // the main thread only prepares data
const { train, test } = await loadFashionMnist({ limit: Number(f.limit) });
const layout = cnn ? "image" : "flat";
const trainSet = toTensors(train, { layout, numClasses: 10 });
const testSet = toTensors(test, { layout, numClasses: 10 });

const model = cnn
  ? buildPreset({ preset: "cnn", filters: [32, 64], dense: 128 })
  : buildPreset({ preset: "mlp", hidden: [256, 128] });
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
  epochs,
  batchSize: 128,
  seed: 42,
  validationSplit: 0.1,
  verbose: 1,
});
const seconds = (performance.now() - started) / 1000;
const scores = await strategy.evaluate(model, testSet.xs, testSet.ys, { batchSize: 500 });
console.log(
  `fashion_mnist ${f.model}: test accuracy ${
    (scores.acc! * 100).toFixed(2)
  }% after ${epochs} epochs ` +
    `(${strategy.replicas} replicas on ${strategy.stats!.backends[0]}, ${seconds.toFixed(0)} s, ` +
    `${Math.round((epochs * train.count * 0.9) / seconds)} samples/s)`,
);
tf.dispose([trainSet.xs, trainSet.ys, testSet.xs, testSet.ys]);
