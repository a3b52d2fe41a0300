/**
 * WorkerStrategy: asynchronous data-parallel training with a parameter server.
 *
 * Who owns what: the main thread is the parameter server. It owns the
 * variables and the optimizer (they are the user's compiled model itself),
 * publishes the weights into a versioned shared buffer, and applies each
 * gradient a worker hands over, in arrival order, under the staleness rule
 * (`ps/_parameter_server.ts`); it also runs callbacks, History, progress and
 * validation (`ps/_reporter.ts`), and decides when a failed worker is
 * replaced. The elastic set of workers (`ps/_worker_set.ts`) starts, watches,
 * replaces, adds and removes them. Each worker (`ps/ps_worker.ts`) owns
 * a copy of the model without optimizer state: it claims batches from a
 * shared cursor, copies the latest published weights, computes loss and
 * gradients on its batch, and writes them into its own shared gradient slot.
 * No message crosses per step.
 *
 * Epochs: with N training samples and per-worker `batchSize` B, an epoch is
 * S = ceil(N / B) applied gradients. Batches come from one stream shared by
 * all workers: batch b is step `b % S` of the seeded permutation of pass
 * `floor(b / S)`, so successive passes each cover the data once; a dropped
 * gradient or a crashed worker's lost batch is not redrawn (the stream moves
 * on), and an epoch still ends after S applied gradients.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { BACKEND_NAMES, type BackendName } from "../../backends/types.ts";
import { NonFiniteLossError, WorkerCrashedError } from "../errors.ts";
import { VersionedBuffer } from "../collective/versioned_buffer.ts";
import { modelLayout } from "./_layout.ts";
import { nonNegativeInt, positiveInt, refuseUnknownOptions } from "../core/checks.ts";
import { packWeights, weightsLength } from "../core/weights.ts";
import { type ModelModule, modelSource, resolveModelModule } from "./_options.ts";
import { PS_CONTROL_INTS, PS_DOORBELL } from "./ps/_layout.ts";
import { callAll, History, type Logs } from "../training/callbacks.ts";
import type {
  EvaluateOptions,
  FitOptions,
  Strategy,
  StrategyKind,
  StrategyRunStats,
} from "./strategy.ts";
import { compileSpec, lossWeightsOf } from "./_compile.ts";
import {
  checkCheckpointOptions,
  type CheckpointOptions,
  checkpointTempPath,
  commitCheckpoint,
  writeCheckpointFiles,
} from "../io/checkpoint.ts";
import { resumePoint } from "./mirrored/_resume.ts";
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
import { type Prepared, prepareSamples, type Samples, toShared } from "./_inputs.ts";
import type { SharedData } from "./protocol.ts";
import { evaluationSums } from "./_model.ts";
import { ParameterServer, type StalePolicy } from "./ps/_parameter_server.ts";
import { AsyncFitReporter } from "./ps/_reporter.ts";
import { shardRange } from "./_sharding.ts";
import {
  type Crash,
  type Spawn,
  type WorkerBackend,
  WorkerSet,
  type WorkerStats,
} from "./ps/_worker_set.ts";
import { RemoteLane, RemoteWorkers } from "./ps/remote_workers.ts";

export type { StalePolicy, WorkerBackend, WorkerStats };

/** The server yields to the event loop at least this often while applying. */
const YIELD_MS = 20;

/** The option names {@linkcode WorkerStrategy} takes; any other is refused. */
export const WORKER_OPTIONS = [
  "workers",
  "staleness",
  "stalePolicy",
  "backend",
  "threadsPerWorker",
  "maxRestarts",
  "modelModule",
  "workerTimeoutMs",
  "remote",
] as const satisfies readonly (keyof WorkerStrategyOptions)[];

