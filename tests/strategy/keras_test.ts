import assert from "node:assert/strict";
import { fit, MirroredStrategy, parallelModel, tf } from "../../mod.ts";
import {
  classifier,
  dataset,
  disposeTwoByTwoData,
  maxWeightDiff,
  twoByTwo,
  twoByTwoData,
} from "./_models.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const BACKEND = "cpu" as const;

function build(compile = true): tf.LayersModel {
  return classifier(compile ? () => tf.train.sgd(0.3) : null);
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
    const got = parallel.predict(x, { batchSize: 50 }) as tf.Tensor;
    const want = model.predict(x) as tf.Tensor;
    assert.deepEqual(got.shape, [192, 3]);
    assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
    const fromArray = parallel.predict([[0, 0, 0, 0, 0, 0, 0, 0]]) as tf.Tensor;
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

/** The values of one or several predicted tensors, disposed. */
function values(out: tf.Tensor | tf.Tensor[]): { shape: number[]; data: number[] }[] {
  const list = Array.isArray(out) ? out : [out];
  const read = list.map((t) => ({ shape: t.shape, data: Array.from(t.dataSync()) }));
  tf.dispose(list);
  return read;
}

Deno.test(
  "ParallelModel.predict() of a 2-input, 2-output model takes x as an array or a dict and returns one tensor per output, like model.predict",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = twoByTwoData(70);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    await using parallel = parallelModel(model, { replicas: 2, backend: BACKEND });
    const want = values(model.predict([d.xa, d.xb], { batchSize: 16 }));
    assert.deepEqual(want.map((w) => w.shape), [[70, 3], [70, 1]]);
    const before = tf.memory().numTensors;
    const forms: [string, Parameters<typeof parallel.predict>[0]][] = [
      ["an array of tensors", [d.xa, d.xb]],
      ["a dict of tensors", { in_b: d.xb, in_a: d.xa }],
      ["nested number arrays", [d.xa.arraySync(), d.xb.arraySync()]],
      ["Float32Arrays", {
        in_a: d.xa.dataSync() as Float32Array,
        in_b: d.xb.dataSync() as Float32Array,
      }],
    ];
    for (const [what, x] of forms) {
      const out = parallel.predict(x, { batchSize: 16 });
      assert.ok(Array.isArray(out) && out.length === 2, `${what}: one tensor per output`);
      assert.deepEqual(values(out), want, what);
    }
    assert.equal(tf.memory().numTensors, before, "predict leaked tensors");
    // A one-output model still gets one tensor, and rank-1 x reads as [n, 1] as in model.predict.
    const line = tf.sequential({
      layers: [tf.layers.dense({ units: 2, inputShape: [1], kernelInitializer: "ones" })],
    });
    await using single = parallelModel(line, { replicas: 1, backend: BACKEND });
    const xs = tf.tensor1d([1, 2, 3]);
    const one = single.predict(xs);
    assert.ok(!Array.isArray(one), "one output: one tensor");
    assert.deepEqual(values(one), values(line.predict(xs)));
    assert.deepEqual(values(single.predict([1, 2, 3])), values(line.predict(xs)));
    assert.equal(parallel.strategy.stats, undefined, "predict starts no Worker");
    tf.dispose(xs);
    line.dispose();
    model.dispose();
    disposeTwoByTwoData(d);
  },
);

Deno.test(
  "ParallelModel.predict() refuses x that does not fit the model's inputs, naming the input",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = twoByTwoData(8);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    await using parallel = parallelModel(model, { replicas: 2, backend: BACKEND });
    const short = tf.slice(d.xb, 0, 6);
    const before = tf.memory().numTensors;
    const cases: [string, unknown, string][] = [
      [
        "one tensor for two inputs",
        d.xa,
        'The model has 2 inputs ("in_a", "in_b"): pass x as an array of 2 tensors in ' +
        "model.inputs order or as a dict by input name, received one tensor",
      ],
      [
        "a wrong per-sample shape",
        [d.xa, d.xa],
        'x[1] (input "in_b") has per-sample shape [8], expected [4] to match the model',
      ],
      [
        "a dict without an input",
        { in_a: d.xa },
        'x has no entry for input "in_b": expected one per input name ("in_a", "in_b")',
      ],
      [
        "inputs with different sample counts",
        [d.xa.arraySync(), short],
        'x[0] (input "in_a") and x[1] (input "in_b") must have the same number of samples, ' +
        "received 8 and 6",
      ],
      [
        "a rank-1 tensor for an input of 8 features",
        [tf.zeros([8]), d.xb],
        'x[0] (input "in_a") has shape [8]: one value per sample, which model.fit reads as ' +
        "[8, 1], but the model expects per-sample shape [8]",
      ],
    ];
    for (const [what, x, message] of cases) {
      assert.throws(
        () => parallel.predict(x as never),
        (e: Error) => {
          assert.ok(e instanceof RangeError, `${what}: ${e.name} ${e.message}`);
          assert.equal(e.message, message, what);
          return true;
        },
      );
    }
    // The rank-1 zeros above are the only tensors left over: nothing made by predict.
    assert.equal(tf.memory().numTensors, before + 1, "a refused predict leaked tensors");
    tf.dispose([short, (cases[4]![1] as tf.Tensor[])[0]!]);
    model.dispose();
    disposeTwoByTwoData(d);
  },
);
