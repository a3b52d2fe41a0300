import assert from "node:assert/strict";
import {
  loadMnist,
  MirroredStrategy,
  ReplicaCrashedError,
  tf,
  toTensors,
  type TrainingCallbacks,
  WorkerCrashedError,
  WorkerStrategy,
} from "../../mod.ts";
import { GradientSlot } from "../../src/collective/gradient_slot.ts";
import { VersionedBuffer } from "../../src/collective/versioned_buffer.ts";
import { ParameterServer, type StalePolicy } from "../../src/strategy/ps/_parameter_server.ts";
import { buildMnist, buildSmall, FAULTY, plainMnist, SLOW_MS } from "../fixtures/ps_model.ts";
import { classifier, dataset as synthetic } from "./_models.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const BACKEND = "cpu" as const;
const FIXTURE = new URL("../fixtures/ps_model.ts", import.meta.url);
/** Epochs of the MNIST runs (MirroredStrategy and WorkerStrategy alike). */
const EPOCHS = 3;
/** WorkerStrategy's test accuracy may be at most this far below MirroredStrategy's. */
const ACCURACY_BOUND = 0.01;
/** Per-worker batch; MirroredStrategy gets 2 x this as its global batch. */
const BATCH = 32;

type Mnist = { xs: tf.Tensor; ys: tf.Tensor; testXs: tf.Tensor; testYs: tf.Tensor; count: number };
let mnistData: Promise<Mnist> | undefined;
function mnist(): Promise<Mnist> {
  mnistData ??= (async () => {
    await tf.setBackend(BACKEND);
    const { train, test } = await loadMnist({ trainCount: 2000, testCount: 1000, seed: 1 });
    const a = toTensors(train, { numClasses: 10 });
    const b = toTensors(test, { numClasses: 10 });
    return { xs: a.xs, ys: a.ys, testXs: b.xs, testYs: b.ys, count: train.count };
  })();
  return mnistData;
}

/** MirroredStrategy's test accuracy on the same task, computed once. */
let baseline: Promise<number> | undefined;
function mirroredAccuracy(): Promise<number> {
  baseline ??= (async () => {
    const d = await mnist();
    const model = plainMnist();
    await using strategy = new MirroredStrategy({ replicas: 2, backend: BACKEND });
    await strategy.fit(model, d.xs, d.ys, { epochs: EPOCHS, batchSize: 2 * BATCH, seed: 1 });
    const { acc } = await strategy.evaluate(model, d.testXs, d.testYs, { batchSize: 500 });
    model.dispose();
    return acc!;
  })();
  return baseline;
}

async function testAccuracy(strategy: WorkerStrategy, model: tf.LayersModel): Promise<number> {
  const d = await mnist();
  const { acc } = await strategy.evaluate(model, d.testXs, d.testYs, { batchSize: 500 });
  return acc!;
}

function sum(values: number[] | undefined): number {
  return (values ?? []).reduce((a, b) => a + b, 0);
}

