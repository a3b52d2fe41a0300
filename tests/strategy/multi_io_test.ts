// Models with several inputs and outputs (issue 13): a functional model with
// two inputs ([8] and [4]) and two heads (softmax-3 classes with categorical
// cross-entropy, linear-1 regression with mean squared error) trains under
// both strategies as model.fit trains it, x and y given as arrays or dicts.
import assert from "node:assert/strict";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import { ParallelMap } from "../../src/data/pipeline.ts";
import {
  assertHistory,
  disposeTwoByTwoData as disposeData,
  type LossFn,
  maxWeightDiff,
  twoByTwo,
  twoByTwoData as data,
} from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MAPS = new URL("../fixtures/pipeline_maps.ts", import.meta.url);
const BACKEND = "cpu" as const;
/** Oracle tolerance: max |weight difference| after training, and History values. */
const TOL = 1e-4;
/** Tolerance of evaluate() against model.evaluate. */
const EVAL_TOL = 1e-5;
/** `model.metricsNames` of `twoByTwo`. */
const NAMES = ["loss", "cls_loss", "reg_loss", "cls_acc", "reg_mae"];

/**
 * `model.evaluate` as logs. tfjs 4.22 returns, for a model with k outputs,
 * the running sums of the per-output losses (the k-th is the total), then
 * one value per `metricsTensors` entry (the per-output losses, then the
 * metrics); `model.metricsNames` is `loss` followed by those entries.
 */
function evaluateLogs(model: tf.LayersModel, x: tf.Tensor[], y: tf.Tensor[], batchSize: number) {
  const out = model.evaluate(x, y, { batchSize }) as tf.Scalar[];
  const values = out.map((s) => s.dataSync()[0]!);
  tf.dispose(out);
  const k = model.outputs.length;
  const logs: Record<string, number> = { loss: values[k - 1]! };
  model.metricsNames.slice(1).forEach((name, i) => (logs[name] = values[k + i]!));
  return logs;
}

