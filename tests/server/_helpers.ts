// Shared helpers of the server tests: a temporary app, JSON requests, error
// assertions, tiny jobs, a two-input two-output model and its data, SSE
// parsing, models loaded over the app.
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { type AppOptions, createApp, type DtrainApp } from "../../src/server/mod.ts";

export const TOKEN = "test-token-1234";

/** A temporary data dir and an app on it; `dispose()` closes and removes both. */
export async function tempApp(
  options: AppOptions = {},
): Promise<DtrainApp & { dispose(): Promise<void> }> {
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "dtrain-server-" });
  const app = await createApp({ maxReplicas: 2, defaultReplicas: 1, ...options, dataDir });
  return Object.assign(app, {
    async dispose() {
      await app.close();
      if (options.dataDir === undefined) await Deno.remove(dataDir, { recursive: true });
    },
  });
}

/** Sends a request; a non-string body is sent as JSON. */
export function call(
  app: DtrainApp,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  return Promise.resolve(app.request(path, init));
}

/** Asserts status, the error body's code, and that its message contains `message`. */
export async function assertError(
  res: Response,
  status: number,
  code: string,
  message: string | RegExp,
): Promise<{ error: { code: string; message: string; details?: unknown } }> {
  const text = await res.text();
  assert.equal(res.status, status, `status ${res.status}, body ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = JSON.parse(text);
  assert.equal(body.error?.code, code, text);
  if (typeof message === "string") assert.ok(body.error.message.includes(message), text);
  else assert.match(body.error.message, message);
  return body;
}

/** 64 samples of a small regression problem: y = x0 + x1. */
export function regression(count = 64): { x: number[][]; y: number[][] } {
  const x = Array.from({ length: count }, (_, i) => [i % 2, i % 3, (i % 5) / 4, (i % 7) / 6]);
  return { x, y: x.map((r) => [r[0]! + r[1]!]) };
}

/** A small, valid job body; `over` replaces top-level fields. */
export function jobBody(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { preset: "mlp", hidden: [8], seed: 1 },
    compile: { optimizer: "adam", loss: "meanSquaredError", metrics: ["mae"] },
    data: regression(),
    fit: { epochs: 2, batchSize: 16, seed: 3 },
    strategy: { kind: "mirrored", replicas: 1, backend: "cpu" },
    ...over,
  };
}

/**
 * A functional model with inputs `in_a` [3] and `in_b` [2] and outputs
 * `out_a` (one value, linear) and `out_b` (3 classes, softmax), seeded
 * initialisers: every build of its topology starts from the same weights.
 * Returns the topology JSON a job sends (`model.toJSON(null, false)`).
 */
export function twoByTwoTopology(): Record<string, unknown> {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const a = tf.input({ shape: [3], name: "in_a" });
  const b = tf.input({ shape: [2], name: "in_b" });
  const joined = tf.layers.concatenate({ name: "joined" }).apply([a, b]);
  const h = tf.layers.dense({ units: 8, activation: "tanh", kernelInitializer: init(1), name: "h" })
    .apply(joined);
  const outA = tf.layers.dense({ units: 1, kernelInitializer: init(2), name: "out_a" }).apply(h);
  const outB = tf.layers.dense({
    units: 3,
    activation: "softmax",
    kernelInitializer: init(3),
    name: "out_b",
  }).apply(h);
  const model = tf.model({
    inputs: [a, b],
    outputs: [outA, outB] as tf.SymbolicTensor[],
  });
  const json = model.toJSON(null, false) as unknown as Record<string, unknown>;
  model.dispose();
  return json;
}

/** `count` samples for {@linkcode twoByTwoTopology}, as dicts of rows by layer name. */
export function twoByTwoData(count = 48): {
  x: { in_a: number[][]; in_b: number[][] };
  y: { out_a: number[][]; out_b: number[][] };
} {
  const idx = Array.from({ length: count }, (_, i) => i);
  const inA = idx.map((i) => [(i % 3) / 2, (i % 5) / 4, i / count]);
  const inB = idx.map((i) => [i % 2, (i % 7) / 6]);
  return {
    x: { in_a: inA, in_b: inB },
    y: {
      out_a: idx.map((i) => [inA[i]![0]! + inA[i]![1]! - inB[i]![1]!]),
      out_b: idx.map((i) => [0, 1, 2].map((c) => (c === (i + (i >> 2)) % 3 ? 1 : 0))),
    },
  };
}

/** tfjs' own HTTP loader, with fetch routed into the app (no socket). */
export function loadOverApp(app: DtrainApp, modelId: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(
    tf.io.http(`http://dtrain.test/v1/models/${modelId}/model.json`, {
      fetchFunc: ((url: string, init?: RequestInit) =>
        Promise.resolve(app.request(url, init))) as typeof fetch,
    }),
  );
}

/** The largest absolute difference between two models' weights, index by index. */
export function maxWeightDiff(a: tf.LayersModel, b: tf.LayersModel): number {
  const wa = a.getWeights(), wb = b.getWeights();
  assert.equal(wa.length, wb.length, "the models have the same number of weights");
  let worst = 0;
  wa.forEach((w, i) => {
    assert.deepEqual(w.shape, wb[i]!.shape, `weight ${i}'s shape`);
    const x = w.dataSync(), y = wb[i]!.dataSync();
    for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
  });
  return worst;
}

/** One parsed Server-Sent Event. */
export interface Sse {
  id: number;
  event: string;
  data: Record<string, unknown>;
}

/** Parses a complete `text/event-stream` body (comments skipped). */
export function parseSse(text: string): Sse[] {
  return text.split("\n\n").filter((block) => block.includes("data:")).map((block) => {
    const fields: Record<string, string> = {};
    for (const line of block.split("\n")) {
      const i = line.indexOf(":");
      if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
    }
    return {
      id: Number(fields.id),
      event: fields.event ?? "message",
      data: JSON.parse(fields.data!),
    };
  });
}

/** Submits a job; returns its id. */
export async function submit(app: DtrainApp, body: unknown): Promise<string> {
  const res = await call(app, "POST", "/v1/jobs", body);
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text).id;
}

/** Resolves once `predicate` holds for the job record (polling). */
export async function waitForJob(
  app: DtrainApp,
  id: string,
  predicate: (job: Record<string, unknown>) => boolean,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
    if (predicate(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} stuck: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
