// Remote edge workers end to end: a `deno task serve` process, `dtrain worker`
// subprocesses over loopback, and jobs on the embedded MNIST digits.
import assert from "node:assert/strict";
import { Server } from "../fixtures/serve_process.ts";
import { decodeFrame, EDGE_PROTOCOL, encodeFrame, type Frame } from "../../src/edge/frames.ts";
import { remoteJob, submitRemote, TOKEN, waitForEnd, WorkerProcess } from "./_edge.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
/** Epochs of the jobs that do not say, and steps per epoch (`remoteJob`'s defaults). */
const EPOCHS = 5;
const STEPS = Math.ceil((8000 * 0.8) / 32);
/**
 * Validation accuracy may fall below the local job's by at most this. Over
 * ten runs on one machine (cpu backend) the mean of the last two epochs spread
 * 0.924-0.929 with 2 local workers and 0.924-0.931 with 1 remote + 1 local; the
 * remote jobs run on wasm (the same arithmetic, faster: two runs gave
 * 0.922-0.929). So two runs can differ by a point in either direction by
 * chance alone. A remote worker that sends wrong gradients trains worse; one
 * that trains better is noise.
 */
const ACCURACY_BOUND = 0.015;

/**
 * Validation accuracy at the end of a job: the mean of its last two epochs
 * (asynchronous runs differ in arrival order; one epoch's value swings more).
 */
function lastValAcc(job: Record<string, unknown>): number {
  const values = (job.history as { history: Record<string, number[]> }).history.val_acc!;
  return (values.at(-1)! + values.at(-2)!) / 2;
}

interface Workers {
  workers: { id: number; kind: string; applied: number; status: string; error?: string }[];
  remote: {
    joined: number;
    lost: number;
    reassigned: number;
    refused: Record<string, number>;
  } | null;
  batches: { applied: number; repeated: number } | null;
}

async function workersOf(server: Server, id: string): Promise<Workers> {
  return await server.json(`/v1/jobs/${id}/workers`) as unknown as Workers;
}