function weightsOf(model: tf.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

Deno.test(
  "WorkerStrategy.fit() reaches MirroredStrategy's MNIST test accuracy within 1 point",
  opts,
  async () => {
    const d = await mnist();
    const want = await mirroredAccuracy();
    const model = plainMnist();
    await using strategy = new WorkerStrategy({ workers: 2, backend: BACKEND });
    const history = await strategy.fit(model, d.xs, d.ys, {
      epochs: EPOCHS,
      batchSize: BATCH,
      seed: 1,
    });
    const got = await testAccuracy(strategy, model);
    assert.ok(
      got >= want - ACCURACY_BOUND,
      `WorkerStrategy ${got} vs MirroredStrategy ${want}: more than 1 point lower`,
    );
    const steps = Math.ceil(d.count / BATCH);
    assert.equal(strategy.stats!.applied, EPOCHS * steps);
    assert.deepEqual(history.epoch, [0, 1, 2]);
    assert.deepEqual(Object.keys(history.history).sort(), [
      "acc",
      "dropped",
      "loss",
      "restarts",
      "stale",
    ]);
    // Every worker took part.
    for (const w of strategy.stats!.workers) assert.ok(w.applied > 0, `worker ${w.id} idle`);
    model.dispose();
  },
);

for (
  const [exportName, how, detail] of [
    ["mnistThrowing", "throws", /^Error: Fault failed on purpose$/],
    ["mnistExiting", "Worker closes itself", /^no heartbeat for \d+ ms/],
  ] as const
) {
  Deno.test(
    `WorkerStrategy.fit() replaces a worker that ${how} and still converges`,
    opts,
    async () => {
      const d = await mnist();
      const want = await mirroredAccuracy();
      const model = buildMnist();
      await using strategy = new WorkerStrategy({
        workers: 2,
        backend: BACKEND,
        modelModule: { url: FIXTURE, exportName },
        // A silent death is noticed only after this long without a heartbeat. The
        // survivor sleeps SURVIVOR_MS per step (~190 gradients, so >= 2.8 s of run):
        // 1000 ms + the watchdog's 250 ms interval end well before that, and a
        // healthy worker, which beats on every step and while it waits, would
        // have to stall a whole second to be taken for dead.
        workerTimeoutMs: how === "throws" ? 1500 : 1000,
      });
      const history = await strategy.fit(model, d.xs, d.ys, {
        epochs: EPOCHS,
        batchSize: BATCH,
        seed: 1,
      });
      const stats = strategy.stats!;
      assert.equal(
        stats.restarts,
        1,
        JSON.stringify(stats.workers.map((w) => [w.id, w.replaces, w.status, w.error])),
      );
      assert.equal(sum(history.history.restarts), 1, "the restart is in the History");
      assert.equal(stats.applied, EPOCHS * Math.ceil(d.count / BATCH));
      const crashed = stats.workers.find((w) => w.id === 1)!;
      assert.equal(crashed.status, "crashed");
      assert.match(crashed.error!, detail);
      const replacement = stats.workers.find((w) => w.replaces === 1)!;
      assert.equal(replacement.status, "idle");
      assert.equal(replacement.backend, BACKEND, "the replacement started");
      if (how === "throws") {
        // A thrown error is reported at once, so the replacement joins early enough to
        // contribute. A silent death is only noticed after workerTimeoutMs, by which time
        // the other worker may have finished the run on a fast machine.
        assert.ok(replacement.applied > 0, "the replacement computed gradients");
      }
      assert.equal(strategy.workers, 2);
      const got = await testAccuracy(strategy, model);
      assert.ok(got >= want - ACCURACY_BOUND, `accuracy ${got} vs MirroredStrategy ${want}`);
      model.dispose();
    },
  );
}

Deno.test(
  "WorkerStrategy.fit() keeps the fast worker's pace when another worker is slow",
  opts,
  async () => {
    const { x, y } = synthetic(512);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      staleness: 1000, // apply everything: this test counts who contributed
      modelModule: { url: FIXTURE, exportName: "smallSlow" },
    });
    const epochs = 4, batchSize = 16;
    await strategy.fit(model, x, y, { epochs, batchSize });
    const stats = strategy.stats!;
    const total = epochs * Math.ceil(512 / batchSize);
    const [fast, slow] = [0, 1].map((id) => stats.workers.find((w) => w.id === id)!);
    assert.equal(`dtrain-ps-worker-${slow!.id}`, FAULTY);
    assert.equal(stats.applied, total);
    assert.equal(fast!.applied + slow!.applied, total);
    assert.equal(stats.dropped, 0);
    // The slow worker sleeps SLOW_MS per step; the fast one is not held back by it
    // (in MirroredStrategy both would contribute to every step).
    assert.ok(
      fast!.applied >= 3 * slow!.applied,
      `fast worker applied ${fast!.applied}, slow worker (${SLOW_MS} ms/step) ${slow!.applied}`,
    );
    assert.ok(fast!.applied >= 0.75 * total, `fast worker applied ${fast!.applied} of ${total}`);
    assert.ok(slow!.applied >= 1, "the slow worker still contributes");
    // Its gradients are the stale ones.
    assert.ok(stats.maxStaleness >= 3, `max staleness ${stats.maxStaleness}`);
    tf.dispose([x, y]);
    model.dispose();
  },
);

