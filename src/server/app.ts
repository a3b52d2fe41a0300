/**
 * `createApp()`: the dtrain HTTP service as a Hono app, ready for
 * `Deno.serve(app.fetch)` or, in tests, `app.request(...)`. It wires the
 * routes to the job queue, the model registry and the KV store, and is the
 * only place where errors become HTTP statuses.
 *
 * @module
 */
import { join } from "node:path";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import type { JSONValue } from "hono/utils/types";
import { setBackendOrThrow } from "../../backends/cpu.ts";
import { bearerAuth } from "./_auth.ts";
import { type BackendReport, probeBackends } from "./_backends.ts";
import { renderDocs } from "./_docs.ts";
import { HttpError, toHttpError } from "./_errors.ts";
import { validationError } from "./_validation.ts";
import { DASHBOARD_PATHS, dashboardResponse } from "./dashboard/_assets.ts";
import { JobManager, type SequencedEvent } from "./jobs.ts";
import { ModelRegistry } from "./registry.ts";
import {
  BackendReportSchema,
  ErrorSchema,
  HealthSchema,
  JobAcceptedSchema,
  JobListSchema,
  JobRecordSchema,
  JobRequestSchema,
  ListQuerySchema,
  ModelListSchema,
  ModelRecordSchema,
  PredictRequestSchema,
  PredictResponseSchema,
  TERMINAL_STATUSES,
} from "./schemas.ts";
import { Store } from "./store.ts";
import type { JobRecord } from "./types.ts";

const VERSION = "0.1.0";

/** Options for {@linkcode createApp}. */
export interface AppOptions {
  /**
   * Folder for the KV file and the model files (created when missing).
   * @default "./.dtrain"
   */
  dataDir?: string;
  /**
   * Deno KV holding job records and model metadata: a file path, a URL of a
   * shared KV, or an open `Deno.Kv` (not closed by `close()`).
   * @default `${dataDir}/dtrain.kv`
   */
  kv?: string | Deno.Kv;
  /**
   * Bearer token required on every route but `/healthz` and the dashboard's
   * page and assets (`/`, `/assets/*`: the page asks for the token and sends
   * it on its API calls). Empty or undefined: no authentication.
   * @default undefined
   */
  token?: string;
  /**
   * Largest accepted request body, in bytes (413 above).
   * @default 33554432 (32 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Jobs trained at the same time.
   * @default 1
   */
  maxConcurrentJobs?: number;
  /**
   * Jobs waiting at most (429 above).
   * @default 16
   */
  maxQueuedJobs?: number;
  /**
   * Replicas of a job that does not say.
   * @default navigator.hardwareConcurrency
   */
  defaultReplicas?: number;
  /**
   * Most replicas one job may ask for (400 above).
   * @default navigator.hardwareConcurrency
   */
  maxReplicas?: number;
  /**
   * Trained models kept loaded for predict (least recently used is dropped).
   * @default 8
   */
  modelCacheSize?: number;
  /**
   * Backend of this process's tfjs, which serves predict. Activated by
   * `createApp` (replicas choose their own per job).
   * @default "cpu"
   */
  predictBackend?: "cpu" | "wasm";
  /**
   * A server whose lease is not renewed this long is dead: its queued and
   * running jobs are marked `interrupted`.
   * @default 15000
   */
  leaseMs?: number;
  /**
   * `DELETE /v1/jobs/{id}` waits this long for a running job to stop before
   * answering 202.
   * @default 10000
   */
  cancelWaitMs?: number;
  /**
   * On `close()`, how long running jobs get to stop before their Workers are
   * terminated.
   * @default 10000
   */
  shutdownTimeoutMs?: number;
  /**
   * Origins allowed by CORS (e.g. a browser app loading models); `["*"]`
   * for any.
   * @default [] (no CORS headers)
   */
  corsOrigins?: string[];
}