/** Resolves once job `id` is in epoch `epoch` (1-based) or later. */
async function untilEpoch(server: Server, id: string, epoch: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const job = await server.json(`/v1/jobs/${id}`);
    const progress = job.progress as { epoch: number };
    if (progress.epoch >= epoch || job.status !== "running" && job.status !== "queued") return;
    assert.ok(Date.now() < deadline, `job ${id} never reached epoch ${epoch}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A hand-written worker over a raw WebSocket: hello, ready, then `answer`
 * decides what to send for the first assignment. Resolves with the error
 * the server answered and the close code.
 */
async function rawWorker(
  server: Server,
  id: string,
  token: string,
  answer: (a: Frame, welcome: Record<string, number>) => Uint8Array<ArrayBuffer> | string,
  options: { skipHello?: boolean; hello?: string } = {},
): Promise<{ error: { code: string; message: string } | null; code: number; welcomed: boolean }> {
  const url = `${server.url.replace("http", "ws")}/v1/jobs/${id}/workers/connect`;
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } } as never);
  ws.binaryType = "arraybuffer";
  let error: { code: string; message: string } | null = null;
  let welcome: Record<string, number> | undefined;
  const closed = new Promise<number>((resolve) => (ws.onclose = (e) => resolve(e.code)));
  ws.onerror = () => {};
  ws.onopen = () => {
    if (options.skipHello) ws.send(new Uint8Array(40));
    else {ws.send(
        options.hello ?? JSON.stringify({ type: "hello", protocol: EDGE_PROTOCOL, name: "raw" }),
      );}
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      const m = JSON.parse(e.data);
      if (m.type === "welcome") {
        welcome = m;
        ws.send(
          JSON.stringify({ type: "ready", backend: "cpu", backendReason: "test", threads: 1 }),
        );
      } else if (m.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
      else if (m.type === "error") error = m;
    } else {
      // One input, one output, no sample weights: weights, x, y.
      const frame = decodeFrame(new Uint8Array(e.data), {
        kind: "assignment",
        maxBytes: 1 << 30,
        sections: 3,
      });
      ws.send(answer(frame, welcome!));
    }
  };
  // Bounded: a server that leaves the socket open answers -1.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const code = await Promise.race([
    closed,
    new Promise<number>((resolve) => (timer = setTimeout(() => resolve(-1), 5000))),
  ]);
  clearTimeout(timer);
  if (code === -1) {
    ws.close();
    await closed;
  }
  return { error, code, welcomed: welcome !== undefined };
}

/** A well-formed gradient frame for assignment `a`, with `values` filled by `fill`. */
function gradient(
  a: Frame,
  w: Record<string, number>,
  fill: (values: Float32Array, logs: Float32Array) => void,
  change: Partial<Frame> = {},
): Uint8Array<ArrayBuffer> {
  const values = new Float32Array(w.weightCount!);
  const logs = new Float32Array(1 + w.metricCount!).fill(0.5);
  fill(values, logs);
  return encodeFrame({
    kind: "gradient",
    fp16: false,
    batch: a.batch,
    version: a.version,
    samples: a.samples,
    sections: [values, logs],
    ...change,
  }) as Uint8Array<ArrayBuffer>;
}

Deno.test("edge workers end to end", opts, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dtrain-edge-" });
  const server = await Server.start(dir, TOKEN);
  try {
    // The reference runs on cpu, where its spread was measured (below).
    const body = remoteJob({ backend: "cpu" });
    const local = await server.json("/v1/jobs", {
      method: "POST",
      body: JSON.stringify({ ...body, strategy: { ...body.strategy, workers: 2, remote: false } }),
    });
    const localJob = await waitForEnd(server, local.id as string);
    assert.equal(localJob.status, "succeeded", JSON.stringify(localJob.error));
    const reference = lastValAcc(localJob);

    const runs: [string, number, string[][]][] = [
      ["2 remote over WebSocket", 0, [[], []]],
      ["2 remote over request/response", 0, [["--transport", "http"], [
        "--transport",
        "http",
        "--fp16",
      ]]],
      ["1 remote + 1 local", 1, [["--fp16"]]],
    ];
    for (const [what, locals, flags] of runs) {
      await t.step(`${what} train as well as 2 local workers`, async () => {
        const { id, workerToken } = await submitRemote(server, remoteJob({ workers: locals }));
        const workers = flags.map((f) => new WorkerProcess(server.url, id, workerToken, f));
        const job = await waitForEnd(server, id);
        assert.equal(job.status, "succeeded", `${what}: ${JSON.stringify(job.error)}`);
        for (const w of workers) {
          const status = await w.done;
          assert.equal(status.code, 0, `${what}: worker exited ${status.code}: ${w.output.text}`);
          assert.ok(w.result().gradients > 0, `${what}: a worker computed nothing`);
        }
        const acc = lastValAcc(job);
        console.log(`${what}: val_acc ${acc.toFixed(4)}, 2 local workers ${reference.toFixed(4)}`);
        assert.ok(
          acc >= reference - ACCURACY_BOUND,
          `${what}: val_acc ${acc} vs ${reference} with 2 local workers`,
        );
        const stats = await workersOf(server, id);
        assert.equal(stats.workers.filter((w) => w.kind === "remote").length, flags.length);
        assert.equal(stats.workers.filter((w) => w.kind === "local").length, locals);
        assert.ok(stats.workers.every((w) => w.applied > 0), JSON.stringify(stats.workers));
        assert.deepEqual(stats.batches, { applied: EPOCHS * STEPS, repeated: 0 });
      });
    }

    await t.step("kill -9 of a remote worker mid-epoch: every batch applied once", async () => {
      const { id, workerToken } = await submitRemote(server, remoteJob());
      const doomed = new WorkerProcess(server.url, id, workerToken);
      const steady = new WorkerProcess(server.url, id, workerToken);
      await untilEpoch(server, id, 2);
      doomed.child.kill("SIGKILL");
      const job = await waitForEnd(server, id);
      assert.equal(job.status, "succeeded", JSON.stringify(job.error));
      assert.equal((await steady.done).code, 0, steady.output.text);
      assert.notEqual((await doomed.done).code, 0);
      const stats = await workersOf(server, id);
      assert.equal(stats.remote!.lost, 1, JSON.stringify(stats.remote));
      // EPOCHS x STEPS batches, each applied exactly once.
      assert.deepEqual(stats.batches, { applied: EPOCHS * STEPS, repeated: 0 });
      assert.ok(lastValAcc(job) >= reference - ACCURACY_BOUND, `val_acc ${lastValAcc(job)}`);
    });

    await t.step("a worker that joins in epoch 3 contributes", async () => {
      const { id, workerToken } = await submitRemote(server, remoteJob({ epochs: 5 }));
      // On the slower cpu backend the job outlasts the late worker's start.
      const first = new WorkerProcess(server.url, id, workerToken, [], { backend: "cpu" });
      await untilEpoch(server, id, 3);
      const late = new WorkerProcess(server.url, id, workerToken, ["--name", "late"]);
      const job = await waitForEnd(server, id);
      assert.equal(job.status, "succeeded", JSON.stringify(job.error));
      for (const w of [first, late]) assert.equal((await w.done).code, 0, w.output.text);
      assert.ok(late.result().gradients > 0, late.output.text);
      const stats = await workersOf(server, id);
      assert.equal(stats.workers.length, 2);
      assert.ok(stats.workers.every((w) => w.applied > 0), JSON.stringify(stats.workers));
    });

    await t.step("hostile workers are refused, counted, and the job is unaffected", async () => {
      // A local cpu worker: the job outlasts every hostile connection below.
      const { id, workerToken } = await submitRemote(
        server,
        remoteJob({ workers: 1, epochs: 3, backend: "cpu" }),
      );
      const other = await submitRemote(server, remoteJob({ workers: 1, epochs: 1 }));
      // Wrong tokens: refused before any model data (401), WebSocket or not.
      const connect = `${server.url}/v1/jobs/${id}/workers/connect`;
      for (const token of ["wrong", other.workerToken]) {
        const res = await fetch(connect, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(res.status, 401, await res.text());
        const raw = await rawWorker(server, id, token, () => "never");
        assert.equal(raw.welcomed, false);
      }
      // A worker token opens its job's worker routes and nothing else.
      for (const path of ["/v1/jobs", `/v1/jobs/${id}`, `/v1/jobs/${other.id}`, "/v1/models"]) {
        const res = await fetch(`${server.url}${path}`, {
          headers: { Authorization: `Bearer ${workerToken}` },
        });
        assert.equal(res.status, 401, `${path}: ${res.status}`);
        await res.body?.cancel();
      }
      // A refusal that echoes a long non-ASCII field still fits a close reason (123 bytes).
      const longHello = JSON.stringify({ type: "hello", protocol: "é".repeat(100) });
      const cases: [
        string,
        Parameters<typeof rawWorker>[3],
        Parameters<typeof rawWorker>[4]?,
      ][] = [
        ["protocol", () => "never", { hello: longHello }],
        ["nonFinite", (a, w) => gradient(a, w, (v) => v.fill(Number.NaN))],
        ["shape", (a, w) => gradient(a, w, () => {}).slice(0, 100)],
        ["futureVersion", (a, w) => gradient(a, w, () => {}, { version: a.version + 1000 })],
        ["protocol", () => JSON.stringify({ type: "hello", protocol: EDGE_PROTOCOL })],
        ["protocol", () => "never", { skipHello: true }],
      ];
      for (const [code, answer, options] of cases) {
        const raw = await rawWorker(server, id, workerToken, answer, options);
        assert.equal(raw.error?.code, code, JSON.stringify(raw));
        assert.equal(raw.code, 1008, `${code}: close code ${raw.code}`);
      }
      const job = await waitForEnd(server, id);
      assert.equal(job.status, "succeeded", JSON.stringify(job.error));
      const history = (job.history as { history: Record<string, number[]> }).history;
      assert.ok(history.loss!.every(Number.isFinite));
      const stats = await workersOf(server, id);
      assert.deepEqual(
        stats.remote!.refused,
        { nonFinite: 1, shape: 1, futureVersion: 1, protocol: 1 },
        "the message before hello has no session to count in",
      );
      assert.equal(stats.batches!.repeated, 0);
      assert.equal(stats.batches!.applied, 3 * STEPS);
      await waitForEnd(server, other.id);
    });
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "a remote job survives a server restart: its workers reconnect and it resumes from its checkpoint",
  opts,
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "dtrain-edge-restart-" });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const start = () => Server.start(dir, TOKEN, ["--port", String(port), "--lease-ms", "1500"]);
    let server = await start();
    try {
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        await t.step(signal, async () => {
          const { id, workerToken } = await submitRemote(server, remoteJob({ epochs: 5 }));
          // cpu: both workers reconnect before either could finish the job alone.
          const workers = [0, 1].map(() =>
            new WorkerProcess(server.url, id, workerToken, [], { backend: "cpu" })
          );
          await untilEpoch(server, id, 3);
          await server.stop(signal);
          server = await start();
          const job = await waitForEnd(server, id);
          assert.equal(job.status, "succeeded", JSON.stringify(job.error));
          const history = job.history as { epoch: number[] };
          assert.deepEqual(history.epoch, [0, 1, 2, 3, 4], "every epoch once");
          for (const w of workers) {
            assert.equal((await w.done).code, 0, w.output.text);
            assert.ok(w.result().reconnects >= 1, `never reconnected: ${w.output.text}`);
          }
          const stats = await workersOf(server, id);
          assert.ok(stats.workers.every((w) => w.applied > 0), JSON.stringify(stats.workers));
          // Resumed from a checkpoint: the new server trained fewer than 5 epochs.
          assert.ok(stats.batches!.applied < 5 * STEPS, JSON.stringify(stats.batches));
        });
      }
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
