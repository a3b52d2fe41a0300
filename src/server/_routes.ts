// Private: the route table. Every route of the API as an OpenAPI definition
// (method, path, request schemas, responses), the document's metadata, and
// nothing else: the handlers (`_*_handlers.ts`, `_event_stream.ts`) attach to
// these, and `/openapi.json` is generated from them.
import { createRoute, z } from "@hono/zod-openapi";
import {
  BackendReportSchema,
  DatasetListSchema,
  DatasetRecordSchema,
  DatasetUploadQuerySchema,
  ErrorSchema,
  HealthSchema,
  JobAcceptedSchema,
  JobListSchema,
  JobRecordSchema,
  JobRequestSchema,
  ListQuerySchema,
  ModelListSchema,
  ModelRecordSchema,
  OptionsSchema,
  PredictRequestSchema,
  PredictResponseSchema,
} from "./schemas.ts";

const VERSION = "0.1.0";

/** The error responses of a route, one entry per status, all with the Error schema. */
function errors(...statuses: number[]) {
  const text: Record<number, string> = {
    400: "Invalid request (the message names the field)",
    401: "Missing or wrong bearer token",
    404: "Unknown id",
    409: "Conflict with the job's state",
    413: "Request body too large",
    406: "No answer form that Accept allows",
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
const DatasetId = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "ds_0mb1x2y3zabcdefgh" }),
});
/** An error response of `status` described for the dataset routes. */
const datasetError = (status: number, description: string) => ({
  [status]: { ...errors(status)[status]!, description },
});
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** Every route of the OpenAPI document, by handler name. */
export const ROUTES = {
  health: createRoute({
    method: "get",
    path: "/healthz",
    summary: "Liveness (no authentication)",
    security: [],
    responses: { 200: json(HealthSchema, "The server is up") },
  }),
  options: createRoute({
    method: "get",
    path: "/v1/options",
    summary: "The values a job may name: strategy kinds, backends, presets, datasets, ...",
    description: "Built from the constants that validate POST /v1/jobs, so a form that offers " +
      "these values offers exactly what the server accepts.",
    responses: { 200: json(OptionsSchema, "The choices"), ...errors(401) },
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
      "trained by the strategy its `strategy.kind` names (mirrored or worker); " +
      "the trained model lands in the registry.",
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
    description: "The body is JSON (`inputs`: one flattened row per sample), or binary: " +
      '`application/octet-stream` is the magic "DTR1", a u32 rank r (2 to 8), r u32 dims ' +
      "[rows, ...sample] whose sample dims multiply to the model's input size, then " +
      "rows x size float32 values, row-major, all little-endian; `application/x-npy` is a " +
      ".npy file of '<f4' in C order with the same shape. The answer is JSON, or the binary " +
      "form (or .npy) of the [rows, width] outputs when `Accept` asks for " +
      "`application/octet-stream` (or `application/x-npy`). A model with several inputs " +
      "takes JSON only: `inputs` as a dict of rows by input name or a list of rows per " +
      "input; one with several outputs answers JSON only, `outputs` as a dict of rows by " +
      "output name (406 when `Accept` allows only the binary or .npy form). Concurrent " +
      "requests run in batches on the server's inference Workers; 503 when a Worker died " +
      "while running the request (retry: it is replaced).",
    request: {
      params: ModelId,
      body: {
        content: {
          "application/json": { schema: PredictRequestSchema },
          "application/octet-stream": {
            schema: z.string().openapi({ format: "binary", description: "DTR1 header + float32" }),
          },
          "application/x-npy": {
            schema: z.string().openapi({ format: "binary", description: ".npy of '<f4'" }),
          },
        },
        required: true,
      },
    },
    responses: {
      200: {
        description: "One output row per input row",
        content: {
          "application/json": { schema: PredictResponseSchema },
          "application/octet-stream": {
            schema: z.string().openapi({ format: "binary", description: "DTR1 [rows, width]" }),
          },
          "application/x-npy": {
            schema: z.string().openapi({ format: "binary", description: ".npy [rows, width]" }),
          },
        },
      },
      ...errors(400, 401, 404, 406, 413, 415, 503),
    },
  }),
  uploadDataset: createRoute({
    method: "post",
    path: "/v1/datasets",
    summary: "Upload a dataset once, to train jobs on by id",
    description: "The body streams to the server's disk, checked as it arrives; its size " +
      "limit is the server's maxDatasetBytes (512 MiB by default), not maxBodyBytes. The " +
      "format is `?format=` or, by default, the Content-Type: `application/octet-stream` " +
      '(f32): the magic "DTDS", u32 version 1, u32 count n, u32 rank a of a sample of x, ' +
      "u32 rank b of a sample of y (1 to 8 each), a u32 dims of x, b u32 dims of y, then " +
      "n samples of x and n samples of y as float32, row-major, all little-endian, exactly; " +
      "`text/csv` (csv): numeric rows, `?label=` names the label column (header name or " +
      "zero-based index; `?header=false` when there is no header line), one-hot encoded " +
      "over the distinct labels or `?classes=N`; `multipart/form-data` (idx): the fields " +
      "`images` and `labels`, IDX files (gzipped or not), uint8 images scaled to [0, 1], " +
      "labels one-hot like csv. Every value must be finite. A job names the answer's id " +
      'as `"data": {"upload": id}`.',
    request: {
      query: DatasetUploadQuerySchema,
      body: {
        content: {
          "application/octet-stream": {
            schema: { type: "string", format: "binary", description: "DTDS header + float32" },
          },
          "text/csv": { schema: { type: "string", description: "numeric CSV rows" } },
          "multipart/form-data": {
            schema: {
              type: "object",
              required: ["images", "labels"],
              properties: {
                images: { type: "string", format: "binary", description: "IDX file (or .gz)" },
                labels: { type: "string", format: "binary", description: "IDX file, rank 1" },
              },
            },
          },
        },
        required: true,
      },
    },
    responses: {
      201: json(DatasetRecordSchema, "Stored"),
      ...errors(400, 401),
      ...datasetError(413, "Body over maxDatasetBytes"),
      ...datasetError(415, "Content-Type names no format and no ?format= was given"),
      ...errors(503),
    },
  }),
  listDatasets: createRoute({
    method: "get",
    path: "/v1/datasets",
    summary: "Uploaded datasets, newest first",
    responses: { 200: json(DatasetListSchema, "The datasets"), ...errors(401) },
  }),
  getDataset: createRoute({
    method: "get",
    path: "/v1/datasets/{id}",
    summary: "An uploaded dataset's metadata",
    request: { params: DatasetId },
    responses: { 200: json(DatasetRecordSchema, "The dataset"), ...errors(401, 404) },
  }),
  deleteDataset: createRoute({
    method: "delete",
    path: "/v1/datasets/{id}",
    summary: "Remove an uploaded dataset",
    description: "Refused (409) while a queued or running job trains on it.",
    request: { params: DatasetId },
    responses: {
      204: { description: "Removed" },
      ...errors(401, 404),
      ...datasetError(409, "A queued or running job trains on it"),
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

/** The OpenAPI document's metadata (served at `/openapi.json`, rendered at `/docs`). */
export const DOC_CONFIG = {
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