for (const [policy, flat] of [["drop", false], ["scale", false], ["scale", true]] as const) {
  Deno.test(
    `ParameterServer.apply() counts staleness exactly with policy "${policy}" in a scripted schedule` +
      (flat ? " (flat optimizer step)" : ""),
    async () => {
      // One weight w, SGD with learning rate 1: applying gradient g with
      // scale s moves w by -s * g. Three simulated workers A, B, C hand over
      // gradients through real slots in a fixed order.
      const model = tf.sequential({
        layers: [tf.layers.dense({
          units: 1,
          inputShape: [1],
          useBias: false,
          kernelInitializer: "zeros",
        })],
      });
      model.compile({ optimizer: tf.train.sgd(1), loss: "meanSquaredError" });
      const server = new ParameterServer(model, {
        staleness: 1,
        stalePolicy: policy as StalePolicy,
        terminateOnNaN: true,
      });
      assert.equal(server.publish(), 0);
      // begin(): SGD is applied over the flat parameters; sync() writes them back.
      if (flat) await server.begin();
      const length = server.layout.length;
      const slots = Array.from(
        { length: 3 },
        () => new GradientSlot(new SharedArrayBuffer(GradientSlot.bytes(length)), length),
      );
      const reader = new VersionedBuffer(server.weightsBuffer, server.layout.loss);
      const seen = new Float32Array(server.layout.loss);
      let ticket = 0;
      /** Worker `w` computed gradient `g` on version `base`; the server applies it now. */
      const step = (w: number, base: number, g: number) => {
        const slot = slots[w]!;
        slot.payload[0] = g;
        slot.payload[server.layout.loss] = 0.25;
        slot.push({ base, batch: ticket, samples: 4, ticket: ticket++ });
        return server.apply(slot);
      };
      const kernel = () => model.getWeights()[0]!.dataSync()[0]!;
      const sync = () => flat ? server.sync() : Promise.resolve();
      // A, B and C all read version 0.
      const a = step(0, 0, 1); //    staleness 0 -> applied, v1
      const b = step(1, 0, 2); //    staleness 1 -> applied (at the bound), v2
      const c = step(2, 0, 4); //    staleness 2 -> stale
      const a2 = step(0, 2, 8); //   A read v2: staleness 0 (drop) or 1 (scale)
      const b2 = step(1, 1, 16); //  B read v1: staleness 1 (drop) or 3 (scale) -> stale in scale
      assert.deepEqual([a.kind, a.staleness, b.kind, b.staleness], ["applied", 0, "applied", 1]);
      assert.equal(c.staleness, 2);
      if (policy === "drop") {
        assert.deepEqual(
          [c.kind, a2.kind, a2.staleness, b2.kind, b2.staleness],
          ["dropped", "applied", 0, "dropped", 2],
        );
        assert.deepEqual(server.counts, {
          received: 5,
          applied: 3,
          scaled: 0,
          dropped: 2,
          maxStaleness: 2,
          stalenessSum: 0 + 1 + 2 + 0 + 2,
        });
        assert.equal(server.version, 3);
        await sync();
        assert.equal(kernel(), -(1 + 2 + 8));
      } else {
        assert.deepEqual(
          [c.kind, c.scale, a2.kind, a2.staleness, b2.kind, b2.staleness, b2.scale],
          ["scaled", 2 / 3, "applied", 1, "scaled", 3, 2 / 4],
        );
        assert.deepEqual(server.counts, {
          received: 5,
          applied: 5,
          scaled: 2,
          dropped: 0,
          maxStaleness: 3,
          stalenessSum: 0 + 1 + 2 + 1 + 3,
        });
        assert.equal(server.version, 5);
        await sync();
        assert.ok(Math.abs(kernel() - -(1 + 2 + 4 * 2 / 3 + 8 + 16 / 2)) < 1e-5, `w = ${kernel()}`);
      }
      // Workers read exactly what the server holds, with its version.
      assert.equal(reader.read(seen), server.version);
      assert.equal(seen[0], kernel());
      // Every slot was handed back.
      assert.ok(slots.every((s) => !s.full));
      model.dispose();
    },
  );
}

