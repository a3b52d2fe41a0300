import assert from "node:assert/strict";
import { fit, MirroredStrategy, parallelModel, tf } from "../../mod.ts";
import { classifier, dataset } from "./_models.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const BACKEND = "cpu" as const;

function build(compile = true): tf.LayersModel {
  return classifier(compile ? () => tf.train.sgd(0.3) : null);
}

function maxWeightDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() => {
    const wa = a.getWeights(), wb = b.getWeights();
    return Math.max(...wa.map((w, i) => tf.max(tf.abs(tf.sub(w, wb[i]!))).dataSync()[0]!));
  });
}

Deno.test(
  "fit() trains with workers and keeps Keras' batchSize: samples per update",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(256);
    const model = build();
    const updates: number[] = [];
    let count = 0;
    const history = await fit(model, x, y, {
      epochs: 4,
      batchSize: 32,
      workers: 2,
      backend: BACKEND,
      callbacks: {
        onBatchEnd: () => void count++,
        onEpochEnd: () => {
          updates.push(count);
          count = 0;
        },
      },
    });
    // 256 samples / 32 per update: 8 updates per epoch, whichever worker computed them.
    assert.deepEqual(updates, [8, 8, 8, 8]);
    assert.deepEqual(history.epoch, [0, 1, 2, 3]);
    const loss = history.history.loss!;
    assert.ok(loss[3]! < loss[0]!, `loss did not fall: ${loss}`);
    assert.ok(history.history.acc![3]! > 0.7, `accuracy ${history.history.acc}`);
    assert.deepEqual(history.history.restarts, [0, 0, 0, 0]);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "fit() rejects bad options before starting Workers",
  opts,
  async () => {
    const { x, y } = dataset(16);
    const model = build();
    await assert.rejects(() => fit(model, x, y, { workers: 0 }), {
      name: "RangeError",
      message: "workers must be an integer >= 1, received 0",
    });
    await assert.rejects(() => fit(model, x, y, { workers: 2, batchSize: 0, backend: BACKEND }), {
      name: "RangeError",
      message: "batchSize must be an integer >= 1 (samples per gradient, per worker), received 0",
    });
    await assert.rejects(() => fit({} as tf.LayersModel, x, y), {
      name: "TypeError",
      message: "fit() expects a tf.LayersModel built with dtrain's tf, received [object Object]",
    });
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "parallelModel() compiles, fits, evaluates and predicts like MirroredStrategy",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(192);
    const compileArgs = {
      optimizer: tf.train.adam(0.01),
      loss: "categoricalCrossentropy",
      metrics: ["accuracy"],
    };
    const expected = build(false);
    expected.compile({ ...compileArgs, optimizer: tf.train.adam(0.01) });
    {
      await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
      await strategy.fit(expected, x, y, { epochs: 2, batchSize: 48, shuffle: false });
    }
    const model = build(false);
    await using parallel = parallelModel(model, { replicas: 2, backend: BACKEND });
    parallel.compile(compileArgs);
    const history = await parallel.fit(x, y, { epochs: 2, batchSize: 48, shuffle: false });
    assert.equal(history.history.loss!.length, 2);
    assert.equal(parallel.model, model);
    assert.ok(maxWeightDiff(model, expected) <= 1e-6, "weights differ from MirroredStrategy's");
    const scores = await parallel.evaluate(x, y, { batchSize: 64 });
    const [loss, acc] = model.evaluate(x, y, { batchSize: 64 }) as tf.Scalar[];
    assert.ok(Math.abs(scores.loss! - loss!.dataSync()[0]!) <= 1e-5);
    assert.ok(Math.abs(scores.acc! - acc!.dataSync()[0]!) <= 1e-6);
    const got = parallel.predict(x, { batchSize: 50 });
    const want = model.predict(x) as tf.Tensor;
    assert.deepEqual(got.shape, [192, 3]);
    assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
    const fromArray = parallel.predict([[0, 0, 0, 0, 0, 0, 0, 0]]);
    assert.deepEqual(fromArray.shape, [1, 3]);
    tf.dispose([x, y, loss!, acc!, got, want, fromArray]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "parallelModel() rejects a non-model and bad options before starting Workers",
  () => {
    assert.throws(() => parallelModel("model" as unknown as tf.LayersModel), {
      name: "TypeError",
      message:
        "parallelModel() expects a tf.LayersModel built with dtrain's tf, received [object String]",
    });
    const model = build();
    assert.throws(() => parallelModel(model, { replicas: 0 }), {
      name: "RangeError",
      message: "replicas must be an integer >= 1, received 0",
    });
    const parallel = parallelModel(model, { replicas: 2, backend: BACKEND });
    assert.throws(() => parallel.predict([[0, 0, 0, 0, 0, 0, 0, 0]], { batchSize: 0 }), {
      name: "RangeError",
      message: "batchSize must be an integer >= 1, received 0",
    });
    assert.equal(parallel.strategy.stats, undefined, "no Worker should have started");
    model.dispose();
  },
);