function assertClose(
  got: Record<string, number | undefined>,
  want: Record<string, number>,
  tol: number,
  what: string,
): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${what}: keys`);
  for (const [key, w] of Object.entries(want)) {
    const g = got[key]!;
    assert.ok(Math.abs(g - w) <= tol, `${what}: ${key} ${g} vs ${w}`);
  }
}

const FIT = { epochs: 2, batchSize: 24 };

Deno.test(
  "MirroredStrategy.fit() with 1, 2 and 4 replicas (cpu) and 2 replicas (wasm) trains a 2-input, 2-output model like model.fit",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const adam = () => tf.train.adam(0.01);
    const d = data(96);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const expected = twoByTwo(adam);
    assert.deepEqual(expected.metricsNames, NAMES);
    const want = await expected.fit(x, y, { ...FIT, shuffle: false, verbose: 0 });
    const runs = [[1, BACKEND], [2, BACKEND], [4, BACKEND], [2, "wasm"]] as const;
    for (const [replicas, backend] of runs) {
      const model = twoByTwo(adam);
      await using strategy = new MirroredStrategy({ replicas, backend });
      const history = await strategy.fit(model, x, y, { ...FIT, shuffle: false });
      const diff = maxWeightDiff(model, expected);
      const what = `${replicas} replicas on ${backend}`;
      assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
      assert.deepEqual(
        Object.keys(history.history).sort(),
        Object.keys(want.history).sort(),
        `${what}: History keys`,
      );
      assertHistory(history.history, want.history, NAMES, what, { tol: TOL });
      assert.equal(new Set(strategy.stats!.weightsDigests).size, 1, "replica weights differ");
      model.dispose();
    }
    expected.dispose();
    disposeData(d);
  },
);

Deno.test(
  "MirroredStrategy.fit() weights the outputs' losses by lossWeights as a weighted model.fit",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(96);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    // tfjs' compile has no lossWeights: the oracle halves the regression loss itself.
    const half: LossFn = (t, p) => tf.mul(tf.metrics.meanSquaredError(t, p), 0.5);
    const categorical: LossFn = (t, p) => tf.metrics.categoricalCrossentropy(t, p);
    const expected = twoByTwo(sgd, [categorical, half]);
    const want = await expected.fit(x, y, { ...FIT, shuffle: false, verbose: 0 });
    const unweighted = twoByTwo(sgd);
    await unweighted.fit(x, y, { ...FIT, shuffle: false, verbose: 0 });
    assert.ok(maxWeightDiff(unweighted, expected) > 10 * TOL, "the weights make a difference");
    for (const lossWeights of [[1, 0.5], { reg: 0.5 }]) {
      const model = twoByTwo(sgd);
      await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
      const history = await strategy.fit(model, x, y, { ...FIT, shuffle: false, lossWeights });
      const what = `lossWeights ${JSON.stringify(lossWeights)}`;
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
      // The total is weighted; each output's own loss is reported unweighted.
      assertHistory(history.history, want.history, NAMES, what, {
        tol: TOL,
        scale: { reg_loss: 0.5 },
      });
      model.dispose();
    }
    expected.dispose();
    unweighted.dispose();
    disposeData(d);
  },
);

Deno.test(
  "MirroredStrategy.fit() reports per-output validation logs equal to model.evaluate",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(120);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const expected = twoByTwo(sgd);
    const want = await expected.fit(x, y, {
      epochs: 1,
      batchSize: 24,
      shuffle: false,
      verbose: 0,
      validationSplit: 0.2,
    });
    const model = twoByTwo(sgd);
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    const history = await strategy.fit(model, x, y, {
      epochs: 1,
      batchSize: 24,
      shuffle: false,
      validationSplit: 0.2,
      lossWeights: [1, 0.5],
    });
    assert.deepEqual(Object.keys(history.history).sort(), Object.keys(want.history).sort());
    // tfjs 4.22's fit shifts its multi-output val_ values; the oracle is
    // model.evaluate on the validation tail with the trained weights.
    const tail = [...x, ...y].map((t) => tf.slice(t, [96], [24]));
    const val = evaluateLogs(model, tail.slice(0, 2), tail.slice(2), 24);
    val.loss = val.cls_loss! + 0.5 * val.reg_loss!;
    const got: Record<string, number> = {};
    for (const name of NAMES) got[name] = history.history[`val_${name}`]![0]!;
    assertClose(got, val, EVAL_TOL, "val_ logs");
    tf.dispose(tail);
    expected.dispose();
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "MirroredStrategy.fit() takes x and y as dicts by layer name, and a loss dict, like arrays",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const adam = () => tf.train.adam(0.01);
    const d = data(64);
    const byArray = twoByTwo(adam);
    const byDict = twoByTwo(adam, { reg: "meanSquaredError", cls: "categoricalCrossentropy" });
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    const a = await strategy.fit(byArray, [d.xa, d.xb], [d.cls, d.reg], { ...FIT, seed: 3 });
    // Keys in any order: the dict is read by name.
    const b = await strategy.fit(
      byDict,
      { in_b: d.xb, in_a: d.xa },
      { reg: d.reg, cls: d.cls },
      { ...FIT, seed: 3 },
    );
    assert.equal(maxWeightDiff(byArray, byDict), 0);
    assert.deepEqual(b.history, a.history);
    byArray.dispose();
    byDict.dispose();
    disposeData(d);
  },
);

Deno.test(
  "MirroredStrategy.fit() takes class indices for a sparse head of a 2-output model like model.fit",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(64);
    const labels = tf.tidy(() => tf.cast(tf.argMax(d.cls, 1), "float32"));
    const loss = ["sparseCategoricalCrossentropy", "meanSquaredError"];
    const expected = twoByTwo(sgd, loss);
    const want = await expected.fit([d.xa, d.xb], [labels, d.reg], {
      ...FIT,
      shuffle: false,
      verbose: 0,
    });
    const model = twoByTwo(sgd, loss);
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    const history = await strategy.fit(model, [d.xa, d.xb], [labels, d.reg], {
      ...FIT,
      shuffle: false,
    });
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    assertHistory(history.history, want.history, NAMES, "sparse head", { tol: TOL });
    await assert.rejects(
      () => strategy.fit(model, [d.xa, d.xb], [[0, 1, 2, 3, ...Array(60).fill(0)], d.reg]),
      new RangeError(
        'y[0] (output "cls"): sample 3 is 3: a sparse categorical label must be an integer ' +
          "in [0, 3)",
      ),
    );
    tf.dispose(labels);
    expected.dispose();
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "WorkerStrategy.fit() with one worker and staleness 0 trains a 2-input, 2-output model like model.fit",
  opts,
  async () => {
    // One worker, no shuffling: batches come in order, each gradient on the
    // latest weights, as model.fit computes them.
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(96);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const expected = twoByTwo(sgd);
    const want = await expected.fit(x, y, { ...FIT, shuffle: false, verbose: 0 });
    const model = twoByTwo(sgd);
    await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
    const history = await strategy.fit(model, x, y, { ...FIT, shuffle: false });
    const diff = maxWeightDiff(model, expected);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    const own = ["stale", "dropped", "restarts"];
    assert.deepEqual(
      Object.keys(history.history).filter((k) => !own.includes(k)).sort(),
      Object.keys(want.history).sort(),
    );
    assertHistory(history.history, want.history, NAMES, "WorkerStrategy", { tol: TOL });
    expected.dispose();
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "fit() of both strategies takes dicts, class indices, a rank-1 target and classWeight by output name like model.fit",
  opts,
  async () => {
    // The forms a Keras user mixes: x and y by layer name, a sparse head
    // with float [n] class indices, the regression target as [n], and the
    // classification head weighted by class.
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(96);
    const labels = tf.tidy(() => tf.cast(tf.argMax(d.cls, 1), "float32"));
    const target = tf.reshape(d.reg, [-1]);
    const loss = { cls: "sparseCategoricalCrossentropy", reg: "meanSquaredError" };
    const x = { in_a: d.xa, in_b: d.xb }, y = { reg: target, cls: labels };
    const classWeight = { cls: { 0: 0.5, 1: 2, 2: 1.25 } };
    const expected = twoByTwo(sgd, loss);
    const want = await expected.fit(x, y, { ...FIT, shuffle: false, classWeight, verbose: 0 });
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
    const runs = [["MirroredStrategy, 2 replicas", mirrored], ["WorkerStrategy, 1 worker", worker]];
    for (const [what, strategy] of runs as [string, MirroredStrategy | WorkerStrategy][]) {
      const model = twoByTwo(sgd, loss);
      const history = await strategy.fit(model, x, y, { ...FIT, shuffle: false, classWeight });
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
      const gap = assertHistory(history.history, want.history, NAMES, what, { tol: TOL });
      console.log(`${what}: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`);
      model.dispose();
    }
    tf.dispose([labels, target]);
    expected.dispose();
    disposeData(d);
  },
);

Deno.test(
  "WorkerStrategy.fit() weights the outputs' losses by lossWeights, in training and validation",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const sgd = () => tf.train.sgd(0.2);
    const d = data(96);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const mirrored = twoByTwo(sgd);
    {
      await using strategy = new MirroredStrategy({ replicas: 1, backend: BACKEND });
      await strategy.fit(mirrored, x, y, { ...FIT, shuffle: false, lossWeights: { reg: 0.5 } });
    }
    const model = twoByTwo(sgd);
    await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
    const history = await strategy.fit(model, x, y, {
      ...FIT,
      shuffle: false,
      lossWeights: [1, 0.5],
      validationData: [x, y],
    });
    const diff = maxWeightDiff(model, mirrored);
    assert.ok(diff <= TOL, `vs MirroredStrategy: max |weight difference| ${diff} > ${TOL}`);
    const val = evaluateLogs(model, x, y, 24);
    const last = (key: string) => history.history[key]!.at(-1)!;
    assert.ok(Math.abs(last("val_loss") - (val.cls_loss! + 0.5 * val.reg_loss!)) <= EVAL_TOL);
    assert.ok(Math.abs(last("val_reg_loss") - val.reg_loss!) <= EVAL_TOL);
    mirrored.dispose();
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "evaluate() of both strategies returns the logs of model.evaluate for a 2-input, 2-output model",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = data(100);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const model = twoByTwo(() => tf.train.sgd(0.1));
    const want = evaluateLogs(model, x, y, 16);
    const weighted = { ...want, loss: 2 * want.cls_loss! + 0.25 * want.reg_loss! };
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 2, backend: BACKEND });
    for (const [name, strategy] of [["mirrored", mirrored], ["worker", worker]] as const) {
      assertClose(await strategy.evaluate(model, x, y, { batchSize: 16 }), want, EVAL_TOL, name);
      assertClose(
        await strategy.evaluate(model, { in_a: d.xa, in_b: d.xb }, { cls: d.cls, reg: d.reg }, {
          batchSize: 16,
          lossWeights: [2, 0.25],
        }),
        weighted,
        EVAL_TOL,
        `${name} with lossWeights`,
      );
    }
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "fit() of a 2-input, 2-output model leaks no tensors in the main thread or the Workers",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = data(64);
    const x = [d.xa, d.xb], y = [d.cls, d.reg];
    const options = { epochs: 1, batchSize: 16, validationSplit: 0.25, lossWeights: [1, 0.5] };
    const model = twoByTwo(() => tf.train.adam(0.01));
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
      await mirrored.evaluate(model, x, y);
      await worker.fit(model, x, y, options);
      await worker.evaluate(model, x, y);
    }
    await mirrored.fit(model, x, y, options);
    await worker.fit(model, x, y, options);
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(mirrored.stats!.replicaTensors, replicas, "replica tensors leaked");
    assert.deepEqual(worker.stats!.workers.map((w) => w.tensors), workers, "worker tensors leaked");
    model.dispose();
    disposeData(d);
  },
);

Deno.test(
  "fit() refuses x and y that do not fit a 2-input, 2-output model, naming the input or output",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = data(16);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await using worker = new WorkerStrategy({ workers: 1, backend: BACKEND });
    const short = tf.slice(d.xb, 0, 15);
    const wide = tf.zeros([16, 5]);
    const cases: [string, () => [unknown, unknown, object?], RegExp | string][] = [
      [
        "one tensor for two inputs",
        () => [d.xa, [d.cls, d.reg]],
        'The model has 2 inputs ("in_a", "in_b"): pass x as an array of 2 tensors in ' +
        "model.inputs order or as a dict by input name, received one tensor",
      ],
      [
        "three tensors for two inputs",
        () => [[d.xa, d.xb, d.xb], [d.cls, d.reg]],
        'x holds 3 arrays, expected 2: one per model input ("in_a", "in_b"), in model.inputs order',
      ],
      [
        "a wrong per-sample shape",
        () => [[d.xa, wide], [d.cls, d.reg]],
        'x[1] (input "in_b") has per-sample shape [5], expected [4] to match the model',
      ],
      [
        "a wrong output shape",
        () => [[d.xa, d.xb], [d.cls, d.cls]],
        'y[1] (output "reg") has per-sample shape [3], expected [1] to match the model',
      ],
      [
        "an input with fewer samples",
        () => [[d.xa, short], [d.cls, d.reg]],
        'x[0] (input "in_a") and x[1] (input "in_b") must have the same number of samples, ' +
        "received 16 and 15",
      ],
      [
        "an output with fewer samples",
        () => [[d.xa, d.xb], { cls: d.cls, reg: tf.slice(d.reg, 0, 12) }],
        'x[0] (input "in_a") and y[1] (output "reg") must have the same number of samples, ' +
        "received 16 and 12",
      ],
      [
        "a dict without an input",
        () => [{ in_a: d.xa }, [d.cls, d.reg]],
        'x has no entry for input "in_b": expected one per input name ("in_a", "in_b")',
      ],
      [
        "a dict with an unknown name",
        () => [{ in_a: d.xa, in_b: d.xb, in_c: d.xb }, [d.cls, d.reg]],
        'x has an entry "in_c", which is not an input of the model: expected the input names ' +
        '"in_a", "in_b"',
      ],
      [
        "lossWeights of the wrong length",
        () => [[d.xa, d.xb], [d.cls, d.reg], { lossWeights: [1] }],
        'lossWeights has 1 entries, expected 2: one per model output ("cls", "reg")',
      ],
      [
        "lossWeights for an unknown output",
        () => [[d.xa, d.xb], [d.cls, d.reg], { lossWeights: { out: 2 } }],
        'lossWeights names "out", which is not an output of the model: expected the output ' +
        'names "cls", "reg"',
      ],
      [
        "a non-finite loss weight",
        () => [[d.xa, d.xb], [d.cls, d.reg], { lossWeights: [1, NaN] }],
        'lossWeights of output "reg" must be a finite number, received NaN',
      ],
    ];
    for (const [what, args, message] of cases) {
      for (const strategy of [mirrored, worker]) {
        const [x, y, extra] = args();
        await assert.rejects(
          // deno-lint-ignore no-explicit-any
          () => strategy.fit(model, x as any, y as any, { batchSize: 4, ...extra }),
          (e: Error) => {
            assert.ok(e instanceof RangeError, `${what}: ${e.name} ${e.message}`);
            assert.equal(e.message, message, what);
            return true;
          },
        );
      }
    }
    assert.equal(mirrored.stats, undefined, "no replica started");
    assert.equal(worker.stats, undefined, "no worker started");
    tf.dispose([short, wide]);
    model.dispose();
    disposeData(d);
  },
);

/** `twoByTwoData` as a ParallelMap source: rows `[in_a | in_b]`, labels `[cls | reg]`. */
function pipelineSource(d: ReturnType<typeof data>, sparse: boolean) {
  const cls = sparse ? tf.tidy(() => tf.expandDims(tf.argMax(d.cls, 1), 1).toFloat()) : d.cls;
  const x = tf.tidy(() => tf.concat([d.xa, d.xb], 1));
  const y = tf.tidy(() => tf.concat([cls, d.reg], 1));
  const source = {
    x: x.dataSync() as Float32Array,
    y: y.dataSync() as Float32Array,
    count: d.xa.shape[0],
    featureShape: [12],
  };
  tf.dispose([x, y]);
  return { source, cls };
}

Deno.test(
  "MirroredStrategy.fitPipeline() trains a 2-input, 2-output model like fit() on the same data and seed (lossWeights, classWeight, sparse labels)",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const seed = 5;
    const d = data(72);
    const runs = [
      { sparse: false, extra: {} },
      {
        sparse: false,
        extra: { lossWeights: [1, 0.5], classWeight: { cls: { 0: 1, 1: 3, 2: 0.5 } } },
      },
      {
        sparse: true,
        extra: { lossWeights: { reg: 2 }, classWeight: [{ 0: 2, 1: 1, 2: 1 }, null] },
      },
    ];
    for (const { sparse, extra } of runs) {
      const loss = [
        sparse ? "sparseCategoricalCrossentropy" : "categoricalCrossentropy",
        "meanSquaredError",
      ];
      const { source, cls } = pipelineSource(d, sparse);
      const expected = twoByTwo(() => tf.train.adam(0.01), loss);
      await using a = new MirroredStrategy({ replicas: 2, backend: BACKEND });
      const want = await a.fit(expected, [d.xa, d.xb], [cls, d.reg], { ...FIT, seed, ...extra });
      const model = twoByTwo(() => tf.train.adam(0.01), loss);
      await using pipeline = new ParallelMap(source, {
        map: { url: MAPS, exportName: "splitTwoByTwo" },
        workers: 2,
        seed,
      });
      await using b = new MirroredStrategy({ replicas: 2, backend: BACKEND });
      const got = await b.fitPipeline(model, pipeline, { ...FIT, ...extra });
      const what = `sparse ${sparse}, ${JSON.stringify(extra)}`;
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= 1e-6, `${what}: max |weight difference| ${diff}`);
      assertHistory(got.history, want.history, Object.keys(want.history), what, { tol: 1e-6 });
      // No tensor leaks in the main thread or the replicas on another run.
      const main = tf.memory().numTensors, replicas = b.stats!.replicaTensors;
      await b.fitPipeline(model, pipeline, { ...FIT, epochs: 1, ...extra });
      assert.equal(tf.memory().numTensors, main, `${what}: main-thread tensors leaked`);
      assert.deepEqual(b.stats!.replicaTensors, replicas, `${what}: replica tensors leaked`);
      if (sparse) cls.dispose();
      model.dispose();
      expected.dispose();
    }
    disposeData(d);
  },
);

Deno.test(
  "MirroredStrategy.fitPipeline() refuses parts that do not match the model's inputs and outputs, before training",
  opts,
  async () => {
    await tf.setBackend(BACKEND);
    const d = data(8);
    const { source } = pipelineSource(d, false);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    await using mirrored = new MirroredStrategy({ replicas: 1, backend: BACKEND });
    await using whole = new ParallelMap(source, {
      map: { url: MAPS, exportName: "identity" },
      workers: 1,
      seed: 1,
    });
    await assert.rejects(
      () => mirrored.fitPipeline(model, whole),
      new RangeError(
        'The pipeline\'s map returns 1 x part, the model has 2 inputs ("in_a", "in_b"): ' +
          "return x as an array of one Float32Array per input, in model.inputs order",
      ),
    );
    const sparse = twoByTwo(() => tf.train.sgd(0.1), [
      "categoricalCrossentropy",
      "meanSquaredError",
    ]);
    // Labels of one class index and one target per sample, for a categorical head.
    const wrong = { ...source, y: source.y.subarray(0, 8 * 2) };
    await using narrow = new ParallelMap(wrong, {
      map: { url: MAPS, exportName: "splitTwoByTwo" },
      workers: 1,
      seed: 1,
    });
    await assert.rejects(
      () => mirrored.fitPipeline(sparse, narrow),
      new RangeError(
        "The pipeline's y part 0 holds 1 values per sample, the model's output \"cls\" expects [3]",
      ),
    );
    await using parts = new ParallelMap(source, {
      map: { url: MAPS, exportName: "splitTwoByTwo" },
      workers: 1,
      seed: 1,
    });
    await assert.rejects(
      () => mirrored.fitPipeline(model, parts, { classWeight: { nope: { 0: 1 } } }),
      new RangeError(
        'classWeight names "nope", which is not an output of the model: expected the output ' +
          'names "cls", "reg"',
      ),
    );
    assert.equal(mirrored.stats, undefined, "no replica started");
    sparse.dispose();
    model.dispose();
    disposeData(d);
  },
);
