// Shared helpers of the server tests: a temporary app, JSON requests, error
// assertions, tiny jobs, SSE parsing.
import assert from "node:assert/strict";
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
