/**
 * HTTP suite: predict latency and throughput of the dtrain service on
 * loopback, idle and while a training job runs. Prints one JSON array of
 * rows as its last stdout line.
 *
 * 1. Starts `src/server/serve.ts` as a subprocess on 127.0.0.1, port 0, with
 *    a temporary data dir and KV (removed at the end).
 * 2. Trains the bench MLP (784-512-512-10, Adam) on a few MNIST samples
 *    through `POST /v1/jobs` and waits for it to succeed.
 * 3. Loads `POST /v1/models/{id}/predict` (one 784-value row per request)
 *    with autocannon, at each concurrency, for a few seconds each, in both
 *    body forms: JSON (`{"inputs": [[...]]}` in, JSON out) and binary (the
 *    "DTR1" header and float32 in, `Accept: application/octet-stream` out);
 *    first idle, then while a long training job runs (cancelled afterwards).
 *    The server predicts in `predictWorkers` inference Workers on
 *    `predictBackend` (default: 1 Worker on wasm, the fast path).
 *
 * The load generator runs in this process and the server in its own, on the
 * same cores as the training job's replica Workers: the figures are those of
 * one machine serving and training at once, not of a network service.
 *
 * Usage: deno run -A --unstable-kv bench/_http.ts '{"quick":true}'
 * (other fields: see {@linkcode HttpConfig}, e.g. '{"predictWorkers":2,"loads":["idle"]}')
 *
 * @module
 */
import { Buffer } from "node:buffer";
import autocannon from "autocannon";

/** The load generator, for the report. */
export const LOAD_GENERATOR = "autocannon 9.0.0 (npm, in-process under Deno)";

/** Settings of the HTTP suite. */
export interface HttpConfig {
  /** Shorter measurements, fewer training samples. */
  quick: boolean;
  /** Concurrent connections to measure at. */
  concurrency?: number[];
  /** Seconds per measurement. */
  durationS?: number;
  /** Replicas of the training jobs. */
  replicas?: number;
  /** The server's inference Workers (`--predict-workers`; 0: main thread). Default 1. */
  predictWorkers?: number;
  /** The server's predict backend (`--predict-backend`). Default `"wasm"`. */
  predictBackend?: "cpu" | "wasm";
  /** Body forms to measure. Default both. */
  forms?: ("json" | "binary")[];
  /** Loads to measure. Default both. */
  loads?: ("idle" | "training")[];
}

/** One measurement. */
export interface HttpRow {
  suite: "http";
  model: "mlp";
  /** `idle`: nothing else runs; `training`: a training job runs on the server meanwhile. */
  load: "idle" | "training";
  /** `json`: JSON in and out; `binary`: the binary form in and out. */
  form: "json" | "binary";
  /** The server's inference Workers and their backend. */
  predictWorkers: number;
  predictBackend: "cpu" | "wasm";
  concurrency: number;
  durationS: number;
  /** 2xx answers. */
  requests: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Non-2xx answers, connection errors and timeouts. */
  failed: number;
  /** `training`: whether the job was still running when the measurement ended. */
  trainingRunning?: boolean;
  tool: string;
  error?: string;
}

const MNIST_MAX = 10000;

