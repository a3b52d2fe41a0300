import assert from "node:assert/strict";
import { join } from "node:path";
import { Store } from "../../src/server/mod.ts";
import type { JobRecord } from "../../src/server/mod.ts";
import { assertError, call, jobBody, parseSse, submit, tempApp, waitForJob } from "./_helpers.ts";

function orphan(id: string, owner: string, status: "queued" | "running"): JobRecord {
  return {
    id,
    name: null,
    status,
    createdAt: new Date().toISOString(),
    startedAt: status === "running" ? new Date().toISOString() : null,
    finishedAt: null,
    progress: { epoch: 1, epochs: 5, step: 2, steps: 4 },
    error: null,
    modelId: null,
    spec: {
      model: "mlp [8]",
      data: "inline: 64 samples",
      compile: { optimizer: "adam", loss: "meanSquaredError", metrics: [] },
      fit: { epochs: 5, batchSize: 16, validationSplit: 0, shuffle: true },
      strategy: { kind: "mirrored", replicas: 1, backend: "cpu" },
    },
    backend: null,
    owner,
  };
}

Deno.test("createApp() finds jobs and models again after a restart on the same data dir", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    const first = await tempApp({ dataDir });
    const id = await submit(first, jobBody());
    await first.jobs.wait(id);
    const job = await (await call(first, "GET", `/v1/jobs/${id}`)).json();
    const inputs = [[1, 0, 1, 0]];
    const before =
      await (await call(first, "POST", `/v1/models/${job.modelId}/predict`, { inputs }))
        .json();
    await first.close();

    const second = await tempApp({ dataDir });
    try {
      assert.deepEqual(await (await call(second, "GET", `/v1/jobs/${id}`)).json(), job);
      const list = await (await call(second, "GET", "/v1/jobs")).json();
      assert.deepEqual(list.jobs.map((j: JobRecord) => j.id), [id]);
      const model = await (await call(second, "GET", `/v1/models/${job.modelId}`)).json();
      assert.equal(model.jobId, id);
      const after = await (await call(second, "POST", `/v1/models/${job.modelId}/predict`, {
        inputs,
      })).json();
      assert.deepEqual(after, before);
      // The stream of a job from before the restart is its final record.
      const events = parseSse(await (await call(second, "GET", `/v1/jobs/${id}/events`)).text());
      assert.deepEqual(events.map((e) => e.event), ["end"]);
      assert.deepEqual(events[0]!.data, job);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("createApp() ends failed the jobs of a dead server whose request is gone, once its lease expires", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    const store = new Store(await Deno.openKv(join(dataDir, "dtrain.kv")));
    const dead = orphan("job_0000000000000dead", "srv_gone", "running");
    const alive = orphan("job_000000000000alive", "srv_busy", "queued");
    await store.putJob(dead);
    await store.putJob(alive);
    await store.appendEpoch(dead.id, 0, { loss: 0.5 });
    await store.heartbeat("srv_busy", Date.now()); // a live lease, never renewed
    store.close();

    const app = await tempApp({ dataDir, leaseMs: 600 });
    try {
      const job = await waitForJob(app, dead.id, (j) => j.status === "failed", 5000);
      assert.equal((job.error as { code: string }).code, "resume_failed");
      assert.match((job.error as { message: string }).message, /stored request cannot be read/);
      assert.deepEqual(
        job.history,
        { epoch: [0], history: { loss: [0.5] } },
        "History so far is kept",
      );
      assert.ok(job.finishedAt !== null);
      // The other server's job stays queued while its lease is fresh...
      assert.equal(
        (await (await call(app, "GET", `/v1/jobs/${alive.id}`)).json()).status,
        "queued",
      );
      await assertError(
        await call(app, "DELETE", `/v1/jobs/${alive.id}`),
        409,
        "job_not_cancellable",
        "it runs on another server (srv_busy)",
      );
      // ...and is taken over once the lease expires.
      const marked = await waitForJob(app, alive.id, (j) => j.status === "failed", 5000);
      assert.equal((marked.error as { code: string }).code, "resume_failed");
    } finally {
      await app.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("DtrainApp.close() leaves running and queued jobs to the next app on the data dir, which resumes them", async () => {
  const app = await tempApp({ maxQueuedJobs: 4 });
  let closed = false;
  try {
    const long = jobBody({ fit: { epochs: 10000, batchSize: 16 } });
    const running = await submit(app, long);
    const queued = await submit(app, long);
    await waitForJob(app, running, (j) => (j.history as { epoch: number[] }).epoch.length >= 2);
    const stream = call(app, "GET", `/v1/jobs/${running}/events`).then((r) => r.text());
    await app.close();
    closed = true;
    const events = parseSse(await stream);
    const last = events.at(-1)!;
    assert.equal(last.event, "waiting", JSON.stringify(last));
    assert.match(String(last.data.detail), /resumes from its newest checkpoint/);
    // Requests after close are refused; liveness still answers.
    await assertError(await call(app, "GET", "/v1/jobs"), 503, "shutting_down", "shutting down");
    assert.equal((await call(app, "GET", "/healthz")).status, 200);
    const before = (await (async () => {
      const store = new Store(await Deno.openKv(join(app.dataDir, "dtrain.kv")));
      try {
        return await store.history(running);
      } finally {
        store.close();
      }
    })()).epoch.length;

    const reopened = await tempApp({ dataDir: app.dataDir });
    try {
      const resumed = await waitForJob(
        reopened,
        running,
        (j) => j.status === "running" && (j.history as { epoch: number[] }).epoch.length > before,
      );
      const epochs = (resumed.history as { epoch: number[] }).epoch;
      assert.deepEqual(epochs, [...epochs.keys()], "every epoch once, in order");
      const sub = reopened.jobs.subscribe(running, 0, () => {})!;
      assert.ok(sub.replay.some((e) => e.event.type === "resumed"), "a resumed event");
      sub.unsubscribe();
      const q = await (await call(reopened, "GET", `/v1/jobs/${queued}`)).json();
      assert.ok(q.status === "queued" || q.status === "running", q.status);
      for (const id of [running, queued]) await call(reopened, "DELETE", `/v1/jobs/${id}`);
    } finally {
      await reopened.close();
    }
  } finally {
    if (!closed) await app.close();
    await Deno.remove(app.dataDir, { recursive: true });
  }
});

Deno.test("two apps on one KV see each other's jobs, and follow them over SSE", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  const a = await tempApp({ dataDir });
  const b = await tempApp({ dataDir });
  try {
    const id = await submit(a, jobBody({ fit: { epochs: 3, batchSize: 16 } }));
    const events = parseSse(await (await call(b, "GET", `/v1/jobs/${id}/events`)).text());
    const end = events.at(-1)!;
    assert.equal(end.event, "end");
    assert.equal(end.data.status, "succeeded");
    assert.ok(events.length >= 2, "at least one status event before the end");
    // B serves the model A trained (shared data dir).
    const res = await call(b, "POST", `/v1/models/${end.data.modelId}/predict`, {
      inputs: [[0, 1, 0, 1]],
    });
    assert.equal(res.status, 200);
  } finally {
    await a.close();
    await b.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("createApp() keeps the KV where the kv option says, and leaves an open Deno.Kv open", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    const kvPath = join(dataDir, "elsewhere", "jobs.kv");
    await Deno.mkdir(join(dataDir, "elsewhere"));
    const app = await tempApp({ dataDir, kv: kvPath });
    await app.close();
    assert.ok((await Deno.stat(kvPath)).isFile);
    await assert.rejects(() => Deno.stat(join(dataDir, "dtrain.kv")), Deno.errors.NotFound);

    const kv = await Deno.openKv(":memory:");
    const shared = await tempApp({ dataDir, kv });
    await shared.close();
    await kv.set(["still", "open"], 1);
    kv.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
