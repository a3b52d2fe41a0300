// Private: the job-to-strategy adapter. `runJob` trains one admitted job: it
// builds the strategy its spec names through the public `createStrategy()`
// factory, turns the strategy's callbacks into progress, events and stored
// epochs, saves the trained model to the registry, and hands the outcome to
// the job manager's `finish`. It owns the job's model and strategy from start
// to finish; others only ask it to stop (`stopReason`, `model.stopTraining`).
import {
  createStrategy,
  type RemoteCounts,
  type Strategy,
  type StrategySpec,
  type TrainingCallbacks,
  type WorkerStats,
  WorkerStrategy,
} from "../../mod.ts";
import type { BuiltJob } from "./_build.ts";
import { errorCode } from "./_domain_errors.ts";
import type { JobEvent } from "./job_events.ts";
import type { ModelRegistry } from "./registry.ts";
import type { Store, StoredHistory } from "./store.ts";
import type { JobBlas, JobRecord, JobRequest, JobStatus } from "./types.ts";
import type { BlasReport } from "../../backends/types.ts";
import type { RemoteWorkers } from "../strategy/ps/remote_workers.ts";
import type { HttpSessions } from "../edge/http_sessions.ts";

/** A remote job's gate for edge workers. */
export interface JobRemote {
  /** The strategy's pool of remote workers. */
  pool: RemoteWorkers;
  /** Its request/response sessions. */
  http: HttpSessions;
  /** SHA-256 (hex) of the job's worker token. */
  tokenHash: string;
}

/** A job this server admitted: queued or running. */
export interface LiveJob {
  /** The job's record; `runJob` and the manager's `finish` write it. */
  record: JobRecord;
  /** The compiled model and its data. */
  built: BuiltJob;
  /** The strategy to build, as the factory takes it. */
  spec: StrategySpec;
  /** Options of `strategy.fit`. */
  fit: JobRequest["fit"];
  /** Epoch logs so far. */
  history: StoredHistory;
  /** Why the job was asked to stop, if it was. */
  /**
   * Why the job was asked to stop: `cancelled`, `interrupted` (ends it), or
   * `suspended` (this server shuts down; the next one resumes the job).
   */
  stopReason: "cancelled" | "interrupted" | "suspended" | null;
  /** Where the job's checkpoints go, or null for none. */
  checkpointDir: string | null;
  /** The strategy while `fit` runs. */
  strategy: Strategy | undefined;
  /** Remote workers' gate, for a job with `strategy.remote`. */
  remote: JobRemote | null;
  /** A WorkerStrategy job's workers once its run ended, kept with the job. */
  lastWorkers: {
    workers: WorkerStats[];
    remote: RemoteCounts | null;
    batches: { applied: number; repeated: number } | null;
  } | null;
  /** Resolves once the job ended. */
  done: Promise<void>;
  /** Resolves `done`. */
  resolveDone: () => void;
}

/** What `runJob` needs from the job manager. */
export interface RunContext {
  /** Where the record and epochs are stored. */
  store: Store;
  /** Where the trained model goes. */
  registry: ModelRegistry;
  /** Publishes one of the job's events. */
  emit(event: JobEvent): void;
  /**
   * Records how the job ended (its last write, and its `end` event), or
   * that it was `suspended` (left for the next server to resume).
   */
  finish(status: JobStatus | "suspended", error?: JobRecord["error"]): Promise<void>;
}

function cleanLogs(logs: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(logs ?? {})) {
    if (k !== "batch" && k !== "size") out[k] = v;
  }
  return out;
}

/**
 * Trains `job` to its end: succeeded (model saved), failed (the error's code
 * and message recorded), or stopped for its `stopReason`. Disposes the model
 * (and its optimizer) and resolves `job.done` in every case.
 */
