/**
 * The shapes the HTTP API exchanges, as plain TypeScript types. The zod
 * schemas in `schemas.ts` validate requests against them and generate the
 * OpenAPI document; the compiler checks that the two agree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JobRequest } from "./types.ts";
 * const job: JobRequest = {
 *   model: { preset: "mlp", hidden: [8], activation: "relu" },
 *   compile: { optimizer: "adam", loss: "meanSquaredError", metrics: [] },
 *   data: { x: [[0, 1]], y: [[1]] },
 *   fit: { epochs: 1, batchSize: 1, validationSplit: 0, shuffle: true },
 *   strategy: { kind: "mirrored", backend: "cpu" },
 * };
 * assert.ok(job.fit.epochs === 1);
 * ```
 * @module
 */

/** A job state. `interrupted`: the server stopped or died while the job was queued or running. */
export type JobStatus =
  | "queued"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "interrupted";

/** Optimizer names accepted in `compile.optimizer`. */
export type OptimizerName = "sgd" | "adam" | "adamax" | "adagrad" | "adadelta" | "rmsprop";

/** Loss names accepted in `compile.loss` (tfjs-layers names). */
export type LossName =
  | "meanSquaredError"
  | "meanAbsoluteError"
  | "meanAbsolutePercentageError"
  | "meanSquaredLogarithmicError"
  | "squaredHinge"
  | "hinge"
  | "categoricalHinge"
  | "logcosh"
  | "categoricalCrossentropy"
  | "sparseCategoricalCrossentropy"
  | "binaryCrossentropy"
  | "kullbackLeiblerDivergence"
  | "poisson"
  | "cosineProximity";

/** Metric names accepted in `compile.metrics` (tfjs-layers names). */
export type MetricName =
  | "accuracy"
  | "binaryAccuracy"
  | "categoricalAccuracy"
  | "sparseCategoricalAccuracy"
  | "precision"
  | "recall"
  | "meanSquaredError"
  | "meanAbsoluteError"
  | "meanAbsolutePercentageError"
  | "mse"
  | "mae"
  | "mape";

/** `model`: a multilayer perceptron sized from the data. */
export interface MlpPreset {
  /** The preset's name. */
  preset: "mlp";
  /** Units of each hidden Dense layer. */
  hidden: number[];
  /** Activation of the hidden layers. */
  activation: "relu" | "elu" | "selu" | "tanh" | "sigmoid" | "linear";
  /** Output activation; by default from the loss. */
  outputActivation?: "softmax" | "sigmoid" | "linear";
  /** Seed of the weight initialisers. */
  seed?: number;
}

/** `model`: a small CNN for 28x28x1 images (the CLI's `cnn` preset). */
export interface CnnPreset {
  /** The preset's name. */
  preset: "cnn";
  /** Filters of the two conv layers. */
  filters: number[];
  /** Units of the dense layer. */
  dense: number;
  /** Seed of the weight initialisers. */
  seed?: number;
}

/** `model`: the JSON of `model.toJSON(null, false)`. */
export interface ModelTopology {
  /** Keras class name, e.g. `Sequential`. */
  class_name: string;
  /** The model's config. */
  config: Record<string, unknown>;
  /** Other fields of the topology. */
  [key: string]: unknown;
}

/** How to compile the model. */
export interface CompileRequest {
  /** An optimizer name, or a name and learning rate. */
  optimizer: OptimizerName | { name: OptimizerName; learningRate: number };
  /**
   * A tfjs loss name (every output), or for a model with several outputs one
   * per output: a list in `model.outputs` order or a dict by output name.
   */
  loss: LossName | LossName[] | Record<string, LossName>;
  /**
   * tfjs metric names for every output; or, for a model with several
   * outputs, one list per output: a list of lists in `model.outputs` order
   * (not mixed with names), or a dict by output name (a name or a list of
   * names each; an output it leaves out has none).
   */
  metrics: (MetricName | MetricName[])[] | Record<string, MetricName | MetricName[]>;
}