async function startServer(
  dataDir: string,
  predict: { workers: number; backend: "cpu" | "wasm" },
): Promise<{ url: string; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      new URL("../src/server/serve.ts", import.meta.url).pathname,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--predict-workers",
      String(predict.workers),
      "--predict-backend",
      predict.backend,
    ],
    // No token, and the KV in the temporary data dir.
    env: { DTRAIN_TOKEN: "", DTRAIN_KV: "" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the server exited before listening: ${text.trim()}`);
      text += value;
      const url = text.match(/listening on (http:\/\/\S+)/)?.[1];
      if (url !== undefined) {
        // Keep draining stdout so the server never blocks on a full pipe.
        (async () => {
          while (!(await lines.read()).done) { /* discard */ }
        })().catch(() => {});
        return { url, child };
      }
    }
  } finally {
    clearTimeout(deadline);
  }
}

async function call(url: string, init?: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    ...init,
    headers: { "content-type": "application/json", ...init?.headers },
  });
  const body = await res.json() as Record<string, unknown>;
  if (!res.ok) {
    throw new Error(`${init?.method ?? "GET"} ${url}: ${res.status} ${JSON.stringify(body)}`);
  }
  return body;
}

function jobBody(samples: number, epochs: number, replicas: number) {
  return {
    name: "bench-http",
    model: { preset: "mlp", hidden: [512, 512], seed: 1 },
    compile: { optimizer: "adam", loss: "categoricalCrossentropy" },
    data: { dataset: "mnist", limit: Math.min(samples, MNIST_MAX) },
    fit: { epochs, batchSize: 128, seed: 1 },
    strategy: { replicas, backend: "wasm" },
  };
}

async function waitJob(
  base: string,
  id: string,
  until: (job: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await call(`${base}/v1/jobs/${id}`);
    if (until(job)) return job;
    if (["failed", "cancelled", "interrupted"].includes(job.status as string)) {
      throw new Error(`job ${id} ${job.status}: ${JSON.stringify(job.error)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One request body: JSON, or the binary form (answered in binary too). */
interface Form {
  form: "json" | "binary";
  headers: Record<string, string>;
  body: string | Buffer;
}

/** The binary form of `rows`: "DTR1", rank 2, [rows, width], float32 little-endian. */
function binaryBody(rows: number[][]): Buffer {
  const width = rows[0]!.length;
  const out = new Uint8Array(16 + rows.length * width * 4);
  out.set([0x44, 0x54, 0x52, 0x31]);
  const view = new DataView(out.buffer);
  view.setUint32(4, 2, true);
  view.setUint32(8, rows.length, true);
  view.setUint32(12, width, true);
  rows.flat().forEach((v, i) => view.setFloat32(16 + 4 * i, v, true));
  return Buffer.from(out.buffer);
}

async function measure(
  url: string,
  form: Form,
  concurrency: number,
  durationS: number,
): Promise<
  Omit<HttpRow, "suite" | "model" | "load" | "form" | "predictWorkers" | "predictBackend">
> {
  const r = await autocannon({
    url,
    method: "POST",
    headers: form.headers,
    body: form.body,
    connections: concurrency,
    pipelining: 1,
    duration: durationS,
    timeout: 10,
  });
  // r.duration: the measured run, in seconds.
  const seconds = typeof r.duration === "number" && r.duration > 0 ? r.duration : durationS;
  return {
    concurrency,
    durationS,
    requests: r["2xx"],
    requestsPerSec: r["2xx"] / seconds,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    meanMs: r.latency.average,
    failed: r.non2xx + r.errors + r.timeouts,
    tool: LOAD_GENERATOR,
  };
}

async function run(c: HttpConfig): Promise<HttpRow[]> {
  const concurrency = c.concurrency ?? [1, 16, 64];
  const durationS = c.durationS ?? (c.quick ? 1 : 3);
  const replicas = c.replicas ?? Math.max(1, navigator.hardwareConcurrency ?? 1);
  const predict = { workers: c.predictWorkers ?? 1, backend: c.predictBackend ?? "wasm" } as const;
  const formNames = c.forms ?? ["json", "binary"];
  const loads = c.loads ?? ["idle", "training"];
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-bench-http-" });
  const { url: base, child } = await startServer(dataDir, predict);
  const rows: HttpRow[] = [];
  const row = (load: HttpRow["load"], form: Form, m: Awaited<ReturnType<typeof measure>>) => ({
    suite: "http" as const,
    model: "mlp" as const,
    load,
    form: form.form,
    predictWorkers: predict.workers,
    predictBackend: predict.backend,
    ...m,
  });
  try {
    // The model to serve: a tiny training run.
    const trained = await call(`${base}/v1/jobs`, {
      method: "POST",
      body: JSON.stringify(jobBody(c.quick ? 256 : 1024, 1, replicas)),
    });
    const done = await waitJob(
      base,
      trained.id as string,
      (j) => j.status === "succeeded",
      180_000,
    );
    const predictUrl = `${base}/v1/models/${done.modelId}/predict`;
    const sample = Array.from({ length: 784 }, (_, i) => Math.round(((i * 37) % 256) / 2.55) / 100);
    const body = JSON.stringify({ inputs: [sample] });
    const all: Form[] = [
      { form: "json", headers: { "content-type": "application/json" }, body },
      {
        form: "binary",
        headers: { "content-type": "application/octet-stream", accept: "application/octet-stream" },
        body: binaryBody([sample]),
      },
    ];
    const forms = all.filter((f) => formNames.includes(f.form));
    for (let i = 0; i < 20; i++) await call(predictUrl, { method: "POST", body }); // warm-up

    if (loads.includes("idle")) {
      for (const n of concurrency) {
        for (const form of forms) {
          rows.push(row("idle", form, await measure(predictUrl, form, n, durationS)));
          console.error(`done: http idle, ${form.form}, concurrency ${n}`);
        }
      }
    }
    if (!loads.includes("training")) return rows;

    // A job long enough to outlast the measurements; cancelled afterwards.
    const background = await call(`${base}/v1/jobs`, {
      method: "POST",
      body: JSON.stringify(jobBody(c.quick ? 2048 : MNIST_MAX, 10000, replicas)),
    });
    const id = background.id as string;
    await waitJob(
      base,
      id,
      (j) =>
        j.status === "running" && ((j.progress as { step: number }).step > 0 ||
          (j.progress as { epoch: number }).epoch > 1),
      180_000,
    );
    for (const n of concurrency) {
      for (const form of forms) {
        const m = await measure(predictUrl, form, n, durationS);
        const job = await call(`${base}/v1/jobs/${id}`);
        rows.push({ ...row("training", form, m), trainingRunning: job.status === "running" });
        console.error(`done: http training, ${form.form}, concurrency ${n}`);
      }
    }
    await fetch(`${base}/v1/jobs/${id}`, { method: "DELETE" }).then((r) => r.body?.cancel());
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 15_000);
    await child.status;
    clearTimeout(killer);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  return rows;
}

if (import.meta.main) {
  const config = JSON.parse(Deno.args[0] ?? "{}") as Partial<HttpConfig>;
  const rows = await run({ ...config, quick: config.quick ?? false });
  console.log(JSON.stringify(rows));
  Deno.exit(0);
}
