import assert from "node:assert/strict";
import { MirroredStrategy, tf } from "../../mod.ts";
import { ParallelMap } from "../../src/data/pipeline.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const MAPS = new URL("../fixtures/pipeline_maps.ts", import.meta.url);

function build(loss = "categoricalCrossentropy"): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 8,
        activation: "relu",
        inputShape: [5],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 4,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
  model.compile({
    optimizer: tf.train.adam(0.02),
    loss,
    metrics: ["accuracy"],
  });
  return model;
}

const N = 90;
const source = {
  x: Float32Array.from({ length: N * 5 }, (_, i) => Math.sin(i * 0.37)),
  y: Uint8Array.from({ length: N }, (_, i) => i % 4),
  count: N,
  featureShape: [5],
};

Deno.test(
  "MirroredStrategy.fitPipeline() equals fit() on the same data when the map only one-hots labels",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const seed = 11;
    const xs = tf.tensor2d(source.x, [N, 5]);
    const ys = tf.oneHot(tf.tensor1d(source.y, "int32"), 4);
    const expected = build();
    await using a = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const want = await a.fit(expected, xs, ys, { epochs: 3, batchSize: 20, seed });

    const model = build();
    await using pipeline = new ParallelMap(source, {
      map: { url: MAPS, exportName: "oneHot4" },
      workers: 2,
      seed,
    });
    await using b = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const events: string[] = [];
    const got = await b.fitPipeline(model, pipeline, {
      epochs: 3,
      batchSize: 20,
      callbacks: {
        onTrainBegin: () => void events.push("begin"),
        onEpochEnd: (e) => void events.push(`epoch ${e}`),
        onTrainEnd: () => void events.push("end"),
      },
    });
    assert.deepEqual(events, ["begin", "epoch 0", "epoch 1", "epoch 2", "end"]);
    assert.deepEqual(got.epoch, [0, 1, 2]);
    const diff = tf.tidy(() =>
      Math.max(
        ...model.getWeights().map((w, i) =>
          tf.max(tf.abs(tf.sub(w, expected.getWeights()[i]!))).dataSync()[0]!
        ),
      )
    );
    assert.ok(diff <= 1e-6, `max |weight difference| ${diff}`);
    got.history.loss!.forEach((v, i) => assert.ok(Math.abs(v - want.history.loss![i]!) < 1e-6));
    tf.dispose([xs, ys]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fitPipeline() trains on uint8 class indices with a sparse loss and classWeight like fit() (cpu and wasm)",
  opts,
  async () => {
    const seed = 4;
    const classWeight = { 0: 1, 1: 2, 2: 0.5, 3: 1.5 };
    await tf.setBackend("cpu");
    for (const backend of ["cpu", "wasm"] as const) {
      const xs = tf.tensor2d(source.x, [N, 5]);
      const labels = tf.tensor1d(source.y, "int32");
      const expected = build("sparseCategoricalCrossentropy");
      await using a = new MirroredStrategy({ replicas: 2, backend });
      const want = await a.fit(expected, xs, labels, {
        epochs: 2,
        batchSize: 20,
        seed,
        classWeight,
      });
      const model = build("sparseCategoricalCrossentropy");
      await using pipeline = new ParallelMap(source, {
        map: { url: MAPS, exportName: "identity" },
        workers: 2,
        seed,
      });
      assert.equal((await pipeline.start()).labelDtype, "uint8");
      await using b = new MirroredStrategy({ replicas: 2, backend });
      const got = await b.fitPipeline(model, pipeline, { epochs: 2, batchSize: 20, classWeight });
      const diff = tf.tidy(() =>
        Math.max(
          ...model.getWeights().map((w, i) =>
            tf.max(tf.abs(tf.sub(w, expected.getWeights()[i]!))).dataSync()[0]!
          ),
        )
      );
      assert.ok(diff <= 1e-5, `${backend}: max |weight difference| ${diff}`);
      for (const key of ["loss", "acc"]) {
        got.history[key]!.forEach((v, i) =>
          assert.ok(Math.abs(v - want.history[key]![i]!) < 1e-5, `${backend}: ${key}[${i}]`)
        );
      }
      tf.dispose([xs, labels]);
      expected.dispose();
      model.dispose();
    }
  },
);

Deno.test(
  "MirroredStrategy.fitPipeline() rejects a sparse label that is not a class of the output, naming the sample",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const bad = { ...source, y: source.y.map((v, i) => (i === 17 ? 9 : v)) };
    await using pipeline = new ParallelMap(bad, {
      map: { url: MAPS, exportName: "identity" },
      workers: 1,
      seed: 2,
      shuffle: false,
    });
    await using s = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const model = build("sparseCategoricalCrossentropy");
    await assert.rejects(() => s.fitPipeline(model, pipeline, { batchSize: 10 }), {
      name: "RangeError",
      message:
        "The pipeline's labels: sample 17 is 9: a sparse categorical label must be an integer " +
        "in [0, 4)",
    });
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fitPipeline() rejects options and shapes that cannot work",
  opts,
  async () => {
    await using s = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const model = build();
    await using raw = new ParallelMap(source, {
      map: { url: MAPS, exportName: "tag" },
      workers: 1,
      seed: 1,
    });
    await assert.rejects(() => s.fitPipeline(model, raw, { validationSplit: 0.1 } as never), {
      name: "TypeError",
      message:
        "fitPipeline() does not take validationSplit: the pipeline shuffles and seeds its epochs; pass validationData instead",
    });
    await assert.rejects(() => s.fitPipeline(model, raw, { batchSize: 16 }), {
      name: "RangeError",
      message: "The pipeline produces samples [8] with labels [], the model expects [5] and [4]",
    });
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fitPipeline() leaks no tensors in the main thread or the replicas",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const model = build();
    await using pipeline = new ParallelMap(source, {
      map: { url: MAPS, exportName: "oneHot4" },
      workers: 1,
      seed: 3,
    });
    await using s = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    await s.fitPipeline(model, pipeline, { epochs: 1, batchSize: 30 });
    const main = tf.memory().numTensors;
    const replicas = s.stats!.replicaTensors;
    await s.fitPipeline(model, pipeline, { epochs: 3, batchSize: 30 });
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(s.stats!.replicaTensors, replicas, "replica tensors leaked");
    model.dispose();
    // uint8 class indices, a sparse loss and classWeight.
    const sparse = build("sparseCategoricalCrossentropy");
    await using indices = new ParallelMap(source, {
      map: { url: MAPS, exportName: "identity" },
      workers: 1,
      seed: 3,
    });
    await using t = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const classWeight = { 0: 1, 1: 2, 2: 1, 3: 1 };
    await t.fitPipeline(sparse, indices, { epochs: 1, batchSize: 30, classWeight });
    const main2 = tf.memory().numTensors;
    const replicas2 = t.stats!.replicaTensors;
    await t.fitPipeline(sparse, indices, { epochs: 3, batchSize: 30, classWeight });
    assert.equal(tf.memory().numTensors, main2, "main-thread tensors leaked (sparse)");
    assert.deepEqual(t.stats!.replicaTensors, replicas2, "replica tensors leaked (sparse)");
    sparse.dispose();
  },
);