/** Options for {@linkcode WorkerStrategy}. */
export interface WorkerStrategyOptions {
  /**
   * Number of gradient workers (Workers of this process) at the start; may
   * be 0 when `remote` is set.
   * @default navigator.hardwareConcurrency
   */
  workers?: number;
  /**
   * Remote workers on other machines may join (see `RemoteWorkers` and the
   * HTTP service's worker routes): `true` makes a pool with default limits
   * (closed by `close()`), or pass one (yours to close). A run with no
   * worker at all waits up to its `waitMs`.
   * @default false
   */
  remote?: boolean | RemoteWorkers;
  /**
   * Largest staleness applied as is: a gradient computed on weights more
   * than `staleness` versions older than the server's is stale.
   * @default 4
   */
  staleness?: number;
  /**
   * What happens to a stale gradient: `"drop"` discards it, `"scale"`
   * applies it multiplied by `(staleness + 1) / (s + 1)` where `s` is its
   * staleness.
   * @default "drop"
   */
  stalePolicy?: StalePolicy;
  /**
   * Backend of every worker, or one per worker (an array of `workers`
   * entries, e.g. `["webgpu", "wasm"]`). `DTRAIN_BACKEND` overrides `"auto"`.
   * @default "auto"
   */
  backend?: WorkerBackend | WorkerBackend[];
  /**
   * WASM threads per worker.
   * @default 1
   */
  threadsPerWorker?: number;
  /**
   * Workers that may be replaced in one `fit` after they throw or die. When
   * a worker fails with no restart left, training goes on with the others;
   * when none is left, `fit` rejects.
   * @default 3
   */
  maxRestarts?: number;
  /**
   * A module every worker imports to build the model: it must export a
   * function `exportName` returning a `tf.LayersModel` made with dtrain's
   * `tf`. Needed for custom layers, losses or metrics.
   * @default undefined (rebuild from `model.toJSON()`)
   */
  modelModule?: { url: string | URL; exportName?: string };
  /**
   * A worker whose heartbeat stops this long is declared dead and replaced.
   * Must exceed the slowest step.
   * @default 30000
   */
  workerTimeoutMs?: number;
}

/**
 * Options for {@linkcode WorkerStrategy.fit}: those of `MirroredStrategy.fit`
 * except `trace`, with `batchSize` per worker and checkpoints at epoch ends
 * only.
 */
export interface WorkerFitOptions extends Omit<FitOptions, "batchSize" | "checkpoint" | "trace"> {
  /**
   * Write a checkpoint (weights, optimizer state, epoch, History) into
   * `checkpoint.dir` at every epoch end; a later `fit` with the same dir
   * resumes from the newest one, at the start of the epoch after it.
   * `everySteps` is refused: an asynchronous run has no step boundary every
   * worker agrees on. @default undefined (no checkpoints)
   */
  checkpoint?: Omit<CheckpointOptions, "everySteps"> & { everySteps?: 0 };
  /**
   * Samples per gradient, **per worker** (each worker computes a gradient
   * on `batchSize` samples; MirroredStrategy's `batchSize` is the global
   * batch). An epoch is `ceil(samples / batchSize)` applied gradients.
   * @default 32
   */
  batchSize?: number;
}

/** Options for {@linkcode WorkerStrategy.addWorker}. */
export interface AddWorkerOptions {
  /**
   * Backend of the new worker.
   * @default the strategy's backend (`"auto"` when it was given per worker)
   */
  backend?: WorkerBackend;
}

/**
 * Measurements of the last run, for diagnostics and tests. `backends`,
 * `backendReason` and `threads` cover the workers that started.
 */
export interface WorkerStrategyStats extends StrategyRunStats {
  /** Every worker that took part in the last run, crashed and removed ones included. */
  workers: WorkerStats[];
  /** The main thread's tfjs backend: where the optimizer runs. */
  serverBackend: string;
  /** Gradients received by the server. */
  received: number;
  /** What the remote workers did (joins, losses, refusals), or null without `remote`. */
  remote: RemoteWorkers["counts"] | null;
  /** Gradients applied (fresh and scaled). */
  applied: number;
  /** Applied gradients that were stale and down-weighted. */
  scaled: number;
  /** Stale gradients that were dropped. */
  dropped: number;
  /** Largest staleness seen. */
  maxStaleness: number;
  /** Mean staleness of the received gradients. */
  meanStaleness: number;
  /** Workers replaced after a crash. */
  restarts: number;
  /** The server's final weight version (applied gradients). */
  version: number;
  /** Distinct batches of the run's batch stream whose gradient was applied. */
  batchesApplied: number;
  /** Applied gradients of a batch already applied once (0 unless a batch was handed out twice). */
  batchesRepeated: number;
}

