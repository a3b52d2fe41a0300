/**
 * The Strategy contract: what every way of training offers (`fit`,
 * `fitDataset`, `evaluate`, `stats`, `close`, async disposal), the option
 * and stats types they share, and the table of strategy kinds the CLI, the
 * HTTP service and the dashboard read instead of naming kinds themselves.
 * Strategies are built from a plain spec by `createStrategy()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STRATEGY_KINDS } from "./strategy.ts";
 * assert.deepEqual(Object.keys(STRATEGY_KINDS), ["mirrored", "worker"]);
 * assert.equal(STRATEGY_KINDS.worker.batchScope, "perWorker");
 * ```
 * @module
 */
import type * as tf from "../tf.ts";
import type { BackendName, BlasReport } from "../../backends/types.ts";
import type { CheckpointOptions } from "../io/checkpoint.ts";
import type { History, Logs, TrainingCallbacks } from "../training/callbacks.ts";
import type { DatasetLike } from "./_dataset.ts";
import type { Samples } from "./_inputs.ts";
import type { ClassWeight, ClassWeightOption } from "./_class_weights.ts";

export type { ClassWeight, ClassWeightOption };

/** The strategies dtrain has. */
export type StrategyKind = "mirrored" | "worker";

/** What the CLI, the service and the dashboard need to know about a kind. */
export interface StrategyKindInfo {
  /** One line for help texts and the dashboard. */
  description: string;
  /** The option that sets how many Workers train (`replicas` or `workers`). */
  countOption: "replicas" | "workers";
  /** The option that sets WASM threads per Worker. */
  threadsOption: "threadsPerReplica" | "threadsPerWorker";
  /** What the Workers are called in messages. */
  unit: string;
  /** `batchSize` is the global batch (`"global"`) or each worker's (`"perWorker"`). */
  batchScope: "global" | "perWorker";
  /** Whether `fit` takes the `checkpoint` option. */
  checkpoints: boolean;
  /**
   * What the main thread computes: `"none"` (it only prepares data and
   * reports, the CPU backend is enough) or `"optimizer"` (it is the
   * parameter server and applies every update: pick a fast backend).
   */
  mainThread: "none" | "optimizer";
}

/** Every strategy kind, in the order help texts list them. */
export const STRATEGY_KINDS: Readonly<Record<StrategyKind, StrategyKindInfo>> = {
  mirrored: {
    description: "synchronous data-parallel: replicas split each global batch and " +
      "all-reduce gradients; equal to one replica on the same batch",
    countOption: "replicas",
    threadsOption: "threadsPerReplica",
    unit: "replicas",
    batchScope: "global",
    checkpoints: true,
    mainThread: "none",
  },
  worker: {
    description: "asynchronous parameter server: workers compute gradients on their own " +
      "batches and the server applies them within a staleness bound",
    countOption: "workers",
    threadsOption: "threadsPerWorker",
    unit: "asynchronous workers",
    batchScope: "perWorker",
    checkpoints: true,
    mainThread: "optimizer",
  },
};

/** Whether `value` names a strategy kind. */
export function isStrategyKind(value: unknown): value is StrategyKind {
  return typeof value === "string" && Object.hasOwn(STRATEGY_KINDS, value);
}

/**
 * Options of {@linkcode Strategy.fit}, as `model.fit` names them. What
 * `batchSize` means is the strategy's {@linkcode Strategy.batchScope}:
 * MirroredStrategy splits a global batch, WorkerStrategy computes one
 * gradient per worker batch. WorkerStrategy checkpoints at epoch ends only.
 */
