import assert from "node:assert/strict";
import {
  MirroredStrategy,
  NonFiniteLossError,
  ReplicaCrashedError,
  tf,
  type TrainingCallbacks,
} from "../../mod.ts";
import { classifier, dataset } from "./_models.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const BACKEND = "cpu" as const;
/** Oracle tolerance: max |weight difference| after training. */
const TOL = 1e-4;

function build(optimizer: () => tf.Optimizer, metrics = ["accuracy"]): tf.LayersModel {
  return classifier(optimizer, metrics);
}

function maxWeightDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() => {
    const wa = a.getWeights(), wb = b.getWeights();
    return Math.max(
      ...wa.map((w, i) => tf.max(tf.abs(tf.sub(w, wb[i]!))).dataSync()[0]!),
    );
  });
}

async function oracle(
  optimizer: () => tf.Optimizer,
  n: number,
  fit: tf.ModelFitArgs,
): Promise<{ model: tf.LayersModel; history: tf.History }> {
  await tf.setBackend(BACKEND);
  const { x, y } = dataset(n);
  const model = build(optimizer);
  const history = await model.fit(x, y, { ...fit, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
  return { model, history };
}

const ORACLE_CASES: [number, string, () => tf.Optimizer][] = [
  [2, "SGD", () => tf.train.sgd(0.3)],
  [2, "Adam", () => tf.train.adam(0.01)],
  [4, "SGD", () => tf.train.sgd(0.3)],
  [4, "Adam", () => tf.train.adam(0.01)],
  [2, "Nesterov momentum", () => tf.train.momentum(0.1, 0.9, true)],
  // Not applied flat: each replica runs the optimizer's own applyGradients.
  [2, "RMSProp", () => tf.train.rmsprop(0.01)],
];

for (const [replicas, name, optimizer] of ORACLE_CASES) {
  Deno.test(
    `MirroredStrategy.fit() with ${replicas} replicas and ${name} matches one-replica model.fit`,
    opts,
    async () => {
      const { model: expected, history: expectedHistory } = await oracle(
        optimizer,
        240,
        {
          epochs: 2,
          batchSize: 48,
        },
      );
      const { x, y } = dataset(240);
      const model = build(optimizer);
      await using strategy = new MirroredStrategy({
        replicas,
        backend: BACKEND,
      });
      const history = await strategy.fit(model, x, y, {
        epochs: 2,
        batchSize: 48,
        shuffle: false,
      });
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
      const digests = strategy.stats!.weightsDigests;
      assert.equal(digests.length, replicas);
      assert.equal(
        new Set(digests).size,
        1,
        `replica weights differ: ${digests}`,
      );
      for (const key of ["loss", "acc"]) {
        const got = history.history[key]!,
          want = expectedHistory.history[key] as number[];
        got.forEach((v, i) =>
          assert.ok(
            Math.abs(v - want[i]!) <= TOL,
            `${key}[${i}] ${v} vs ${want[i]}`,
          )
        );
      }
      assert.deepEqual(
        strategy.stats!.backends,
        Array(replicas).fill(BACKEND),
      );
      tf.dispose([x, y]);
      expected.dispose();
      model.dispose();
    },
  );
}

Deno.test("MirroredStrategy.fit() on wasm matches model.fit on wasm", opts, async () => {
  const { selectBackend } = await import("../../backends/mod.ts");
  await selectBackend({ require: "wasm", threads: 1, override: "" });
  const adam = () => tf.train.adam(0.01);
  const { x, y } = dataset(200);
  const expected = build(adam);
  await expected.fit(x, y, { epochs: 2, batchSize: 40, shuffle: false, verbose: 0 });
  const model = build(adam);
  await using strategy = new MirroredStrategy({ replicas: 2, backend: "wasm" });
  await strategy.fit(model, x, y, { epochs: 2, batchSize: 40, shuffle: false });
  const diff = maxWeightDiff(model, expected);
  await tf.setBackend(BACKEND);
  assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
  assert.deepEqual(strategy.stats!.backends, ["wasm", "wasm"]);
  assert.equal(new Set(strategy.stats!.weightsDigests).size, 1);
  tf.dispose([x, y]);
  expected.dispose();
  model.dispose();
});

Deno.test(
  "MirroredStrategy.fit() weights an uneven last batch by shard size",
  opts,
  async () => {
    // 103 samples at batch 20: the last batch has 3 samples, so with 4 replicas
    // one replica gets none and the others one each.
    const sgd = () => tf.train.sgd(0.3);
    const { model: expected } = await oracle(sgd, 103, {
      epochs: 1,
      batchSize: 20,
    });
    for (const replicas of [2, 4]) {
      const { x, y } = dataset(103);
      const model = build(sgd);
      await using strategy = new MirroredStrategy({
        replicas,
        backend: BACKEND,
      });
      await strategy.fit(model, x, y, {
        epochs: 1,
        batchSize: 20,
        shuffle: false,
      });
      const diff = maxWeightDiff(model, expected);
      assert.ok(
        diff <= TOL,
        `${replicas} replicas: max |weight difference| ${diff} > ${TOL}`,
      );
      tf.dispose([x, y]);
      model.dispose();
    }
    expected.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() reports validation metrics equal to model.fit's",
  opts,
  async () => {
    const sgd = () => tf.train.sgd(0.3);
    const { model: expected, history: want } = await oracle(sgd, 200, {
      epochs: 2,
      batchSize: 32,
      validationSplit: 0.2,
    });
    const { x, y } = dataset(200);
    const model = build(sgd);
    await using strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
    });
    const history = await strategy.fit(model, x, y, {
      epochs: 2,
      batchSize: 32,
      shuffle: false,
      validationSplit: 0.2,
    });
    assert.deepEqual(Object.keys(history.history).sort(), [
      "acc",
      "loss",
      "val_acc",
      "val_loss",
    ]);
    for (const key of ["val_loss", "val_acc", "loss"]) {
      history.history[key]!.forEach((v, i) => {
        const w = (want.history[key] as number[])[i]!;
        assert.ok(Math.abs(v - w) <= TOL, `${key}[${i}]: ${v} vs ${w}`);
      });
    }
    assert.ok(maxWeightDiff(model, expected) <= TOL);
    const scores = await strategy.evaluate(model, x, y, { batchSize: 64 });
    const [loss, acc] = model.evaluate(x, y, { batchSize: 64 }) as tf.Scalar[];
    assert.ok(Math.abs(scores.loss! - loss!.dataSync()[0]!) <= TOL);
    assert.ok(Math.abs(scores.acc! - acc!.dataSync()[0]!) <= TOL);
    tf.dispose([x, y, loss!, acc!]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() calls callbacks in Keras order and honours stopTraining",
  opts,
  async () => {
    const { x, y } = dataset(64);
    const model = build(() => tf.train.sgd(0.1));
    const events: string[] = [];
    const callbacks: TrainingCallbacks = {
      onTrainBegin: () => void events.push("trainBegin"),
      onEpochBegin: (e) => void events.push(`epochBegin ${e}`),
      onBatchEnd: (b, logs) => {
        assert.equal(typeof logs?.loss, "number");
        events.push(`batch ${b}`);
      },
      onEpochEnd: (e, logs) => {
        assert.ok(logs !== undefined && "loss" in logs && "acc" in logs);
        events.push(`epochEnd ${e}`);
        if (e === 1) model.stopTraining = true;
      },
      onTrainEnd: () => void events.push("trainEnd"),
    };
    await using strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
    });
    const history = await strategy.fit(model, x, y, {
      epochs: 5,
      batchSize: 32,
      callbacks,
    });
    assert.deepEqual(events, [
      "trainBegin",
      "epochBegin 0",
      "batch 0",
      "batch 1",
      "epochEnd 0",
      "epochBegin 1",
      "batch 0",
      "batch 1",
      "epochEnd 1",
      // stopTraining set in onEpochEnd takes effect before the next epoch, as in Keras.
      "trainEnd",
    ]);
    assert.deepEqual(history.epoch, [0, 1]);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() trains a custom-layer model built from a module URL",
  opts,
  async () => {
    const { build: buildCustom } = await import("../fixtures/custom_model.ts");
    const url = new URL("../fixtures/custom_model.ts", import.meta.url);
    await tf.setBackend(BACKEND);
    const x = tf.randomUniform([96, 6], -1, 1, "float32", 5);
    const y = tf.oneHot(
      tf.tensor1d(Array.from({ length: 96 }, (_, i) => i % 3), "int32"),
      3,
    );
    const expected = buildCustom();
    await expected.fit(x, y, {
      epochs: 2,
      batchSize: 32,
      shuffle: false,
      verbose: 0,
    });
    const model = buildCustom();
    await using strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
      modelModule: { url, exportName: "build" },
    });
    await strategy.fit(model, x, y, {
      epochs: 2,
      batchSize: 32,
      shuffle: false,
    });
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff}`);
    // The custom layer's own weights trained too.
    assert.notDeepEqual(
      Array.from(model.layers[0]!.getWeights()[0]!.dataSync()),
      [1, 1, 1, 1, 1, 1],
    );
    tf.dispose([x, y]);
    expected.dispose();
    model.dispose();
  },
);

for (
  const [exportName, detail] of [
    ["buildThrowing", /Replica 1 crashed: Error: ScaleShift failed on purpose/],
    ["buildExiting", /Replica 1 crashed: no heartbeat for \d+ ms/],
  ] as const
) {
  Deno.test(
    `MirroredStrategy.fit() rejects with ReplicaCrashedError when a replica ${
      exportName === "buildThrowing" ? "throws" : "Worker dies"
    }`,
    opts,
    async () => {
      const { build: buildCustom } = await import(
        "../fixtures/custom_model.ts"
      );
      const x = tf.randomUniform([256, 6], -1, 1, "float32", 5);
      const y = tf.oneHot(
        tf.tensor1d(Array.from({ length: 256 }, (_, i) => i % 3), "int32"),
        3,
      );
      const model = buildCustom();
      const before = model.getWeights().map((w) => Array.from(w.dataSync()));
      const strategy = new MirroredStrategy({
        replicas: 2,
        backend: BACKEND,
        modelModule: {
          url: new URL("../fixtures/custom_model.ts", import.meta.url),
          exportName,
        },
        replicaTimeoutMs: 1500,
      });
      const started = performance.now();
      const err = await strategy.fit(model, x, y, { epochs: 3, batchSize: 32 })
        .then(
          () => assert.fail("expected fit to reject"),
          (e: unknown) => e,
        );
      assert.ok(err instanceof ReplicaCrashedError, `got ${err}`);
      assert.equal(err.name, "ReplicaCrashedError");
      assert.equal(err.replica, 1);
      assert.match(err.message, detail);
      assert.ok(
        performance.now() - started < 20_000,
        "crash detection took too long",
      );
      // The crash happened in the first epoch: the model keeps its weights.
      assert.deepEqual(
        model.getWeights().map((w) => Array.from(w.dataSync())),
        before,
      );
      // The strategy recovers: a new fit starts fresh Workers. Replica 1 fails on
      // the 3rd training step its Worker runs, so a 2-step fit only succeeds in a
      // fresh Worker (the old one is past its 3rd step, or gone).
      const [x2, y2] = [tf.slice(x, 0, 64), tf.slice(y, 0, 64)];
      const expected = buildCustom();
      await expected.fit(x2, y2, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 });
      const history = await strategy.fit(model, x2, y2, {
        epochs: 1,
        batchSize: 32,
        shuffle: false,
      });
      assert.deepEqual(history.epoch, [0]);
      assert.equal(strategy.stats!.steps, 2);
      assert.equal(new Set(strategy.stats!.weightsDigests).size, 1);
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `after the restart: max |weight difference| ${diff}`);
      await strategy.close();
      tf.dispose([x, y, x2, y2]);
      expected.dispose();
      model.dispose();
    },
  );
}

Deno.test(
  "MirroredStrategy.fit() rejects with ReplicaCrashedError when a replica vanishes while starting",
  opts,
  async () => {
    const x = tf.randomUniform([64, 6], -1, 1, "float32", 5);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 3), "int32"), 3);
    const { build: buildCustom } = await import("../fixtures/custom_model.ts");
    const model = buildCustom();
    const strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
      modelModule: {
        url: new URL("../fixtures/custom_model.ts", import.meta.url),
        exportName: "buildVanishing",
      },
      startTimeoutMs: 10_000,
    });
    const err = await strategy.fit(model, x, y, { epochs: 1, batchSize: 32 }).then(
      () => assert.fail("expected fit to reject"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ReplicaCrashedError, `got ${err}`);
    assert.equal(err.replica, 1);
    assert.match(err.message, /^Replica 1 crashed: no heartbeat for \d+ ms/);
    await strategy.close();
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() rejects bad input before starting Workers",
  opts,
  async () => {
    const { x, y } = dataset(16);
    const model = build(() => tf.train.sgd(0.1));
    await using strategy = new MirroredStrategy({
      replicas: 4,
      backend: BACKEND,
    });
    await assert.rejects(() => strategy.fit(model, x, y, { batchSize: 3 }), {
      name: "RangeError",
      message: "Cannot shard a batch of 3 across 4 replicas: batchSize must be >= replicas",
    });
    await assert.rejects(() => strategy.fit(model, x, tf.slice(y, 0, 15)), {
      name: "RangeError",
      message: "x and y must have the same number of samples, received 16 and 15",
    });
    await assert.rejects(() => strategy.fit(model, tf.zeros([16, 5]), y), {
      name: "RangeError",
      message: "x has per-sample shape [5], expected [8] to match the model",
    });
    await assert.rejects(() => strategy.fit(model, x, tf.zeros([16, 2])), {
      name: "RangeError",
      message: "y has per-sample shape [2], expected [3] to match the model",
    });
    const uncompiled = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [8] })],
    });
    await assert.rejects(() => strategy.fit(uncompiled, x, y), {
      name: "TypeError",
      message:
        "The model must be compiled before training: call model.compile({ optimizer, loss })",
    });
    await assert.rejects(() => strategy.fit(model, x, y, { epochs: 0 }), {
      name: "RangeError",
      message: "epochs must be an integer >= 1, received 0",
    });
    assert.throws(() => new MirroredStrategy({ replicas: 0 }), {
      name: "RangeError",
      message: "replicas must be an integer >= 1, received 0",
    });
    assert.throws(() => new MirroredStrategy({ backend: "tpu" as "cpu" }), {
      name: "TypeError",
      message: 'backend must be "auto" or one of webgpu, wasm, cpu, received "tpu"',
    });
    assert.equal(strategy.stats, undefined, "no Worker should have started");
    tf.dispose([x, y]);
    model.dispose();
    uncompiled.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() stops with NonFiniteLossError naming epoch and step",
  opts,
  async () => {
    const { x, y } = dataset(64);
    const bad = x.bufferSync();
    bad.set(NaN, 40, 0); // sample 40 is in the second batch of 32
    const model = build(() => tf.train.sgd(0.1));
    await using strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
    });
    const badX = bad.toTensor();
    const err = await strategy.fit(model, badX, y, {
      epochs: 2,
      batchSize: 32,
      shuffle: false,
    }).then(
      () => assert.fail("expected fit to reject"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NonFiniteLossError, `got ${err}`);
    assert.equal(err.name, "NonFiniteLossError");
    assert.match(err.message, /^Loss became NaN at epoch 1, step 2: expected a finite loss/);
    // Zero-based, as the message counts from 1.
    assert.deepEqual([err.epoch, err.step], [0, 1]);
    tf.dispose([x, y, badX]);
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() leaks no tensors in the main thread or the replicas",
  opts,
  async () => {
    const { x, y } = dataset(128);
    const model = build(() => tf.train.adam(0.01));
    await using strategy = new MirroredStrategy({
      replicas: 2,
      backend: BACKEND,
    });
    await strategy.fit(model, x, y, {
      epochs: 1,
      batchSize: 32,
      validationSplit: 0.25,
    });
    const main = tf.memory().numTensors;
    const replicas = strategy.stats!.replicaTensors;
    for (let i = 0; i < 3; i++) {
      await strategy.fit(model, x, y, {
        epochs: 2,
        batchSize: 32,
        validationSplit: 0.25,
      });
      await strategy.evaluate(model, x, y);
    }
    await strategy.fit(model, x, y, {
      epochs: 1,
      batchSize: 32,
      validationSplit: 0.25,
    });
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(
      strategy.stats!.replicaTensors,
      replicas,
      "replica tensors leaked",
    );
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() called twice continues the Adam state like model.fit called twice",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const adam = () => tf.train.adam(0.01);
    const { x, y } = dataset(192);
    const expected = build(adam);
    const model = build(adam);
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    for (let round = 0; round < 2; round++) {
      await expected.fit(x, y, { epochs: 1, batchSize: 48, shuffle: false, verbose: 0 });
      await strategy.fit(model, x, y, { epochs: 1, batchSize: 48, shuffle: false });
    }
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    tf.dispose([x, y]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() keeps batch-norm statistics: 1 replica matches model.fit, 2 average the moving mean",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    // Batch norm first, on the inputs: its batch mean does not depend on the
    // weights, so N replicas' averaged moving mean equals one replica's.
    const build = () => {
      const model = tf.sequential({
        layers: [
          tf.layers.batchNormalization({ inputShape: [8], momentum: 0.9 }),
          tf.layers.dense({
            units: 3,
            activation: "softmax",
            kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
          }),
        ],
      });
      model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy" });
      return model;
    };
    const { x, y } = dataset(192);
    const shifted = tf.add(x, 3);
    const fitArgs = { epochs: 2, batchSize: 48, shuffle: false } as const;
    const expected = build();
    await expected.fit(shifted, y, { ...fitArgs, verbose: 0 });
    const movingMean = (m: tf.LayersModel) => {
      const w = m.nonTrainableWeights.find((v) => v.name.includes("moving_mean"))!;
      return Array.from(w.read().dataSync());
    };
    for (const replicas of [1, 2]) {
      const model = build();
      await using strategy = new MirroredStrategy({ replicas, backend: BACKEND });
      await strategy.fit(model, shifted, y, fitArgs);
      const want = movingMean(expected);
      assert.ok(want.every((v) => v > 1), `model.fit moved the moving mean: ${want}`);
      const got = movingMean(model);
      got.forEach((v, i) =>
        assert.ok(Math.abs(v - want[i]!) <= 1e-4, `${replicas}: ${v} vs ${want[i]}`)
      );
      if (replicas === 1) {
        const diff = maxWeightDiff(model, expected);
        assert.ok(diff <= TOL, `1 replica: max |weight difference| ${diff}`);
      }
      assert.equal(new Set(strategy.stats!.weightsDigests).size, 1);
      model.dispose();
    }
    tf.dispose([x, y, shifted]);
    expected.dispose();
  },
);
