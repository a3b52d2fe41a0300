// WorkerStrategy with remote workers, driven in process (no transport): the
// pool's assignments, its checks on what comes back, and the oracle against
// an in-process worker.
import assert from "node:assert/strict";
import {
  RemoteRefusedError,
  type RemoteSession,
  RemoteWorkers,
  tf,
  WorkerCrashedError,
  WorkerStrategy,
} from "../../mod.ts";
import { FrameError } from "../../src/edge/frames.ts";
import { assignmentFrame, readAssignment } from "../../src/edge/_exchange.ts";
import { GradientComputer } from "../../src/strategy/ps/gradient_computer.ts";
import type { RemoteAssignment, RemoteWelcome } from "../../src/strategy/ps/remote_workers.ts";
import { classifier, dataset, disposeTwoByTwoData, twoByTwo, twoByTwoData } from "./_models.ts";

/**
 * Computes assignment `a` as an edge worker does: through its binary frame,
 * read back against the welcome, on the shared gradient computer.
 */
async function computeAssignment(
  computer: GradientComputer,
  a: RemoteAssignment,
  welcome: RemoteWelcome,
  payload: Float32Array,
): Promise<void> {
  const rows = readAssignment(assignmentFrame(a, false), welcome);
  computer.setWeights(rows.weights);
  await computer.computeRows(rows, payload);
}

const opts = { sanitizeResources: false, sanitizeOps: false };

type Misbehave = (g: {
  batch: number;
  base: number;
  samples: number;
  values: Float32Array;
  logs: Float32Array;
}) => void;

/**
 * Drives `session` like a remote worker would: computes every assignment
 * with a model built from the welcome; `misbehave` may alter the n-th
 * gradient. Resolves with the gradients delivered, or rejects with the
 * refusal.
 */
async function drive(
  session: RemoteSession,
  options: { misbehaveAt?: number; misbehave?: Misbehave } = {},
): Promise<number> {
  const welcome = await session.welcome();
  assert.ok(welcome !== null);
  const computer = await GradientComputer.create({
    backend: "cpu",
    threads: 1,
    model: welcome.model,
    compile: welcome.compile,
    slotLength: welcome.slotLength,
    who: "test worker",
  });
  const payload = new Float32Array(welcome.slotLength);
  let sent = 0;
  try {
    for (let a = await session.next(); a !== null; a = await session.next()) {
      session.touch();
      await computeAssignment(computer, a, welcome, payload);
      const g = {
        batch: a.batch,
        base: a.version,
        samples: a.samples,
        values: payload.slice(0, welcome.weightCount),
        logs: payload.slice(welcome.weightCount, welcome.weightCount + 1 + welcome.metricCount),
      };
      if (sent === options.misbehaveAt) options.misbehave?.(g);
      session.deliver(g);
      sent++;
    }
    return sent;
  } finally {
    computer.dispose();
  }
}

function maxDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  let worst = 0;
  a.getWeights().forEach((w, i) => {
    const x = w.dataSync(), y = b.getWeights()[i]!.dataSync();
    for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
  });
  return worst;
}

Deno.test(
  "one remote worker trains exactly like one in-process worker (staleness 0)",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(96);
    const fitOptions = { epochs: 2, batchSize: 16, seed: 5, shuffle: true };

    const local = classifier(() => tf.train.sgd(0.1));
    {
      await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
      await strategy.fit(local, x, y, fitOptions);
    }

    const remoteModel = classifier(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ timeoutMs: 20_000, prefetch: 0 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 0 });
    const session = pool.join({ address: "in-process", name: "oracle" });
    const driving = drive(session);
    const history = await strategy.fit(remoteModel, x, y, fitOptions);
    assert.equal(await driving, 12); // 2 epochs x ceil(96 / 16), each applied at once
    assert.deepEqual(history.epoch, [0, 1]);
    assert.ok(
      maxDiff(local, remoteModel) < 1e-5,
      `weights differ by ${maxDiff(local, remoteModel)}`,
    );
    const stats = strategy.stats!;
    assert.equal(stats.applied, 12);
    assert.equal(stats.maxStaleness, 0);
    const worker = stats.workers.find((w) => w.kind === "remote")!;
    assert.equal(worker.applied, 12);
    assert.equal(worker.address, "in-process");
    assert.equal(worker.name, "oracle");
    tf.dispose([x, y]);
    local.dispose();
    remoteModel.dispose();
  },
);

