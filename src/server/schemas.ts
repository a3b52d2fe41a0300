/**
 * The zod schemas of the HTTP API. The same schemas validate requests (a 400
 * names the field) and generate the OpenAPI document served at
 * `/openapi.json`, so the two cannot drift apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobRequestSchema } from "./schemas.ts";
 * const job = JobRequestSchema.parse({
 *   model: { preset: "mlp", hidden: [8] },
 *   compile: { loss: "meanSquaredError" },
 *   data: { x: [[0, 1], [1, 0]], y: [[1], [1]] },
 * });
 * assert.ok(job.fit.epochs === 1 && job.strategy.kind === "mirrored");
 * ```
 * @module
 */
import { z } from "@hono/zod-openapi";
import { STRATEGY_KINDS, type StrategyKind } from "../../mod.ts";
import type {
  DatasetFormat,
  DatasetRecord,
  JobRecord,
  JobRequest,
  JobStatus,
  LossName,
  MetricName,
  ModelRecord,
  OptimizerName,
} from "./types.ts";

/** Optimizer names accepted in `compile.optimizer`. */
export const OPTIMIZERS = [
  "sgd",
  "adam",
  "adamax",
  "adagrad",
  "adadelta",
  "rmsprop",
] as const satisfies readonly OptimizerName[];

/** Loss names accepted in `compile.loss` (tfjs-layers names). */
export const LOSSES = [
  "meanSquaredError",
  "meanAbsoluteError",
  "meanAbsolutePercentageError",
  "meanSquaredLogarithmicError",
  "squaredHinge",
  "hinge",
  "categoricalHinge",
  "logcosh",
  "categoricalCrossentropy",
  "sparseCategoricalCrossentropy",
  "binaryCrossentropy",
  "kullbackLeiblerDivergence",
  "poisson",
  "cosineProximity",
] as const satisfies readonly LossName[];

/** Metric names accepted in `compile.metrics` (tfjs-layers names). */
export const METRICS = [
  "accuracy",
  "binaryAccuracy",
  "categoricalAccuracy",
  "sparseCategoricalAccuracy",
  "precision",
  "recall",
  "meanSquaredError",
  "meanAbsoluteError",
  "meanAbsolutePercentageError",
  "mse",
  "mae",
  "mape",
] as const satisfies readonly MetricName[];

/** Datasets a job can train on by name. */
export const DATASETS = ["mnist", "fashion-mnist"] as const;

/** Job states. `interrupted`: the server stopped or died while the job was queued or running. */
export const JOB_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "interrupted",
] as const satisfies readonly JobStatus[];

/** States a job never leaves. */
export const TERMINAL_STATUSES: readonly JobStatus[] = [
  "succeeded",
  "failed",
  "cancelled",
  "interrupted",
];

/** Every error response: `{ "error": { "code", "message", "details"? } }`. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string().openapi({
      example: "Invalid request body: fit.epochs: Too small: expected number to be >=1, received 0",
    }),
    details: z.unknown().optional(),
  }),
}).openapi("Error");

const Rows = z.array(z.array(z.number()));

/** Rows of the model's one input (output), or a dict of rows by layer name. */
function rowsOrDict(side: "input" | "output", example: number[][]) {
  return z.union([
    Rows.min(1),
    z.record(z.string().min(1).max(256), Rows.min(1)),
  ]).openapi({
    description: `One row per sample: the sample's values flattened in row-major order ` +
      `(reshaped to the model's ${side} shape); for a topology model with several ${side}s, ` +
      `a dict of such rows by ${side} layer name (every ${side} once, the same number of ` +
      "rows in each)",
    example,
  });
}

const LossNameSchema = z.enum(LOSSES);

/** `fit.classWeight` for one output: class index -> weight. */
const ClassWeightMapSchema = z.record(z.string(), z.number().min(0)).openapi({
  description: "Weight of each class index (keys 0, 1, ...) of one output's labels",
  example: { "0": 1, "1": 4 },
});

/** `model`: a built-in preset. */
export const MlpPresetSchema = z.strictObject({
  preset: z.literal("mlp"),
  hidden: z.array(z.int().min(1).max(65536)).max(16).default([128]).openapi({
    description: "Units of each hidden Dense layer",
    example: [256, 128],
  }),
  activation: z.enum(["relu", "elu", "selu", "tanh", "sigmoid", "linear"]).default("relu"),
  outputActivation: z.enum(["softmax", "sigmoid", "linear"]).optional().openapi({
    description: "Default: softmax for categorical losses, sigmoid for binaryCrossentropy, " +
      "linear otherwise",
  }),
  seed: z.int().optional().openapi({ description: "Seed of the weight initialisers" }),
}).openapi("MlpPreset", {
  description: "A multilayer perceptron sized from the data: input width from x (or 784 for " +
    "the datasets), output width from y (10 for the datasets)",
});

