// Sparse categorical labels, as Keras tutorials use them: class indices of
// shape [n] or [n, 1] (float or int32) with sparseCategoricalCrossentropy.
import assert from "node:assert/strict";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import { classifier, dataset } from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TOL = 1e-5;

function sparseClassifier(): tf.LayersModel {
  return classifier(() => tf.train.adam(0.01), ["accuracy"], "sparseCategoricalCrossentropy");
}

function maxDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() =>
    Math.max(
      ...a.getWeights().map((w, i) => tf.max(tf.abs(tf.sub(w, b.getWeights()[i]!))).dataSync()[0]!),
    )
  );
}

Deno.test(
  "MirroredStrategy.fit() with sparse labels of shape [n] and [n, 1] matches model.fit",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(120);
    const labels = tf.tidy(() => tf.argMax(y, 1)); // int32 [n]
    const expected = sparseClassifier();
    // tfjs' own validationSplit cannot slice int32 labels: the oracle gets float ones.
    const floatLabels = tf.cast(labels, "float32");
    const want = await expected.fit(x, floatLabels, {
      epochs: 2,
      batchSize: 24,
      shuffle: false,
      verbose: 0,
      validationSplit: 0.2,
    });
    const forms: [string, tf.Tensor | number[]][] = [
      ["int32 [n]", labels],
      ["float [n, 1]", tf.tidy(() => tf.cast(tf.reshape(labels, [-1, 1]), "float32"))],
      ["number[]", Array.from(labels.dataSync())],
    ];
    for (const [name, form] of forms) {
      const model = sparseClassifier();
      await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
      const history = await strategy.fit(model, x, form, {
        epochs: 2,
        batchSize: 24,
        shuffle: false,
        validationSplit: 0.2,
      });
      const d = maxDiff(model, expected);
      assert.ok(d <= TOL, `${name}: max |weight difference| ${d}`);
      for (const key of ["loss", "acc", "val_loss", "val_acc"]) {
        history.history[key]!.forEach((v, i) => {
          const w = (want.history[key] as number[])[i]!;
          assert.ok(Math.abs(v - w) <= TOL, `${name}: ${key}[${i}] ${v} vs ${w}`);
        });
      }
      const scores = await strategy.evaluate(model, x, form);
      assert.ok(scores.acc! > 0.4 && scores.acc! <= 1, `${name}: accuracy ${scores.acc}`);
      model.dispose();
    }
    tf.dispose([x, y, labels, floatLabels, forms[1]![1] as tf.Tensor]);
    expected.dispose();
  },
);

Deno.test("WorkerStrategy.fit() trains with sparse labels", opts, async () => {
  await tf.setBackend("cpu");
  const { x, y } = dataset(96);
  const labels = tf.tidy(() => tf.argMax(y, 1));
  const model = sparseClassifier();
  await using strategy = new WorkerStrategy({ workers: 2, backend: "cpu" });
  const history = await strategy.fit(model, x, labels, { epochs: 3, batchSize: 16, seed: 1 });
  const loss = history.history.loss!;
  assert.ok(loss[2]! < loss[0]!, `the loss went down: ${loss}`);
  tf.dispose([x, y, labels]);
  model.dispose();
});

Deno.test("fit() refuses sparse labels out of range or of the wrong shape, naming them", async () => {
  const { x, y } = dataset(8);
  const model = sparseClassifier();
  await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
  await assert.rejects(
    () => strategy.fit(model, x, [0, 1, 2, 3, 0, 1, 2, 0]),
    new RangeError("y[3] is 3: a sparse categorical label must be an integer in [0, 3)"),
  );
  await assert.rejects(
    () => strategy.fit(model, x, [0, 1, 2, 1.5, 0, 1, 2, 0]),
    /y\[3\] is 1\.5: a sparse categorical label must be an integer/,
  );
  await assert.rejects(
    () => strategy.fit(model, x, y),
    new RangeError(
      "y holds class indices for the sparse loss: expected shape [n] or [n, 1], received [8, 3]",
    ),
  );
  assert.equal(strategy.stats, undefined, "no Worker started");
  tf.dispose([x, y]);
  model.dispose();
});