/** What `createApp` returns: the Hono app plus its lifecycle. */
export type DtrainApp = OpenAPIHono & {
  /** The job queue (for embedding and tests). */
  readonly jobs: JobManager;
  /** The model registry (for embedding and tests). */
  readonly models: ModelRegistry;
  /** Where the KV and model files live. */
  readonly dataDir: string;
  /**
   * Stops taking requests (503), marks queued and running jobs
   * `interrupted`, stops their Workers, ends event streams and closes the
   * KV. Idempotent.
   */
  close(): Promise<void>;
  /** `await using app = await createApp()` closes it on scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
};

// The dashboard's page and assets load without a token: the page asks for it.
const OPEN_PATHS = ["/healthz", ...DASHBOARD_PATHS];

function errors(...statuses: number[]) {
  const text: Record<number, string> = {
    400: "Invalid request (the message names the field)",
    401: "Missing or wrong bearer token",
    404: "Unknown id",
    409: "Conflict with the job's state",
    413: "Request body too large",
    415: "Body is not application/json",
    429: "Job queue full",
    500: "Server error",
    503: "Shutting down or backend unavailable",
  };
  return Object.fromEntries(statuses.map((s) => [s, {
    description: text[s] ?? "Error",
    content: { "application/json": { schema: ErrorSchema } },
  }]));
}

const JobId = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "job_0mb1x2y3zabcdefgh" }),
});
const ModelId = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "mdl_0mb1x2y3zabcdefgh" }),
});
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const routes = {
  health: createRoute({
    method: "get",
    path: "/healthz",
    summary: "Liveness (no authentication)",
    security: [],
    responses: { 200: json(HealthSchema, "The server is up") },
  }),
  backends: createRoute({
    method: "get",
    path: "/v1/backends",
    summary: "Backends this server can run, and which one auto picks",
    responses: { 200: json(BackendReportSchema, "The report"), ...errors(401) },
  }),
  submit: createRoute({
    method: "post",
    path: "/v1/jobs",
    summary: "Submit a training job",
    description: "Checked (model, shapes, batch size vs replicas) before it is queued; " +
      "trained with MirroredStrategy; the trained model lands in the registry.",
    request: {
      body: { content: { "application/json": { schema: JobRequestSchema } }, required: true },
    },
    responses: {
      202: json(JobAcceptedSchema, "Queued"),
      ...errors(400, 401, 413, 415, 429, 503),
    },
  }),
  listJobs: createRoute({
    method: "get",
    path: "/v1/jobs",
    summary: "Jobs, newest first",
    request: { query: ListQuerySchema },
    responses: { 200: json(JobListSchema, "A page of jobs"), ...errors(400, 401) },
  }),
  getJob: createRoute({
    method: "get",
    path: "/v1/jobs/{id}",
    summary: "A job: status, progress, History so far, error, modelId",
    request: { params: JobId },
    responses: { 200: json(JobRecordSchema, "The job"), ...errors(401, 404) },
  }),
  events: createRoute({
    method: "get",
    path: "/v1/jobs/{id}/events",
    summary: "Server-Sent Events of a job",
    description: "Events `status`, `batch` (every step: epoch, step, steps, logs), `epoch` " +
      "(epoch logs), and a final `end` carrying the job record. Ids count from 1; send " +
      "Last-Event-ID to resume.",
    request: { params: JobId },
    responses: {
      200: {
        description: "An event stream",
        content: { "text/event-stream": { schema: z.string() } },
      },
      ...errors(401, 404),
    },
  }),
  cancel: createRoute({
    method: "delete",
    path: "/v1/jobs/{id}",
    summary: "Cancel a job",
    description: "A queued job is cancelled at once; a running one stops within a step or two " +
      "(200 once stopped, 202 if still stopping after the wait).",
    request: { params: JobId },
    responses: {
      200: json(JobRecordSchema, "Cancelled"),
      202: json(JobRecordSchema, "Stopping"),
      ...errors(401, 404, 409),
    },
  }),
  listModels: createRoute({
    method: "get",
    path: "/v1/models",
    summary: "Trained models, newest first",
    responses: { 200: json(ModelListSchema, "The registry"), ...errors(401) },
  }),
  getModel: createRoute({
    method: "get",
    path: "/v1/models/{id}",
    summary: "A model's metadata",
    request: { params: ModelId },
    responses: { 200: json(ModelRecordSchema, "The model"), ...errors(401, 404) },
  }),
  modelJson: createRoute({
    method: "get",
    path: "/v1/models/{id}/model.json",
    summary: "The model in tfjs layers format",
    description: 'tf.loadLayersModel("http://HOST/v1/models/ID/model.json") loads it ' +
      "(weights are fetched from the paths its manifest lists, next to it).",
    request: { params: ModelId },
    responses: {
      200: json(z.looseObject({}), "model.json"),
      ...errors(401, 404),
    },
  }),
  weights: createRoute({
    method: "get",
    path: "/v1/models/{id}/{file}",
    summary: "A weight file listed in the model's manifest",
    request: {
      params: ModelId.extend({
        file: z.string().openapi({ param: { name: "file", in: "path" }, example: "weights.bin" }),
      }),
    },
    responses: {
      200: {
        description: "The bytes",
        content: { "application/octet-stream": { schema: z.string() } },
      },
      ...errors(401, 404),
    },
  }),
  predict: createRoute({
    method: "post",
    path: "/v1/models/{id}/predict",
    summary: "Run a model",
    request: {
      params: ModelId,
      body: { content: { "application/json": { schema: PredictRequestSchema } }, required: true },
    },
    responses: {
      200: json(PredictResponseSchema, "One output row per input row"),
      ...errors(400, 401, 404, 413, 415),
    },
  }),
  deleteModel: createRoute({
    method: "delete",
    path: "/v1/models/{id}",
    summary: "Remove a model",
    request: { params: ModelId },
    responses: { 204: { description: "Removed" }, ...errors(401, 404) },
  }),
};

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, received ${value}`);
  }
  return value;
}

function sse(e: SequencedEvent): string {
  const { type, ...data } = e.event;
  return `id: ${e.seq}\nevent: ${type}\ndata: ${
    JSON.stringify(type === "end" ? e.event.job : data)
  }\n\n`;
}

/**
 * Creates the dtrain HTTP service: opens (or creates) the KV store and the
 * data folder, marks jobs of dead servers `interrupted`, and returns the Hono
 * app, with the dashboard (a web page to start, watch and try jobs) at `/`.
 * Serve it with `Deno.serve(app.fetch)` (see `serve.ts`), test it with
 * `app.request()`, and `close()` it on shutdown. Needs `--unstable-kv`.
 *
 * Throws `RangeError`/`TypeError` for bad options.
 *
 * @example
 * ```ts
 * import { createApp } from "./app.ts";
 * const dataDir = await Deno.makeTempDir();
 * const app = await createApp({ dataDir, token: "secret" });
 * const health = await app.request("/healthz");
 * console.assert(health.status === 200);
 * const denied = await app.request("/v1/jobs");
 * console.assert(denied.status === 401);
 * const jobs = await app.request("/v1/jobs", { headers: { Authorization: "Bearer secret" } });
 * console.assert((await jobs.json()).jobs.length === 0);
 * await app.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function createApp(options: AppOptions = {}): Promise<DtrainApp> {
  const dataDir = options.dataDir ?? "./.dtrain";
  if (typeof dataDir !== "string" || dataDir === "") {
    throw new TypeError(`dataDir must be a non-empty string, received ${JSON.stringify(dataDir)}`);
  }
  const maxBodyBytes = positive(options.maxBodyBytes ?? 32 * 1024 * 1024, "maxBodyBytes");
  const cancelWaitMs = options.cancelWaitMs ?? 10_000;
  if (!Number.isInteger(cancelWaitMs) || cancelWaitMs < 0) {
    throw new RangeError(`cancelWaitMs must be an integer >= 0, received ${cancelWaitMs}`);
  }
  const predictBackend = options.predictBackend ?? "cpu";
  if (predictBackend !== "cpu" && predictBackend !== "wasm") {
    throw new TypeError(`predictBackend must be "cpu" or "wasm", received "${predictBackend}"`);
  }
  const token = options.token ?? "";

  await Deno.mkdir(dataDir, { recursive: true });
  if (predictBackend === "cpu") {
    await setBackendOrThrow("cpu");
  } else {
    const { wasmBackend } = await import("../../backends/mod.ts");
    await wasmBackend.activate({ threads: 1 });
  }
  const external = typeof options.kv === "object";
  const kv = external ? options.kv as Deno.Kv : await Deno.openKv(
    (options.kv as string | undefined) ?? join(dataDir, "dtrain.kv"),
  );
  const store = new Store(kv, !external);
  let models: ModelRegistry, jobs: JobManager;
  try {
    models = new ModelRegistry({
      dir: join(dataDir, "models"),
      store,
      cacheSize: options.modelCacheSize,
    });
    jobs = new JobManager({
      store,
      registry: models,
      owner: `srv_${crypto.randomUUID().slice(0, 8)}`,
      maxConcurrentJobs: options.maxConcurrentJobs,
      maxQueuedJobs: options.maxQueuedJobs,
      defaultReplicas: options.defaultReplicas,
      maxReplicas: options.maxReplicas,
      leaseMs: options.leaseMs,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
    });
    await jobs.start();
  } catch (e) {
    store.close();
    throw e;
  }

  let closing = false;
  const streams = new Set<() => void>();
  let backendReport: Promise<BackendReport> | undefined;

  const app = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) {
        const input = (result as unknown as { data: unknown }).data;
        throw validationError(result.error.issues, input, result.target);
      }
    },
  });
  app.onError((err, c) => {
    const e = toHttpError(err);
    if (e.status === 500) console.error(`dtrain server: ${c.req.method} ${c.req.path}:`, err);
    return c.json(e.body(), e.status, e.headers);
  });
  app.notFound((c) =>
    c.json({
      error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` },
    }, 404)
  );
  if ((options.corsOrigins ?? []).length > 0) {
    const origins = options.corsOrigins!;
    app.use("*", cors({ origin: origins.includes("*") ? "*" : origins }));
  }
  app.use("*", async (c, next) => {
    if (closing && c.req.path !== "/healthz") {
      throw new HttpError(503, "shutting_down", "The server is shutting down");
    }
    await next();
  });
  if (token !== "") app.use("*", bearerAuth(token, OPEN_PATHS));
  app.use(
    "*",
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new HttpError(
          413,
          "payload_too_large",
          `Request body too large: expected at most ${maxBodyBytes} bytes`,
          { details: { maxBodyBytes } },
        );
      },
    }),
  );

  app.openapi(routes.health, (c) => c.json({ status: "ok" as const }, 200));

  // The dashboard (GET / and /assets/*): static files, outside the OpenAPI document.
  for (const path of DASHBOARD_PATHS) {
    app.get(path, (c) => dashboardResponse(path, c.req.header("if-none-match")));
  }

  app.openapi(routes.backends, async (c) => {
    backendReport ??= probeBackends();
    return c.json(await backendReport, 200);
  });

  app.openapi(routes.submit, async (c) => {
    const record = await jobs.submit(c.req.valid("json"));
    c.header("Location", `/v1/jobs/${record.id}`);
    return c.json({ id: record.id, status: record.status }, 202);
  });

  app.openapi(routes.listJobs, async (c) => {
    return c.json(await jobs.list(c.req.valid("query")), 200);
  });

  app.openapi(routes.getJob, async (c) => {
    return c.json(await jobs.get(c.req.valid("param").id), 200);
  });

  app.openapi(routes.events, async (c) => {
    const { id } = c.req.valid("param");
    const first = await jobs.get(id);
    const after = Number.parseInt(c.req.header("last-event-id") ?? "0", 10) || 0;
    const encoder = new TextEncoder();
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let done = false;
        let poll: ReturnType<typeof setTimeout> | undefined;
        const ping = setInterval(() => controller.enqueue(encoder.encode(": ping\n\n")), 15_000);
        stop = () => {
          if (done) return;
          done = true;
          clearInterval(ping);
          clearTimeout(poll);
          sub?.unsubscribe();
          streams.delete(stop);
          try {
            controller.close();
          } catch { /* already cancelled by the client */ }
        };
        streams.add(stop);
        const send = (e: SequencedEvent) => {
          if (done) return;
          controller.enqueue(encoder.encode(sse(e)));
          if (e.event.type === "end") stop();
        };
        const sub = jobs.subscribe(id, after, send);
        if (sub !== null) {
          for (const e of sub.replay) send(e);
          if (sub.ended) stop();
          return;
        }
        // A job this server has no events of (finished before a restart, or
        // running on another server of a shared KV): follow its record.
        let seq = 0;
        let last: JobRecord = first;
        const emit = (job: JobRecord) => {
          if (TERMINAL_STATUSES.includes(job.status)) {
            send({ seq: ++seq, event: { type: "end", job } });
          } else if (seq === 0 || job.status !== last.status) {
            send({ seq: ++seq, event: { type: "status", status: job.status } });
          }
          last = job;
        };
        const follow = async () => {
          try {
            emit(await jobs.get(id));
          } catch {
            stop();
          }
          if (!done) poll = setTimeout(follow, 1000);
        };
        emit(first);
        if (!done) poll = setTimeout(follow, 1000);
      },
      cancel() {
        stop();
      },
    });
    return new Response(body, {
      status: 200,
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  });

  app.openapi(routes.cancel, async (c) => {
    const record = await jobs.cancel(c.req.valid("param").id, cancelWaitMs);
    if (TERMINAL_STATUSES.includes(record.status)) return c.json(record, 200);
    return c.json(record, 202);
  });

  app.openapi(routes.listModels, async (c) => {
    return c.json({ models: await models.list() }, 200);
  });

  app.openapi(routes.getModel, async (c) => {
    return c.json(await models.get(c.req.valid("param").id), 200);
  });

  app.openapi(routes.modelJson, async (c) => {
    const bytes = await models.file(c.req.valid("param").id, "model.json");
    return c.json(JSON.parse(new TextDecoder().decode(bytes)) as Record<string, JSONValue>, 200);
  });

  app.openapi(routes.weights, async (c) => {
    const { id, file } = c.req.valid("param");
    const bytes = await models.file(id, file);
    return new Response(bytes, {
      headers: {
        "content-type": "application/octet-stream",
        "cache-control": "private, max-age=31536000, immutable",
      },
    });
  });

  app.openapi(routes.predict, async (c) => {
    const { id } = c.req.valid("param");
    const outputs = await models.predict(id, c.req.valid("json").inputs);
    return c.json({ outputs }, 200);
  });

  app.openapi(routes.deleteModel, async (c) => {
    await models.delete(c.req.valid("param").id);
    return c.body(null, 204);
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
  });
  const docConfig = {
    openapi: "3.0.0",
    info: {
      title: "dtrain",
      version: VERSION,
      description: "Data-parallel TensorFlow.js training as a service: submit jobs, follow " +
        'them, serve the trained models. Errors are {"error": {"code", "message", ' +
        '"details"?}}. Send "Authorization: Bearer <token>" when the server has a token.',
    },
    security: [{ bearerAuth: [] }],
  };
  app.doc("/openapi.json", docConfig);
  app.get("/docs", (c) => c.html(renderDocs(app.getOpenAPIDocument(docConfig) as never)));

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      try {
        await jobs.close();
      } finally {
        for (const stop of [...streams]) stop();
        models.close();
        store.close();
      }
    })();

  return Object.assign(app, {
    jobs,
    models,
    dataDir,
    close,
    [Symbol.asyncDispose]: close,
  }) as DtrainApp;
}