/** `model`: the CLI's small CNN for 28x28x1 images. */
export const CnnPresetSchema = z.strictObject({
  preset: z.literal("cnn"),
  filters: z.array(z.int().min(1).max(1024)).length(2).default([32, 64]).openapi({
    description: "Filters of the two conv layers",
  }),
  dense: z.int().min(1).max(65536).default(128),
  seed: z.int().optional().openapi({ description: "Seed of the weight initialisers" }),
}).openapi("CnnPreset", {
  description: "Two 3x3 conv + max-pool blocks, a dense layer and a softmax output over the " +
    "classes of y; input 28x28x1 (rows of 784 values)",
});

/** `model`: a tfjs layers topology, as `model.toJSON(null, false)` returns it. */
export const ModelTopologySchema = z.looseObject({
  class_name: z.string().min(1).openapi({ example: "Sequential" }),
  config: z.looseObject({}),
}).openapi("ModelTopology", {
  description: "The JSON of model.toJSON(null, false) (tfjs layers format); a model with " +
    "several inputs or outputs takes data.x and data.y as dicts by layer name",
});

const MetricSchema = z.enum(METRICS);
/** The metrics of one output: a name or a list of names. */
const OutputMetricsSchema = z.union([MetricSchema, z.array(MetricSchema).max(8)]);

/** How to compile the model. */
export const CompileSchema = z.strictObject({
  optimizer: z.union([
    z.enum(OPTIMIZERS),
    z.strictObject({
      name: z.enum(OPTIMIZERS),
      learningRate: z.number().positive().max(10),
    }),
  ]).default("adam"),
  loss: z.union([
    LossNameSchema,
    z.array(LossNameSchema).min(1).max(1024),
    z.record(z.string(), LossNameSchema),
  ]).openapi({
    description: "A tfjs loss name (every output), or for a topology model with several " +
      "outputs one per output: a list in model.outputs order or a dict by output name",
    example: "categoricalCrossentropy",
  }),
  metrics: z.union([
    z.array(OutputMetricsSchema).max(1024),
    z.record(z.string(), OutputMetricsSchema),
  ]).default([]).openapi({
    description: "tfjs metric names (at most 8) for every output; or, for a model with " +
      "several outputs, one list per output: a list of lists in model.outputs order, or a " +
      "dict by output name (an output it leaves out has none). History keys are tfjs' " +
      "(out_a_mae, out_b_acc, ...)",
    example: ["accuracy"],
  }),
}).openapi("Compile");

/** `data`: samples sent inline. */
export const InlineDataSchema = z.strictObject({
  x: rowsOrDict("input", [[0, 1], [1, 0]]),
  y: rowsOrDict("output", [[1], [1]]),
}).openapi("InlineData", {
  description: "Samples sent inline; targets flattened (e.g. one-hot), class indices for " +
    "sparseCategoricalCrossentropy",
});

/** `data`: a dataset installed on the server. */
export const DatasetDataSchema = z.strictObject({
  dataset: z.enum(DATASETS),
  limit: z.int().min(1).max(60000).optional().openapi({
    description: "Train on the first `limit` examples (mnist: at most 10000)",
  }),
}).openapi("DatasetData", {
  description: "28x28 images flattened to 784 values in [0, 1]; labels one-hot over 10 classes",
});

/** `data`: a dataset uploaded with `POST /v1/datasets`, by id. */
export const UploadDataSchema = z.strictObject({
  upload: z.string().min(1).max(64).openapi({
    description: "The id POST /v1/datasets answered; its samples must fit the model",
    example: "ds_0mb1x2y3zabcdefgh",
  }),
}).openapi("UploadData", {
  description: "Samples uploaded once and read from the server's disk when the job runs",
});

