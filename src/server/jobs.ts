/**
 * Training jobs: a bounded queue, at most `maxConcurrentJobs` running, each
 * one trained through the public `MirroredStrategy` API (the replicas run in
 * Workers, so the event loop stays free). Records and per-epoch history go to
 * the KV store; live progress fans out to subscribers (the SSE endpoint).
 *
 * Who owns what: `submit` checks and queues; `#run` owns a job's model and
 * strategy from start to finish and is the only writer of its record;
 * `cancel` and `close` only ask a running job to stop (`model.stopTraining`),
 * forcing `strategy.close()` when it does not stop in time.
 *
 * @example
 * ```ts
 * import { JobManager } from "./jobs.ts";
 * import { ModelRegistry } from "./registry.ts";
 * import { Store } from "./store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new Store(await Deno.openKv(":memory:"));
 * const registry = new ModelRegistry({ dir, store });
 * const jobs = new JobManager({ store, registry, owner: "example" });
 * await jobs.start();
 * const job = await jobs.submit({
 *   model: { preset: "mlp", hidden: [4], activation: "relu" },
 *   compile: { optimizer: "sgd", loss: "meanSquaredError", metrics: [] },
 *   data: { x: [[0, 1], [1, 0], [1, 1], [0, 0]], y: [[1], [1], [2], [0]] },
 *   fit: { epochs: 1, batchSize: 4, validationSplit: 0, shuffle: true },
 *   strategy: { kind: "mirrored", replicas: 1, backend: "cpu" },
 * });
 * await jobs.wait(job.id);
 * console.assert((await jobs.get(job.id)).status === "succeeded");
 * await jobs.close();
 * registry.close();
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { MirroredStrategy, type TrainingCallbacks } from "../../mod.ts";
import { buildJob, type BuiltJob } from "./_build.ts";
import { positiveInt } from "../strategy/_options.ts";
import { errorCode, HttpError, notFound } from "./_errors.ts";
import { isId, newId } from "./_ids.ts";
import type { ModelRegistry } from "./registry.ts";
import { TERMINAL_STATUSES } from "./schemas.ts";
import type { JobRecord, JobRequest, JobStatus } from "./types.ts";
import type { JobPage, Store, StoredHistory } from "./store.ts";

/** Options for {@linkcode JobManager}. */
export interface JobManagerOptions {
  /** Where records and history persist. */
  store: Store;
  /** Where trained models go. */
  registry: ModelRegistry;
  /** This server's instance id (recorded as each job's `owner`). */
  owner: string;
  /**
   * Jobs trained at the same time.
   * @default 1
   */
  maxConcurrentJobs?: number;
  /**
   * Jobs waiting at most; one more is refused with 429.
   * @default 16
   */
  maxQueuedJobs?: number;
  /**
   * Replicas of a job that does not say.
   * @default navigator.hardwareConcurrency
   */
  defaultReplicas?: number;
  /**
   * Most replicas a job may ask for (400 above).
   * @default navigator.hardwareConcurrency
   */
  maxReplicas?: number;
  /**
   * A server whose lease is not renewed for this long is considered dead and
   * its queued or running jobs are marked `interrupted`.
   * @default 15000
   */
  leaseMs?: number;
  /**
   * On `close()`, how long running jobs get to stop before their Workers are
   * terminated.
   * @default 10000
   */
  shutdownTimeoutMs?: number;
}

/** What a job reports while it runs; `end` is always the last event. */
export type JobEvent =
  | { type: "status"; status: JobStatus }
  | { type: "batch"; epoch: number; step: number; steps: number; logs: Record<string, number> }
  | { type: "epoch"; epoch: number; epochs: number; logs: Record<string, number> }
  | { type: "end"; job: JobRecord };

/** A job event with its position in the job's event sequence (1-based). */
export interface SequencedEvent {
  /** Position, for `Last-Event-ID`. */
  seq: number;
  /** The event. */
  event: JobEvent;
}

/** A listener's view of a job's events: what already happened, then live ones. */
export interface Subscription {
  /** Events after the requested position that already happened. */
  replay: SequencedEvent[];
  /** True when the job already ended: `replay` holds everything there will be. */
  ended: boolean;
  /** Stops live delivery. */
  unsubscribe(): void;
}

const EVENT_BUFFER = 5000;
const KEPT_CHANNELS = 32;

class Channel {
  events: SequencedEvent[] = [];
  listeners = new Set<(e: SequencedEvent) => void>();
  ended = false;
  #seq = 0;

