/**
 * MirroredStrategy: synchronous data-parallel training.
 *
 * Who owns what: the main thread validates inputs, places the data and the
 * weights in shared memory once, starts the replica Workers and turns the
 * records replica 0 writes into callbacks, History and a progress bar; it does
 * no tensor math. Each replica owns a full copy of the model and optimizer and
 * computes gradients on its shard of every global batch. In the all-reduce
 * each replica sums one chunk of the gradient and applies the optimizer step
 * to that chunk of a shared flat parameter vector (SGD, Momentum, Adam; other
 * optimizers apply the whole sum in every replica), then every replica copies
 * the whole vector into its variables, so every replica's weights stay
 * bit-identical.
 *
 * This file is the run's orchestration (options, fit, evaluate, the record
 * loop); `mirrored/_group.ts` starts the group and its memory,
 * `mirrored/_resume.ts` finds where a checkpointed fit resumes,
 * `mirrored/_cluster.ts` makes this thread the host's leader across hosts,
 * `mirrored/replica_worker.ts` is a replica.
 *
 * @module
 */
import * as tf from "../tf.ts";
import type { BackendName } from "../../backends/types.ts";
import { BACKEND_NAMES } from "../../backends/types.ts";
import { type NodeConfig, PeerLostError } from "../cluster/mod.ts";
import { positiveInt, refuseUnknownOptions } from "../core/checks.ts";
import { packWeights, unpackWeights } from "../core/weights.ts";
import { callAll, History, type Logs, type TrainingCallbacks } from "../training/callbacks.ts";
import { FitReporter, type FitReporterOptions } from "../training/reporter.ts";
import { checkCheckpointOptions, type CheckpointOptions } from "../io/checkpoint.ts";
import { writeJsonFile } from "../io/json_file.ts";
import { Trace } from "../training/trace.ts";
import { compileSpec, lossWeightsOf } from "./_compile.ts";
import type { DatasetLike } from "./_dataset.ts";
import {
  checkCommonFit,
  type CheckedCommon,
  Exclusive,
  FIT_OPTIONS,
  fitOnDataset,
  refuseFitOptions,
  splitSamples,
} from "./_fit_checks.ts";
import { prepareSamples, type Samples, type SampleValues, toShared } from "./_inputs.ts";
import { CONTROL_STOP } from "./_layout.ts";
import { PipelineColumns, type PipelineShapeInfo } from "./_pipeline_columns.ts";
import { type ModelModule, modelSource, resolveModelModule } from "./_options.ts";
import {
  acrossHosts,
  agreeOnCheckpoint,
  bucketFloats,
  checkCluster,
  CLUSTER_SEED,
  type CrossHostStats,
  describeModel,
  type MirroredClusterOptions,
} from "./mirrored/_cluster.ts";
import { type Group, startGroup } from "./mirrored/_group.ts";
import { newestPosition, resumePoint } from "./mirrored/_resume.ts";
import type { Reply, Request, SharedData } from "./protocol.ts";
import type {
  EvaluateOptions,
  FitOptions,
  LossWeights,
  Strategy,
  StrategyKind,
  StrategyRunStats,
} from "./strategy.ts";

export type { CrossHostStats, MirroredClusterOptions, PipelineShapeInfo };
export type {
  CheckpointOptions,
  DatasetLike,
  EvaluateOptions,
  FitOptions,
  LossWeights,
  Samples,
  SampleValues,
};

/**
 * What {@linkcode MirroredStrategy.fitPipeline} needs from an input pipeline
 * (a `ParallelMap` from `@dtrain/dtrain/data`): shapes, and mapped epochs in
 * shared memory.
 */
export interface EpochSource {
  /** Samples per epoch. */
  readonly count: number;
  /** Starts the pipeline; resolves with the shapes of its mapped samples. */
  start(): Promise<PipelineShapeInfo>;
  /** Mapped epochs `initialEpoch .. initialEpoch + count - 1`, in order. */
  epochs(count: number, options?: { initialEpoch?: number }): AsyncIterable<{
    epoch: number;
    shared: { x: SharedArrayBuffer; y: SharedArrayBuffer; count: number };
  }>;
}