/** Options of `strategy.fit`. */
export const FitSchema = z.strictObject({
  epochs: z.int().min(1).max(10000).default(1),
  batchSize: z.int().min(1).max(1 << 20).default(32).openapi({
    description: "The global batch, split across replicas",
  }),
  validationSplit: z.number().min(0).lt(1).default(0),
  shuffle: z.boolean().default(true),
  seed: z.int().optional(),
  checkpoint: z.boolean().optional().openapi({
    description: "Checkpoint every epoch into the data dir, so that the job resumes after a " +
      "server restart or crash (on a server started on the same data dir); default true",
  }),
  lossWeights: z.union([
    z.array(z.number()).min(1).max(1024),
    z.record(z.string(), z.number()),
  ]).optional().openapi({
    description: "Weight of each output's loss in the total loss: one number per output in " +
      "model.outputs order, or a dict by output name (a missing output weighs 1); the " +
      "<output>_loss logs stay unweighted",
    example: { out_a: 1, out_b: 0.5 },
  }),
  classWeight: z.union([
    ClassWeightMapSchema,
    z.array(ClassWeightMapSchema.nullable()).min(1).max(1024),
    z.record(z.string(), ClassWeightMapSchema),
  ]).optional().openapi({
    description: "As model.fit's classWeight: one map of class index -> weight (one output), " +
      "a list with one per output (null: not weighted) or a dict of maps by output name; " +
      "every class in the labels needs a weight",
  }),
}).prefault({}).openapi("Fit");

/** Backends a job's Workers may ask for in `strategy.backend` (`auto`: the server picks). */
export const STRATEGY_BACKENDS = ["auto", "cpu", "wasm", "webgpu"] as const;

const StrategyBackendSchema = z.enum(STRATEGY_BACKENDS).default("auto");

const MirroredStrategySchema = z.strictObject({
  kind: z.literal("mirrored").openapi({ description: STRATEGY_KINDS.mirrored.description }),
  replicas: z.int().min(1).max(256).optional().openapi({
    description: "Replica Workers (default: the server's defaultReplicas)",
  }),
  backend: StrategyBackendSchema,
}).openapi("MirroredStrategy");

const WorkerStrategySchema = z.strictObject({
  kind: z.literal("worker").openapi({ description: STRATEGY_KINDS.worker.description }),
  workers: z.int().min(0).max(256).optional().openapi({
    description: "Gradient Workers of the server (default: the server's defaultReplicas; " +
      "0 with remote: remote workers only)",
  }),
  staleness: z.int().min(0).max(1 << 16).optional(),
  stalePolicy: z.enum(["drop", "scale"]).optional(),
  backend: StrategyBackendSchema,
  remote: z.boolean().optional().openapi({
    description: "Remote edge workers may join (dtrain worker --server URL --job ID); " +
      "the answer carries a workerToken for them",
  }),
  remoteWaitMs: z.int().min(0).max(24 * 3600 * 1000).optional().openapi({
    description: "With remote: how long the job waits with no worker attached before it fails " +
      "(default 600000)",
  }),
}).refine((s) => s.workers !== 0 || s.remote === true, {
  message: "workers may be 0 only with remote: true",
  path: ["workers"],
}).openapi("WorkerStrategy");

/**
 * Which strategy trains the job, by `kind` (default `mirrored`): the options
 * of that strategy's class.
 */
export const StrategySchema = z.preprocess(
  (value) =>
    typeof value === "object" && value !== null && !("kind" in value)
      ? { ...value, kind: "mirrored" }
      : value,
  z.discriminatedUnion("kind", [MirroredStrategySchema, WorkerStrategySchema]),
).prefault({}).openapi("Strategy");

/** The built-in model presets (`model.preset`), from their schemas. */
export const MODEL_PRESETS = [
  MlpPresetSchema.shape.preset.value,
  CnnPresetSchema.shape.preset.value,
] as const;

/** `POST /v1/jobs` body. */
export const JobRequestSchema = z.strictObject({
  name: z.string().max(200).optional(),
  model: z.union([
    z.discriminatedUnion("preset", [MlpPresetSchema, CnnPresetSchema]),
    ModelTopologySchema,
  ]),
  compile: CompileSchema,
  data: z.union([InlineDataSchema, DatasetDataSchema, UploadDataSchema]),
  fit: FitSchema,
  strategy: StrategySchema,
}).openapi("JobRequest") satisfies z.ZodType<JobRequest>;

/** Where a job is: epoch `epoch` of `epochs` (1-based), `step` of `steps` steps done in it. */
export const ProgressSchema = z.object({
  epoch: z.int(),
  epochs: z.int(),
  step: z.int(),
  steps: z.int(),
}).openapi("Progress");

/** Per-epoch logs so far, shaped like tfjs' History. */
export const HistorySchema = z.object({
  epoch: z.array(z.int()),
  history: z.record(z.string(), z.array(z.number())),
}).openapi("History");

/** A short description of what a job trains (the inline data is not kept). */
export const JobSpecSchema = z.object({
  model: z.string().openapi({ example: "mlp [256, 128]" }),
  data: z.string().openapi({ example: "inline: 1000 samples" }),
  compile: CompileSchema,
  fit: FitSchema,
  strategy: StrategySchema,
}).openapi("JobSpec");

