// The Strategy contract: the factory, the kinds table, the shared stats, and
// the fit checks every strategy applies the same way.
import assert from "node:assert/strict";
import * as tfd from "@tensorflow/tfjs-data";
import {
  createStrategy,
  isStrategyKind,
  MirroredStrategy,
  type Strategy,
  STRATEGY_KINDS,
  tf,
  WorkerStrategy,
} from "../../mod.ts";
import { classifier, dataset } from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function maxDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  return tf.tidy(() =>
    Math.max(
      ...a.getWeights().map((w, i) => tf.max(tf.abs(tf.sub(w, b.getWeights()[i]!))).dataSync()[0]!),
    )
  );
}

Deno.test("createStrategy() builds the class of each kind with its options", async () => {
  await using mirrored = createStrategy({ kind: "mirrored", replicas: 3, backend: "cpu" });
  assert.ok(mirrored instanceof MirroredStrategy);
  assert.deepEqual(
    [mirrored.kind, mirrored.parallelism, mirrored.batchScope, mirrored.replicas],
    ["mirrored", 3, "global", 3],
  );
  await using worker = createStrategy({ kind: "worker", workers: 2, staleness: 1, backend: "cpu" });
  assert.ok(worker instanceof WorkerStrategy);
  assert.deepEqual(
    [worker.kind, worker.parallelism, worker.batchScope, worker.staleness],
    ["worker", 2, "perWorker", 1],
  );
  for (const [kind, info] of Object.entries(STRATEGY_KINDS)) {
    assert.ok(isStrategyKind(kind));
    const s: Strategy = createStrategy({ kind, [info.countOption]: 1, backend: "cpu" } as never);
    assert.equal(s.kind, kind);
    assert.equal(s.batchScope, info.batchScope);
    assert.equal(s.parallelism, 1);
    await s.close();
  }
  assert.equal(isStrategyKind("ring"), false);
  assert.equal(isStrategyKind("toString"), false, "inherited names are not kinds");
});

Deno.test("createStrategy() refuses an unknown kind and options of another kind", () => {
  assert.throws(
    () => createStrategy({ kind: "ring" } as never),
    new TypeError('kind must be one of mirrored, worker, received "ring"'),
  );
  assert.throws(
    () => createStrategy(null as never),
    new TypeError("A strategy spec must be an object, received null"),
  );
  assert.throws(
    () => createStrategy({ kind: "worker", replicas: 2 } as never),
    /^TypeError: WorkerStrategy has no option "replicas": expected one of workers, /,
  );
  assert.throws(
    () => new MirroredStrategy({ replica: 2 } as never),
    /^TypeError: MirroredStrategy has no option "replica": expected one of replicas, /,
  );
});

Deno.test("fit() refuses tfjs options it does not honour and unknown names, before any Worker starts", async () => {
  const { x, y } = dataset(32);
  for (
    const strategy of [new MirroredStrategy({ replicas: 2 }), new WorkerStrategy({ workers: 2 })]
  ) {
    const model = classifier(() => tf.train.sgd(0.1));
    const name = `${strategy.constructor.name}.fit()`;
    await assert.rejects(
      () => strategy.fit(model, x, y, { stepsPerEpoch: 2 } as never),
      new TypeError(
        `${name} does not support "stepsPerEpoch" yet (model.fit would end epochs after a ` +
          "number of steps): remove it; dtrain refuses an option rather than train without it",
      ),
    );
    await assert.rejects(
      () => strategy.fit(model, x, y, { epoch: 2 } as never),
      new RegExp(
        `^TypeError: ${
          name.replace(/[.()]/g, "\\$&")
        } has no option "epoch": expected one of epochs, `,
      ),
    );
    // Nothing started: no stats, and the model is untouched.
    assert.equal(strategy.stats, undefined);
    await strategy.close();
    model.dispose();
  }
  tf.dispose([x, y]);
});

Deno.test(
  "Strategy.stats names each Worker's backend and threads for every kind",
  opts,
  async () => {
    const { x, y } = dataset(64);
    for (const kind of ["mirrored", "worker"] as const) {
      await using strategy = createStrategy({
        kind,
        [STRATEGY_KINDS[kind].countOption]: 2,
        backend: "cpu",
      } as never);
      const model = classifier(() => tf.train.sgd(0.1));
      await strategy.fit(model, x, y, { epochs: 1, batchSize: 16, seed: 1 });
      const stats = strategy.stats!;
      assert.deepEqual(stats.backends, ["cpu", "cpu"], kind);
      assert.deepEqual(stats.threads, [1, 1], kind);
      assert.ok(stats.backendReason.length > 0, `${kind}: the first Worker says why`);
      assert.equal(stats.blas, null, `${kind}: no host-BLAS report off WASM`);
      model.dispose();
    }
    tf.dispose([x, y]);
  },
);