Deno.test("a remote run leaks no tensor (server and worker in one process)", opts, async () => {
  await tf.setBackend("cpu");
  const { x, y } = dataset(64);
  const model = classifier(() => tf.train.adam(0.01));
  const pool = new RemoteWorkers({ prefetch: 0 });
  await using strategy = new WorkerStrategy({ workers: 0, remote: pool });
  // A first run builds what lives on (optimizer slots).
  const warm = drive(pool.join({ address: "in-process" }));
  await strategy.fit(model, x, y, { epochs: 1, batchSize: 16 });
  await warm;
  const before = tf.memory().numTensors;
  const driving = drive(pool.join({ address: "in-process" }));
  await strategy.fit(model, x, y, { epochs: 2, batchSize: 16 });
  assert.equal(await driving, 8);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, y]);
  model.dispose();
});

/**
 * Trains `make()` with one in-process worker and with one remote worker
 * (prefetch 0, staleness 0: both runs are sequential) on the same data and
 * options; resolves with the largest weight difference.
 */
async function remoteVersusLocal(
  make: () => tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  y: tf.Tensor | tf.Tensor[],
  fitOptions: Parameters<WorkerStrategy["fit"]>[3],
): Promise<number> {
  const local = make();
  {
    await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
    await strategy.fit(local, x, y, fitOptions);
  }
  const remoteModel = make();
  const pool = new RemoteWorkers({ timeoutMs: 20_000, prefetch: 0 });
  await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 0 });
  const driving = drive(pool.join({ address: "in-process" }));
  await strategy.fit(remoteModel, x, y, fitOptions);
  await driving;
  assert.equal(strategy.stats!.maxStaleness, 0);
  const diff = maxDiff(local, remoteModel);
  local.dispose();
  remoteModel.dispose();
  return diff;
}