export async function runJob(job: LiveJob, ctx: RunContext): Promise<void> {
  const { record, built } = job;
  const model = built.model;
  try {
    record.status = "running";
    record.startedAt = new Date().toISOString();
    await ctx.store.putJob(record);
    ctx.emit({ type: "status", status: "running" });
    const data = await built.loadData();
    if (job.stopReason !== null) return await ctx.finish(job.stopReason);
    const strategy = createStrategy(job.spec);
    job.strategy = strategy;
    const progress = record.progress;
    const stopIfAsked = () => {
      if (job.stopReason !== null) model.stopTraining = true;
    };
    const unsubscribe = job.remote?.pool.subscribe((e) => {
      ctx.emit(
        e.type === "joined"
          ? { type: "worker", change: "joined", address: e.address, attached: e.attached }
          : {
            type: "worker",
            change: "left",
            worker: e.worker,
            reason: e.reason,
            attached: e.attached,
          },
      );
      if (e.attached === 0 && e.type === "left") {
        ctx.emit({ type: "waiting", detail: "no remote worker attached: waiting for one" });
      }
    });
    if (job.remote !== null && job.remote.pool.attached === 0) {
      ctx.emit({ type: "waiting", detail: "no remote worker attached yet: waiting for one" });
    }
    const callbacks: TrainingCallbacks = {
      onTrainBegin: () => {
        record.backend = strategy.stats?.backends[0] ?? null;
        record.blas = jobBlas(strategy.stats?.blas);
        stopIfAsked();
      },
      onEpochBegin: (epoch) => {
        progress.epoch = epoch + 1;
        progress.step = 0;
        stopIfAsked();
      },
      onBatchEnd: (step, logs) => {
        progress.step = step + 1;
        ctx.emit({
          type: "batch",
          epoch: progress.epoch,
          step: step + 1,
          steps: progress.steps,
          logs: cleanLogs(logs),
        });
        stopIfAsked();
      },
      onEpochEnd: async (epoch, logs) => {
        const clean = cleanLogs(logs);
        recordEpoch(job.history, epoch, clean);
        ctx.emit({ type: "epoch", epoch: epoch + 1, epochs: progress.epochs, logs: clean });
        await ctx.store.appendEpoch(record.id, epoch, clean);
        await ctx.store.putJob(record);
        stopIfAsked();
      },
    };
    try {
      await strategy.fit(model, data.x, data.y, {
        epochs: job.fit.epochs,
        batchSize: job.fit.batchSize,
        validationSplit: job.fit.validationSplit,
        shuffle: job.fit.shuffle,
        // A job resumed elsewhere must shuffle as it did: a seed it keeps.
        seed: job.fit.seed ?? seedOf(record.id),
        ...(job.fit.lossWeights === undefined ? {} : { lossWeights: job.fit.lossWeights }),
        ...(job.fit.classWeight === undefined ? {} : { classWeight: job.fit.classWeight }),
        callbacks,
        ...(job.checkpointDir === null ? {} : { checkpoint: { dir: job.checkpointDir, keep: 2 } }),
      });
      // A parameter server knows its workers' backends once the run is over.
      record.backend ??= strategy.stats?.backends[0] ?? null;
      record.blas ??= jobBlas(strategy.stats?.blas);
    } finally {
      if (strategy instanceof WorkerStrategy) {
        job.lastWorkers = {
          workers: strategy.liveWorkers,
          remote: job.remote === null ? null : structuredClone(job.remote.pool.counts),
          batches: strategy.stats === undefined ? null : {
            applied: strategy.stats.batchesApplied,
            repeated: strategy.stats.batchesRepeated,
          },
        };
      }
      job.strategy = undefined;
      unsubscribe?.();
      await strategy.close();
    }
    if (job.stopReason !== null) return await ctx.finish(job.stopReason);
    const last = job.history.epoch.length - 1;
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(job.history.history)) metrics[k] = v[last]!;
    const saved = await ctx.registry.save(model, { jobId: record.id, metrics });
    record.modelId = saved.id;
    await ctx.finish("succeeded");
  } catch (e) {
    if (job.stopReason !== null) return await ctx.finish(job.stopReason);
    await ctx.finish("failed", {
      code: errorCode(e),
      message: e instanceof Error ? e.message : String(e),
    });
  } finally {
    built.dispose();
    job.resolveDone();
  }
}

/**
 * Records epoch `epoch`'s logs, replacing them when the epoch ran before (a
 * resumed job runs again the epochs after its newest checkpoint).
 */
function recordEpoch(history: StoredHistory, epoch: number, logs: Record<string, number>): void {
  const at = history.epoch.indexOf(epoch);
  if (at < 0) {
    history.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
    return;
  }
  // Drop this epoch and every later one, then append.
  history.epoch.splice(at);
  for (const values of Object.values(history.history)) values.splice(at);
  recordEpoch(history, epoch, logs);
}

/** A shuffle seed derived from the job id (stable across servers). */
function seedOf(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return (h >>> 0) % 2 ** 31;
}

/** The fields of a host-BLAS report a job record keeps. */
function jobBlas(blas: BlasReport | null | undefined): JobBlas | null {
  if (blas === null || blas === undefined) return null;
  const { used, reason, library, coreName, gflops } = blas;
  return { used, reason, library, coreName, gflops };
}