Deno.test(
  "WorkerStrategy.fitDataset() with one worker equals fit() on the same samples",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(48);
    const rows = tf.tidy(() => {
      const xs = x.arraySync();
      const ys = y.arraySync();
      return xs.map((r, i) => ({ xs: r, ys: ys[i]! }));
    });
    const fitOptions = { epochs: 2, batchSize: 8, shuffle: false, seed: 5 };
    const expected = classifier(() => tf.train.sgd(0.1));
    await using a = new WorkerStrategy({ workers: 1, backend: "cpu", staleness: 0 });
    await a.fit(expected, x, y, fitOptions);
    for (const data of [tfd.array(rows), tfd.array(rows).batch(5)]) {
      const model = classifier(() => tf.train.sgd(0.1));
      await using b = new WorkerStrategy({ workers: 1, backend: "cpu", staleness: 0 });
      const before = tf.memory().numTensors;
      const history = await b.fitDataset(model, data, fitOptions);
      assert.equal(history.epoch.length, 2);
      assert.equal(tf.memory().numTensors, before, "fitDataset leaked tensors");
      assert.equal(b.stats!.applied, 2 * 6, "48 samples / 8 per gradient, two epochs");
      const diff = maxDiff(model, expected);
      assert.ok(diff <= 1e-6, `max |weight difference| ${diff}`);
      model.dispose();
    }
    expected.dispose();
    tf.dispose([x, y]);
  },
);

Deno.test("Strategy.stats says what the host-BLAS path chose on WASM", opts, async () => {
  const { x, y } = dataset(32);
  for (const kind of ["mirrored", "worker"] as const) {
    await using strategy = createStrategy({
      kind,
      [STRATEGY_KINDS[kind].countOption]: 1,
      backend: "wasm",
    } as never);
    const model = classifier(() => tf.train.sgd(0.1));
    await strategy.fit(model, x, y, { epochs: 1, batchSize: 16, seed: 1 });
    const blas = strategy.stats!.blas;
    assert.ok(blas !== null, `${kind}: a report`);
    assert.equal(typeof blas.used, "boolean");
    assert.ok(blas.reason.length > 0, `${kind}: says why`);
    if (blas.used) assert.ok((blas.gflops ?? 0) > 0, `${kind}: measured the library`);
    model.dispose();
  }
  tf.dispose([x, y]);
});

Deno.test(
  "MirroredStrategy.fit({ trace }) writes a Chrome trace with every step's phases",
  opts,
  async () => {
    const { x, y } = dataset(64);
    const dir = await Deno.makeTempDir({ prefix: "dtrain_trace_" });
    try {
      const path = `${dir}/fit.json`;
      await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
      const model = classifier(() => tf.train.sgd(0.1));
      await strategy.fit(model, x, y, { epochs: 2, batchSize: 16, seed: 1, trace: path });
      const { traceEvents } = JSON.parse(await Deno.readTextFile(path)) as {
        traceEvents: {
          name: string;
          ph: string;
          ts?: number;
          dur?: number;
          args?: { step?: number };
        }[];
      };
      const spans = traceEvents.filter((e) => e.ph === "X");
      for (const name of ["gradients", "all-reduce", "apply"]) {
        assert.equal(
          spans.filter((e) => e.name === name).length,
          2 * 4,
          `${name}: 2 epochs x 4 steps`,
        );
      }
      assert.ok(spans.every((e) => e.dur! >= 0 && e.ts! > 1.6e15), "epoch-based microseconds");
      const grads = spans.filter((e) => e.name === "gradients").map((e) => e.ts!);
      assert.deepEqual(grads, [...grads].sort((a, b) => a - b), "steps in time order");
      assert.ok(traceEvents.some((e) => e.ph === "M" && e.name === "process_name"));
      await assert.rejects(
        () => strategy.fit(model, x, y, { trace: "" }),
        new TypeError('trace must be a file path, received ""'),
      );
      await using worker = new WorkerStrategy({ workers: 1, backend: "cpu" });
      await assert.rejects(
        () => worker.fit(model, x, y, { trace: path } as never),
        /WorkerStrategy does not write a trace/,
      );
      model.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
      tf.dispose([x, y]);
    }
  },
);
