// Rank-1 targets and inputs (issue 13): tfjs' model.fit reads a tensor of
// shape [n] as [n, 1] (ensureTensorsRank2OrHigher), so a Dense(1) output
// takes a tensor1d of targets, as regression and binary tutorials pass them.
// Oracle: model.fit on the same [n] tensors, unshuffled, same global batch.
import assert from "node:assert/strict";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import { assertHistory, classifier, dataset, maxWeightDiff } from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const BACKEND = "cpu" as const;
/** Oracle tolerance: max |weight difference| after training, and History values. */
const TOL = 1e-4;
/** Tolerance of evaluate() against model.evaluate. */
const EVAL_TOL = 1e-5;
const FIT = { epochs: 2, batchSize: 16, shuffle: false };

interface Case {
  name: string;
  /** A fresh model with seeded initial weights. */
  build: () => tf.LayersModel;
  /** Training inputs and rank-1 targets. */
  x: tf.Tensor;
  y: tf.Tensor1D;
  /** Validation inputs and rank-1 targets. */
  vx: tf.Tensor;
  vy: tf.Tensor1D;
  keys: string[];
}

/** `[inputs] -> 8 relu -> Dense(1, activation)`, compiled with `loss` and `metric`. */
function oneUnit(inputs: number, activation: "linear" | "sigmoid", loss: string, metric: string) {
  return () => {
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 8,
          activation: "relu",
          inputShape: [inputs],
          kernelInitializer: init(1),
        }),
        tf.layers.dense({ units: 1, activation, kernelInitializer: init(2) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.02), loss, metrics: [metric] });
    return model;
  };
}

/** Three models with one output unit, each trained on rank-1 targets (the last on a rank-1 x too). */
function cases(): Case[] {
  const t = tf.tidy(() => {
    const x = tf.randomUniform([80, 4], -1, 1, "float32", 5);
    const score = tf.sum(tf.mul(x, tf.tensor1d([0.5, -1, 2, 0.25])), 1);
    const line = tf.linspace(-1, 1, 80);
    return {
      x,
      score,
      binary: tf.cast(tf.greater(score, 0), "float32"),
      line,
      onLine: tf.add(tf.mul(line, 3), 0.5),
    };
  });
  // The first 64 samples train, the last 16 validate.
  const part = (name: keyof typeof t, train: boolean) =>
    tf.slice(t[name], train ? 0 : 64, train ? 64 : 16);
  const data = (x: keyof typeof t, y: keyof typeof t) => ({
    x: part(x, true),
    vx: part(x, false),
    y: part(y, true) as tf.Tensor1D,
    vy: part(y, false) as tf.Tensor1D,
  });
  const list: Case[] = [
    {
      name: "Dense(1) meanSquaredError",
      build: oneUnit(4, "linear", "meanSquaredError", "mae"),
      keys: ["loss", "mae", "val_loss", "val_mae"],
      ...data("x", "score"),
    },
    {
      name: "Dense(1, sigmoid) binaryCrossentropy",
      build: oneUnit(4, "sigmoid", "binaryCrossentropy", "accuracy"),
      keys: ["loss", "acc", "val_loss", "val_acc"],
      ...data("x", "binary"),
    },
    {
      name: "inputShape [1], x and y of shape [n]",
      build: oneUnit(1, "linear", "meanSquaredError", "mae"),
      keys: ["loss", "mae", "val_loss", "val_mae"],
      ...data("line", "onLine"),
    },
  ];
  tf.dispose(Object.values(t));
  return list;
}

function disposeCases(list: Case[]): void {
  for (const c of list) tf.dispose([c.x, c.y, c.vx, c.vy]);
}

/** `model.evaluate` as logs (one output: loss, then the metrics). */
function evaluateLogs(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): Record<string, number> {
  const out = model.evaluate(x, y, { batchSize: 16 }) as tf.Scalar[];
  const logs: Record<string, number> = {};
  model.metricsNames.forEach((name, i) => (logs[name] = out[i]!.dataSync()[0]!));
  tf.dispose(out);
  return logs;
}