/** A training job. */
export const JobRecordSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  status: z.enum(JOB_STATUSES),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  progress: ProgressSchema,
  history: HistorySchema.optional().openapi({
    description: "Present in GET /v1/jobs/{id}, omitted from lists",
  }),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  modelId: z.string().nullable(),
  spec: JobSpecSchema,
  backend: z.string().nullable().openapi({ description: "Backend the replicas ran" }),
  blas: z.object({
    used: z.boolean(),
    reason: z.string(),
    library: z.string().optional(),
    coreName: z.string().optional(),
    gflops: z.number().optional(),
  }).nullable().optional().openapi({
    description: "What the replicas' host-BLAS path chose (WASM only), once known",
  }),
  owner: z.string().openapi({ description: "Server instance that runs the job" }),
}).openapi("Job") satisfies z.ZodType<JobRecord>;

/** `202` answer of `POST /v1/jobs`. */
export const JobAcceptedSchema = z.object({
  id: z.string(),
  status: z.enum(JOB_STATUSES),
  workerToken: z.string().optional().openapi({
    description: "With strategy.remote: the token remote workers of this job (and nothing " +
      "else) authenticate with",
  }),
}).openapi("JobAccepted");

/** `GET /v1/jobs` answer. */
export const JobListSchema = z.object({
  jobs: z.array(JobRecordSchema),
  cursor: z.string().nullable().openapi({ description: "Pass as ?cursor= for the next page" }),
}).openapi("JobList");

/** `GET /v1/jobs` query. */
export const ListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().optional(),
  status: z.enum(JOB_STATUSES).optional(),
});

/** One input or output of a trained model. */
const ModelPortSchema = z.object({
  name: z.string().openapi({ example: "dense_Dense1_input" }),
  shape: z.array(z.int().nullable()).openapi({ example: [null, 784] }),
}).openapi("ModelPort");

/** A trained model in the registry. */
export const ModelRecordSchema = z.object({
  id: z.string(),
  jobId: z.string().nullable(),
  createdAt: z.string(),
  inputShape: z.array(z.int().nullable()).openapi({
    description: "The (first) input's shape",
    example: [null, 784],
  }),
  outputShape: z.array(z.int().nullable()).openapi({
    description: "The (first) output's shape",
    example: [null, 10],
  }),
  inputs: z.array(ModelPortSchema).optional().openapi({
    description: "Every input by layer name, in model order",
  }),
  outputs: z.array(ModelPortSchema).optional().openapi({
    description: "Every output by layer name, in model order",
  }),
  params: z.int(),
  loss: z.string(),
  metrics: z.record(z.string(), z.number()).openapi({
    description: "Logs of the last epoch",
    example: { loss: 0.31, acc: 0.91 },
  }),
  bytes: z.int().openapi({ description: "Size of the weight files" }),
  modelUrl: z.string().openapi({ example: "/v1/models/mdl_.../model.json" }),
}).openapi("Model") satisfies z.ZodType<ModelRecord>;

/** `GET /v1/models` answer. */
export const ModelListSchema = z.object({ models: z.array(ModelRecordSchema) }).openapi(
  "ModelList",
);

/** How a dataset is uploaded (`?format=`; by default from the Content-Type). */
export const DATASET_FORMATS = ["f32", "csv", "idx"] as const satisfies readonly DatasetFormat[];

/** An uploaded dataset's metadata. */
export const DatasetRecordSchema = z.object({
  id: z.string().openapi({ example: "ds_0mb1x2y3zabcdefgh" }),
  name: z.string().nullable(),
  format: z.enum(DATASET_FORMATS),
  count: z.int().openapi({ description: "Samples" }),
  xShape: z.array(z.int()).openapi({ description: "Per-sample shape of x", example: [784] }),
  yShape: z.array(z.int()).openapi({ description: "Per-sample shape of y", example: [10] }),
  bytes: z.int().openapi({ description: "Size of the stored float32 file" }),
  classes: z.array(z.number()).nullable().openapi({
    description: "csv and idx: the label value each one-hot column of y stands for",
    example: [0, 1, 2],
  }),
  createdAt: z.string(),
}).openapi("Dataset") satisfies z.ZodType<DatasetRecord>;

/** `GET /v1/datasets` answer. */
export const DatasetListSchema = z.object({ datasets: z.array(DatasetRecordSchema) }).openapi(
  "DatasetList",
);

