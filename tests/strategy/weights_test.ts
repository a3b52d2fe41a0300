// classWeight (issue 13): each sample's loss weighted by its label's class,
// as tfjs' model.fit does it (the batch loss is the mean of the weighted
// per-sample losses over the batch's sample count). Oracle: model.fit with
// the same classWeight, global batch and unshuffled order.
import assert from "node:assert/strict";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import { epochOrder } from "../../src/core/random.ts";
import { assertHistory, classifier, dataset, maxWeightDiff } from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const BACKEND = "cpu" as const;
/** Oracle tolerance: max |weight difference| after training, and History values. */
const TOL = 1e-4;
/** Class weights far from 1, so that a fit that ignores them fails every oracle. */
const CLASS_WEIGHT = { 0: 0.25, 1: 3, 2: 1.5 };
/** 99 samples in batches of 24: the last batch has 3 samples (2 + 1 across 2 replicas). */
const N = 99;
const FIT = { epochs: 2, batchSize: 24, shuffle: false };

/** One input [8], heads `cls` (softmax 3) and `reg` (linear 1); seeded initial weights. */
function twoHeads(optimizer: () => tf.Optimizer, clsLoss = "categoricalCrossentropy") {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const input = tf.input({ shape: [8], name: "features" });
  const trunk = tf.layers.dense({ units: 16, activation: "relu", kernelInitializer: init(1) })
    .apply(input) as tf.SymbolicTensor;
  const cls = tf.layers.dense({
    units: 3,
    activation: "softmax",
    name: "cls",
    kernelInitializer: init(2),
  }).apply(trunk) as tf.SymbolicTensor;
  const reg = tf.layers.dense({ units: 1, name: "reg", kernelInitializer: init(3) })
    .apply(trunk) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: [cls, reg] });
  model.compile({ optimizer: optimizer(), loss: [clsLoss, "meanSquaredError"] });
  return model;
}

Deno.test(
  "MirroredStrategy.fit() with classWeight and 1, 2 or 4 replicas (cpu) or 2 (wasm) matches model.fit, SGD and Adam",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(N);
    const optimizers: [string, () => tf.Optimizer][] = [
      ["sgd", () => tf.train.sgd(0.3)],
      ["adam", () => tf.train.adam(0.02)],
    ];
    for (const [name, optimizer] of optimizers) {
      const expected = classifier(optimizer);
      const want = await expected.fit(x, y, { ...FIT, classWeight: CLASS_WEIGHT, verbose: 0 });
      const unweighted = classifier(optimizer);
      await unweighted.fit(x, y, { ...FIT, verbose: 0 });
      assert.ok(maxWeightDiff(unweighted, expected) > 10 * TOL, `${name}: the weights matter`);
      const runs = [[1, BACKEND], [2, BACKEND], [4, BACKEND], [2, "wasm"]] as const;
      for (const [replicas, backend] of runs) {
        const what = `${name}, ${replicas} replicas on ${backend}`;
        const model = classifier(optimizer);
        await using strategy = new MirroredStrategy({ replicas, backend });
        const history = await strategy.fit(model, x, y, { ...FIT, classWeight: CLASS_WEIGHT });
        const diff = maxWeightDiff(model, expected);
        assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
        const gap = assertHistory(history.history, want.history, ["loss", "acc"], what, {
          tol: TOL,
        });
        console.log(
          `${what}: max |dw| ${diff.toExponential(2)}, max |dloss| ${gap.toExponential(2)}`,
        );
        assert.equal(new Set(strategy.stats!.weightsDigests).size, 1, "replica weights differ");
        model.dispose();
      }
      expected.dispose();
      unweighted.dispose();
    }
    tf.dispose([x, y]);
  },
);

