import assert from "node:assert/strict";
import * as tfd from "@tensorflow/tfjs-data";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import {
  assertHistory,
  disposeTwoByTwoData,
  maxWeightDiff,
  twoByTwo,
  type TwoByTwoData,
  twoByTwoData,
} from "./_models.ts";

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

/** `model.metricsNames` of `twoByTwo`. */
const NAMES = ["loss", "cls_loss", "reg_loss", "cls_acc", "reg_mae"];

/** One `{ xs: { in_a, in_b }, ys: { cls, reg } }` element per sample of `d`. */
function samplesOf(d: TwoByTwoData) {
  const [xa, xb, cls, reg] = [d.xa, d.xb, d.cls, d.reg].map((t) => t.arraySync());
  return xa!.map((_, i) => ({
    xs: { in_a: xa![i]!, in_b: xb![i]! },
    ys: { cls: cls![i]!, reg: reg![i]! },
  }));
}

Deno.test(
  "fitDataset() of both strategies trains a 2-input, 2-output model on dict or array elements like model.fitDataset",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const adam = () => tf.train.adam(0.01);
    const d = twoByTwoData(96);
    const samples = samplesOf(d);
    const expected = twoByTwo(adam);
    const want = await expected.fitDataset(tfd.array(samples).batch(16), { epochs: 2, verbose: 0 });
    type Element = { xs: Record<string, tf.Tensor>; ys: Record<string, tf.Tensor> };
    const datasets = [
      ["dict batches", tfd.array(samples).batch(16)],
      [
        "array batches",
        tfd.array(samples).batch(16).map((e) => {
          const { xs, ys } = e as unknown as Element;
          return {
            xs: [xs.in_a!, xs.in_b!],
            ys: [ys.cls!, ys.reg!],
          } as unknown as tf.TensorContainer;
        }),
      ],
      ["dict samples", tfd.array(samples)],
    ] as const;
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    await using worker = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
    const runs = [["MirroredStrategy, 2 replicas", mirrored], ["WorkerStrategy, 1 worker", worker]];
    for (const [name, dataset] of datasets) {
      for (const [who, strategy] of runs as [string, MirroredStrategy | WorkerStrategy][]) {
        const what = `${who}, ${name}`;
        const model = twoByTwo(adam);
        const history = await strategy.fitDataset(model, dataset, {
          epochs: 2,
          batchSize: 16,
          shuffle: false,
        });
        const diff = maxWeightDiff(model, expected);
        assert.ok(diff <= 1e-4, `${what}: max |weight difference| ${diff}`);
        const gap = assertHistory(history.history, want.history, NAMES, what, { tol: 1e-4 });
        console.log(
          `${what}: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`,
        );
        model.dispose();
      }
    }
    expected.dispose();
    disposeTwoByTwoData(d);
  },
);

Deno.test(
  "fitDataset() of a 2-input, 2-output model leaks no tensors in the main thread or the Workers",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const d = twoByTwoData(48);
    const dataset = tfd.array(samplesOf(d)).batch(16);
    const model = twoByTwo(() => tf.train.adam(0.01));
    const options = { epochs: 1, batchSize: 16 };
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    await using worker = new WorkerStrategy({ workers: 2, backend: "cpu" });
    // Warm-up: the optimizer makes its state on the first fit.
    await mirrored.fitDataset(model, dataset, options);
    await worker.fitDataset(model, dataset, options);
    const main = tf.memory().numTensors;
    const replicas = mirrored.stats!.replicaTensors;
    const workers = worker.stats!.workers.map((w) => w.tensors);
    for (let i = 0; i < 2; i++) {
      await mirrored.fitDataset(model, dataset, options);
      await worker.fitDataset(model, dataset, options);
    }
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(mirrored.stats!.replicaTensors, replicas, "replica tensors leaked");
    assert.deepEqual(worker.stats!.workers.map((w) => w.tensors), workers, "worker tensors leaked");
    model.dispose();
    disposeTwoByTwoData(d);
  },
);

Deno.test(
  "fitDataset() refuses elements that do not fit a 2-input, 2-output model, naming the input or output",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const d = twoByTwoData(4);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    const [first, second] = samplesOf(d);
    await using s = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const cases: [string, unknown[], RegExp | Error][] = [
      [
        "an element without an input",
        [first, { xs: { in_a: second!.xs.in_a }, ys: second!.ys }],
        new RangeError(
          'Dataset element 1: xs has no entry for input "in_b": expected one per input name ' +
            '("in_a", "in_b")',
        ),
      ],
      [
        "one output's values for two outputs",
        [{ xs: first!.xs, ys: first!.ys.cls }],
        new RangeError(
          'Dataset element 0: ys holds 3 arrays, expected 2: one per model output ("cls", ' +
            '"reg"), in model.outputs order',
        ),
      ],
      [
        "a sample shape unlike the first element's",
        [first, { xs: { in_a: second!.xs.in_a, in_b: [1, 2] }, ys: second!.ys }],
        new RangeError(
          'Dataset element 1: xs[1] (input "in_b") has sample shape [2], expected [4] like the ' +
            "first element",
        ),
      ],
      [
        "a batch whose columns differ in samples",
        [{
          xs: { in_a: [first!.xs.in_a, second!.xs.in_a], in_b: [first!.xs.in_b] },
          ys: first!.ys,
        }],
        new RangeError(
          'Dataset element 0: xs[0] (input "in_a") has 2 samples, xs[1] (input "in_b") has 1',
        ),
      ],
    ];
    for (const [what, elements, error] of cases) {
      await assert.rejects(() => s.fitDataset(model, tfd.array(elements as never)), error, what);
    }
    assert.equal(s.stats, undefined, "no replica started");
    model.dispose();
    disposeTwoByTwoData(d);
  },
);
