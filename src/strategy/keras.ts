/**
 * Keras-style entry points over the two strategies:
 *
 * - {@linkcode fit}: `fit(model, x, y, { epochs, batchSize, workers: 2 })`,
 *   the shape of classic Keras' `model.fit(x, y, workers=2)`, trains with a
 *   {@linkcode WorkerStrategy} (asynchronous parameter server) that it starts
 *   and closes itself. `batchSize` keeps its Keras meaning: samples per
 *   gradient update.
 * - {@linkcode parallelModel}: `parallelModel(model, { replicas: 2 })`, in the
 *   spirit of Keras' `multi_gpu_model(model, gpus=2)`, wraps a model so that
 *   `compile`/`fit`/`evaluate`/`predict` on the wrapper train it with a
 *   {@linkcode MirroredStrategy}. The wrapper and the model share weights.
 *
 * @module
 */
import * as tf from "../tf.ts";
import type { History, Logs } from "../training/callbacks.ts";
import {
  type EvaluateOptions,
  type FitOptions,
  MirroredStrategy,
  type MirroredStrategyOptions,
} from "./mirrored.ts";
import { inputTensors, type Samples } from "./_inputs.ts";
import {
  WORKER_OPTIONS,
  type WorkerFitOptions,
  WorkerStrategy,
  type WorkerStrategyOptions,
} from "./worker.ts";

/**
 * Options of the top-level {@linkcode fit}: those of `WorkerStrategy.fit`
 * plus the `WorkerStrategy` options (`workers`, `backend`, `staleness`, ...).
 */
export interface KerasFitOptions extends WorkerFitOptions, WorkerStrategyOptions {}

function checkModel(model: unknown, what: string): asserts model is tf.LayersModel {
  if (!(model instanceof tf.LayersModel)) {
    throw new TypeError(
      `${what} expects a tf.LayersModel built with dtrain's tf, received ` +
        Object.prototype.toString.call(model),
    );
  }
}

/**
 * Trains `model` on `x`/`y` with `workers` gradient Workers and an
 * asynchronous parameter server on the main thread (a `WorkerStrategy` that
 * lives for this call), like Keras' `model.fit(x, y, epochs, batch_size,
 * workers=2)`. `batchSize` is the number of samples per gradient update, as in
 * Keras; each worker computes whole updates. Resolves with the History; the
 * model holds the trained weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fit, tf } from "../../mod.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * const history = await fit(model, [[0, 1], [1, 0], [1, 1], [0, 0]], [[1], [1], [2], [0]], {
 *   epochs: 2,
 *   batchSize: 2,
 *   workers: 2,
 *   backend: "cpu",
 * });
 * assert.ok(history.epoch.length === 2);
 * ```
 */
export async function fit(
  model: tf.LayersModel,
  x: Samples,
  y: Samples,
  options: KerasFitOptions = {},
): Promise<History> {
  checkModel(model, "fit()");
  const strategyOptions: WorkerStrategyOptions = {};
  const fitOptions: Record<string, unknown> = { ...options };
  for (const key of WORKER_OPTIONS) {
    if (key in options) (strategyOptions as Record<string, unknown>)[key] = options[key];
    delete fitOptions[key];
  }
  await using strategy = new WorkerStrategy(strategyOptions);
  return await strategy.fit(model, x, y, fitOptions as WorkerFitOptions);
}

/** Options for {@linkcode parallelModel}: those of `MirroredStrategy`. */
export type ParallelModelOptions = MirroredStrategyOptions;

/** Options for {@linkcode ParallelModel.predict}. */
export interface PredictOptions {
  /** Samples per batch. @default 32 */
  batchSize?: number;
}

/**
 * A model wrapped for data-parallel training: `fit` and `evaluate` run on a
 * `MirroredStrategy`'s replicas (`batchSize` is the global batch, split
 * between them), `predict` runs on the main thread. It shares its weights
 * with the wrapped model. Create it with {@linkcode parallelModel}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parallelModel, tf } from "../../mod.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * await using parallel = parallelModel(model, { replicas: 2, backend: "cpu" });
 * parallel.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * await parallel.fit([[0, 1], [1, 0]], [[1], [1]], { epochs: 1, batchSize: 2 });
 * const y = parallel.predict([[1, 1]]) as tf.Tensor;
 * assert.ok(y.shape[0] === 1);
 * y.dispose();
 * ```
 */
