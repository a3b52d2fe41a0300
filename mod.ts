/**
 * dtrain: data-parallel TensorFlow.js training on Deno.
 *
 * Wrap an ordinary tfjs model in a strategy and train it on every core:
 * `MirroredStrategy` runs N replicas in Deno Workers, splits each global
 * batch between them and all-reduces gradients in shared memory, so the
 * result equals one replica on the same batch. Build models with the `tf`
 * exported here: it is the tfjs instance dtrain itself uses.
 *
 * @example
 * ```ts
 * import { MirroredStrategy, tf } from "@dtrain/dtrain";
 *
 * const model = tf.sequential({
 *   layers: [tf.layers.dense({ units: 8, activation: "relu", inputShape: [4] }), tf.layers.dense({ units: 1 })],
 * });
 * model.compile({ optimizer: "adam", loss: "meanSquaredError" });
 * const xs = Array.from({ length: 64 }, (_, i) => [i % 2, i % 3, i % 5, i % 7]);
 * const ys = xs.map((r) => [r[0]! + r[1]!]);
 * await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
 * const history = await strategy.fit(model, xs, ys, { epochs: 2, batchSize: 16 });
 * console.log(history.history.loss);
 * ```
 * @module
 */
export * as tf from "./src/tf.ts";
export {
  type ClassWeight,
  type ClassWeightOption,
  type EvaluateOptions,
  type FitOptions,
  isStrategyKind,
  type LossWeights,
  type Strategy,
  STRATEGY_KINDS,
  type StrategyKind,
  type StrategyKindInfo,
  type StrategyRunStats,
} from "./src/strategy/strategy.ts";
export {
  createStrategy,
  type StrategyClassOf,
  type StrategyOptionsOf,
  type StrategySpec,
} from "./src/strategy/create_strategy.ts";
export {
  type CheckpointOptions,
  type DatasetLike,
  type EpochSource,
  type MirroredClusterOptions,
  MirroredStrategy,
  type MirroredStrategyOptions,
  type PipelineShapeInfo,
  type Samples,
  type SampleValues,
  type StrategyStats,
} from "./src/strategy/mirrored.ts";
export {
  type AddWorkerOptions,
  type StalePolicy,
  type WorkerBackend,
  type WorkerFitOptions,
  type WorkerStats,
  WorkerStrategy,
  type WorkerStrategyOptions,
  type WorkerStrategyStats,
} from "./src/strategy/worker.ts";
export {
  type RefusalReason,
  type RemoteCounts,
  RemoteRefusedError,
  type RemoteSession,
  RemoteWorkers,
  type RemoteWorkersOptions,
} from "./src/strategy/ps/remote_workers.ts";
export {
  RemoteWorkerError,
  type RemoteWorkerEvent,
  type RemoteWorkerOptions,
  type RemoteWorkerResult,
  runRemoteWorker,
} from "./src/edge/remote_worker.ts";
export {
  fit,
  type KerasFitOptions,
  ParallelModel,
  parallelModel,
  type ParallelModelOptions,
  type PredictOptions,
} from "./src/strategy/keras.ts";
export { History, type Logs, type TrainingCallbacks } from "./src/training/callbacks.ts";
export { ProgressBar } from "./src/training/progress.ts";
export {
  BackendUnavailableError,
  DataFormatError,
  NonFiniteLossError,
  PipelineError,
  ReplicaCrashedError,
  WorkerCrashedError,
  type WorkerRole,
} from "./src/errors.ts";
export type { BackendName } from "./backends/types.ts";
export {
  ClusterAuthError,
  ClusterConfigMismatchError,
  clusterFromEnv,
  ClusterJoinRefusedError,
  type ClusterSpec,
  ClusterTimeoutError,
  PeerLostError,
} from "./src/cluster/mod.ts";
export {
  loadFashionMnist,
  loadMnist,
  oneHot,
  ParallelMap,
  type ParallelMapOptions,
  readCsv,
  readIdx,
  scale01,
  standardize,
  toTensors,
  trainValidationSplit,
} from "./src/data/mod.ts";
export {
  fileHandler,
  loadOptimizerState,
  registerFileIO,
  saveOptimizerState,
} from "./src/io/mod.ts";