function checkBackend(value: unknown, what: string): WorkerBackend {
  if (value === "auto" || BACKEND_NAMES.includes(value as BackendName)) {
    return value as WorkerBackend;
  }
  throw new TypeError(
    `${what} must be "auto" or one of ${BACKEND_NAMES.join(", ")}, received ${
      JSON.stringify(value)
    }`,
  );
}

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

interface Run {
  control: Int32Array;
  ps: ParameterServer;
  model: tf.LayersModel;
  reporter: AsyncFitReporter;
  epochs: number;
  initialEpoch: number;
  steps: number;
  verbose: 0 | 1 | 2;
  /** Validation inputs and targets, one tensor per model input and output. */
  validation: { xs: tf.Tensor[]; ys: tf.Tensor[] } | undefined;
  validationBatchSize: number;
  /** One weight per output's loss, or null (1 each). */
  lossWeights: number[] | null;
  restarts: number;
  closeRequested: boolean;
  /** Where and how epoch-end checkpoints are written. */
  checkpoint: {
    dir: string;
    keep: number;
    everyEpoch: boolean;
    runId: string;
    state: { seed: number; batchSize: number; shuffle: boolean; trainCount: number };
    history: History;
  } | undefined;
  /** Batches whose gradient was applied, and how many were applied again. */
  batches: Set<number>;
  repeated: number;
}

/**
 * Asynchronous data-parallel training: the main thread is a parameter server
 * that owns the weights and the optimizer; N worker Workers compute
 * gradients on their own batches of `batchSize` samples, each on the latest
 * weights it could read, and the server applies every gradient as it
 * arrives. A slow worker does not hold the others back, a failed worker is
 * replaced without losing the server's state, and workers can be added or
 * removed while training. Gradients computed on weights more than
 * `staleness` versions old are dropped or down-weighted.
 *
 * `fit`, `evaluate`, callbacks and History are those of `MirroredStrategy`,
 * except that `batchSize` is per worker. Epoch logs add `stale` (gradients
 * beyond the bound), `dropped` (of them, discarded) and `restarts` (workers
 * replaced). Validation runs on the server at each epoch end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf, WorkerStrategy } from "../../mod.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * await using strategy = new WorkerStrategy({ workers: 2, staleness: 4, backend: "cpu" });
 * const history = await strategy.fit(model, [[0, 1], [1, 0], [1, 1], [0, 0]], [[1], [1], [2], [0]], {
 *   epochs: 2,
 *   batchSize: 2, // per worker: an epoch is ceil(4 / 2) = 2 applied gradients
 * });
 * assert.ok(history.history.loss?.length === 2 && history.history.dropped !== undefined);
 * ```
 */
export class WorkerStrategy implements Strategy {
  /** Always `"worker"`. */
  readonly kind: StrategyKind = "worker";
  /** `batchSize` is per worker: each gradient is one worker's batch. */
  readonly batchScope = "perWorker" as const;
  /** Largest staleness applied as is. */
  readonly staleness: number;
  /** What happens to stale gradients. */
  readonly stalePolicy: StalePolicy;
  /** Restarts allowed per `fit`. */
  readonly maxRestarts: number;
  /** WASM threads per worker. */
  readonly threadsPerWorker: number;
  #defaultBackend: WorkerBackend;
  #modelModule: ModelModule | undefined;
  #set: WorkerSet;
  #run: Run | undefined;
  #runDone: Promise<void> | undefined;
  #stats: Omit<WorkerStrategyStats, "workers" | keyof StrategyRunStats> | undefined;
  #exclusive = new Exclusive();
  #remote: RemoteWorkers | undefined;
  #ownsRemote = false;

