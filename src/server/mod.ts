/**
 * The dtrain HTTP service: submit training jobs, follow them live (SSE),
 * and serve the trained models (tfjs layers files and predictions), with
 * OpenAPI docs generated from the schemas that validate the requests. A
 * separate entry point (`@dtrain/dtrain/server`) so that the library itself
 * never loads Hono. Run it with `deno task serve`; needs `--unstable-kv`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createApp } from "@dtrain/dtrain/server";
 * const dataDir = await Deno.makeTempDir();
 * const app = await createApp({ dataDir });
 * const res = await app.request("/v1/jobs", {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({
 *     model: { preset: "mlp", hidden: [4] },
 *     compile: { optimizer: "sgd", loss: "meanSquaredError" },
 *     data: { x: [[0, 1], [1, 0], [1, 1], [0, 0]], y: [[1], [1], [2], [0]] },
 *     fit: { epochs: 1, batchSize: 4 },
 *     strategy: { replicas: 1, backend: "cpu" },
 *   }),
 * });
 * const { id } = await res.json();
 * await app.jobs.wait(id);
 * const job = await (await app.request(`/v1/jobs/${id}`)).json();
 * assert.ok(job.status === "succeeded" && job.modelId !== null);
 * await app.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 * @module
 */
export { type AppOptions, createApp, type DtrainApp } from "./app.ts";
export { JobManager, type JobManagerOptions } from "./jobs.ts";
export type { JobRemote } from "./_job_runner.ts";
export type { JobEvent, SequencedEvent, Subscription } from "./job_events.ts";
export {
  ModelRegistry,
  type ModelRegistryOptions,
  type ModelSignature,
  type PredictPort,
} from "./registry.ts";
export { type JobPage, Store, type StoredHistory } from "./store.ts";
export {
  DatasetLibrary,
  type DatasetLibraryOptions,
  type DatasetUpload,
  DatasetUploadError,
} from "./datasets.ts";
export type {
  ClassWeightMap,
  CnnPreset,
  CompileRequest,
  DatasetData,
  DatasetFormat,
  DatasetRecord,
  FitRequest,
  InlineData,
  JobBlas,
  JobHistory,
  JobProgress,
  JobRecord,
  JobRequest,
  JobStatus,
  LossName,
  MetricName,
  MirroredStrategyRequest,
  MlpPreset,
  ModelPort,
  ModelRecord,
  ModelTopology,
  OptimizerName,
  StrategyRequest,
  UploadData,
  WorkerStrategyRequest,
} from "./types.ts";