/** The option names {@linkcode MirroredStrategy} takes; any other is refused. */
const MIRRORED_OPTIONS = [
  "replicas",
  "backend",
  "threadsPerReplica",
  "modelModule",
  "replicaTimeoutMs",
  "startTimeoutMs",
  "cluster",
] as const satisfies readonly (keyof MirroredStrategyOptions)[];

/** Options for {@linkcode MirroredStrategy}. */
export interface MirroredStrategyOptions {
  /**
   * Number of replicas (Workers).
   * @default navigator.hardwareConcurrency
   */
  replicas?: number;
  /**
   * Backend every replica runs: a name, or `"auto"` for runtime selection
   * (see `selectBackend`). `DTRAIN_BACKEND` overrides `"auto"`.
   * @default "auto"
   */
  backend?: BackendName | "auto";
  /**
   * WASM threads per replica.
   * @default 1
   */
  threadsPerReplica?: number;
  /**
   * A module every replica imports to build the model: it must export a
   * function `exportName` returning a `tf.LayersModel` (compiled or not) made
   * with dtrain's `tf`. Needed for custom layers, losses or optimizers.
   * @default undefined (rebuild from `model.toJSON()`)
   */
  modelModule?: { url: string | URL; exportName?: string };
  /**
   * A replica whose heartbeat stops this long during a run is declared dead.
   * Must exceed the slowest training step.
   * @default 30000
   */
  replicaTimeoutMs?: number;
  /**
   * How long a replica may take to start (import its code, select its
   * backend, build the model) before it is declared dead.
   * @default 60000
   */
  startTimeoutMs?: number;
  /**
   * Train across hosts: this process is node `rank` of `nodes`, each running
   * `replicas` replicas; `batchSize` is then the global batch of all hosts.
   * Every node runs the same script on the same data; `clusterFromEnv()`
   * reads this from launcher variables. @default undefined (one host)
   */
  cluster?: MirroredClusterOptions;
}

/** Measurements of the last run, for diagnostics and benchmarks. */
export interface StrategyStats extends StrategyRunStats {
  /** Backend each replica runs. */
  backends: BackendName[];
  /** Why the backend was chosen (replica 0). */
  backendReason: string;
  /** WASM threads each replica runs. */
  threads: number[];
  /** Tensors alive in each replica after the last run. */
  replicaTensors: number[];
  /** Hash of each replica's weights after the last run (all equal when mirrored). */
  weightsDigests: number[];
  /** Steps in the last `fit`. */
  steps: number;
  /** Mean compute time per step (replica 0), ms. */
  computeMs: number;
  /** Mean gradient exchange time per step (replica 0), ms. */
  exchangeMs: number;
  /**
   * Across hosts: the cross-host sums of the last run (one per step, plus
   * validation and epoch-end ones), the bytes this node sent and received,
   * and the time its main thread spent in them. Undefined on one host.
   */
  crossHost?: CrossHostStats;
}

/** Fit options every fit variant shares, validated, with defaults applied. */
interface CheckedFit extends CheckedCommon {
  /** Global batch size. */
  batchSize: number;
  /** One weight per output, or null (1 each). */
  lossWeights: number[] | null;
}

/**
 * Synchronous data-parallel training across Deno Workers: N replicas, the
 * global batch split between them, gradients all-reduced in shared memory
 * every step, weights identical on every replica. Results equal one replica
 * training on the same global batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MirroredStrategy, tf } from "../../mod.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
 * const history = await strategy.fit(model, [[0, 1], [1, 0], [1, 1], [0, 0]], [[1], [1], [2], [0]], {
 *   epochs: 2,
 *   batchSize: 4,
 * });
 * assert.ok(history.history.loss?.length === 2);
 * ```
 */
