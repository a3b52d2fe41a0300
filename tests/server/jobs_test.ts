import assert from "node:assert/strict";
import { MirroredStrategy, tf } from "../../mod.ts";
import {
  assertError,
  call,
  jobBody,
  loadOverApp,
  maxWeightDiff,
  parseSse,
  regression,
  submit,
  tempApp,
  twoByTwoData,
  twoByTwoTopology,
  waitForJob,
} from "./_helpers.ts";

Deno.test("POST /v1/jobs trains through MirroredStrategy and GET /v1/jobs/:id reports the History and modelId", async () => {
  const app = await tempApp();
  try {
    const res = await call(
      app,
      "POST",
      "/v1/jobs",
      jobBody({ name: "regression", strategy: { replicas: 2, backend: "cpu" } }),
    );
    assert.equal(res.status, 202);
    const accepted = await res.json();
    assert.match(accepted.id, /^job_[0-9a-z]{17}$/);
    assert.equal(accepted.status, "queued");
    assert.equal(res.headers.get("location"), `/v1/jobs/${accepted.id}`);

    // The stream replays what happened before it was opened, then ends with `end`.
    const events = parseSse(
      await (await call(app, "GET", `/v1/jobs/${accepted.id}/events`)).text(),
    );
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    const kinds = events.map((e) => e.event);
    assert.deepEqual(kinds.slice(0, 2), ["status", "status"]);
    assert.deepEqual(events.slice(0, 2).map((e) => e.data.status), ["queued", "running"]);
    assert.equal(kinds.filter((k) => k === "batch").length, 2 * 4, "2 epochs of 4 steps");
    assert.equal(kinds.filter((k) => k === "epoch").length, 2);
    assert.equal(kinds.at(-1), "end");
    const batch = events.find((e) => e.event === "batch")!.data;
    assert.deepEqual(Object.keys(batch), ["epoch", "step", "steps", "logs"]);
    assert.deepEqual(Object.keys(batch.logs as object).sort(), ["loss", "mae"]);
    const end = events.at(-1)!.data;
    assert.equal(end.status, "succeeded");

    const job = await (await call(app, "GET", `/v1/jobs/${accepted.id}`)).json();
    assert.equal(job.status, "succeeded");
    assert.equal(job.name, "regression");
    assert.equal(job.backend, "cpu");
    assert.equal(job.error, null);
    assert.deepEqual(job.progress, { epoch: 2, epochs: 2, step: 4, steps: 4 });
    assert.deepEqual(job.history.epoch, [0, 1]);
    assert.equal(job.history.history.loss.length, 2);
    assert.ok(job.history.history.loss[1] < job.history.history.loss[0], "the loss went down");
    assert.equal(job.spec.model, "mlp [8]");
    assert.equal(job.spec.data, "inline: 64 samples");
    assert.equal(job.spec.strategy.replicas, 2);
    assert.ok(job.startedAt <= job.finishedAt);
    assert.deepEqual(end, job, "the end event carries the final record");

    const model = await (await call(app, "GET", `/v1/models/${job.modelId}`)).json();
    assert.equal(model.jobId, job.id);
    assert.deepEqual(model.inputShape, [null, 4]);
    assert.deepEqual(model.outputShape, [null, 1]);
    assert.equal(model.metrics.loss, job.history.history.loss[1]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs with strategy kind worker trains through WorkerStrategy", async () => {
  const app = await tempApp();
  try {
    const id = await submit(
      app,
      jobBody({
        fit: { epochs: 3, batchSize: 8, seed: 3 },
        strategy: { kind: "worker", workers: 2, staleness: 2, backend: "cpu" },
      }),
    );
    const job = await waitForJob(app, id, (j) => j.status !== "queued" && j.status !== "running");
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    assert.deepEqual(job.spec, {
      ...(job.spec as object),
      strategy: { kind: "worker", workers: 2, staleness: 2, backend: "cpu" },
    });
    assert.equal(job.backend, "cpu");
    // An epoch is ceil(64 / 8) = 8 applied gradients, batchSize per worker.
    assert.deepEqual(job.progress, { epoch: 3, epochs: 3, step: 8, steps: 8 });
    const history = job.history as { epoch: number[]; history: Record<string, number[]> };
    assert.deepEqual(history.epoch, [0, 1, 2]);
    assert.ok(history.history.stale !== undefined, "WorkerStrategy's epoch logs reach the job");
    assert.ok(history.history.loss![2]! < history.history.loss![0]!, "the loss went down");
    assert.match(String(job.modelId), /^mdl_/);
  } finally {
    await app.dispose();
  }
});

Deno.test("a job on wasm records what its replicas' host-BLAS path chose", async () => {
  const app = await tempApp();
  try {
    const id = await submit(
      app,
      jobBody({ fit: { epochs: 1, batchSize: 16 }, strategy: { replicas: 1, backend: "wasm" } }),
    );
    const job = await waitForJob(app, id, (j) => j.status !== "queued" && j.status !== "running");
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    assert.equal(job.backend, "wasm");
    const blas = job.blas as { used: boolean; reason: string; gflops?: number };
    assert.equal(typeof blas.used, "boolean");
    assert.ok(blas.reason.length > 0);
    if (blas.used) assert.ok(blas.gflops! > 0);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs trains a model sent as model.toJSON(null, false)", async () => {
  const app = await tempApp();
  const local = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [2, 2] }),
      tf.layers.dense({ units: 3, activation: "softmax" }),
    ],
  });
  const topology = local.toJSON(null, false);
  local.dispose();
  try {
    const { x } = regression(32);
    const y = x.map((r) => [0, 1, 2].map((c) => (Math.round(r[2]! * 2) === c ? 1 : 0)));
    const id = await submit(app, {
      model: topology,
      compile: {
        optimizer: { name: "sgd", learningRate: 0.1 },
        loss: "categoricalCrossentropy",
        metrics: ["accuracy"],
      },
      data: { x, y },
      fit: { epochs: 1, batchSize: 8, validationSplit: 0.25 },
      strategy: { replicas: 2, backend: "cpu" },
    });
    await app.jobs.wait(id);
    const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    assert.equal(job.spec.model, "Sequential (2 layers)");
    assert.deepEqual(Object.keys(job.history.history).sort(), [
      "acc",
      "loss",
      "val_acc",
      "val_loss",
    ]);
    assert.deepEqual(job.progress, { epoch: 1, epochs: 1, step: 3, steps: 3 });
    const model = await (await call(app, "GET", `/v1/models/${job.modelId}`)).json();
    assert.deepEqual(model.inputShape, [null, 2, 2]);
  } finally {
    await app.dispose();
  }
});