/** `POST /v1/datasets` query: the format and how to read it. */
export const DatasetUploadQuerySchema = z.strictObject({
  format: z.enum(DATASET_FORMATS).optional().openapi({
    description: "f32, csv or idx; by default from the Content-Type (application/octet-stream, " +
      "text/csv, multipart/form-data)",
  }),
  label: z.string().min(1).max(200).optional().openapi({
    description: "csv: the label column, by header name or zero-based index (required)",
    example: "label",
  }),
  classes: z.coerce.number().int().min(1).max(65536).optional().openapi({
    description: "csv and idx: one-hot over classes 0..classes-1 (labels must be such " +
      "integers); default: over the distinct label values, in ascending order",
  }),
  header: z.enum(["true", "false"]).optional().openapi({
    description: "csv: whether the first line holds column names (default true)",
  }),
  name: z.string().max(200).optional().openapi({ description: "A label for the dataset" }),
});

/**
 * `POST /v1/models/{id}/predict` JSON body. It documents the body; the
 * handler checks it in one pass with the same rules (finite numbers, rows of
 * each input's size, the same number of rows for every input), naming the
 * first bad value (`inputs[3][7]`, `inputs.in_a[3][1]`).
 */
export const PredictRequestSchema = z.strictObject({
  inputs: z.union([
    Rows.min(1),
    z.record(z.string().min(1), Rows.min(1)),
    z.array(Rows.min(1)).min(2),
  ]).openapi({
    description: "One row per sample, flattened like a job's data.x; finite numbers only. " +
      "For a model with several inputs: a dict of such rows by input layer name (every " +
      "input once), or a list with the rows of each input in model.inputs order; every " +
      "input has the same number of rows",
    example: [[0, 1]],
  }),
}).openapi("PredictRequest");

/** `POST /v1/models/{id}/predict` answer. */
export const PredictResponseSchema = z.object({
  outputs: z.union([Rows, z.record(z.string(), Rows)]).openapi({
    description: "One flattened output row per input row; for a model with several " +
      "outputs, a dict of such rows by output layer name (model.outputNames)",
  }),
}).openapi("PredictResponse");

/** One backend in `GET /v1/backends`. */
export const BackendInfoSchema = z.object({
  name: z.enum(["webgpu", "wasm", "cpu"]),
  available: z.boolean(),
  reason: z.string(),
  software: z.boolean().optional(),
  simd: z.boolean().optional(),
  maxThreads: z.int().optional(),
  description: z.string().optional(),
  auto: z.boolean().openapi({ description: 'Whether backend "auto" picks it on this server' }),
}).openapi("Backend");

/** `GET /v1/backends` answer. */
export const BackendReportSchema = z.object({
  backends: z.array(BackendInfoSchema),
  auto: z.string().nullable(),
  override: z.string().nullable().openapi({ description: "DTRAIN_BACKEND, when set" }),
  predict: z.string().openapi({ description: "Backend that serves predict on this server" }),
}).openapi("BackendReport");

/** `GET /healthz` answer. */
export const HealthSchema = z.object({ status: z.literal("ok") }).openapi("Health");

/** One strategy kind in `GET /v1/options`. */
export const StrategyOptionSchema = z.object({
  kind: z.enum(Object.keys(STRATEGY_KINDS) as [StrategyKind, ...StrategyKind[]]),
  description: z.string(),
  countOption: z.enum(["replicas", "workers"]).openapi({
    description: "The strategy option that sets how many Workers train",
  }),
  batchScope: z.enum(["global", "perWorker"]).openapi({
    description: "fit.batchSize is the global batch or each worker's",
  }),
}).openapi("StrategyOption");

/**
 * `GET /v1/options` answer: the values a job request may name, from the
 * same constants that validate it (a form fills its choices from it).
 */
export const OptionsSchema = z.object({
  strategies: z.array(StrategyOptionSchema).openapi({ description: "strategy.kind" }),
  backends: z.array(z.enum(STRATEGY_BACKENDS)).openapi({ description: "strategy.backend" }),
  presets: z.array(z.enum(MODEL_PRESETS)).openapi({ description: "model.preset" }),
  datasets: z.array(z.enum(DATASETS)).openapi({ description: "data.dataset" }),
  optimizers: z.array(z.enum(OPTIMIZERS)).openapi({ description: "compile.optimizer" }),
  losses: z.array(z.enum(LOSSES)).openapi({ description: "compile.loss" }),
  metrics: z.array(z.enum(METRICS)).openapi({ description: "compile.metrics" }),
  classNames: z.record(z.string(), z.array(z.string())).openapi({
    description: "The class names of each named dataset, in label order",
  }),
}).openapi("Options");