/**
 * `data`: rows sent inline, one flattened sample each: the rows of the
 * model's one input (output), or a dict of rows by input (output) layer name
 * for a model with several.
 */
export interface InlineData {
  /** Inputs, one row per sample, or a dict of them by input name. */
  x: number[][] | Record<string, number[][]>;
  /** Targets, one row per sample, or a dict of them by output name. */
  y: number[][] | Record<string, number[][]>;
}

/** `fit.classWeight` for one output: the weight of each class index (keys "0", "1", ...). */
export type ClassWeightMap = Record<string, number>;

/** `data`: a dataset installed on the server. */
export interface DatasetData {
  /** Which dataset. */
  dataset: "mnist" | "fashion-mnist";
  /** Train on the first `limit` examples. */
  limit?: number;
}

/**
 * `data`: a dataset uploaded with `POST /v1/datasets`, by id. The job's
 * stored request keeps only the id: the samples are read from the dataset's
 * folder when the job runs (and again when a restarted server resumes it).
 */
export type UploadData = Extract<JobRequest["data"], { upload: string }>;

/** How an uploaded dataset was sent: the binary float32 form, CSV, or IDX files. */
export type DatasetFormat = "f32" | "csv" | "idx";

/** An uploaded dataset (`POST /v1/datasets`): its metadata; the samples stay on disk. */
export interface DatasetRecord {
  /** The dataset id (`ds_...`), what a job's `data.upload` names. */
  id: string;
  /** The label it was uploaded with. */
  name: string | null;
  /** How it was sent. */
  format: DatasetFormat;
  /** Number of samples. */
  count: number;
  /** Per-sample shape of x (a sample is `product(xShape)` values). */
  xShape: number[];
  /** Per-sample shape of y. */
  yShape: number[];
  /** Size of the stored file (header, x and y as float32). */
  bytes: number;
  /**
   * CSV and IDX: the label value each one-hot column of y stands for (`y[i]`
   * is 1 in column `k` when the label was `classes[k]`); null for f32.
   */
  classes: number[] | null;
  /** ISO time it was uploaded. */
  createdAt: string;
}

/** Options of `strategy.fit`. */
export interface FitRequest {
  /** Epochs to train. */
  epochs: number;
  /** Global batch size. */
  batchSize: number;
  /** Fraction held out for validation. */
  validationSplit: number;
  /** Reshuffle every epoch. */
  shuffle: boolean;
  /** Seed of the shuffling. */
  seed?: number;
  /**
   * Checkpoint every epoch into the data dir, so the job resumes after a
   * restart (default true).
   */
  checkpoint?: boolean;
  /**
   * Weight of each output's loss in the total loss: one number per output in
   * `model.outputs` order, or a dict by output name (a missing one weighs 1).
   */
  lossWeights?: number[] | Record<string, number>;
  /**
   * Weight of each class in the loss, as `model.fit`'s `classWeight`: one map
   * (a one-output model), a list with one per output (null: not weighted),
   * or a dict of maps by output name.
   */
  classWeight?: ClassWeightMap | (ClassWeightMap | null)[] | Record<string, ClassWeightMap>;
}

/** A job trained by MirroredStrategy (synchronous replicas, global batch). */
export interface MirroredStrategyRequest {
  /** `mirrored`, the default. */
  kind: "mirrored";
  /** Replica Workers. */
  replicas?: number;
  /** Backend of the replicas. */
  backend: "auto" | "cpu" | "wasm" | "webgpu";
}

/** A job trained by WorkerStrategy (asynchronous parameter server, batch per worker). */
export interface WorkerStrategyRequest {
  /** `worker`. */
  kind: "worker";
  /** Gradient Workers. */
  workers?: number;
  /** Largest staleness applied as is. */
  staleness?: number;
  /** What happens to a stale gradient. */
  stalePolicy?: "drop" | "scale";
  /** Backend of the workers. */
  backend: "auto" | "cpu" | "wasm" | "webgpu";
  /** Remote edge workers may join; the submit answer carries their `workerToken`. */
  remote?: boolean;
  /** With `remote`: milliseconds the job waits with no worker attached before it fails. */
  remoteWaitMs?: number;
}