  emit(event: JobEvent): void {
    const e = { seq: ++this.#seq, event };
    this.events.push(e);
    if (this.events.length > EVENT_BUFFER) this.events.shift();
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        // A listener's failure (a closed stream) must never reach the training loop.
        this.listeners.delete(l);
        console.error(`dtrain server: event listener failed: ${err}`);
      }
    }
    if (event.type === "end") {
      this.ended = true;
      this.listeners.clear();
    }
  }
}

interface LiveJob {
  record: JobRecord;
  built: BuiltJob;
  replicas: number;
  backend: JobRequest["strategy"]["backend"];
  fit: JobRequest["fit"];
  history: StoredHistory;
  stopReason: "cancelled" | "interrupted" | null;
  strategy: MirroredStrategy | undefined;
  done: Promise<void>;
  resolveDone: () => void;
}

function cleanLogs(logs: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(logs ?? {})) {
    if (k !== "batch" && k !== "size") out[k] = v;
  }
  return out;
}

function sleep(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * The job queue of one server. Call `start()` once (it sweeps jobs of dead
 * servers and starts this server's lease), `close()` on shutdown.
 */
export class JobManager {
  #o: Required<Omit<JobManagerOptions, "store" | "registry" | "owner">>;
  #store: Store;
  #registry: ModelRegistry;
  #owner: string;
  #live = new Map<string, LiveJob>();
  #queue: LiveJob[] = [];
  #running = 0;
  #channels = new Map<string, Channel>();
  #closing = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #startedAt = Date.now();

  /** Validates the options; nothing runs until `start()`. */
  constructor(options: JobManagerOptions) {
    const cores = Math.max(1, navigator.hardwareConcurrency ?? 1);
    this.#store = options.store;
    this.#registry = options.registry;
    this.#owner = options.owner;
    this.#o = {
      maxConcurrentJobs: positiveInt(options.maxConcurrentJobs ?? 1, "maxConcurrentJobs"),
      maxQueuedJobs: options.maxQueuedJobs ?? 16,
      defaultReplicas: positiveInt(options.defaultReplicas ?? cores, "defaultReplicas"),
      maxReplicas: positiveInt(options.maxReplicas ?? cores, "maxReplicas"),
      leaseMs: positiveInt(options.leaseMs ?? 15_000, "leaseMs"),
      shutdownTimeoutMs: positiveInt(options.shutdownTimeoutMs ?? 10_000, "shutdownTimeoutMs"),
    };
    if (!Number.isInteger(this.#o.maxQueuedJobs) || this.#o.maxQueuedJobs < 0) {
      throw new RangeError(
        `maxQueuedJobs must be an integer >= 0, received ${this.#o.maxQueuedJobs}`,
      );
    }
    if (this.#o.defaultReplicas > this.#o.maxReplicas) {
      this.#o.defaultReplicas = this.#o.maxReplicas;
    }
  }

  /** Jobs running and queued in this server. */
  get counts(): { running: number; queued: number } {
    return { running: this.#running, queued: this.#queue.length };
  }

  /**
   * Takes this server's lease and marks `interrupted` the jobs of servers
   * that are gone; repeats every `leaseMs / 3`.
   */
  async start(): Promise<void> {
    await this.#tick();
    const timer = setInterval(() => {
      this.#ticking = this.#tick().catch((e) =>
        console.error(`dtrain server: lease renewal failed: ${e}`)
      );
    }, Math.max(50, Math.floor(this.#o.leaseMs / 3)));
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  async #tick(): Promise<void> {
    await this.#store.heartbeat(this.#owner, this.#startedAt);
    await this.#store.sweep(this.#owner, this.#o.leaseMs);
  }

  /**
   * Checks and queues a job. Throws `HttpError` 400 when the request cannot
   * train (model, shapes, batch vs replicas), 429 when the queue is full and
   * 503 while shutting down.
   */
  async submit(request: JobRequest): Promise<JobRecord> {
    this.#admit();
    const replicas = request.strategy.replicas ?? this.#o.defaultReplicas;
    if (replicas > this.#o.maxReplicas) {
      throw new HttpError(
        400,
        "invalid_request",
        `strategy.replicas: this server runs at most ${this.#o.maxReplicas} replicas per job, ` +
          `received ${replicas}`,
      );
    }
    const built = await buildJob(request, { replicas });
    try {
      this.#admit();
    } catch (e) {
      built.model.dispose();
      throw e;
    }
    const id = newId("job");
    const record: JobRecord = {
      id,
      name: request.name ?? null,
      status: "queued",
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      progress: { epoch: 0, epochs: request.fit.epochs, step: 0, steps: built.steps },
      error: null,
      modelId: null,
      spec: {
        model: built.summary.model,
        data: built.summary.data,
        compile: request.compile,
        fit: request.fit,
        strategy: { ...request.strategy, replicas },
      },
      backend: null,
      owner: this.#owner,
    };
    let resolveDone!: () => void;
    const job: LiveJob = {
      record,
      built,
      replicas,
      backend: request.strategy.backend,
      fit: request.fit,
      history: { epoch: [], history: {} },
      stopReason: null,
      strategy: undefined,
      done: new Promise((r) => (resolveDone = r)),
      resolveDone,
    };
    try {
      await this.#store.putJob(record);
    } catch (e) {
      built.model.dispose();
      throw e;
    }
    this.#live.set(id, job);
    this.#channel(id).emit({ type: "status", status: "queued" });
    this.#queue.push(job);
    const accepted = this.#snapshot(job);
    this.#pump();
    return accepted;
  }

  #admit(): void {
    if (this.#closing) {
      throw new HttpError(503, "shutting_down", "The server is shutting down: not taking jobs");
    }
    if (this.#queue.length >= this.#o.maxQueuedJobs) {
      throw new HttpError(
        429,
        "queue_full",
        `The job queue is full: ${this.#queue.length} jobs waiting, at most ` +
          `${this.#o.maxQueuedJobs}; retry once a job finished`,
        {
          details: { queued: this.#queue.length, maxQueuedJobs: this.#o.maxQueuedJobs },
          headers: { "Retry-After": "10" },
        },
      );
    }
  }

  #channel(id: string): Channel {
    let ch = this.#channels.get(id);
    if (ch === undefined) {
      ch = new Channel();
      this.#channels.set(id, ch);
      // Keep the channels of live jobs and of the most recently finished ones.
      for (const [key, c] of this.#channels) {
        if (this.#channels.size <= this.#live.size + KEPT_CHANNELS) break;
        if (c.ended) this.#channels.delete(key);
      }
    }
    return ch;
  }

  #pump(): void {
    while (this.#running < this.#o.maxConcurrentJobs && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running++;
      this.#run(job).catch((e) => console.error(`dtrain server: job ${job.record.id}: ${e}`))
        .finally(() => {
          this.#running--;
          if (!this.#closing) this.#pump();
        });
    }
  }

  async #run(job: LiveJob): Promise<void> {
    const { record, built } = job;
    const model = built.model;
    const channel = this.#channel(record.id);
    try {
      record.status = "running";
      record.startedAt = new Date().toISOString();
      await this.#store.putJob(record);
      channel.emit({ type: "status", status: "running" });
      const data = await built.loadData();
      if (job.stopReason !== null) return await this.#finish(job, job.stopReason);
      const strategy = new MirroredStrategy({ replicas: job.replicas, backend: job.backend });
      job.strategy = strategy;
      const progress = record.progress;
      const stopIfAsked = () => {
        if (job.stopReason !== null) model.stopTraining = true;
      };
      const callbacks: TrainingCallbacks = {
        onTrainBegin: () => {
          record.backend = strategy.stats?.backends[0] ?? null;
          stopIfAsked();
        },
        onEpochBegin: (epoch) => {
          progress.epoch = epoch + 1;
          progress.step = 0;
          stopIfAsked();
        },
        onBatchEnd: (step, logs) => {
          progress.step = step + 1;
          channel.emit({
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
          job.history.epoch.push(epoch);
          for (const [k, v] of Object.entries(clean)) (job.history.history[k] ??= []).push(v);
          channel.emit({ type: "epoch", epoch: epoch + 1, epochs: progress.epochs, logs: clean });
          await this.#store.appendEpoch(record.id, epoch, clean);
          await this.#store.putJob(record);
          stopIfAsked();
        },
      };
      try {
        await strategy.fit(model, data.x, data.y, {
          epochs: job.fit.epochs,
          batchSize: job.fit.batchSize,
          validationSplit: job.fit.validationSplit,
          shuffle: job.fit.shuffle,
          seed: job.fit.seed,
          callbacks,
        });
      } finally {
        job.strategy = undefined;
        await strategy.close();
      }
      if (job.stopReason !== null) return await this.#finish(job, job.stopReason);
      const last = job.history.epoch.length - 1;
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(job.history.history)) metrics[k] = v[last]!;
      const saved = await this.#registry.save(model, { jobId: record.id, metrics });
      record.modelId = saved.id;
      await this.#finish(job, "succeeded");
    } catch (e) {
      if (job.stopReason !== null) return await this.#finish(job, job.stopReason);
      await this.#finish(job, "failed", {
        code: errorCode(e),
        message: e instanceof Error ? e.message : String(e),
      });
    } finally {
      model.dispose();
      job.resolveDone();
    }
  }

  async #finish(
    job: LiveJob,
    status: JobStatus,
    error: JobRecord["error"] = null,
  ): Promise<void> {
    const { record } = job;
    if (error === null && status === "interrupted") {
      error = {
        code: "server_shutdown",
        message: `The server shut down while the job was ${record.status}; submit it again`,
      };
    }
    record.status = status;
    record.finishedAt = new Date().toISOString();
    record.error = error;
    try {
      await this.#store.putJob(record);
    } finally {
      this.#live.delete(record.id);
      this.#channel(record.id).emit({ type: "end", job: this.#snapshot(job) });
    }
  }

  #snapshot(job: LiveJob): JobRecord {
    return structuredClone({ ...job.record, history: job.history });
  }

  /** Job `id` with its History; 404 when unknown. */
  async get(id: string): Promise<JobRecord> {
    const live = this.#live.get(id);
    if (live !== undefined) return this.#snapshot(live);
    const record = isId("job", id) ? await this.#store.getJob(id) : null;
    if (record === null) throw notFound("job", id);
    return { ...record, history: await this.#store.history(id) };
  }

  /** A page of jobs, newest first (live progress for this server's jobs). */
  async list(
    query: { limit?: number; cursor?: string; status?: JobStatus } = {},
  ): Promise<JobPage> {
    const page = await this.#store.listJobs({
      limit: query.limit ?? 100,
      cursor: query.cursor,
      status: query.status,
    });
    page.jobs = page.jobs.map((j) => {
      const live = this.#live.get(j.id);
      if (live === undefined) return j;
      const { history: _history, ...rest } = this.#snapshot(live);
      return rest;
    });
    return page;
  }

  /**
   * Cancels job `id`: a queued job at once, a running one within a step or
   * two (waiting up to `waitMs` for it). Resolves with the record. 404 when
   * unknown, 409 when it already ended or runs on another server.
   */
  async cancel(id: string, waitMs = 10_000): Promise<JobRecord> {
    const job = this.#live.get(id);
    if (job === undefined) {
      const record = await this.get(id);
      const why = TERMINAL_STATUSES.includes(record.status)
        ? `it already ended (${record.status})`
        : `it runs on another server (${record.owner})`;
      throw new HttpError(409, "job_not_cancellable", `Cannot cancel job ${id}: ${why}`, {
        details: { status: record.status },
      });
    }
    await this.#stop(job, "cancelled", waitMs);
    return this.#live.has(id) ? this.#snapshot(job) : await this.get(id);
  }

  async #stop(job: LiveJob, reason: "cancelled" | "interrupted", waitMs: number): Promise<void> {
    const queued = this.#queue.indexOf(job);
    if (queued !== -1) {
      this.#queue.splice(queued, 1);
      job.built.model.dispose();
      await this.#finish(job, reason);
      job.resolveDone();
      return;
    }
    job.stopReason ??= reason;
    job.built.model.stopTraining = true;
    const timeout = sleep(waitMs);
    await Promise.race([job.done, timeout.promise]);
    timeout.cancel();
  }

  /** Resolves once job `id` (running or queued here) ended; at once otherwise. */
  async wait(id: string): Promise<void> {
    await this.#live.get(id)?.done;
  }

  /**
   * Events of job `id` after position `after`, then live ones through
   * `listener`. Null when this server has no events of the job (it ran
   * elsewhere or before a restart): read the record instead.
   */
  subscribe(
    id: string,
    after: number,
    listener: (e: SequencedEvent) => void,
  ): Subscription | null {
    const ch = this.#channels.get(id);
    if (ch === undefined) return null;
    const replay = ch.events.filter((e) => e.seq > after);
    if (!ch.ended) ch.listeners.add(listener);
    return { replay, ended: ch.ended, unsubscribe: () => ch.listeners.delete(listener) };
  }

  /**
   * Stops taking jobs, marks queued and running jobs `interrupted` (running
   * ones stop within a step or two; after `shutdownTimeoutMs` their Workers
   * are terminated) and gives up this server's lease. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#timer);
    await this.#ticking;
    const jobs = [...this.#live.values()];
    for (const job of [...this.#queue].reverse()) await this.#stop(job, "interrupted", 0);
    await Promise.all(
      jobs.map((job) => this.#stop(job, "interrupted", this.#o.shutdownTimeoutMs)),
    );
    // Jobs that did not stop in time: terminate their Workers (fit rejects).
    await Promise.all(jobs.map(async (job) => {
      if (!this.#live.has(job.record.id)) return;
      await job.strategy?.close();
      const timeout = sleep(this.#o.shutdownTimeoutMs);
      await Promise.race([job.done, timeout.promise]);
      timeout.cancel();
    }));
    await this.#store.removeServer(this.#owner).catch(() => {});
  }
}