/** A job for the two-input, two-output model: per-output losses, lossWeights, classWeight. */
function twoByTwoJob(strategy: Record<string, unknown>): Record<string, unknown> {
  const { x, y } = twoByTwoData();
  return {
    model: twoByTwoTopology(),
    compile: {
      optimizer: { name: "adam", learningRate: 0.01 },
      loss: { out_b: "categoricalCrossentropy", out_a: "meanSquaredError" },
      metrics: ["mae"],
    },
    // Keys in another order than the model's: the names decide.
    data: { x: { in_b: x.in_b, in_a: x.in_a }, y: { out_b: y.out_b, out_a: y.out_a } },
    fit: {
      epochs: 3,
      batchSize: 8,
      seed: 7,
      lossWeights: { out_b: 0.25 },
      classWeight: { out_b: { "0": 1, "1": 3, "2": 0.5 } },
    },
    strategy,
  };
}

Deno.test("POST /v1/jobs trains a 2-input, 2-output topology sent as dicts by layer name to the weights of MirroredStrategy.fit in-process", async () => {
  const app = await tempApp();
  const body = twoByTwoJob({ kind: "mirrored", replicas: 2, backend: "cpu" });
  const fit = body.fit as Record<string, unknown>;
  const { x, y } = twoByTwoData();
  const reference = await tf.models.modelFromJSON(body.model as never);
  const xs = [tf.tensor2d(x.in_a), tf.tensor2d(x.in_b)];
  const ys = [tf.tensor2d(y.out_a), tf.tensor2d(y.out_b)];
  let served: tf.LayersModel | undefined;
  try {
    const id = await submit(app, body);
    const job = await waitForJob(app, id, (j) => j.status !== "queued" && j.status !== "running");
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    const spec = job.spec as { data: string; fit: unknown };
    assert.equal(spec.data, "inline: 48 samples");
    assert.equal((job.spec as { model: string }).model, "Model (6 layers)");
    assert.deepEqual(spec.fit, {
      ...fit,
      validationSplit: 0,
      shuffle: true,
    });

    // The same model, data, seed, global batch, losses and weights, in process.
    reference.compile({
      optimizer: tf.train.adam(0.01),
      loss: ["meanSquaredError", "categoricalCrossentropy"],
      metrics: ["mae"],
    });
    await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    const history = await strategy.fit(reference, xs, ys, {
      epochs: 3,
      batchSize: 8,
      seed: 7,
      shuffle: true,
      lossWeights: [1, 0.25],
      classWeight: [null, { 0: 1, 1: 3, 2: 0.5 }],
    });

    // History keys as tfjs names them, and the same values.
    const logs = (job.history as { history: Record<string, number[]> }).history;
    assert.deepEqual(Object.keys(logs).sort(), [
      "loss",
      "out_a_loss",
      "out_a_mae",
      "out_b_loss",
      "out_b_mae",
    ]);
    assert.deepEqual(Object.keys(history.history).sort(), Object.keys(logs).sort());
    for (const [key, values] of Object.entries(logs)) {
      values.forEach((v, e) => {
        const want = history.history[key]![e] as number;
        assert.ok(Math.abs(v - want) <= 1e-5, `${key}[${e}]: ${v} over HTTP, ${want} in process`);
      });
    }

    served = await loadOverApp(app, job.modelId as string);
    const diff = maxWeightDiff(served, reference);
    console.log(`2-input, 2-output job vs MirroredStrategy.fit: max |dw| = ${diff}`);
    assert.ok(diff <= 1e-5, `the job's weights differ from the in-process run's by ${diff}`);

    // The record lists every input and output; predict takes the inputs by name and answers
    // every output by name, as the served model predicts in process.
    const record = await (await call(app, "GET", `/v1/models/${job.modelId}`)).json();
    assert.deepEqual(record.inputs, [
      { name: "in_a", shape: [null, 3] },
      { name: "in_b", shape: [null, 2] },
    ]);
    assert.deepEqual(record.outputs, [
      { name: "out_a", shape: [null, 1] },
      { name: "out_b", shape: [null, 3] },
    ]);
    assert.equal(record.loss, "out_a:meanSquaredError,out_b:categoricalCrossentropy");
    const rows = { in_a: x.in_a.slice(0, 4), in_b: x.in_b.slice(0, 4) };
    const res = await call(app, "POST", `/v1/models/${job.modelId}/predict`, { inputs: rows });
    const answer = await res.json();
    assert.equal(res.status, 200, JSON.stringify(answer));
    const want = tf.tidy(() =>
      (served!.predict([tf.tensor2d(rows.in_a), tf.tensor2d(rows.in_b)]) as tf.Tensor[])
        .map((t) => t.arraySync() as number[][])
    );
    assert.deepEqual(Object.keys(answer.outputs), ["out_a", "out_b"]);
    want.forEach((rowsOut, k) => {
      const got = answer.outputs[k === 0 ? "out_a" : "out_b"] as number[][];
      rowsOut.forEach((row, i) =>
        row.forEach((v, j) => assert.ok(Math.abs(got[i]![j]! - v) <= 1e-5, `${k}[${i}][${j}]`))
      );
    });
  } finally {
    served?.dispose();
    reference.dispose();
    tf.dispose([...xs, ...ys]);
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs trains a 2-input, 2-output topology through WorkerStrategy and leaves no tensor behind", async () => {
  const app = await tempApp();
  try {
    const body = twoByTwoJob({ kind: "worker", workers: 2, backend: "cpu" });
    const before = tf.memory().numTensors;
    const id = await submit(app, body);
    await app.jobs.wait(id);
    assert.equal(tf.memory().numTensors, before, "the job's model and data are freed");
    const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    const logs = (job.history as { history: Record<string, number[]> }).history;
    for (const key of ["loss", "out_a_loss", "out_b_loss", "out_a_mae", "out_b_mae", "stale"]) {
      assert.equal(logs[key]?.length, 3, `${key} in ${JSON.stringify(Object.keys(logs))}`);
    }
    assert.ok(logs.loss![2]! < logs.loss![0]!, "the loss went down");
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs takes compile.metrics per output (a dict by output name, a list of lists) and logs the History keys tfjs' model.fit logs", async () => {
  const app = await tempApp();
  const { x, y } = twoByTwoData();
  const loss = { out_a: "meanSquaredError", out_b: "categoricalCrossentropy" } as const;
  // tfjs in process: the same topology compiled with the same per-output metrics.
  const reference = await tf.models.modelFromJSON(twoByTwoTopology() as never);
  reference.compile({
    optimizer: "sgd",
    loss: { ...loss },
    metrics: { out_a: ["mae"], out_b: ["accuracy", "mse"] } as never,
  });
  const xs = [tf.tensor2d(x.in_a), tf.tensor2d(x.in_b)];
  const ys = [tf.tensor2d(y.out_a), tf.tensor2d(y.out_b)];
  try {
    const fitted = await reference.fit(xs, ys, { epochs: 1, batchSize: 16, verbose: 0 });
    const want = Object.keys(fitted.history).sort();
    assert.deepEqual(want, [
      "loss",
      "out_a_loss",
      "out_a_mae",
      "out_b_acc",
      "out_b_loss",
      "out_b_mse",
    ]);
    const forms: unknown[] = [
      { out_a: ["mae"], out_b: ["accuracy", "mse"] },
      { out_b: ["accuracy", "mse"], out_a: "mae" },
      [["mae"], ["accuracy", "mse"]],
    ];
    for (const metrics of forms) {
      const id = await submit(app, {
        model: twoByTwoTopology(),
        compile: { optimizer: "sgd", loss, metrics },
        data: { x, y },
        fit: { epochs: 2, batchSize: 16, seed: 1 },
        strategy: { kind: "mirrored", replicas: 1, backend: "cpu" },
      });
      const job = await waitForJob(app, id, (j) => j.status !== "queued" && j.status !== "running");
      const what = JSON.stringify(metrics);
      assert.equal(job.status, "succeeded", `${what}: ${JSON.stringify(job.error)}`);
      assert.deepEqual((job.spec as { compile: { metrics: unknown } }).compile.metrics, metrics);
      const logs = (job.history as { history: Record<string, number[]> }).history;
      assert.deepEqual(Object.keys(logs).sort(), want, what);
      for (const [key, values] of Object.entries(logs)) {
        assert.equal(values.length, 2, `${what}: ${key}`);
        assert.ok(values.every(Number.isFinite), `${what}: ${key} ${values}`);
      }
      assert.ok(logs.out_b_acc!.every((v) => v >= 0 && v <= 1), `${what}: out_b_acc`);
    }
  } finally {
    reference.dispose();
    tf.dispose([...xs, ...ys]);
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs trains on a named dataset (mnist)", async () => {
  const app = await tempApp();
  try {
    const id = await submit(app, {
      model: { preset: "mlp", hidden: [16] },
      compile: { loss: "categoricalCrossentropy", metrics: ["accuracy"] },
      data: { dataset: "mnist", limit: 64 },
      fit: { epochs: 1, batchSize: 32 },
      strategy: { replicas: 1, backend: "cpu" },
    });
    await app.jobs.wait(id);
    const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    assert.equal(job.spec.data, "mnist: 64 samples");
    const model = await (await call(app, "GET", `/v1/models/${job.modelId}`)).json();
    assert.deepEqual([model.inputShape, model.outputShape], [[null, 784], [null, 10]]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs trains the cnn preset on images sent as rows of 784 values", async () => {
  const app = await tempApp();
  try {
    const x = Array.from(
      { length: 8 },
      (_, i) => Array.from({ length: 784 }, (_, p) => ((p + i) % 7) / 7),
    );
    const y = x.map((_, i) => [i % 2, 1 - (i % 2)]);
    const id = await submit(app, {
      model: { preset: "cnn", filters: [2, 4], dense: 8, seed: 5 },
      compile: { loss: "categoricalCrossentropy", metrics: ["accuracy"] },
      data: { x, y },
      fit: { epochs: 1, batchSize: 8 },
      strategy: { replicas: 2, backend: "cpu" },
    });
    await app.jobs.wait(id);
    const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
    assert.equal(job.status, "succeeded", JSON.stringify(job.error));
    assert.equal(job.spec.model, "cnn [2, 4] dense 8");
    const model = await (await call(app, "GET", `/v1/models/${job.modelId}`)).json();
    assert.deepEqual([model.inputShape, model.outputShape], [[null, 28, 28, 1], [null, 2]]);
    const out = await (await call(app, "POST", `/v1/models/${job.modelId}/predict`, {
      inputs: [x[0]],
    })).json();
    assert.equal(out.outputs[0].length, 2);
  } finally {
    await app.dispose();
  }
});

Deno.test("a job ends failed with the domain error's code when training breaks", async () => {
  const app = await tempApp();
  try {
    // float32 overflow: the first loss is infinite, NonFiniteLossError stops training.
    const x = Array.from({ length: 8 }, () => [1e30, 1e30, 1e30, 1e30]);
    const id = await submit(
      app,
      jobBody({ data: { x, y: x.map(() => [1e30]) }, fit: { batchSize: 8 } }),
    );
    const events = parseSse(await (await call(app, "GET", `/v1/jobs/${id}/events`)).text());
    const end = events.at(-1)!;
    assert.equal(end.event, "end");
    assert.equal(end.data.status, "failed");
    assert.equal(end.data.modelId, null);
    const error = end.data.error as { code: string; message: string };
    assert.equal(error.code, "non_finite_loss");
    assert.match(
      error.message,
      /^Loss became (Infinity|NaN) at epoch 1, step 1: expected a finite loss/,
    );
    assert.deepEqual((await (await call(app, "GET", "/v1/models")).json()).models, []);
  } finally {
    await app.dispose();
  }
});

Deno.test("DELETE /v1/jobs/:id stops a running job within a couple of steps", async () => {
  const app = await tempApp();
  try {
    const id = await submit(app, jobBody({ fit: { epochs: 10000, batchSize: 16 } }));
    await waitForJob(app, id, (j) => (j.progress as { step: number }).step > 0);
    const started = performance.now();
    const res = await call(app, "DELETE", `/v1/jobs/${id}`);
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200);
    const job = await res.json();
    assert.equal(job.status, "cancelled");
    assert.equal(job.modelId, null);
    assert.equal(job.error, null);
    assert.ok(job.progress.epoch < 10000);
    assert.ok(elapsed < 5000, `cancel took ${elapsed} ms`);
    // The stream of a cancelled job ends with it.
    const events = parseSse(await (await call(app, "GET", `/v1/jobs/${id}/events`)).text());
    assert.equal(events.at(-1)!.data.status, "cancelled");
    // A job that ended cannot be cancelled again.
    await assertError(
      await call(app, "DELETE", `/v1/jobs/${id}`),
      409,
      "job_not_cancellable",
      `Cannot cancel job ${id}: it already ended (cancelled)`,
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs answers 429 when the queue is full, and a queued job cancels at once", async () => {
  const app = await tempApp({ maxConcurrentJobs: 1, maxQueuedJobs: 1 });
  try {
    const long = jobBody({ fit: { epochs: 10000, batchSize: 16 } });
    const running = await submit(app, long);
    await waitForJob(app, running, (j) => j.status === "running");
    const queued = await submit(app, long);
    const full = await call(app, "POST", "/v1/jobs", long);
    assert.equal(full.headers.get("retry-after"), "10");
    const body = await assertError(full, 429, "queue_full", "1 jobs waiting, at most 1");
    assert.deepEqual(body.error.details, { queued: 1, maxQueuedJobs: 1 });

    const list = await (await call(app, "GET", "/v1/jobs")).json();
    assert.deepEqual(list.jobs.map((j: { id: string }) => j.id), [queued, running], "newest first");
    assert.equal(list.jobs[0].history, undefined, "lists leave the history out");
    const onlyQueued = await (await call(app, "GET", "/v1/jobs?status=queued")).json();
    assert.deepEqual(onlyQueued.jobs.map((j: { id: string }) => j.id), [queued]);

    const cancelled = await call(app, "DELETE", `/v1/jobs/${queued}`);
    assert.equal(cancelled.status, 200);
    assert.equal((await cancelled.json()).status, "cancelled");
    assert.equal((await call(app, "DELETE", `/v1/jobs/${running}`)).status, 200);
    assert.equal(app.jobs.counts.queued + app.jobs.counts.running, 0);
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /v1/jobs pages with limit and cursor, newest first", async () => {
  const app = await tempApp({ maxQueuedJobs: 8 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await submit(app, jobBody({ fit: { epochs: 1, batchSize: 64 } })));
    }
    for (const id of ids) await app.jobs.wait(id);
    const first = await (await call(app, "GET", "/v1/jobs?limit=2")).json();
    assert.deepEqual(first.jobs.map((j: { id: string }) => j.id), [ids[2], ids[1]]);
    assert.equal(typeof first.cursor, "string");
    const second = await (await call(app, "GET", `/v1/jobs?limit=2&cursor=${first.cursor}`)).json();
    assert.deepEqual(second.jobs.map((j: { id: string }) => j.id), [ids[0]]);
    assert.equal(second.cursor, null);
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /v1/jobs/:id/events resumes after Last-Event-ID", async () => {
  const app = await tempApp();
  try {
    const id = await submit(app, jobBody({ fit: { epochs: 1, batchSize: 32 } }));
    await app.jobs.wait(id);
    const all = parseSse(await (await call(app, "GET", `/v1/jobs/${id}/events`)).text());
    const res = await call(app, "GET", `/v1/jobs/${id}/events`, undefined, {
      "Last-Event-ID": "3",
    });
    assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
    const rest = parseSse(await res.text());
    assert.deepEqual(rest, all.slice(3));
  } finally {
    await app.dispose();
  }
});