/** Which strategy trains the job: the options of its class, by kind. */
export type StrategyRequest = MirroredStrategyRequest | WorkerStrategyRequest;

/** A job's host-BLAS report: the library its products ran on, or why none. */
export interface JobBlas {
  /** Whether the products ran on the library. */
  used: boolean;
  /** Why it was or was not used. */
  reason: string;
  /** The library file. */
  library?: string;
  /** Its core type. */
  coreName?: string;
  /** Its measured speed, GFLOP/s. */
  gflops?: number;
}

/** A validated `POST /v1/jobs` body (defaults applied). */
export interface JobRequest {
  /** A label for the job. */
  name?: string;
  /** What to train. */
  model: MlpPreset | CnnPreset | ModelTopology;
  /** How to compile it. */
  compile: CompileRequest;
  /** What to train on: rows inline, a named dataset, or an uploaded one by id. */
  data: InlineData | DatasetData | {
    /** The id `POST /v1/datasets` answered (`ds_...`). */
    upload: string;
  };
  /** How long and in which batches. */
  fit: FitRequest;
  /** How to distribute it. */
  strategy: StrategyRequest;
}

/** Where a job is: epoch `epoch` of `epochs` (1-based), `step` of `steps` steps done in it. */
export interface JobProgress {
  /** Current epoch, from 1; 0 before the first. */
  epoch: number;
  /** Epochs in total. */
  epochs: number;
  /** Steps done in the current epoch. */
  step: number;
  /** Steps per epoch. */
  steps: number;
}

/** Per-epoch logs, shaped like tfjs' History. */
export interface JobHistory {
  /** Epoch indices (from 0). */
  epoch: number[];
  /** One array per log name (`loss`, `acc`, `val_loss`, ...). */
  history: Record<string, number[]>;
}

/** A training job. */
export interface JobRecord {
  /** The job id. */
  id: string;
  /** The label it was submitted with. */
  name: string | null;
  /** Where it is. */
  status: JobStatus;
  /** ISO times. */
  createdAt: string;
  /** When it started running. */
  startedAt: string | null;
  /** When it ended. */
  finishedAt: string | null;
  /** Epoch and step. */
  progress: JobProgress;
  /** History so far (single-job reads only). */
  history?: JobHistory;
  /** Why it failed or was interrupted. */
  error: { code: string; message: string } | null;
  /** The trained model, once succeeded. */
  modelId: string | null;
  /** What it trains (inline data is not kept). */
  spec: {
    model: string;
    data: string;
    compile: CompileRequest;
    fit: FitRequest;
    strategy: StrategyRequest;
  };
  /** Backend the replicas ran. */
  backend: string | null;
  /** What their host-BLAS path chose (WASM only), once known. */
  blas?: JobBlas | null;
  /** Server instance that runs it. */
  owner: string;
}

/** One input or output of a trained model. */
export interface ModelPort {
  /** Its layer name (what a job's `data.x`/`data.y` dict is keyed by). */
  name: string;
  /** Its shape, batch dimension first (null). */
  shape: (number | null)[];
}

/** A trained model in the registry. */
export interface ModelRecord {
  /** The model id. */
  id: string;
  /** The job that trained it. */
  jobId: string | null;
  /** ISO time it was saved. */
  createdAt: string;
  /** Input shape, batch dimension first (null); the first input's when there are several. */
  inputShape: (number | null)[];
  /** Output shape, batch dimension first (null); the first output's when there are several. */
  outputShape: (number | null)[];
  /** Every input, in `model.inputs` order (absent from records saved before it existed). */
  inputs?: ModelPort[];
  /** Every output, in `model.outputs` order (absent from records saved before it existed). */
  outputs?: ModelPort[];
  /** Number of weights. */
  params: number;
  /** The loss it was trained with. */
  loss: string;
  /** Logs of the last epoch. */
  metrics: Record<string, number>;
  /** Size of the weight files. */
  bytes: number;
  /** Where `tf.loadLayersModel` finds it. */
  modelUrl: string;
}