Deno.test(
  "MirroredStrategy.fit() with classWeight and shuffle keeps each sample's weight with its sample",
  opts,
  async () => {
    // The oracle trains each epoch on the samples in dtrain's seeded order.
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(N);
    const sgd = () => tf.train.sgd(0.3);
    const seed = 11;
    const expected = classifier(sgd);
    const want: number[] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      const order = tf.tensor1d(Array.from(epochOrder(N, { seed, epoch, shuffle: true })), "int32");
      const [xs, ys] = [tf.gather(x, order), tf.gather(y, order)];
      const h = await expected.fit(xs, ys, {
        epochs: 1,
        batchSize: 24,
        shuffle: false,
        classWeight: CLASS_WEIGHT,
        verbose: 0,
      });
      want.push(h.history.loss![0] as number);
      tf.dispose([order, xs, ys]);
    }
    const model = classifier(sgd);
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    const history = await strategy.fit(model, x, y, {
      epochs: 2,
      batchSize: 24,
      shuffle: true,
      seed,
      classWeight: CLASS_WEIGHT,
    });
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    assertHistory(history.history, { loss: want }, ["loss"], "shuffled", { tol: TOL });
    tf.dispose([x, y]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() with classWeight and sparse labels matches model.fit, validation unweighted",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(120);
    const labels = tf.tidy(() => tf.cast(tf.argMax(y, 1), "float32")); // [n] class indices
    const sparse = () =>
      classifier(() => tf.train.adam(0.02), ["accuracy"], "sparseCategoricalCrossentropy");
    const expected = sparse();
    const options = { ...FIT, validationSplit: 0.2, classWeight: CLASS_WEIGHT };
    const want = await expected.fit(x, labels, { ...options, verbose: 0 });
    const model = sparse();
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    const history = await strategy.fit(model, x, labels, options);
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    const gap = assertHistory(
      history.history,
      want.history,
      ["loss", "acc", "val_loss", "val_acc"],
      "sparse labels",
      { tol: TOL },
    );
    console.log(
      `sparse, 2 replicas: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`,
    );
    tf.dispose([x, y, labels]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "MirroredStrategy.fit() weighs one head of a 2-output model by a classWeight dict like model.fit",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(N);
    const reg = tf.tidy(() => tf.sum(x, 1, true));
    const sgd = () => tf.train.sgd(0.2);
    const expected = twoHeads(sgd);
    const classWeight = { cls: CLASS_WEIGHT };
    const want = await expected.fit(x, [y, reg], { ...FIT, classWeight, verbose: 0 });
    for (const form of [classWeight, [CLASS_WEIGHT, null]]) {
      const what = `classWeight ${JSON.stringify(form)}`;
      const model = twoHeads(sgd);
      await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
      const history = await strategy.fit(model, x, [y, reg], { ...FIT, classWeight: form });
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
      // cls_loss is the class-weighted mean, as model.fit logs it.
      const gap = assertHistory(
        history.history,
        want.history,
        ["loss", "cls_loss", "reg_loss"],
        what,
        { tol: TOL },
      );
      console.log(
        `2 heads, ${what}: max |dw| ${diff.toExponential(2)}, max |dloss| ${gap.toExponential(2)}`,
      );
      model.dispose();
    }
    tf.dispose([x, y, reg]);
    expected.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() with classWeight, one worker and staleness 0 matches model.fit",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(N);
    const sgd = () => tf.train.sgd(0.3);
    const expected = classifier(sgd);
    const want = await expected.fit(x, y, { ...FIT, classWeight: CLASS_WEIGHT, verbose: 0 });
    const model = classifier(sgd);
    await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
    const history = await strategy.fit(model, x, y, { ...FIT, classWeight: CLASS_WEIGHT });
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    const gap = assertHistory(history.history, want.history, ["loss", "acc"], "WorkerStrategy", {
      tol: TOL,
    });
    console.log(
      `WorkerStrategy: max |dw| ${diff.toExponential(2)}, max |dloss| ${gap.toExponential(2)}`,
    );
    tf.dispose([x, y]);
    expected.dispose();
    model.dispose();
  },
);

Deno.test(
  "fit() with classWeight leaks no tensors in the main thread or the Workers",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const { x, y } = dataset(64);
    const options = { epochs: 1, batchSize: 16, validationSplit: 0.25, classWeight: CLASS_WEIGHT };
    const model = classifier(() => tf.train.adam(0.01));
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 2, backend: BACKEND });
    // Warm-up: the optimizer makes its state on the first fit.
    await mirrored.fit(model, x, y, options);
    await worker.fit(model, x, y, options);
    const main = tf.memory().numTensors;
    const replicas = mirrored.stats!.replicaTensors;
    const workers = worker.stats!.workers.map((w) => w.tensors);
    for (let i = 0; i < 2; i++) {
      await mirrored.fit(model, x, y, options);
      await worker.fit(model, x, y, options);
    }
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(mirrored.stats!.replicaTensors, replicas, "replica tensors leaked");
    assert.deepEqual(worker.stats!.workers.map((w) => w.tensors), workers, "worker tensors leaked");
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test("fit() refuses a bad classWeight, and sampleWeight, before any Worker starts", async () => {
  const { x, y } = dataset(16);
  const model = classifier(() => tf.train.sgd(0.1));
  const heads = twoHeads(() => tf.train.sgd(0.1));
  const reg = tf.zeros([16, 1]);
  for (
    const strategy of [
      new MirroredStrategy({ replicas: 2, backend: BACKEND }),
      new WorkerStrategy({ workers: 2, backend: BACKEND }),
    ]
  ) {
    const name = `${strategy.constructor.name}.fit()`;
    const fit = (classWeight: unknown) => strategy.fit(model, x, y, { classWeight } as never);
    await assert.rejects(
      () => fit({ 0: 1, 1: 1, 2: 1, 3: 2 }),
      new RangeError(
        'classWeight has a weight for class "3", which is not a class of the output: expected ' +
          "integer class indices in [0, 3)",
      ),
    );
    await assert.rejects(
      () => fit({ 0: 1, 1: 1 }),
      /^RangeError: classWeight has no weight for class 2 \(sample \d+\): classWeight must contain all classes in the training data, as model\.fit requires$/,
    );
    await assert.rejects(
      () => fit({ 0: 1, 1: -2, 2: 1 }),
      new RangeError("classWeight weighs class 1 by -2: expected a finite number >= 0"),
    );
    await assert.rejects(
      () => fit({ 0: 1, 1: NaN, 2: 1 }),
      new RangeError("classWeight weighs class 1 by NaN: expected a finite number >= 0"),
    );
    await assert.rejects(
      () => strategy.fit(heads, x, [y, reg], { classWeight: [CLASS_WEIGHT] }),
      new RangeError(
        'classWeight has 1 entries, expected 2: one class-weight map per model output ("cls", ' +
          '"reg"), in model.outputs order (null: not weighted)',
      ),
    );
    await assert.rejects(
      () => strategy.fit(heads, x, [y, reg], { classWeight: { head: CLASS_WEIGHT } }),
      new RangeError(
        'classWeight names "head", which is not an output of the model: expected the output ' +
          'names "cls", "reg"',
      ),
    );
    await assert.rejects(
      () => strategy.fit(model, x, y, { sampleWeight: new Array(16).fill(1) } as never),
      new TypeError(
        `${name} does not support "sampleWeight": tfjs' model.fit does not support it either ` +
          '(tfjs-layers 4.22 throws "sample weight is not supported yet"); remove it, or weigh ' +
          "samples by the class of their label with classWeight",
      ),
    );
    // Nothing started: no stats.
    assert.equal(strategy.stats, undefined, `${name}: no Worker started`);
    await strategy.close();
  }
  tf.dispose([x, y, reg]);
  model.dispose();
  heads.dispose();
});