export class ParallelModel {
  /** The wrapped model: it holds the weights `fit` trains. */
  readonly model: tf.LayersModel;
  /** The strategy that trains it. */
  readonly strategy: MirroredStrategy;

  /** Wraps `model`; prefer {@linkcode parallelModel}. */
  constructor(model: tf.LayersModel, options: ParallelModelOptions = {}) {
    checkModel(model, "parallelModel()");
    this.strategy = new MirroredStrategy(options);
    this.model = model;
  }

  /** Compiles the wrapped model (Keras: `parallel_model.compile(...)`). */
  compile(args: Parameters<tf.LayersModel["compile"]>[0]): void {
    this.model.compile(args);
  }

  /** Trains on the replicas; `batchSize` is the global batch. */
  fit(x: Samples, y: Samples, options: FitOptions = {}): Promise<History> {
    return this.strategy.fit(this.model, x, y, options);
  }

  /** Evaluates on the replicas; resolves with `{ loss, <metric>... }`. */
  evaluate(x: Samples, y: Samples, options: EvaluateOptions = {}): Promise<Logs> {
    return this.strategy.evaluate(this.model, x, y, options);
  }

  /**
   * Predicts on the main thread with the current weights, like
   * `model.predict`: `x` is one input's values (a tensor, a typed array or
   * a nested number array; shape `[n]` is read as `[n, 1]`) or, for a model
   * with several inputs, an array of them in `model.inputs` order or a dict
   * by input name (as `fit` takes `x`). Returns one tensor, or one per
   * output in `model.outputs` order for a model with several outputs; the
   * caller disposes them.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { parallelModel, tf } from "../../mod.ts";
   * const a = tf.input({ shape: [2], name: "a" }), b = tf.input({ shape: [1], name: "b" });
   * const joined = tf.layers.concatenate().apply([a, b]) as tf.SymbolicTensor;
   * const heads = [1, 3].map((units) => tf.layers.dense({ units }).apply(joined) as tf.SymbolicTensor);
   * const model = tf.model({ inputs: [a, b], outputs: heads });
   * await using parallel = parallelModel(model, { replicas: 2, backend: "cpu" });
   * const [first, second] = parallel.predict({ a: [[1, 2]], b: [3] }) as tf.Tensor[];
   * assert.deepEqual([first!.shape, second!.shape], [[1, 1], [1, 3]]);
   * tf.dispose([first!, second!]);
   * ```
   */
  predict(x: Samples, options: PredictOptions = {}): tf.Tensor | tf.Tensor[] {
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be an integer >= 1, received ${batchSize}`);
    }
    const { tensors, created } = inputTensors(this.model, x);
    try {
      return this.model.predict(tensors.length === 1 ? tensors[0]! : tensors, { batchSize });
    } finally {
      tf.dispose(created);
    }
  }

  /** Stops the replica Workers. Idempotent. */
  close(): Promise<void> {
    return this.strategy.close();
  }

  /** `await using parallel = parallelModel(model)` closes it on scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Wraps `model` for synchronous data-parallel training on `replicas`
 * Workers, like Keras' `multi_gpu_model(model, gpus=replicas)`: compile, fit,
 * evaluate and predict on the wrapper; the wrapped model shares its weights.
 * Options are validated here, before any Worker starts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parallelModel, tf } from "../../mod.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * await using parallel = parallelModel(model, { replicas: 2, backend: "cpu" });
 * parallel.compile({ optimizer: "adam", loss: "meanSquaredError" });
 * const history = await parallel.fit([[1, 2, 3], [3, 2, 1]], [[1, 0], [0, 1]], { batchSize: 2 });
 * assert.ok(history.history.loss?.length === 1);
 * ```
 */
export function parallelModel(
  model: tf.LayersModel,
  options: ParallelModelOptions = {},
): ParallelModel {
  return new ParallelModel(model, options);
}