Deno.test(
  "fit() of both strategies reads rank-1 targets (and inputs) as [n, 1] like model.fit, in training, validation and evaluate",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const list = cases();
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
    for (const c of list) {
      assert.equal(c.y.rank, 1);
      const expected = c.build();
      const validationData: [tf.Tensor, tf.Tensor] = [c.vx, c.vy];
      const want = await expected.fit(c.x, c.y, { ...FIT, validationData, verbose: 0 });
      const runs = [
        ["MirroredStrategy, 2 replicas", mirrored, c.y],
        ["MirroredStrategy, 2 replicas, number[]", mirrored, Array.from(c.y.dataSync())],
        ["WorkerStrategy, 1 worker", worker, c.y],
      ] as const;
      for (const [name, strategy, y] of runs) {
        const what = `${c.name}, ${name}`;
        const model = c.build();
        const history = await strategy.fit(model, c.x, y, { ...FIT, validationData });
        const diff = maxWeightDiff(model, expected);
        assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
        const gap = assertHistory(history.history, want.history, c.keys, what, { tol: TOL });
        console.log(
          `${what}: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`,
        );
        const logs = await strategy.evaluate(model, c.vx, c.vy, { batchSize: 16 });
        for (const [key, v] of Object.entries(evaluateLogs(model, c.vx, c.vy))) {
          assert.ok(Math.abs(logs[key]! - v) <= EVAL_TOL, `${what}: evaluate ${key}`);
        }
        model.dispose();
      }
      expected.dispose();
    }
    disposeCases(list);
  },
);

Deno.test(
  "fit() with rank-1 targets leaks no tensors in the main thread or the Workers",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const list = cases();
    const c = list[1]!;
    const model = c.build();
    const options = {
      epochs: 1,
      batchSize: 16,
      validationData: [c.vx, c.vy] as [tf.Tensor, tf.Tensor],
    };
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 2, backend: BACKEND });
    // Warm-up: the optimizer makes its state on the first fit.
    await mirrored.fit(model, c.x, c.y, options);
    await worker.fit(model, c.x, c.y, options);
    const main = tf.memory().numTensors;
    const replicas = mirrored.stats!.replicaTensors;
    const workers = worker.stats!.workers.map((w) => w.tensors);
    for (let i = 0; i < 2; i++) {
      await mirrored.fit(model, c.x, c.y, options);
      await mirrored.evaluate(model, c.x, c.y);
      await worker.fit(model, c.x, c.y, options);
      await worker.evaluate(model, c.x, c.y);
    }
    await mirrored.fit(model, c.x, c.y, options);
    await worker.fit(model, c.x, c.y, options);
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(mirrored.stats!.replicaTensors, replicas, "replica tensors leaked");
    assert.deepEqual(worker.stats!.workers.map((w) => w.tensors), workers, "worker tensors leaked");
    model.dispose();
    disposeCases(list);
  },
);

Deno.test(
  "fit() refuses rank-1 targets or inputs for a side wider than 1, naming it",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(16);
    const labels = tf.tidy(() => tf.cast(tf.argMax(y, 1), "float32"));
    const flat = tf.zeros([16]);
    const model = classifier(() => tf.train.sgd(0.1));
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 1, backend: BACKEND });
    for (const strategy of [mirrored, worker]) {
      await assert.rejects(
        () => strategy.fit(model, x, labels),
        new RangeError(
          "y has shape [16]: one value per sample, which model.fit reads as [16, 1], but the " +
            "model expects per-sample shape [3]",
        ),
      );
      await assert.rejects(
        () => strategy.evaluate(model, flat, y),
        new RangeError(
          "x has shape [16]: one value per sample, which model.fit reads as [16, 1], but the " +
            "model expects per-sample shape [8]",
        ),
      );
      await assert.rejects(
        () => strategy.fit(model, x, y, { validationData: [x, labels] }),
        /^RangeError: y has shape \[16\]: one value per sample/,
      );
    }
    assert.equal(mirrored.stats, undefined, "no replica started");
    assert.equal(worker.stats, undefined, "no worker started");
    tf.dispose([x, y, labels, flat]);
    model.dispose();
  },
);