  /** Validates the options; Workers start on the first `fit` or `evaluate`. */
  constructor(options: WorkerStrategyOptions = {}) {
    refuseUnknownOptions(options, WORKER_OPTIONS, "WorkerStrategy");
    const remote = options.remote ?? false;
    if (remote instanceof RemoteWorkers) this.#remote = remote;
    else if (remote === true) {
      this.#remote = new RemoteWorkers();
      this.#ownsRemote = true;
    } else if (remote !== false) {
      throw new TypeError(
        `remote must be a boolean or a RemoteWorkers, received ${JSON.stringify(remote)}`,
      );
    }
    const defaultWorkers = Math.max(1, navigator.hardwareConcurrency ?? 1);
    const workers = this.#remote === undefined
      ? positiveInt(options.workers ?? defaultWorkers, "workers")
      : nonNegativeInt(options.workers ?? defaultWorkers, "workers");
    this.staleness = nonNegativeInt(options.staleness ?? 4, "staleness");
    const policy = options.stalePolicy ?? "drop";
    if (policy !== "drop" && policy !== "scale") {
      throw new TypeError(
        `stalePolicy must be "drop" or "scale", received ${JSON.stringify(policy)}`,
      );
    }
    this.stalePolicy = policy;
    this.maxRestarts = nonNegativeInt(options.maxRestarts ?? 3, "maxRestarts");
    this.threadsPerWorker = positiveInt(options.threadsPerWorker ?? 1, "threadsPerWorker");
    const timeoutMs = positiveInt(options.workerTimeoutMs ?? 30_000, "workerTimeoutMs");
    const backend = options.backend ?? "auto";
    let backends: WorkerBackend[];
    if (Array.isArray(backend)) {
      if (backend.length !== workers) {
        throw new RangeError(
          `backend has one entry per worker: expected ${workers} entries, received ${backend.length}`,
        );
      }
      backends = backend.map((b, i) => checkBackend(b, `backend[${i}]`));
      this.#defaultBackend = "auto";
    } else {
      this.#defaultBackend = checkBackend(backend, "backend");
      backends = Array(workers).fill(this.#defaultBackend);
    }
    this.#modelModule = resolveModelModule(options.modelModule);
    this.#set = new WorkerSet(backends, { timeoutMs });
  }

  /** Workers in service: running, idle, or waiting to start at the next run. */
  get workers(): number {
    return this.#set.serving + (this.#remote?.attached ?? 0);
  }

  /** Every worker now (in-process and remote), also while `fit` runs. */
  get liveWorkers(): WorkerStats[] {
    return [...this.#set.stats, ...(this.#remote?.stats ?? [])];
  }

  /** The remote workers' pool (transports join it), when `remote` is set. */
  get remote(): RemoteWorkers | undefined {
    return this.#remote;
  }

  /** The workers in service: {@linkcode Strategy.parallelism}. */
  get parallelism(): number {
    return this.workers;
  }

  /** Measurements of the last `fit`, once one has run. */
  get stats(): WorkerStrategyStats | undefined {
    if (this.#stats === undefined) return undefined;
    const workers = [...this.#set.stats, ...(this.#remote?.stats ?? [])];
    const started = workers.filter((w) => w.backend !== undefined);
    return {
      ...this.#stats,
      workers,
      backends: started.map((w) => w.backend!),
      backendReason: started[0]?.backendReason ?? "",
      threads: started.map((w) => w.threads),
      blas: started[0]?.blas ?? null,
    };
  }

  #spawn(model: tf.LayersModel): Spawn {
    const compile = compileSpec(model, {
      hasModule: this.#modelModule !== undefined,
      who: "worker",
      optimizer: "placeholder",
    });
    const source = modelSource(model, this.#modelModule);
    const layout = modelLayout(model);
    return {
      key: JSON.stringify([source, compile, this.threadsPerWorker]),
      source,
      compile,
      threads: this.threadsPerWorker,
      slotLength: layout.length,
    };
  }

  /**
   * Trains `model` asynchronously: the model itself is the parameter
   * server's state (its variables and its optimizer), so it holds the latest
   * weights at every moment, also when `fit` rejects. `batchSize` is per
   * worker. Resolves with the History (logs add `stale`, `dropped`,
   * `restarts`). x/y and `lossWeights` as in `MirroredStrategy.fit` (several
   * inputs or outputs: arrays in model order or dicts by layer name), and
   * `classWeight`, with in-process and `remote` workers alike. Rejects with
   * `WorkerCrashedError` (`role: "worker"`) when every worker is gone for
   * good, and `NonFiniteLossError` when a loss stops being finite.
   */
  async fit(
    model: tf.LayersModel,
    x: Samples,
    y: Samples,
    options: WorkerFitOptions = {},
  ): Promise<History> {
    refuseFitOptions(options, FIT_OPTIONS, "WorkerStrategy.fit()");
    const common = checkCommonFit(options);
    const batchSize = options.batchSize ?? 32;
    if (typeof batchSize !== "number" || !Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(
        `batchSize must be an integer >= 1 (samples per gradient, per worker), received ${batchSize}`,
      );
    }
    if ((options as FitOptions).trace !== undefined) {
      throw new TypeError(
        "WorkerStrategy does not write a trace: remove the trace option (MirroredStrategy only)",
      );
    }
    if ((options.checkpoint?.everySteps ?? 0) !== 0) {
      throw new TypeError(
        "WorkerStrategy checkpoints at epoch ends only: remove checkpoint.everySteps " +
          "(an asynchronous run has no step boundary every worker agrees on)",
      );
    }
    if (options.checkpoint !== undefined) checkCheckpointOptions(options.checkpoint);
    const lossWeights = lossWeightsOf(model, options.lossWeights);
    const spawn = this.#spawn(model);
    const { samples, trainCount, validation, sampleWeights } = splitSamples(model, x, y, {
      validationData: options.validationData,
      split: common.split,
      classWeight: options.classWeight,
    });
    const data = toShared(samples, 0, trainCount, sampleWeights);
    return await this.#exclusive.run(() =>
      this.#fit(model, { ...options, ...common, batchSize, lossWeights }, {
        spawn,
        data,
        trainCount,
        validation,
      })
    );
  }

  /**
   * Trains on a tfjs-data `Dataset` of `{ xs, ys }` elements (single samples
   * or `.batch(n)` batches): the dataset is read once into shared memory and
   * trained like {@linkcode WorkerStrategy.fit}, with the same options.
   * Meant for finite datasets that fit in memory.
   */
  async fitDataset(
    model: tf.LayersModel,
    dataset: DatasetLike,
    options: WorkerFitOptions = {},
  ): Promise<History> {
    return await fitOnDataset(model, dataset, (x, y) => this.fit(model, x, y, options));
  }

  async #fit(
    model: tf.LayersModel,
    options: Omit<WorkerFitOptions, "lossWeights"> & CheckedCommon & {
      batchSize: number;
      lossWeights: number[] | null;
    },
    input: { spawn: Spawn; data: SharedData; trainCount: number; validation: Prepared | undefined },
  ): Promise<History> {
    const { epochs, batchSize, verbose, callbacks } = options;
    const { spawn, data, trainCount, validation } = input;
    const ckpt = options.checkpoint === undefined
      ? undefined
      : checkCheckpointOptions(options.checkpoint);
    const history = new History();
    let seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
    let initialEpoch = options.initialEpoch;
    if (ckpt !== undefined) {
      // Weights, optimizer state and History of the newest checkpoint, if any.
      const at = await resumePoint(ckpt.dir, model, history, {
        batchSize,
        trainCount,
        initialEpoch,
        seed,
      });
      initialEpoch = at.startEpoch;
      seed = at.seed;
    }
    const shuffle = options.shuffle ?? true;
    const runId = crypto.randomUUID().slice(0, 8);
    let ended: () => void = () => {};
    this.#runDone = new Promise<void>((r) => (ended = r));
    let run: Run | undefined;
    try {
      await this.#set.prepare(spawn);
      const ps = new ParameterServer(model, {
        staleness: this.staleness,
        stalePolicy: this.stalePolicy,
        terminateOnNaN: options.terminateOnNaN ?? true,
      });
      await ps.begin();
      ps.publish();
      const steps = Math.ceil(trainCount / batchSize);
      const controlBuffer = new SharedArrayBuffer(PS_CONTROL_INTS * 4);
      run = {
        control: new Int32Array(controlBuffer),
        ps,
        model,
        reporter: new AsyncFitReporter({
          names: model.metricsNames,
          epochs,
          steps,
          callbacks,
          verbose,
          history,
        }),
        epochs,
        initialEpoch,
        steps,
        verbose,
        validation: validation === undefined ? undefined : {
          xs: validation.inputs.map((f) => tf.tensor(f.data, f.shape)),
          ys: validation.outputs.map((f) => tf.tensor(f.data, f.shape)),
        },
        validationBatchSize: batchSize,
        lossWeights: options.lossWeights,
        restarts: 0,
        closeRequested: false,
        checkpoint: ckpt === undefined ? undefined : {
          dir: ckpt.dir,
          keep: ckpt.keep,
          everyEpoch: ckpt.everyEpoch,
          runId,
          state: { seed, batchSize, shuffle, trainCount },
          history,
        },
        batches: new Set(),
        repeated: 0,
      };
      this.#run = run;
      const live = run;
      let failure: unknown;
      await this.#set.watching(async () => {
        try {
          model.stopTraining = false;
          await callAll(callbacks, "onTrainBegin", {});
          // The batch stream every worker draws from, in process or remote.
          const stream = {
            weightsBuffer: ps.weightsBuffer,
            data,
            trainCount,
            batchSize,
            shuffle,
            seed,
            initialEpoch,
          };
          this.#set.startRun({ controlBuffer, ...stream, lossWeights: options.lossWeights });
          this.#remote?.startRun({
            control: live.control,
            ...stream,
            model: spawn.source,
            compile: spawn.compile,
            slotLength: spawn.slotLength,
            weightCount: ps.layout.loss,
            metricCount: ps.layout.metricCount,
            lossWeights: options.lossWeights,
            version: () => ps.version,
            isOver: () =>
              ps.counts.applied >= (epochs - initialEpoch) * steps || model.stopTraining ||
              live.closeRequested,
            nextId: () => this.#set.nextId(),
          });
          failure = await this.#serve(live);
        } catch (e) {
          failure = e;
        } finally {
          this.#remote?.endRun();
          await this.#set.endRun();
          this.#run = undefined;
          await ps.sync();
          const c = ps.counts;
          this.#stats = {
            serverBackend: tf.getBackend(),
            received: c.received,
            applied: c.applied,
            scaled: c.scaled,
            dropped: c.dropped,
            maxStaleness: c.maxStaleness,
            meanStaleness: c.received > 0 ? c.stalenessSum / c.received : 0,
            restarts: live.restarts,
            version: ps.version,
            remote: this.#remote === undefined ? null : structuredClone(this.#remote.counts),
            batchesApplied: live.batches.size,
            batchesRepeated: live.repeated,
          };
        }
      });
      if (failure !== undefined) throw failure;
      await callAll(callbacks, "onTrainEnd", {});
      return history;
    } finally {
      tf.dispose([...run?.validation?.xs ?? [], ...run?.validation?.ys ?? []]);
      ended();
    }
  }

  /** The server loop: applies gradients until the run ends; resolves with its failure, if any. */
  async #serve(run: Run): Promise<unknown> {
    const { ps, control, reporter, model, steps } = run;
    const total = (run.epochs - run.initialEpoch) * steps;
    let epoch = run.initialEpoch, inEpoch = 0, applied = 0;
    const endEpoch = async () => {
      // Callbacks and validation see the weights the server publishes, and
      // whatever they change in the model is what the server goes on from.
      await ps.sync();
      const val = run.validation === undefined ? undefined : evaluateOnServer(
        model,
        run.validation.xs,
        run.validation.ys,
        run.validationBatchSize,
        run.lossWeights,
      );
      await reporter.endEpoch(epoch, val);
      if (run.checkpoint?.everyEpoch === true && !model.stopTraining) {
        await writeEpochCheckpoint(model, run.checkpoint, epoch + 1);
      }
      await ps.begin();
      epoch++;
      inEpoch = 0;
    };
    if (total <= 0) return undefined;
    await reporter.beginEpoch(epoch);
    let lastYield = performance.now();
    for (;;) {
      if (run.closeRequested) {
        return new Error("WorkerStrategy.close() was called while fit was running");
      }
      const lost = this.#replaceCrashed(run);
      if (lost !== undefined) return lost;
      const seen = Atomics.load(control, PS_DOORBELL);
      this.#remote?.checkBeats();
      const local = this.#set.full();
      const ready: (typeof local[number] | RemoteLane)[] = [
        ...local,
        ...(this.#remote?.full() ?? []),
      ];
      if (this.#remote !== undefined) {
        ready.sort((a, b) => a.slot!.info().ticket - b.slot!.info().ticket);
      }
      if (ready.length === 0) {
        if (model.stopTraining) {
          if (inEpoch > 0) await endEpoch();
          return undefined;
        }
        await Atomics.waitAsync(control, PS_DOORBELL, seen, 100).value;
        lastYield = performance.now();
        continue;
      }
      for (const m of ready) {
        if (run.closeRequested) break;
        const out = ps.apply(m.slot!);
        if (m instanceof RemoteLane) m._applied();
        const received = m.stats.applied + m.stats.dropped + 1;
        m.stats.meanStaleness += (out.staleness - m.stats.meanStaleness) / received;
        if (out.kind === "nonFinite") return new NonFiniteLossError(epoch, inEpoch, out.loss);
        if (out.kind === "dropped") {
          m.stats.dropped++;
          reporter.stale(true);
          continue;
        }
        m.stats.applied++;
        if (run.batches.has(out.batch)) run.repeated++;
        else run.batches.add(out.batch);
        if (out.kind === "scaled") {
          m.stats.scaled++;
          reporter.stale(false);
        }
        await reporter.step(inEpoch, {
          values: [out.loss, ...out.metrics],
          samples: out.samples,
          worker: m.id,
          staleness: out.staleness,
        });
        applied++;
        inEpoch++;
        if (inEpoch === steps) {
          await endEpoch();
          if (applied < total && !model.stopTraining) await reporter.beginEpoch(epoch);
        }
        if (applied >= total || model.stopTraining) break;
      }
      if (applied >= total) return undefined;
      if (model.stopTraining) {
        if (inEpoch > 0) await endEpoch();
        return undefined;
      }
      if (performance.now() - lastYield > YIELD_MS) {
        await tick();
        lastYield = performance.now();
      }
    }
  }

  /**
   * Replaces the workers that crashed since the last call while restarts are
   * left. Returns the error that ends the run when no worker is left.
   */
  #replaceCrashed(run: Run): WorkerCrashedError | undefined {
    let last: Crash | undefined;
    for (const crash of this.#set.takeCrashes()) {
      last = crash;
      const detail = crash.error.detail;
      if (run.restarts < this.maxRestarts) {
        run.restarts++;
        run.reporter.restart();
        const next = this.#set.replace(crash);
        if (run.verbose > 0) {
          console.error(
            `\nworker ${crash.member.id} failed (${detail}): replaced by worker ${next.id} ` +
              `(restart ${run.restarts} of ${this.maxRestarts})`,
          );
        }
      } else {
        this.#set.abandon(crash);
        if (run.verbose > 0) {
          console.error(
            `\nworker ${crash.member.id} failed (${detail}): not replaced ` +
              `(maxRestarts ${this.maxRestarts} used up)`,
          );
        }
      }
    }
    if (this.#set.hasLive() || this.#remote?.live() === true) return undefined;
    const remote = this.#remote === undefined
      ? ""
      : `no remote worker attached for remote waitMs ${this.#remote.waitMs} ms; `;
    return new WorkerCrashedError(
      "worker",
      last?.member.id ?? -1,
      `${remote}${last === undefined ? "no worker left" : last.error.detail}; every worker ` +
        `is gone (${run.restarts} of maxRestarts ${this.maxRestarts} restarts used): ` +
        `training stopped after ${run.ps.counts.applied} applied gradients, and the model ` +
        `holds the server's latest weights`,
      { cause: last?.error },
    );
  }

  /**
   * Evaluates `model` on `x`/`y` with every worker taking a share of the
   * samples; resolves with `{ loss, <metric>... }` averaged over all samples
   * (`model.metricsNames`).
   */
  async evaluate(
    model: tf.LayersModel,
    x: Samples,
    y: Samples,
    options: EvaluateOptions = {},
  ): Promise<Logs> {
    const batchSize = positiveInt(options.batchSize ?? 32, "batchSize");
    const lossWeights = lossWeightsOf(model, options.lossWeights);
    const spawn = this.#spawn(model);
    const prepared = prepareSamples(model, x, y);
    const data = toShared(prepared);
    return await this.#exclusive.run(async () => {
      await this.#set.prepare(spawn);
      const members = this.#set.idle();
      if (members.length === 0) {
        // Remote workers only: the server evaluates.
        const xs = prepared.inputs.map((f) => tf.tensor(f.data, f.shape));
        const ys = prepared.outputs.map((f) => tf.tensor(f.data, f.shape));
        try {
          return evaluateOnServer(model, xs, ys, batchSize, lossWeights);
        } finally {
          tf.dispose([...xs, ...ys]);
        }
      }
      const weights = publishWeights(model);
      const replies = await this.#set.watching(() =>
        Promise.all(members.map((m, i) => {
          const [from, to] = shardRange(data.count, members.length, i);
          return this.#set.request(m, {
            type: "psEvaluate",
            weights,
            data,
            from,
            to,
            batchSize,
            lossWeights,
          });
        }))
      );
      const sums = new Array<number>(model.metricsNames.length).fill(0);
      for (const r of replies) {
        if (r.type === "done") r.values.forEach((v, i) => (sums[i]! += v));
      }
      const logs: Logs = {};
      model.metricsNames.forEach((name, i) => (logs[name] = sums[i]! / Math.max(1, data.count)));
      return logs;
    });
  }

  /**
   * Adds a worker. During `fit` it starts at once, joins the run and the
   * promise resolves once it computes; otherwise it starts with the next run.
   * Resolves with the new worker's id.
   */
  addWorker(options: AddWorkerOptions = {}): Promise<number> {
    try {
      return this.#set.add(checkBackend(options.backend ?? this.#defaultBackend, "backend"));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Removes worker `id` (by default the newest). During `fit` the worker
   * finishes its current gradient (which the server still applies) and
   * leaves; resolves once its Worker is closed. The last worker cannot be
   * removed.
   */
  removeWorker(id?: number): Promise<void> {
    return this.#set.remove(id);
  }

  /**
   * Shuts every worker Worker down (a running `fit` stops and rejects).
   * Idempotent; a later `fit` starts fresh Workers.
   */
  async close(): Promise<void> {
    const run = this.#run;
    if (run !== undefined) {
      run.closeRequested = true;
      this.#set.wake();
      await this.#runDone;
    }
    // A pool passed in belongs to the caller (who may suspend it instead).
    if (this.#ownsRemote) this.#remote?.close();
    await this.#set.close();
  }

  /** `await using strategy = new WorkerStrategy()` closes it on scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Writes the checkpoint of a run that goes on with epoch `next`. */
async function writeEpochCheckpoint(
  model: tf.LayersModel,
  c: NonNullable<Run["checkpoint"]>,
  next: number,
): Promise<void> {
  const temp = checkpointTempPath(c.dir, next, 0, c.runId);
  await writeCheckpointFiles(model, temp);
  await commitCheckpoint(c.dir, temp, {
    epoch: next,
    step: 0,
    ...c.state,
    history: { epoch: [...c.history.epoch], history: structuredClone(c.history.history) },
    partial: { sums: [], samples: 0 },
  }, c.keep);
}

/** The model's weights as version 0 of a new versioned buffer. */
function publishWeights(model: tf.LayersModel): SharedArrayBuffer {
  const weights = [...model.trainableWeights, ...model.nonTrainableWeights];
  const count = weightsLength(weights);
  const buffer = new SharedArrayBuffer(VersionedBuffer.bytes(count));
  new VersionedBuffer(buffer, count).publish((into) => packWeights(weights, into));
  return buffer;
}

/**
 * Loss and metrics of `model` on `xs`/`ys` (one tensor per input and
 * output), on the main thread, in batches, averaged over all samples: the
 * sums the workers compute (`evaluationSums`), so the server's validation
 * means what a worker's evaluation means.
 */
function evaluateOnServer(
  model: tf.LayersModel,
  xs: tf.Tensor[],
  ys: tf.Tensor[],
  batchSize: number,
  lossWeights: number[] | null,
): Logs {
  const count = xs[0]!.shape[0]!;
  const sums = new Array<number>(model.metricsNames.length).fill(0);
  for (let at = 0; at < count; at += batchSize) {
    const n = Math.min(batchSize, count - at);
    const partial = tf.tidy(() =>
      evaluationSums(
        model,
        xs.map((t) => tf.slice(t, [at], [n])),
        ys.map((t) => tf.slice(t, [at], [n])),
        lossWeights,
      )
    );
    partial.forEach((t, i) => (sums[i]! += t.dataSync()[0]!));
    tf.dispose(partial);
  }
  const logs: Logs = {};
  model.metricsNames.forEach((name, i) => (logs[name] = sums[i]! / Math.max(1, count)));
  return logs;
}
