import assert from "node:assert/strict";
import * as tfd from "@tensorflow/tfjs-data";
import { MirroredStrategy, tf } from "../../mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

function build(): tf.LayersModel {
  const model = tf.sequential({
    layers: [tf.layers.dense({
      units: 2,
      activation: "softmax",
      inputShape: [3],
      kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
    })],
  });
  model.compile({ optimizer: tf.train.sgd(0.5), loss: "categoricalCrossentropy" });
  return model;
}

const rows = Array.from({ length: 60 }, (_, i) => ({
  xs: [i % 3, (i * 7) % 5, (i * 11) % 4].map((v) => v / 4),
  ys: i % 2 === 0 ? [1, 0] : [0, 1],
}));

Deno.test("MirroredStrategy.fitDataset() trains like fit() on the same samples", opts, async () => {
  await tf.setBackend("cpu");
  const expected = build();
  await using a = new MirroredStrategy({ replicas: 2, backend: "cpu" });
  await a.fit(expected, rows.map((r) => r.xs), rows.map((r) => r.ys), {
    epochs: 2,
    batchSize: 20,
    shuffle: false,
  });
  for (const dataset of [tfd.array(rows), tfd.array(rows).batch(7)]) {
    const model = build();
    await using b = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const before = tf.memory().numTensors;
    const history = await b.fitDataset(model, dataset, {
      epochs: 2,
      batchSize: 20,
      shuffle: false,
    });
    assert.equal(history.epoch.length, 2);
    assert.equal(tf.memory().numTensors, before, "fitDataset leaked tensors");
    const diff = tf.tidy(() =>
      Math.max(
        ...model.getWeights().map((w, i) =>
          tf.max(tf.abs(tf.sub(w, expected.getWeights()[i]!))).dataSync()[0]!
        ),
      )
    );
    assert.ok(diff <= 1e-6, `max |weight difference| ${diff}`);
    model.dispose();
  }
  expected.dispose();
});

Deno.test(
  "MirroredStrategy.fitDataset() rejects malformed elements with the element index",
  opts,
  async () => {
    await using s = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const model = build();
    await assert.rejects(
      () => s.fitDataset(model, tfd.array([{ xs: [1, 2, 3], ys: [1, 0] }, { x: [1, 2, 3] }])),
      {
        name: "TypeError",
        message: 'Dataset element 1 must be { xs, ys }, received {"x":[1,2,3]}',
      },
    );
    await assert.rejects(
      () =>
        s.fitDataset(model, tfd.array([{ xs: [1, 2, 3], ys: [1, 0] }, { xs: [1, 2], ys: [1, 0] }])),
      {
        name: "RangeError",
        message:
          "Dataset element 1 has sample shapes [2] / [2], expected [3] / [2] like the first element",
      },
    );
    await assert.rejects(() => s.fitDataset(model, tfd.array([])), {
      name: "RangeError",
      message: "The dataset is empty: expected at least one { xs, ys } element",
    });
    await assert.rejects(() => s.fitDataset(model, [] as never), {
      name: "TypeError",
      message: "fitDataset() expects a tfjs-data Dataset (an object with iterator())",
    });
    model.dispose();
  },
);