export interface FitOptions {
  /** Number of epochs to train. @default 1 */
  epochs?: number;
  /** Samples per step: the global batch (mirrored) or per worker (worker). @default 32 */
  batchSize?: number;
  /** Reshuffle the training samples every epoch. @default true */
  shuffle?: boolean;
  /** Seed of the shuffling. @default a random seed */
  seed?: number;
  /** Fraction of the samples (taken from the end, before shuffling) used for validation. @default 0 */
  validationSplit?: number;
  /** Explicit validation data (wins over validationSplit). @default undefined */
  validationData?: [Samples, Samples];
  /** Callbacks, or a list of them. @default [] */
  callbacks?: TrainingCallbacks | TrainingCallbacks[];
  /** 0 silent, 1 progress bar, 2 one line per epoch. @default 0 */
  verbose?: 0 | 1 | 2;
  /** Epoch to start from (for resuming). @default 0 */
  initialEpoch?: number;
  /** Stop with `NonFiniteLossError` when the loss becomes NaN or infinite. @default true */
  terminateOnNaN?: boolean;
  /**
   * Write checkpoints (weights, optimizer state, position, History) into
   * `checkpoint.dir`; a later `fit` with the same dir resumes from the newest
   * one, exactly where it stopped. @default undefined (no checkpoints)
   */
  checkpoint?: CheckpointOptions;
  /**
   * Write a Chrome-trace timeline of the fit to this file (open it in
   * Perfetto): replica 0's gradients, all-reduce and apply per step and,
   * across hosts, each cross-host sum. MirroredStrategy only.
   * @default undefined (no trace)
   */
  trace?: string;
  /**
   * Weight of each output's loss in the total loss, as Keras' `loss_weights`
   * (tfjs' `compile` has none): one number per model output in
   * `model.outputs` order, or a dict by output name (a missing name weighs
   * 1). The total loss is the weighted sum of the outputs' mean losses plus
   * the regularisation penalties; per-output losses in the logs
   * (`<output>_loss`) stay unweighted. Validation uses the same weights.
   * @default undefined (every output weighs 1, as in `model.fit`)
   */
  lossWeights?: LossWeights;
  /**
   * Weight of each class in the loss, as `model.fit`'s `classWeight`: a map
   * from class index to weight (one output), or an array of such maps in
   * `model.outputs` order (null: not weighted) or a dict of them by output
   * name (a missing output is not weighted). Each sample's loss is
   * multiplied by the weight of its label's class (the label for `[n]` or
   * `[n, 1]` targets, the largest entry of one-hot ones) and the batch loss
   * stays the mean over the batch's samples, exactly as in `model.fit`
   * (whose `<output>_loss` logs are these weighted means too).
   * Every class in the labels needs a weight; weights are finite and >= 0.
   * Validation is not weighted. Not with `fitPipeline` or `remote` workers.
   * (`sampleWeight` is refused: tfjs' `model.fit` does not support it.)
   * @default undefined (every sample weighs 1)
   */
  classWeight?: ClassWeightOption;
}

/** One weight per model output, or a dict of weights by output name. */
export type LossWeights = number[] | Record<string, number>;

/** Options of {@linkcode Strategy.evaluate}. */
export interface EvaluateOptions {
  /** Samples per replica batch. @default 32 */
  batchSize?: number;
  /**
   * Weight of each output's loss in the reported `loss` (see
   * {@linkcode FitOptions.lossWeights}).
   * @default undefined (every output weighs 1)
   */
  lossWeights?: LossWeights;
}

/** What every strategy measures in its last run. */
export interface StrategyRunStats {
  /** Backend each Worker runs. */
  backends: BackendName[];
  /** Why the backend was chosen (the first Worker). */
  backendReason: string;
  /** WASM threads each Worker runs. */
  threads: number[];
  /**
   * What the host-BLAS path chose (the first Worker; see `selectBackend()`'s
   * report): the library, its core, its speed, or why it is not used. Null
   * when the Workers do not run WASM.
   */
  blas: BlasReport | null;
}

/**
 * A way of training a compiled `tf.LayersModel` on many Workers. Build one
 * with `createStrategy({ kind, ...options })` or its class
 * (`MirroredStrategy`, `WorkerStrategy`); `await using` closes it.
 */
export interface Strategy {
  /** Which strategy this is. */
  readonly kind: StrategyKind;
  /** Workers that train: replicas (mirrored) or gradient workers (worker). */
  readonly parallelism: number;
  /** What `batchSize` means for this strategy. */
  readonly batchScope: "global" | "perWorker";
  /** Measurements of the last run, once one has run. */
  readonly stats: StrategyRunStats | undefined;
  /**
   * Trains `model` on x/y; resolves with the History, as `model.fit` does.
   * A model with several inputs (outputs) takes x (y) as an array in
   * `model.inputs` (`model.outputs`) order or a dict by layer name.
   */
  fit(model: tf.LayersModel, x: Samples, y: Samples, options?: FitOptions): Promise<History>;
  /**
   * Trains on a finite tfjs-data `Dataset` of `{ xs, ys }`, read into memory
   * once; with several inputs (outputs), `xs` (`ys`) is an array in model
   * order or a dict by layer name, as `model.fitDataset` reads it.
   */
  fitDataset(model: tf.LayersModel, dataset: DatasetLike, options?: FitOptions): Promise<History>;
  /** Loss and metrics of `model` on x/y, averaged over all samples. */
  evaluate(model: tf.LayersModel, x: Samples, y: Samples, options?: EvaluateOptions): Promise<Logs>;
  /** Shuts every Worker down. Idempotent. */
  close(): Promise<void>;
  /** `await using` closes the strategy on scope exit. */
  [Symbol.asyncDispose](): Promise<void>;
}
