/**
 * `createApp()`: the dtrain HTTP service as a Hono app, ready for
 * `Deno.serve(app.fetch)` or, in tests, `app.request(...)`. This file only
 * wires the rooms together; each concept has its own file:
 *
 * - `_routes.ts`: the route table (the OpenAPI document is generated from it);
 * - `_middleware.ts`: CORS, shutdown gate, auth (`_auth.ts`), body limit,
 *   validation hook, error and not-found handlers;
 * - `_errors.ts`: the only place where errors become HTTP statuses;
 * - `_job_handlers.ts`, `_event_stream.ts` (SSE), `_model_handlers.ts`,
 *   `_dataset_handlers.ts`, `_service_handlers.ts` (health, options,
 *   backends, dashboard, docs);
 * - `jobs.ts` (the job queue), `registry.ts` (models), `datasets.ts`
 *   (uploaded datasets), `store.ts` (the KV).
 *
 * Who owns what: `createApp` owns the store, the registry and the job
 * manager, and `close()` closes them in that reverse order.
 *
 * @module
 */
import { join } from "node:path";
import { OpenAPIHono } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { setBackendOrThrow } from "../../backends/cpu.ts";
import { tf } from "../../mod.ts";
import { bearerAuth } from "./_auth.ts";
import { DATASET_UPLOAD_ROUTE, datasetHandlers } from "./_dataset_handlers.ts";
import { workerHandlers } from "./_worker_handlers.ts";
import { eventStreamHandler } from "./_event_stream.ts";
import { jobHandlers } from "./_job_handlers.ts";
import { bodyLimitOf, notFound, onError, shutdownGate, validationHook } from "./_middleware.ts";
import { modelHandlers } from "./_model_handlers.ts";
import { PredictPool } from "./_predict_pool.ts";
import { dashboardHandlers, docHandlers, serviceHandlers } from "./_service_handlers.ts";
import { DASHBOARD_PATHS } from "./dashboard/_assets.ts";
import { DatasetLibrary } from "./datasets.ts";
import { JobManager } from "./jobs.ts";
import { ModelRegistry } from "./registry.ts";
import { Store } from "./store.ts";

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
   * Largest dataset upload (`POST /v1/datasets`, streamed to disk; 413
   * above). That route is exempt from `maxBodyBytes`.
   * @default 536870912 (512 MiB)
   */
  maxDatasetBytes?: number;
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
   * Backend predict runs on: that of the inference Workers (`wasm`: one
   * thread each, on the host's BLAS when one is found, the fastest), or with
   * `predictWorkers: 0` of this process's tfjs, activated by `createApp`
   * (with Workers, this process stays on `cpu`; replicas choose their own
   * backend per job). `cpu` gives the very numbers of tfjs' CPU backend;
   * `wasm` agrees with them to about 1e-6.
   * @default "wasm"
   */
  predictBackend?: "cpu" | "wasm";
  /**
   * Inference Workers that run predict, apart from training (a running job
   * does not stall them), started on the first predict request; 0: predict
   * on this process's tfjs, between the main thread's other work. One is the
   * most a 2-core host gains from (measured: a second one competes with the
   * main thread, which parses the requests, for the cores).
   * @default 1
   */
  predictWorkers?: number;
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

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, received ${value}`);
  }
  return value;
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
 * import assert from "node:assert/strict";
 * import { createApp } from "./app.ts";
 * const dataDir = await Deno.makeTempDir();
 * const app = await createApp({ dataDir, token: "secret" });
 * const health = await app.request("/healthz");
 * assert.ok(health.status === 200);
 * const denied = await app.request("/v1/jobs");
 * assert.ok(denied.status === 401);
 * const jobs = await app.request("/v1/jobs", { headers: { Authorization: "Bearer secret" } });
 * assert.ok((await jobs.json()).jobs.length === 0);
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
  const maxDatasetBytes = positive(options.maxDatasetBytes ?? 512 * 1024 * 1024, "maxDatasetBytes");
  const cancelWaitMs = options.cancelWaitMs ?? 10_000;
  if (!Number.isInteger(cancelWaitMs) || cancelWaitMs < 0) {
    throw new RangeError(`cancelWaitMs must be an integer >= 0, received ${cancelWaitMs}`);
  }
  const predictBackend = options.predictBackend ?? "wasm";
  if (predictBackend !== "cpu" && predictBackend !== "wasm") {
    throw new TypeError(`predictBackend must be "cpu" or "wasm", received "${predictBackend}"`);
  }
  const predictWorkers = options.predictWorkers ?? 1;
  if (!Number.isInteger(predictWorkers) || predictWorkers < 0) {
    throw new RangeError(`predictWorkers must be an integer >= 0, received ${predictWorkers}`);
  }
  const pool = predictWorkers === 0 ? undefined : new PredictPool({
    workers: predictWorkers,
    backend: predictBackend,
    cacheSize: options.modelCacheSize,
  });
  const token = options.token ?? "";

  await Deno.mkdir(dataDir, { recursive: true });
  if (predictBackend === "cpu" || pool !== undefined) {
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
  const datasets = new DatasetLibrary({
    dir: join(dataDir, "datasets"),
    store,
    maxBytes: maxDatasetBytes,
  });
  await datasets.sweepIncoming();
  let models: ModelRegistry, jobs: JobManager;
  try {
    models = new ModelRegistry({
      dir: join(dataDir, "models"),
      store,
      cacheSize: options.modelCacheSize,
      pool,
    });
    jobs = new JobManager({
      store,
      registry: models,
      owner: `srv_${crypto.randomUUID().slice(0, 8)}`,
      jobsDir: join(dataDir, "jobs"),
      datasets,
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

  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);
  if ((options.corsOrigins ?? []).length > 0) {
    const origins = options.corsOrigins!;
    app.use("*", cors({ origin: origins.includes("*") ? "*" : origins }));
  }
  app.use("*", shutdownGate(() => closing));
  app.use("*", bearerAuth(token, OPEN_PATHS, (job, given) => jobs.acceptsWorkerToken(job, given)));
  app.use("*", bodyLimitOf(maxBodyBytes, { except: [DATASET_UPLOAD_ROUTE] }));
  // Jobs submitted in a request find their uploaded datasets in `datasets`.

  serviceHandlers(app, {
    // The inference Workers' backend once one started, else what they will run.
    predict: () =>
      pool === undefined ? tf.getBackend() : pool.stats.backend?.name ?? predictBackend,
  });
  dashboardHandlers(app);
  jobHandlers(app, { jobs, cancelWaitMs });
  workerHandlers(app, { jobs });
  eventStreamHandler(app, { jobs, streams });
  modelHandlers(app, { models });
  datasetHandlers(app, { datasets, jobs });
  docHandlers(app);

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      try {
        await jobs.close();
      } finally {
        for (const stop of [...streams]) stop();
        models.close();
        await pool?.close();
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