export class MirroredStrategy implements Strategy {
  /** Always `"mirrored"`. */
  readonly kind: StrategyKind = "mirrored";
  /** `batchSize` is the global batch, split across replicas. */
  readonly batchScope = "global" as const;
  /** Number of replicas. */
  readonly replicas: number;
  /** Backend requested for every replica. */
  readonly backend: BackendName | "auto";
  /** WASM threads per replica. */
  readonly threadsPerReplica: number;
  #modelModule: ModelModule | undefined;
  #cluster: MirroredClusterOptions | undefined;
  #timeoutMs: number;
  #startTimeoutMs: number;
  #group: Group | undefined;
  #stats: StrategyStats | undefined;
  #exclusive = new Exclusive();

  /** Validates the options; Workers start on the first `fit` or `evaluate`. */
  constructor(options: MirroredStrategyOptions = {}) {
    refuseUnknownOptions(options, MIRRORED_OPTIONS, "MirroredStrategy");
    this.replicas = positiveInt(
      options.replicas ?? Math.max(1, navigator.hardwareConcurrency ?? 1),
      "replicas",
    );
    const backend = options.backend ?? "auto";
    if (backend !== "auto" && !BACKEND_NAMES.includes(backend)) {
      throw new TypeError(
        `backend must be "auto" or one of ${BACKEND_NAMES.join(", ")}, received "${backend}"`,
      );
    }
    this.backend = backend;
    this.threadsPerReplica = positiveInt(
      options.threadsPerReplica ?? 1,
      "threadsPerReplica",
    );
    this.#timeoutMs = positiveInt(
      options.replicaTimeoutMs ?? 30_000,
      "replicaTimeoutMs",
    );
    this.#startTimeoutMs = positiveInt(options.startTimeoutMs ?? 60_000, "startTimeoutMs");
    this.#modelModule = resolveModelModule(options.modelModule);
    this.#cluster = checkCluster(options.cluster);
  }

  /** Where this host sits in a multi-host cluster, or undefined on one host. */
  get cluster(): { rank: number; nodes: number } | undefined {
    const c = this.#cluster;
    return c === undefined ? undefined : { rank: c.rank, nodes: c.nodes };
  }

  /** The replicas: {@linkcode Strategy.parallelism}. */
  get parallelism(): number {
    return this.replicas;
  }

  /** Measurements of the last `fit` or `evaluate`, once one has run. */
  get stats(): StrategyStats | undefined {
    return this.#stats;
  }

  async #ensureGroup(model: tf.LayersModel): Promise<Group> {
    const compile = compileSpec(model, {
      hasModule: this.#modelModule !== undefined,
      who: "replica",
      optimizer: "model",
    });
    const source = modelSource(model, this.#modelModule);
    const key = JSON.stringify([
      source,
      compile,
      this.backend,
      this.threadsPerReplica,
    ]);
    const existing = this.#group;
    if (existing !== undefined && existing.key === key && existing.pool.alive) {
      this.#writeWeights(model, existing.weights);
      await existing.pool.all(() => ({ type: "loadWeights" }));
      return existing;
    }
    this.#group = undefined;
    await existing?.pool.close();

    const { group, stats } = await startGroup(model, {
      key,
      replicas: this.replicas,
      backend: this.backend,
      threads: this.threadsPerReplica,
      source,
      compile,
      cluster: this.#cluster,
      startTimeoutMs: this.#startTimeoutMs,
    });
    this.#stats = { ...stats, weightsDigests: [], steps: 0, computeMs: 0, exchangeMs: 0 };
    this.#group = group;
    return group;
  }

  /**
   * Trains `model` on `x`/`y` across the replicas; resolves with the History
   * once `model` holds the trained weights. `batchSize` is the global batch.
   * A model with several inputs (outputs) takes `x` (`y`) as an array in
   * `model.inputs` (`model.outputs`) order or a dict by layer name; its logs
   * add each output's loss (`<output>_loss`) and prefix metrics with the
   * output's name, as `model.fit`'s do; `lossWeights` weighs the outputs.
   * Rejects with `ReplicaCrashedError` when a replica fails (the model keeps
   * its weights from the last completed epoch) and `NonFiniteLossError` when
   * the loss stops being finite.
   */
  async fit(
    model: tf.LayersModel,
    x: Samples,
    y: Samples,
    options: FitOptions = {},
  ): Promise<History> {
    const o = this.#checkFit(model, options);
    const split = splitSamples(model, x, y, {
      validationData: options.validationData,
      split: o.split,
      classWeight: options.classWeight,
    });
    const { samples, trainCount } = split;
    const validation: SharedData | null = split.validation === undefined
      ? null
      : toShared(split.validation);
    const data = toShared(samples, 0, trainCount, split.sampleWeights);
    const shuffle = options.shuffle ?? true;
    // Across hosts every node must shuffle alike: a fixed default seed.
    let seed = options.seed ??
      (this.#cluster === undefined ? Math.floor(Math.random() * 2 ** 31) : CLUSTER_SEED);
    const ckpt = options.checkpoint === undefined
      ? undefined
      : checkCheckpointOptions(options.checkpoint);

    const maxRestarts = this.#cluster?.maxRestarts ?? 0;
    if (maxRestarts > 0 && ckpt === undefined) {
      throw new TypeError(
        "cluster.maxRestarts needs the checkpoint option: a re-formed group resumes from " +
          "the newest checkpoint",
      );
    }
    const attempt = async () => {
      // Resume from the newest complete checkpoint, if any.
      const history = new History();
      // Across hosts, the nodes first agree on the checkpoint they all have.
      const notAfter = ckpt === undefined || this.#cluster === undefined
        ? undefined
        : await agreeOnCheckpoint(this.#cluster, await newestPosition(ckpt.dir), {
          ...describeModel(model),
          trainCount,
          batchSize: o.batchSize,
        });
      const at = ckpt === undefined
        ? { startEpoch: o.initialEpoch, startStep: 0, seed, resumed: undefined, resumeFrom: null }
        : await resumePoint(ckpt.dir, model, history, {
          batchSize: o.batchSize,
          trainCount,
          initialEpoch: o.initialEpoch,
          seed,
        }, { notAfter });
      const { startEpoch, startStep, resumed, resumeFrom } = at;
      seed = at.seed;
      const runId = crypto.randomUUID().slice(0, 8);
      const trace = options.trace === undefined ? undefined : new Trace(this.#cluster?.rank ?? 0);
      const { group, reporter } = await this.#begin(model, o, history, trainCount, {
        trace,
        resumed,
        checkpoint: ckpt === undefined ? undefined : {
          dir: ckpt.dir,
          keep: ckpt.keep,
          runId,
          run: { seed, batchSize: o.batchSize, shuffle, trainCount },
        },
      });
      const replies = await this.#acrossHosts(group, {
        op: "fit",
        ...describeModel(model),
        trainCount,
        validationCount: validation?.count ?? 0,
        epochs: o.epochs,
        startEpoch,
        startStep,
        batchSize: o.batchSize,
        shuffle,
        seed,
        lossWeights: o.lossWeights === null ? null : o.lossWeights.join(","),
        // Every node weighs its samples alike.
        classWeight: options.classWeight === undefined ? null : JSON.stringify(options.classWeight),
      }, () =>
        this.#run(group, reporter, {
          type: "fit",
          data,
          trainCount,
          validation,
          epochs: o.epochs,
          initialEpoch: startEpoch,
          startStep,
          batchSize: o.batchSize,
          shuffle,
          seed,
          terminateOnNaN: options.terminateOnNaN ?? true,
          validationBatchSize: Math.max(1, Math.ceil(o.batchSize / this.replicas)),
          checkpoint: ckpt === undefined ? null : {
            dir: ckpt.dir,
            everySteps: ckpt.everySteps,
            everyEpoch: ckpt.everyEpoch,
            runId,
          },
          resumeFrom,
          lossWeights: o.lossWeights,
          bucketFloats: bucketFloats(this.#cluster),
        }), trace);
      if (trace !== undefined) await writeJsonFile(options.trace!, trace);
      return await this.#finish(model, group, reporter, replies, o.callbacks);
    };
    return await this.#exclusive.run(async () => {
      for (let restart = 1;; restart++) {
        try {
          return await attempt();
        } catch (e) {
          if (!(e instanceof PeerLostError) || restart > maxRestarts) throw e;
          console.error(
            `dtrain rank ${this.#cluster!.rank}: ${e.message}; waiting for the group to ` +
              `re-form, then resuming from the newest checkpoint (restart ${restart} of ` +
              `${maxRestarts})`,
          );
        }
      }
    });
  }

  /**
   * Trains on the epochs a {@linkcode ParallelMap} input pipeline produces:
   * while the replicas train on epoch `e`, the pipeline's Workers map epoch
   * `e + 1` (decode, augment, normalise). Each mapped epoch is handed to the
   * replicas in shared memory, without a copy, in the pipeline's seeded order.
   * The map returns labels in the model's output shape (one-hot, say) or,
   * for a sparse categorical loss, one class index (float32 or uint8; uint8
   * labels are widened on the main thread, one value per label). For a model
   * with several inputs (outputs), the map returns `x` (`y`) as an array of
   * one Float32Array per input (output), in model order. Options are those
   * of {@linkcode MirroredStrategy.fit}, `classWeight` and `lossWeights`
   * included, except `validationSplit`, `shuffle` and `seed` (the
   * pipeline's own), `checkpoint` and `trace` (not supported with a pipeline
   * yet); pass `validationData` for validation.
   */
  async fitPipeline(
    model: tf.LayersModel,
    pipeline: EpochSource,
    options: Omit<FitOptions, "validationSplit" | "shuffle" | "seed" | "checkpoint" | "trace"> = {},
  ): Promise<History> {
    if (this.#cluster !== undefined) {
      throw new TypeError(
        "fitPipeline() trains on one host: use fit() with the cluster option, " +
          "or a MirroredStrategy without it",
      );
    }
    for (const key of ["validationSplit", "shuffle", "seed", "checkpoint", "trace"]) {
      if (key in options) {
        throw new TypeError(
          `fitPipeline() does not take ${key}: the pipeline shuffles and seeds its epochs` +
            (key === "validationSplit" ? "; pass validationData instead" : ""),
        );
      }
    }
    const o = this.#checkFit(model, options);
    const columns = new PipelineColumns(model, await pipeline.start(), options.classWeight);
    const validation = options.validationData === undefined
      ? null
      : toShared(prepareSamples(model, options.validationData[0], options.validationData[1]));
    return await this.#exclusive.run(async () => {
      const { group, reporter } = await this.#begin(model, o, new History(), pipeline.count, {});
      const base = {
        type: "fit" as const,
        validation,
        startStep: 0,
        batchSize: o.batchSize,
        shuffle: false, // each epoch arrives in the pipeline's shuffled order
        seed: 0,
        terminateOnNaN: options.terminateOnNaN ?? true,
        validationBatchSize: Math.max(1, Math.ceil(o.batchSize / this.replicas)),
        checkpoint: null,
        resumeFrom: null,
        lossWeights: o.lossWeights,
        bucketFloats: bucketFloats(this.#cluster),
      };
      let replies: Reply[] = [];
      for await (
        const epoch of pipeline.epochs(o.epochs - o.initialEpoch, { initialEpoch: o.initialEpoch })
      ) {
        const data = columns.epoch(epoch.shared);
        replies = await this.#run(group, reporter, {
          ...base,
          data,
          trainCount: data.count,
          epochs: epoch.epoch + 1,
          initialEpoch: epoch.epoch,
        });
        if (replies.some((r) => r.type === "done" && r.stopped)) break;
      }
      return await this.#finish(model, group, reporter, replies, o.callbacks);
    });
  }

  /** Validates the options every fit variant shares. */
  #checkFit(model: tf.LayersModel, options: FitOptions): CheckedFit {
    refuseFitOptions(options, FIT_OPTIONS, "MirroredStrategy.fit()");
    if (
      options.trace !== undefined && (typeof options.trace !== "string" || options.trace === "")
    ) {
      throw new TypeError(
        `trace must be a file path, received ${JSON.stringify(options.trace)}`,
      );
    }
    const common = checkCommonFit(options);
    const batchSize = positiveInt(options.batchSize ?? 32, "batchSize");
    const nodes = this.#cluster?.nodes ?? 1;
    if (batchSize < this.replicas * nodes) {
      throw new RangeError(
        nodes === 1
          ? `Cannot shard a batch of ${batchSize} across ${this.replicas} replicas: ` +
            "batchSize must be >= replicas"
          : `Cannot shard a batch of ${batchSize} across ${nodes} nodes x ${this.replicas} ` +
            "replicas: batchSize (the global batch of all nodes) must be >= nodes x replicas",
      );
    }
    compileSpec(model, {
      hasModule: this.#modelModule !== undefined,
      who: "replica",
      optimizer: "model",
    });
    return { ...common, batchSize, lossWeights: lossWeightsOf(model, options.lossWeights) };
  }

  /** Starts (or reuses) the replicas and the reporter, and calls onTrainBegin. */
  async #begin(
    model: tf.LayersModel,
    o: CheckedFit,
    history: History,
    trainCount: number,
    extra: Pick<FitReporterOptions, "resumed" | "checkpoint" | "trace">,
  ): Promise<{ group: Group; reporter: FitReporter }> {
    const group = await this.#ensureGroup(model);
    group.ring.reset();
    Atomics.store(group.control, CONTROL_STOP, 0);
    model.stopTraining = false;
    const reporter = new FitReporter({
      names: group.metricsNames,
      epochs: o.epochs,
      steps: Math.ceil(trainCount / o.batchSize),
      callbacks: o.callbacks,
      verbose: o.verbose,
      history,
      ...extra,
      onEpochSynced: () => this.#readWeights(model, group.weights),
      stopRequested: () => model.stopTraining,
      requestStop: () => Atomics.store(group.control, CONTROL_STOP, 1),
    });
    await callAll(o.callbacks, "onTrainBegin", {});
    return { group, reporter };
  }

  /** Sends one fit request to every replica and turns its records into callbacks. */
  async #run(
    group: Group,
    reporter: FitReporter,
    request: Extract<Request, { type: "fit" }> extends infer R ? Omit<R, "id"> : never,
  ): Promise<Reply[]> {
    let finished = false;
    const watched = group.pool.watch(group.pool.all(() => request), this.#timeoutMs)
      .finally(() => (finished = true));
    watched.catch(() => {});
    for (;;) {
      const wasFinished = finished;
      let rec: Float64Array | undefined;
      while ((rec = group.ring.read()) !== undefined) {
        await reporter.handle(rec);
        group.ring.ack();
      }
      if (wasFinished) break;
      await Promise.race([group.ring.waitForRecord(200), watched.then(() => {}, () => {})]);
    }
    const replies = await watched;
    if (reporter.failure !== undefined) throw reporter.failure;
    return replies;
  }

  /** {@linkcode acrossHosts} for this strategy: `work` with this thread as the host's leader. */
  async #acrossHosts<T>(
    group: Group,
    config: NodeConfig,
    work: () => Promise<T>,
    trace?: Trace,
  ): Promise<T> {
    if (this.#cluster === undefined) return await work();
    return await acrossHosts(this.#cluster, group, {
      config: {
        replicasPerNode: this.replicas,
        bucketFloats: bucketFloats(this.#cluster),
        ...config,
      },
      onStats: (crossHost) => {
        if (this.#stats !== undefined) this.#stats = { ...this.#stats, crossHost };
      },
      onExchange: (startedAt, t) =>
        trace?.exchange(startedAt, t.totalMs, t.bytesSent, t.bytesReceived),
    }, work);
  }

  /** Records the run's stats, copies the weights into `model`, calls onTrainEnd. */
  async #finish(
    model: tf.LayersModel,
    group: Group,
    reporter: FitReporter,
    replies: Reply[],
    callbacks: TrainingCallbacks[],
  ): Promise<History> {
    const t = reporter.timing;
    this.#stats = {
      ...this.#stats!,
      replicaTensors: replies.map((r) => (r.type === "done" ? r.tensors : -1)),
      weightsDigests: replies.map((r) => (r.type === "done" ? r.weightsDigest : -1)),
      steps: t.steps,
      computeMs: t.steps > 0 ? t.computeMs / t.steps : 0,
      exchangeMs: t.steps > 0 ? t.exchangeMs / t.steps : 0,
    };
    this.#readWeights(model, group.weights);
    await callAll(callbacks, "onTrainEnd", {});
    return reporter.history;
  }

  /**
   * Trains on a tfjs-data `Dataset` of `{ xs, ys }` elements (single samples
   * or `.batch(n)` batches): the dataset is read once into shared memory and
   * trained like {@linkcode MirroredStrategy.fit}, with the same options.
   * Meant for finite datasets that fit in memory.
   */
  async fitDataset(
    model: tf.LayersModel,
    dataset: DatasetLike,
    options: FitOptions = {},
  ): Promise<History> {
    return await fitOnDataset(model, dataset, (x, y) => this.fit(model, x, y, options));
  }

  /**
   * Evaluates `model` on `x`/`y` with every replica taking a share; resolves
   * with `{ loss, <metric>... }` averaged over all samples (`model.metricsNames`:
   * with several outputs, each output's loss and its prefixed metrics).
   */
  async evaluate(
    model: tf.LayersModel,
    x: Samples,
    y: Samples,
    options: EvaluateOptions = {},
  ): Promise<Logs> {
    const batchSize = positiveInt(options.batchSize ?? 32, "batchSize");
    compileSpec(model, {
      hasModule: this.#modelModule !== undefined,
      who: "replica",
      optimizer: "model",
    });
    const lossWeights = lossWeightsOf(model, options.lossWeights);
    const data = toShared(prepareSamples(model, x, y));
    return await this.#exclusive.run(async () => {
      const group = await this.#ensureGroup(model);
      const replies = await this.#acrossHosts(
        group,
        {
          op: "evaluate",
          ...describeModel(model),
          count: data.count,
          batchSize,
          lossWeights: lossWeights === null ? null : lossWeights.join(","),
        },
        () =>
          group.pool.watch(
            group.pool.all(() => ({ type: "evaluate", data, batchSize, lossWeights })),
            this.#timeoutMs,
          ),
      );
      const values = replies[0]!.type === "done" ? replies[0]!.values : [];
      const logs: Logs = {};
      group.metricsNames.forEach((name, i) => (logs[name] = values[i]!));
      return logs;
    });
  }

  /** Copies the replicas' latest synced weights into `model`. */
  syncTo(model: tf.LayersModel): void {
    if (this.#group === undefined) {
      throw new Error(
        "Nothing to sync: this strategy has not trained a model yet",
      );
    }
    this.#readWeights(model, this.#group.weights);
  }

  /** Shuts every replica Worker down. Idempotent. */
  async close(): Promise<void> {
    const group = this.#group;
    this.#group = undefined;
    await group?.pool.close();
  }

  /** `await using strategy = new MirroredStrategy()` closes it on scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #writeWeights(model: tf.LayersModel, weights: Float32Array): void {
    packWeights(model.weights, weights);
  }

  #readWeights(model: tf.LayersModel, weights: Float32Array): void {
    const tensors = unpackWeights(weights, model.weights);
    model.setWeights(tensors);
    tf.dispose(tensors);
  }
}