Deno.test(
  "one remote worker trains a two-input, two-output model with lossWeights like one in-process worker",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const d = twoByTwoData(96);
    const diff = await remoteVersusLocal(
      () => twoByTwo(() => tf.train.sgd(0.1)),
      [d.xa, d.xb],
      [d.cls, d.reg],
      { epochs: 2, batchSize: 16, seed: 5, lossWeights: { reg: 0.25 } },
    );
    console.log(`two-by-two with lossWeights: max |dw| ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-5, `weights differ by ${diff}`);
    // The oracle can fail: the same run without the loss weights ends elsewhere.
    const unweighted = await (async () => {
      const a = twoByTwo(() => tf.train.sgd(0.1)), b = twoByTwo(() => tf.train.sgd(0.1));
      const options = { epochs: 2, batchSize: 16, seed: 5 };
      {
        await using s = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
        await s.fit(a, [d.xa, d.xb], [d.cls, d.reg], { ...options, lossWeights: { reg: 0.25 } });
        await s.fit(b, [d.xa, d.xb], [d.cls, d.reg], options);
      }
      const gap = maxDiff(a, b);
      a.dispose();
      b.dispose();
      return gap;
    })();
    assert.ok(unweighted > 1e-3, `lossWeights change the run (${unweighted})`);
    disposeTwoByTwoData(d);
  },
);

Deno.test(
  "one remote worker trains with classWeight like one in-process worker",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(96);
    const diff = await remoteVersusLocal(() => classifier(() => tf.train.sgd(0.1)), x, y, {
      epochs: 2,
      batchSize: 16,
      seed: 5,
      classWeight: { 0: 0.25, 1: 3, 2: 1.5 },
    });
    console.log(`classifier with classWeight: max |dw| ${diff.toExponential(2)}`);
    assert.ok(diff < 1e-5, `weights differ by ${diff}`);
    tf.dispose([x, y]);
  },
);

Deno.test(
  "a remote run of a two-input, two-output model with lossWeights and classWeight leaks no tensor",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const d = twoByTwoData(64);
    const model = twoByTwo(() => tf.train.adam(0.01));
    const pool = new RemoteWorkers({ prefetch: 0 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool });
    const options = {
      batchSize: 16,
      lossWeights: [1, 0.5],
      classWeight: { cls: { 0: 0.5, 1: 2, 2: 1 } },
    };
    const warm = drive(pool.join({ address: "in-process" }));
    await strategy.fit(model, [d.xa, d.xb], [d.cls, d.reg], { ...options, epochs: 1 });
    await warm;
    const before = tf.memory().numTensors;
    const driving = drive(pool.join({ address: "in-process" }));
    await strategy.fit(model, [d.xa, d.xb], [d.cls, d.reg], { ...options, epochs: 2 });
    assert.equal(await driving, 8);
    assert.equal(tf.memory().numTensors, before);
    disposeTwoByTwoData(d);
    model.dispose();
  },
);

Deno.test(
  "readAssignment() refuses an assignment frame whose columns do not match the welcome",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const d = twoByTwoData(32);
    const model = twoByTwo(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ prefetch: 0 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool });
    const session = pool.join({ address: "hostile" });
    const fit = strategy.fit(model, [d.xa, d.xb], [d.cls, d.reg], {
      epochs: 1,
      batchSize: 16,
      classWeight: { cls: { 0: 0.5, 1: 2, 2: 1 } },
    });
    try {
      await hostileFrames(session);
    } finally {
      session.close("left");
      const other = drive(pool.join({ address: "good" }));
      await fit;
      await other;
      disposeTwoByTwoData(d);
      model.dispose();
    }
  },
);

async function hostileFrames(session: RemoteSession): Promise<void> {
  const welcome = (await session.welcome())!;
  assert.deepEqual(welcome.inputShapes, [[8], [4]]);
  assert.deepEqual(welcome.outputShapes, [[3], [1]]);
  assert.deepEqual(welcome.weightedOutputs, [true, false]);
  const a = (await session.next())!;
  const good = readAssignment(assignmentFrame(a, false), welcome);
  assert.deepEqual(good.inputs.map((c) => c.length), [16 * 8, 16 * 4]);
  assert.deepEqual(good.sampleWeights?.map((c) => c?.length ?? null), [16, null]);
  const cases: [string, RemoteAssignment, RegExp][] = [
    [
      "an input one value short",
      { ...a, inputs: [a.inputs[0]!, a.inputs[1]!.subarray(1)] },
      /assignment's input 1 has 63 values, expected 64 \(16 samples of 4\)/,
    ],
    [
      "an output of half the rows",
      { ...a, outputs: [a.outputs[0]!, new Float32Array(8)] },
      /assignment's output 1 has 8 values, expected 16 \(16 samples of 1\)/,
    ],
    [
      "sample weights missing",
      { ...a, sampleWeights: null },
      /assignment frame of 5 sections, expected 6/,
    ],
    [
      "weights one value short",
      { ...a, weights: a.weights.subarray(1) },
      new RegExp(`weights has ${welcome.weightCount - 1} values, expected ${welcome.weightCount}`),
    ],
  ];
  for (const [what, hostile, message] of cases) {
    assert.throws(
      () => readAssignment(assignmentFrame(hostile, false), welcome),
      (e: unknown) => e instanceof FrameError && e.reason === "shape" && message.test(e.message),
      what,
    );
  }
}

for (
  const [name, reason, misbehave] of [
    ["a NaN gradient", "nonFinite", (g) => (g.values[0] = NaN)],
    ["an infinite loss", "nonFinite", (g) => (g.logs[0] = Infinity)],
    ["a gradient of the wrong length", "shape", (g) => (g.values = g.values.subarray(1))],
    ["a version from the future", "futureVersion", (g) => (g.base += 1000)],
    ["a gradient for another batch", "protocol", (g) => (g.batch += 1)],
  ] as [string, string, Misbehave][]
) {
  Deno.test(
    `${name} is refused, counted and never applied; the batch goes to another worker`,
    opts,
    async () => {
      await tf.setBackend("cpu");
      const { x, y } = dataset(64);
      const model = classifier(() => tf.train.sgd(0.1));
      const pool = new RemoteWorkers({ timeoutMs: 20_000 });
      await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 100 });
      const bad = pool.join({ address: "bad" });
      const good = pool.join({ address: "good" });
      const badRun = drive(bad, { misbehaveAt: 1, misbehave });
      const fit = strategy.fit(model, x, y, { epochs: 2, batchSize: 16, seed: 1 });
      await assert.rejects(badRun, (e: unknown) => {
        assert.ok(e instanceof RemoteRefusedError, String(e));
        assert.equal(e.reason, reason);
        return true;
      });
      const goodSent = await drive(good);
      const history = await fit;
      assert.deepEqual(history.epoch, [0, 1]);
      assert.equal(pool.counts.refused[reason as "shape"], 1);
      assert.equal(pool.counts.reassigned, 1, "the refused batch was handed out again");
      const stats = strategy.stats!;
      assert.equal(stats.applied, 8);
      const badStats = stats.workers.find((w) => w.address === "bad")!;
      assert.equal(badStats.applied, 1, "only the bad worker's first, good gradient was applied");
      assert.equal(badStats.status, "crashed");
      assert.match(badStats.error ?? "", new RegExp(reason));
      assert.ok(goodSent >= 7);
      for (const w of model.getWeights()) {
        assert.ok(w.dataSync().every(Number.isFinite), "weights stay finite");
      }
      tf.dispose([x, y]);
      model.dispose();
    },
  );
}

Deno.test(
  "a lost remote worker's batch is reassigned: every batch applied exactly once",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(80);
    const model = classifier(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ timeoutMs: 20_000, prefetch: 0 });
    await using strategy = new WorkerStrategy({
      workers: 0,
      remote: pool,
      staleness: 2,
      stalePolicy: "scale",
    });
    const applied: number[] = [];
    const vanishing = pool.join({ address: "vanishing" });
    const steady = pool.join({ address: "steady" });
    const fit = strategy.fit(model, x, y, { epochs: 2, batchSize: 16, seed: 2 });
    // The vanishing worker takes a batch and disappears without answering.
    await vanishing.welcome();
    const taken = await vanishing.next();
    assert.ok(taken !== null);
    vanishing.close("lost", "connection reset");
    const steadyWelcome = (await steady.welcome())!;
    const computer = await GradientComputer.create({
      backend: "cpu",
      threads: 1,
      model: steadyWelcome.model,
      compile: steadyWelcome.compile,
      slotLength: steadyWelcome.slotLength,
      who: "steady",
    });
    const payload = new Float32Array(steadyWelcome.slotLength);
    const w = steadyWelcome;
    for (let a = await steady.next(); a !== null; a = await steady.next()) {
      applied.push(a.batch);
      await computeAssignment(computer, a, w, payload);
      steady.deliver({
        batch: a.batch,
        base: a.version,
        samples: a.samples,
        values: payload.slice(0, w.weightCount),
        logs: payload.slice(w.weightCount, w.weightCount + 1 + w.metricCount),
      });
    }
    await fit;
    computer.dispose();
    assert.equal(applied[0], taken.batch, "the lost batch is the next one handed out");
    assert.deepEqual([...applied].sort((a, b) => a - b), [...Array(10).keys()]);
    assert.equal(pool.counts.lost, 1);
    assert.equal(pool.counts.reassigned, 1);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test("a remote run with no worker fails after waitMs with a clear error", opts, async () => {
  await tf.setBackend("cpu");
  const { x, y } = dataset(32);
  const model = classifier(() => tf.train.sgd(0.1));
  await using strategy = new WorkerStrategy({
    workers: 0,
    remote: new RemoteWorkers({ waitMs: 300 }),
  });
  await assert.rejects(
    strategy.fit(model, x, y, { epochs: 1, batchSize: 16 }),
    (e: unknown) => e instanceof WorkerCrashedError && /no remote worker attached/.test(e.message),
  );
  tf.dispose([x, y]);
  model.dispose();
});

Deno.test("RemoteWorkers and WorkerStrategy refuse bad remote options", () => {
  assert.throws(() => new RemoteWorkers({ maxWorkers: 0 }), /maxWorkers/);
  assert.throws(() => new RemoteWorkers({ prefetch: 5 }), /prefetch must be <= 4/);
  assert.throws(() => new RemoteWorkers({ bogus: 1 } as never), /bogus/);
  assert.throws(() => new WorkerStrategy({ workers: 0 }), /workers/);
  assert.throws(() => new WorkerStrategy({ remote: "yes" as never }), /remote must be/);
  const pool = new RemoteWorkers({ maxWorkers: 1 });
  pool.join({ address: "a" });
  assert.throws(() => pool.join({ address: "b" }), /maxWorkers 1/);
  assert.equal(pool.counts.full, 1);
  pool.close();
  assert.throws(() => pool.join({ address: "c" }), /closed/);
});

Deno.test(
  "WorkerStrategy checkpoints at epoch ends and a new fit resumes from the newest",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const dir = await Deno.makeTempDir({ prefix: "dtrain-ps-ckpt-" });
    const { x, y } = dataset(64);
    try {
      // One worker, staleness 0: the run is sequential, so resuming is exact.
      const full = classifier(() => tf.train.adam(0.01));
      {
        await using s = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
        await s.fit(full, x, y, { epochs: 3, batchSize: 16, seed: 4 });
      }
      const resumed = classifier(() => tf.train.adam(0.01));
      const first = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
      // Stops after epoch 2's checkpoint, as if the process had died there.
      await first.fit(resumed, x, y, {
        epochs: 3,
        batchSize: 16,
        seed: 4,
        checkpoint: { dir },
        callbacks: {
          onEpochEnd: (epoch) => {
            if (epoch === 1) resumed.stopTraining = true;
          },
        },
      });
      await first.close();
      const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(
        names,
        ["ckpt-00000001-00000000"],
        "epoch 2's end was a stop: no checkpoint",
      );
      const again = classifier(() => tf.train.adam(0.01)); // fresh weights: all from the checkpoint
      await using second = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
      const history = await second.fit(again, x, y, {
        epochs: 3,
        batchSize: 16,
        seed: 99, // the checkpoint's seed wins
        checkpoint: { dir },
      });
      assert.deepEqual(history.epoch, [0, 1, 2], "History continues from the checkpoint's");
      assert.equal(second.stats!.applied, 2 * 4, "epochs 2 and 3 were trained again");
      assert.ok(maxDiff(full, again) < 1e-5, `weights differ by ${maxDiff(full, again)}`);
      full.dispose();
      resumed.dispose();
      again.dispose();
    } finally {
      tf.dispose([x, y]);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "with prefetch 1 a remote worker gets its next batch before its gradient is applied",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(64);
    const model = classifier(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ prefetch: 1 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 8 });
    const session = pool.join({ address: "in-process" });
    const fit = strategy.fit(model, x, y, { epochs: 1, batchSize: 16, seed: 1 });
    const w = (await session.welcome())!;
    const gradient = (a: NonNullable<Awaited<ReturnType<typeof session.next>>>) => ({
      batch: a.batch,
      base: a.version,
      samples: a.samples,
      values: new Float32Array(w.weightCount),
      logs: new Float32Array(1 + w.metricCount).fill(0.5),
    });
    const first = (await session.next())!;
    session.deliver(gradient(first));
    // Handed out at once: the server has not applied the first gradient yet.
    const second = (await session.next())!;
    assert.equal(second.version, first.version, "computed on the weights before the first apply");
    session.deliver(gradient(second));
    for (let a = await session.next(); a !== null; a = await session.next()) {
      session.deliver(gradient(a));
    }
    await fit;
    assert.equal(strategy.stats!.applied, 4);
    assert.equal(strategy.stats!.batchesRepeated, 0);
    assert.equal(strategy.stats!.maxStaleness, 1);
    assert.deepEqual(pool.counts.refused, {
      shape: 0,
      nonFinite: 0,
      futureVersion: 0,
      protocol: 0,
    });
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "a gradient that arrives after the run's last one is set aside, not refused",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(32);
    const model = classifier(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ prefetch: 1 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 8 });
    const a = pool.join({ address: "a" });
    const b = pool.join({ address: "b" });
    const fit = strategy.fit(model, x, y, { epochs: 1, batchSize: 16, seed: 1 });
    const w = (await a.welcome())!;
    await b.welcome();
    const gradient = (g: NonNullable<Awaited<ReturnType<typeof a.next>>>) => ({
      batch: g.batch,
      base: g.version,
      samples: g.samples,
      values: new Float32Array(w.weightCount),
      logs: new Float32Array(1 + w.metricCount).fill(0.5),
    });
    // b holds a batch while a finishes the run's 2 gradients.
    const late = (await b.next())!;
    for (let g = await a.next(); g !== null; g = await a.next()) a.deliver(gradient(g));
    await fit;
    b.deliver(gradient(late)); // late: ignored
    assert.equal(await b.next(), null);
    assert.equal(b.gone, false, "the late worker is not refused");
    assert.equal(pool.counts.refused.protocol, 0);
    assert.equal(strategy.stats!.applied, 2);
    tf.dispose([x, y]);
    model.dispose();
  },
);

Deno.test(
  "a checkpoint torn by a crash mid-write is skipped: the fit resumes from the one before",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const dir = await Deno.makeTempDir({ prefix: "dtrain-ps-torn-" });
    const { x, y } = dataset(48);
    const fitOptions = { batchSize: 16, seed: 6 };
    try {
      const whole = classifier(() => tf.train.adam(0.01));
      {
        await using s = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
        await s.fit(whole, x, y, { ...fitOptions, epochs: 4 });
      }
      const first = classifier(() => tf.train.adam(0.01));
      {
        await using s = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
        await s.fit(first, x, y, { ...fitOptions, epochs: 3, checkpoint: { dir } });
      }
      // What a kill during the next writes leaves: the newest state half written, and a
      // temporary folder of a checkpoint never committed.
      const newest = `${dir}/ckpt-00000003-00000000/state.json`;
      const text = await Deno.readTextFile(newest);
      await Deno.writeTextFile(newest, text.slice(0, text.length >> 1));
      await Deno.mkdir(`${dir}/.tmp-ckpt-00000004-00000000-deadbeef`);
      await Deno.writeTextFile(`${dir}/.tmp-ckpt-00000004-00000000-deadbeef/model.json`, "{");

      const resumed = classifier(() => tf.train.adam(0.01));
      await using s = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
      const history = await s.fit(resumed, x, y, { ...fitOptions, epochs: 4, checkpoint: { dir } });
      assert.deepEqual(history.epoch, [0, 1, 2, 3]);
      assert.equal(s.stats!.applied, 2 * 3, "epochs 3 and 4 trained again, from checkpoint 2");
      assert.ok(maxDiff(whole, resumed) < 1e-5, `weights differ by ${maxDiff(whole, resumed)}`);
      const left = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.ok(!left.some((n) => n.startsWith(".tmp-")), `temporary folders left: ${left}`);
      for (const m of [whole, first, resumed]) m.dispose();
    } finally {
      tf.dispose([x, y]);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a silent remote worker is lost after timeoutMs and its batch goes to another",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(48);
    const model = classifier(() => tf.train.sgd(0.1));
    const pool = new RemoteWorkers({ timeoutMs: 300, prefetch: 0 });
    await using strategy = new WorkerStrategy({ workers: 0, remote: pool, staleness: 100 });
    const silent = pool.join({ address: "silent" });
    const fit = strategy.fit(model, x, y, { epochs: 1, batchSize: 16, seed: 3 });
    await silent.welcome();
    const held = (await silent.next())!; // takes a batch and never answers
    let timer: ReturnType<typeof setTimeout> | undefined;
    const why = await Promise.race([
      silent.closed,
      new Promise<string>((r) => (timer = setTimeout(() => r("attached after 10 s"), 10_000))),
    ]);
    clearTimeout(timer);
    assert.match(why, /silent for \d+ ms \(timeoutMs 300\)/);
    const steady = pool.join({ address: "steady" });
    const sent: number[] = [];
    const w = (await steady.welcome())!;
    for (let a = await steady.next(); a !== null; a = await steady.next()) {
      sent.push(a.batch);
      steady.touch();
      steady.deliver({
        batch: a.batch,
        base: a.version,
        samples: a.samples,
        values: new Float32Array(w.weightCount),
        logs: new Float32Array(1 + w.metricCount).fill(0.5),
      });
    }
    await fit;
    assert.equal(sent[0], held.batch, "the silent worker's batch is handed out first");
    assert.equal(pool.counts.lost, 1);
    assert.equal(strategy.stats!.batchesApplied, 3);
    assert.equal(strategy.stats!.batchesRepeated, 0);
    tf.dispose([x, y]);
    model.dispose();
  },
);