Deno.test(
  "WorkerStrategy.fit() with one worker applies every gradient fresh",
  opts,
  async () => {
    // One worker waits for its slot to be released, which happens after the
    // server published the new weights: its next gradient is never stale.
    const { x, y } = synthetic(200);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 1,
      staleness: 0,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    const history = await strategy.fit(model, x, y, { epochs: 3, batchSize: 32 });
    const stats = strategy.stats!;
    assert.equal(stats.applied, 3 * 7);
    assert.equal(stats.received, 3 * 7);
    assert.equal(stats.maxStaleness, 0);
    assert.deepEqual(history.history.stale, [0, 0, 0]);
    assert.deepEqual(history.history.dropped, [0, 0, 0]);
    assert.deepEqual(history.history.restarts, [0, 0, 0]);
    assert.equal(stats.version, 3 * 7);
    assert.equal(stats.workers[0]!.applied, 3 * 7);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() accounts for every stale gradient in History and stats",
  opts,
  async () => {
    // A slow worker with a tight bound: its gradients are stale and dropped.
    const { x, y } = synthetic(256);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      staleness: 1,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "smallSlow" },
    });
    const history = await strategy.fit(model, x, y, { epochs: 3, batchSize: 16 });
    const stats = strategy.stats!;
    assert.ok(stats.dropped > 0, "the slow worker's gradients are dropped");
    assert.equal(sum(history.history.dropped), stats.dropped);
    assert.equal(sum(history.history.stale), stats.dropped + stats.scaled);
    assert.equal(stats.received, stats.applied + stats.dropped);
    assert.equal(stats.applied, 3 * 16);
    assert.equal(sum(stats.workers.map((w) => w.dropped)), stats.dropped);
    assert.equal(sum(stats.workers.map((w) => w.applied)), stats.applied);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() rejects with WorkerCrashedError when every worker is gone for good",
  opts,
  async () => {
    const { x, y } = synthetic(256);
    const model = buildSmall();
    const before = weightsOf(model);
    const strategy = new WorkerStrategy({
      workers: 2,
      maxRestarts: 1,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "smallThrowingAll" },
    });
    const err = await strategy.fit(model, x, y, { epochs: 5, batchSize: 16 }).then(
      () => assert.fail("expected fit to reject"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkerCrashedError, `got ${err}`);
    assert.ok(!(err instanceof ReplicaCrashedError), "a gradient worker is not a replica");
    assert.equal(err.name, "WorkerCrashedError");
    assert.equal(err.role, "worker");
    assert.ok(err.index === 0 || err.index === 1 || err.index === 2, `index ${err.index}`);
    assert.match(err.detail, /^Error: Fault failed on purpose; every worker is gone/);
    assert.ok(err.cause instanceof WorkerCrashedError, "the last worker's crash is the cause");
    assert.match(
      err.message,
      /^Worker \d crashed: Error: Fault failed on purpose; every worker is gone \(1 of maxRestarts 1 restarts used\): training stopped after (\d+) applied gradients, and the model holds the server's latest weights$/,
    );
    const applied = Number(err.message.match(/after (\d+) applied/)![1]);
    assert.ok(applied > 0);
    assert.equal(strategy.stats!.applied, applied);
    assert.equal(strategy.stats!.restarts, 1);
    assert.equal(strategy.stats!.workers.filter((w) => w.status === "crashed").length, 3);
    // The model is the server: it holds the weights after the last applied gradient.
    assert.notDeepEqual(weightsOf(model), before);
    // The strategy recovers: the next fit starts fresh Workers. Every worker fails
    // on the 3rd training step its Worker runs, so a 2-gradient fit only succeeds
    // on fresh Workers (the old ones are gone, or past their 3rd step).
    assert.equal(strategy.workers, 2);
    const firstIds = strategy.stats!.workers.map((w) => w.id);
    const trained = weightsOf(model);
    const [x2, y2] = [tf.slice(x, 0, 32), tf.slice(y, 0, 32)];
    const history = await strategy.fit(model, x2, y2, { epochs: 1, batchSize: 16 });
    assert.deepEqual(history.epoch, [0]);
    const stats = strategy.stats!;
    assert.equal(stats.applied, 2);
    assert.equal(stats.restarts, 0);
    assert.deepEqual(history.history.restarts, [0]);
    assert.equal(stats.workers.length, 2, JSON.stringify(stats.workers));
    // Fresh Workers: none of the first fit's. (A worker may start a third step
    // before the run ends and fail then, after the two gradients were applied.)
    assert.ok(stats.workers.every((w) => !firstIds.includes(w.id)), JSON.stringify(stats.workers));
    assert.notDeepEqual(weightsOf(model), trained, "the second fit trained the model");
    await strategy.close();
    tf.dispose([x, y, x2, y2]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.addWorker() and removeWorker() change the workers during fit",
  opts,
  async () => {
    const { x, y } = synthetic(256);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    let added = -1;
    const counts: number[] = [];
    const history = await strategy.fit(model, x, y, {
      epochs: 4,
      batchSize: 16,
      callbacks: {
        onEpochEnd: async (epoch) => {
          counts.push(strategy.workers);
          if (epoch === 0) added = await strategy.addWorker();
          if (epoch === 1) await strategy.removeWorker(0);
        },
      },
    });
    assert.deepEqual(counts, [2, 3, 2, 2]);
    assert.equal(added, 2);
    const stats = strategy.stats!;
    assert.equal(stats.applied, 4 * 16);
    assert.deepEqual(stats.workers.map((w) => [w.id, w.status]), [
      [0, "removed"],
      [1, "idle"],
      [2, "idle"],
    ]);
    assert.ok(stats.workers[2]!.applied > 0, "the added worker computed gradients");
    assert.equal(history.epoch.length, 4);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() runs a different backend per worker",
  opts,
  async () => {
    const { x, y } = synthetic(128);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: ["wasm", "cpu"],
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    await strategy.fit(model, x, y, { epochs: 2, batchSize: 16 });
    assert.deepEqual(strategy.stats!.workers.map((w) => w.backend), ["wasm", "cpu"]);
    assert.equal(strategy.stats!.applied, 2 * 8);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() calls callbacks in Keras order and honours stopTraining",
  opts,
  async () => {
    const { x, y } = synthetic(64);
    const model = buildSmall();
    const events: string[] = [];
    const callbacks: TrainingCallbacks = {
      onTrainBegin: () => void events.push("trainBegin"),
      onEpochBegin: (e) => void events.push(`epochBegin ${e}`),
      onBatchEnd: (b, logs) => {
        assert.equal(typeof logs?.loss, "number");
        assert.equal(typeof logs?.worker, "number");
        events.push(`batch ${b}`);
      },
      onEpochEnd: (e, logs) => {
        assert.ok(logs !== undefined && "loss" in logs && "acc" in logs && "val_loss" in logs);
        events.push(`epochEnd ${e}`);
        if (e === 1) model.stopTraining = true;
      },
      onTrainEnd: () => void events.push("trainEnd"),
    };
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    const history = await strategy.fit(model, x, y, {
      epochs: 5,
      batchSize: 24,
      validationSplit: 0.25, // 48 training samples: 2 gradients per epoch
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
      "trainEnd",
    ]);
    assert.deepEqual(history.epoch, [0, 1]);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.close() during fit stops training and rejects fit",
  opts,
  async () => {
    const { x, y } = synthetic(128);
    const model = buildSmall();
    const strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    let closing: Promise<void> | undefined;
    await assert.rejects(
      () =>
        strategy.fit(model, x, y, {
          epochs: 50,
          batchSize: 16,
          callbacks: { onEpochEnd: () => void (closing = strategy.close()) },
        }),
      { name: "Error", message: "WorkerStrategy.close() was called while fit was running" },
    );
    await closing;
    assert.equal(strategy.stats!.applied, 8, "training stopped after the first epoch");
    // The strategy can train again: fresh Workers start.
    const history = await strategy.fit(model, x, y, { epochs: 1, batchSize: 16 });
    assert.equal(history.epoch.length, 1);
    await strategy.close();
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.evaluate() matches model.evaluate on the main thread",
  opts,
  async () => {
    const { x, y } = synthetic(300);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    await strategy.fit(model, x, y, { epochs: 1, batchSize: 32 });
    const scores = await strategy.evaluate(model, x, y, { batchSize: 64 });
    const [loss, acc] = model.evaluate(x, y, { batchSize: 64 }) as tf.Scalar[];
    assert.ok(Math.abs(scores.loss! - loss!.dataSync()[0]!) < 1e-5, `${scores.loss} vs loss`);
    assert.ok(Math.abs(scores.acc! - acc!.dataSync()[0]!) < 1e-6);
    tf.dispose([x, y, loss!, acc!]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() stops with NonFiniteLossError naming epoch and step",
  opts,
  async () => {
    const { x, y } = synthetic(64);
    const bad = x.bufferSync();
    bad.set(NaN, 40, 0); // sample 40 is in the second batch of 32
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 1,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    await assert.rejects(
      () => strategy.fit(model, bad.toTensor(), y, { epochs: 2, batchSize: 32, shuffle: false }),
      {
        name: "NonFiniteLossError",
        message: /^Loss became NaN at epoch 1, step 2: expected a finite loss/,
      },
    );
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "WorkerStrategy rejects bad options and input before starting Workers",
  opts,
  async () => {
    const bad: [() => unknown, string, string][] = [
      [
        () => new WorkerStrategy({ workers: 0 }),
        "RangeError",
        "workers must be an integer >= 1, received 0",
      ],
      [
        () => new WorkerStrategy({ staleness: -1 }),
        "RangeError",
        "staleness must be an integer >= 0, received -1",
      ],
      [
        () => new WorkerStrategy({ stalePolicy: "ignore" as "drop" }),
        "TypeError",
        'stalePolicy must be "drop" or "scale", received "ignore"',
      ],
      [
        () => new WorkerStrategy({ maxRestarts: 1.5 }),
        "RangeError",
        "maxRestarts must be an integer >= 0, received 1.5",
      ],
      [
        () => new WorkerStrategy({ workerTimeoutMs: 0 }),
        "RangeError",
        "workerTimeoutMs must be an integer >= 1, received 0",
      ],
      [
        () => new WorkerStrategy({ threadsPerWorker: 0 }),
        "RangeError",
        "threadsPerWorker must be an integer >= 1, received 0",
      ],
      [
        () => new WorkerStrategy({ backend: "tpu" as "cpu" }),
        "TypeError",
        'backend must be "auto" or one of webgpu, wasm, cpu, received "tpu"',
      ],
      [
        () => new WorkerStrategy({ workers: 2, backend: ["cpu"] }),
        "RangeError",
        "backend has one entry per worker: expected 2 entries, received 1",
      ],
      [
        () => new WorkerStrategy({ workers: 2, backend: ["cpu", "tpu" as "cpu"] }),
        "TypeError",
        'backend[1] must be "auto" or one of webgpu, wasm, cpu, received "tpu"',
      ],
    ];
    for (const [make, name, message] of bad) assert.throws(make, { name, message });

    const { x, y } = synthetic(16);
    const model = buildSmall();
    const fnLoss = buildSmall();
    fnLoss.compile({ optimizer: "sgd", loss: (a: tf.Tensor, b: tf.Tensor) => tf.sub(a, b) });
    await using strategy = new WorkerStrategy({ workers: 2, backend: BACKEND });
    const rejects: [() => Promise<unknown>, string, string][] = [
      [
        () => strategy.fit(model, x, y, { batchSize: 0 }),
        "RangeError",
        "batchSize must be an integer >= 1 (samples per gradient, per worker), received 0",
      ],
      [
        () => strategy.fit(model, x, y, { epochs: 0 }),
        "RangeError",
        "epochs must be an integer >= 1, received 0",
      ],
      [
        () => strategy.fit(model, x, y, { validationSplit: 1 }),
        "RangeError",
        "validationSplit must be in [0, 1), received 1",
      ],
      [
        () => strategy.fit(model, x, y, { checkpoint: { dir: "x", everySteps: 2 } } as never),
        "TypeError",
        "WorkerStrategy checkpoints at epoch ends only: remove checkpoint.everySteps " +
        "(an asynchronous run has no step boundary every worker agrees on)",
      ],
      [
        () => strategy.fit(model, x, tf.slice(y, 0, 15)),
        "RangeError",
        "x and y must have the same number of samples, received 16 and 15",
      ],
      [
        () => strategy.fit(model, tf.zeros([16, 5]), y),
        "RangeError",
        "x has per-sample shape [5], expected [8] to match the model",
      ],
      [
        () =>
          strategy.fit(
            tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [8] })] }),
            x,
            y,
          ),
        "TypeError",
        "The model must be compiled before training: call model.compile({ optimizer, loss })",
      ],
      [
        () => strategy.fit(fnLoss, x, y),
        "TypeError",
        "The model's loss or metrics are functions, which cannot be sent to worker Workers: " +
        "pass modelModule: { url, exportName } to build the compiled model in each worker",
      ],
      [
        () => strategy.evaluate(model, x, y, { batchSize: -2 }),
        "RangeError",
        "batchSize must be an integer >= 1, received -2",
      ],
      [
        () => strategy.removeWorker(7),
        "RangeError",
        "No worker 7 to remove: the workers are 0, 1",
      ],
      [
        () => strategy.addWorker({ backend: "tpu" as "cpu" }),
        "TypeError",
        'backend must be "auto" or one of webgpu, wasm, cpu, received "tpu"',
      ],
    ];
    for (const [run, name, message] of rejects) await assert.rejects(run, { name, message });
    assert.equal(strategy.stats, undefined, "no Worker should have started");

    await using single = new WorkerStrategy({ workers: 1, backend: BACKEND });
    await assert.rejects(() => single.removeWorker(), {
      name: "RangeError",
      message:
        "Cannot remove worker 0: it is the last worker, and a WorkerStrategy needs at least one",
    });
    tf.dispose([x, y]);
    model.dispose();
    fnLoss.dispose();
  },
);

Deno.test(
  "WorkerStrategy.fit() leaks no tensors on the server or in the workers",
  opts,
  async () => {
    const { x, y } = synthetic(128);
    const model = buildSmall();
    await using strategy = new WorkerStrategy({
      workers: 2,
      backend: BACKEND,
      modelModule: { url: FIXTURE, exportName: "small" },
    });
    const run = () =>
      strategy.fit(model, x, y, { epochs: 1, batchSize: 16, validationSplit: 0.25 });
    await run();
    const server = tf.memory().numTensors;
    const workers = strategy.stats!.workers.map((w) => w.tensors);
    for (let i = 0; i < 3; i++) {
      await strategy.fit(model, x, y, { epochs: 2, batchSize: 16, validationSplit: 0.25 });
      await strategy.evaluate(model, x, y);
    }
    await run();
    assert.equal(tf.memory().numTensors, server, "server tensors leaked");
    assert.deepEqual(
      strategy.stats!.workers.map((w) => w.tensors),
      workers,
      "worker tensors leaked",
    );
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "VersionedBuffer.read() never returns a torn copy while the server publishes",
  opts,
  async () => {
    const length = 4096;
    const buffer = new SharedArrayBuffer(VersionedBuffer.bytes(length));
    const flags = new Int32Array(new SharedArrayBuffer(8));
    const writer = new VersionedBuffer(buffer, length);
    writer.publish((into) => into.fill(0));
    const worker = new Worker(new URL("../fixtures/seqlock_reader.ts", import.meta.url), {
      type: "module",
    });
    const result = new Promise<Record<string, number>>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
    });
    worker.postMessage({ buffer, flags: flags.buffer, length });
    const started = performance.now();
    while (Atomics.load(flags, 0) === 0) {
      if (performance.now() - started > 10_000) assert.fail("reader did not start");
      await new Promise((r) => setTimeout(r, 5));
    }
    let version = 0;
    const until = performance.now() + 300;
    while (performance.now() < until) {
      const v = ++version;
      writer.publish((into) => into.fill(v));
    }
    Atomics.store(flags, 1, 1);
    const r = await result;
    assert.equal(r.torn, 0, `torn copies: ${JSON.stringify(r)}`);
    assert.equal(r.backwards, 0, "versions went backwards");
    assert.ok(r.reads! > 10, `only ${r.reads} reads`);
    assert.ok(r.last! <= version);
    await new Promise((r) => setTimeout(r, 50));
  },
);

Deno.test(
  "WorkerStrategy shuts down cleanly: the process exits after a good and a failed run",
  opts,
  async () => {
    for (const mode of ["ok", "fail"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../fixtures/ps_exit.ts", import.meta.url).pathname, mode],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(
        out.code,
        0,
        `${mode}: exit ${out.code} ${new TextDecoder().decode(out.stderr)}`,
      );
      assert.equal(text.trim(), mode === "ok" ? "trained" : "failed as expected");
    }
  },
);

for (
  const [name, optimizer] of [
    ["SGD", () => tf.train.sgd(0.3)],
    ["Adam", () => tf.train.adam(0.01)],
    ["RMSProp", () => tf.train.rmsprop(0.01)],
  ] as [string, () => tf.Optimizer][]
) {
  Deno.test(
    `WorkerStrategy.fit() with one fresh worker and ${name} matches model.fit`,
    opts,
    async () => {
      // One worker, staleness 0, no shuffling: every gradient is computed on
      // the latest weights, in order, as model.fit computes them.
      await tf.setBackend(BACKEND);
      const build = () => classifier(optimizer, []);
      const { x, y } = synthetic(96);
      const expected = build();
      const model = build();
      await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: BACKEND });
      for (let round = 0; round < 2; round++) {
        await expected.fit(x, y, { epochs: 2, batchSize: 16, shuffle: false, verbose: 0 });
        await strategy.fit(model, x, y, { epochs: 2, batchSize: 16, shuffle: false });
      }
      const [got, want] = [weightsOf(model), weightsOf(expected)];
      const diff = Math.max(...got.flatMap((w, i) => w.map((v, j) => Math.abs(v - want[i]![j]!))));
      assert.ok(diff <= 1e-4, `max |weight difference| ${diff}`);
      tf.dispose([x, y]);
      expected.dispose();
      model.dispose();
    },
  );
}
