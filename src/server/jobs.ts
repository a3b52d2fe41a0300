/**
 * Training jobs: the job manager, the one public object over the rooms of a
 * job's life. Each concept has its own file:
 *
 * - `_job_queue.ts`: admission (429 when full, 503 while closing) and at most
 *   `maxConcurrentJobs` running;
 * - `_job_runner.ts`: adapts a job to the strategy its spec names, built by
 *   the public `createStrategy()` factory (the Workers train, so the event
 *   loop stays free), and saves the trained model;
 * - `job_events.ts`: the per-job event channels with replay (the SSE
 *   endpoint subscribes);
 * - `_lease.ts`: this server's lease, and the sweep of dead servers' jobs.
 *
 * Who owns what: `submit` checks and queues; the runner owns a job's model
 * and strategy from start to finish, and it and `#finish` are the only
 * writers of its record; `cancel` and `close` only ask a running job to stop
 * (`model.stopTraining`), forcing `strategy.close()` when it does not stop in
 * time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
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
 * assert.ok((await jobs.get(job.id)).status === "succeeded");
 * await jobs.close();
 * registry.close();
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { STRATEGY_KINDS, type StrategySpec, type WorkerStats, WorkerStrategy } from "../../mod.ts";
import { positiveInt } from "../core/checks.ts";
import { join } from "node:path";
import { buildJob, type BuiltJob } from "./_build.ts";
import type { DatasetLibrary } from "./datasets.ts";
import { writeJsonFile } from "../io/json_file.ts";
import { InputError, JobNotCancellableError, NotFoundError } from "./_domain_errors.ts";
import { isId, newId } from "./_ids.ts";
import { JobQueue } from "./_job_queue.ts";
import { type JobRemote, type LiveJob, runJob } from "./_job_runner.ts";
import { RemoteWorkers } from "../strategy/ps/remote_workers.ts";
import { HttpSessions } from "../edge/http_sessions.ts";
import { sha256Hex, tokensEqual } from "./_auth.ts";
import { ServerLease } from "./_lease.ts";
import {
  type JobEvent,
  JobEventBus,
  type SequencedEvent,
  type Subscription,
} from "./job_events.ts";
import type { ModelRegistry } from "./registry.ts";
import { TERMINAL_STATUSES } from "./schemas.ts";
import type { JobPage, Store } from "./store.ts";
import type { JobRecord, JobRequest, JobStatus } from "./types.ts";

export type { JobEvent, SequencedEvent, Subscription } from "./job_events.ts";

/** Options for {@linkcode JobManager}. */
export interface JobManagerOptions {
  /** Where records and history persist. */
  store: Store;
  /** Where trained models go. */
  registry: ModelRegistry;
  /** This server's instance id (recorded as each job's `owner`). */
  owner: string;
  /**
   * Folder of the jobs' files: each job's request (data included) and
   * checkpoints, so that a server starting on the same folder resumes the
   * jobs of one that stopped. Without it, jobs of a stopped server end
   * `interrupted` and nothing resumes.
   * @default undefined
   */
  jobsDir?: string;
  /** Uploaded datasets that job specs may name (`data.upload`). */
  datasets?: DatasetLibrary;
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

/** 32 random bytes, base64url. */
function newWorkerToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
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
  #o: Required<
    Omit<JobManagerOptions, "store" | "registry" | "owner" | "jobsDir" | "datasets">
  >;
  #store: Store;
  #registry: ModelRegistry;
  #owner: string;
  #live = new Map<string, LiveJob>();
  #queue: JobQueue<LiveJob>;
  #events = new JobEventBus({ live: () => this.#live.size });
  #lease: ServerLease;
  #closing = false;
  #jobsDir: string | null;
  #datasets: DatasetLibrary | undefined;

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
    this.#jobsDir = options.jobsDir ?? null;
    this.#datasets = options.datasets;
    this.#lease = new ServerLease(
      this.#store,
      this.#owner,
      this.#o.leaseMs,
      this.#jobsDir === null ? undefined : (ids) => this.#takeOver(ids),
    );
    this.#queue = new JobQueue({
      maxConcurrent: this.#o.maxConcurrentJobs,
      maxQueued: this.#o.maxQueuedJobs,
      run: (job) =>
        runJob(job, {
          store: this.#store,
          registry: this.#registry,
          emit: (event) => this.#events.emit(job.record.id, event),
          finish: (status, error) => this.#finish(job, status, error),
        }).catch((e) => console.error(`dtrain server: job ${job.record.id}: ${e}`)),
    });
  }

  /** Jobs running and queued in this server. */
  get counts(): { running: number; queued: number } {
    return { running: this.#queue.running, queued: this.#queue.waiting.length };
  }

  /**
   * Takes this server's lease and takes over the jobs of servers that are
   * gone (resumed with `jobsDir`, else marked `interrupted`); repeats every
   * `leaseMs / 3`.
   */
  async start(): Promise<void> {
    await this.#lease.start();
  }

  /**
   * Checks and queues a job. Throws `InputError` when the request cannot
   * train (model, shapes, batch vs replicas), `QueueFullError` when the queue
   * is full and `ShuttingDownError` while shutting down (the HTTP layer
   * answers 400, 429 and 503).
   */
  async submit(request: JobRequest): Promise<JobRecord & { workerToken?: string }> {
    this.#queue.admit();
    const { strategy, replicas, globalBatch } = this.#strategyOf(request);
    const built = await buildJob(request, { replicas, globalBatch, datasets: this.#datasets });
    try {
      this.#queue.admit();
    } catch (e) {
      built.dispose();
      throw e;
    }
    const id = newId("job");
    const workerToken = strategy.kind === "worker" && strategy.remote === true
      ? newWorkerToken()
      : undefined;
    const tokenHash = workerToken === undefined ? null : await sha256Hex(workerToken);
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
        strategy,
      },
      backend: null,
      owner: this.#owner,
    };
    const job = this.#liveJob(record, built, request, tokenHash, { epoch: [], history: {} });
    try {
      if (this.#jobsDir !== null) {
        // What a later server needs to resume the job: the request, data included.
        await Deno.mkdir(join(this.#jobsDir, id), { recursive: true });
        await writeJsonFile(join(this.#jobsDir, id, "request.json"), request);
      }
      if (tokenHash !== null) await this.#store.putWorkerTokenHash(id, tokenHash);
      await this.#store.putJob(record);
    } catch (e) {
      built.dispose();
      throw e;
    }
    this.#live.set(id, job);
    this.#events.emit(id, { type: "status", status: "queued" });
    const accepted = this.#snapshot(job);
    this.#queue.push(job);
    return workerToken === undefined ? accepted : { ...accepted, workerToken };
  }

  /** The strategy a request trains with, its Worker count filled in. */
  #strategyOf(request: JobRequest) {
    const kind = STRATEGY_KINDS[request.strategy.kind];
    const countOption = kind.countOption;
    const asked = (request.strategy as Partial<Record<typeof countOption, number>>)[countOption];
    const replicas = asked ?? this.#o.defaultReplicas;
    if (replicas > this.#o.maxReplicas) {
      throw new InputError(
        "invalid_request",
        `strategy.${countOption}: this server runs at most ${this.#o.maxReplicas} ` +
          `${countOption} per job, received ${replicas}`,
      );
    }
    const strategy = { ...request.strategy, [countOption]: replicas } as JobRequest["strategy"];
    return { strategy, replicas, globalBatch: kind.batchScope === "global" };
  }

  /** The live state of a job about to be queued (new, or taken over). */
  #liveJob(
    record: JobRecord,
    built: BuiltJob,
    request: JobRequest,
    tokenHash: string | null,
    history: LiveJob["history"],
  ): LiveJob {
    const { strategy } = this.#strategyOf(request);
    let remote: JobRemote | null = null;
    let spec = strategy as StrategySpec;
    if (strategy.kind === "worker" && strategy.remote === true && tokenHash !== null) {
      const { remoteWaitMs, ...options } = strategy;
      const pool = new RemoteWorkers({ waitMs: remoteWaitMs });
      remote = { pool, http: new HttpSessions(pool, { job: record.id }), tokenHash };
      spec = { ...options, remote: pool };
    }
    let resolveDone!: () => void;
    return {
      record,
      built,
      spec,
      remote,
      lastWorkers: null,
      fit: request.fit,
      checkpointDir: this.#jobsDir === null || request.fit.checkpoint === false
        ? null
        : join(this.#jobsDir, record.id, "checkpoints"),
      history,
      stopReason: null,
      strategy: undefined,
      done: new Promise((r) => (resolveDone = r)),
      resolveDone,
    };
  }

  /**
   * Resumes jobs claimed from servers that are gone: each is built again
   * from its stored request and queued; its fit resumes from the newest
   * checkpoint. A job that cannot be rebuilt (request or data gone) ends
   * `failed` with the reason.
   */
  async #takeOver(ids: string[]): Promise<void> {
    for (const id of ids) {
      const record = await this.#store.getJob(id);
      if (record === null) continue;
      if (this.#closing) {
        // Leave it for the next server.
        await this.#store.putJob({ ...record, owner: "srv_none" });
        continue;
      }
      const fail = async (message: string) => {
        await this.#store.putJob({
          ...record,
          status: "failed",
          finishedAt: new Date().toISOString(),
          error: { code: "resume_failed", message },
        });
      };
      if (this.#jobsDir === null) {
        await fail(
          "The server running this job stopped, and this server keeps no job files to resume it from",
        );
        continue;
      }
      let request: JobRequest;
      try {
        request = JSON.parse(await Deno.readTextFile(join(this.#jobsDir, id, "request.json")));
      } catch (e) {
        await fail(
          `The server running this job stopped, and its stored request cannot be read ` +
            `(${e instanceof Error ? e.message : e}): submit it again`,
        );
        continue;
      }
      let built: BuiltJob;
      try {
        const { replicas, globalBatch } = this.#strategyOf(request);
        built = await buildJob(request, { replicas, globalBatch, datasets: this.#datasets });
      } catch (e) {
        await fail(`The job cannot be rebuilt to resume: ${e instanceof Error ? e.message : e}`);
        continue;
      }
      const history = await this.#store.history(id);
      const resumed: JobRecord = { ...record, status: "queued", owner: this.#owner, error: null };
      const job = this.#liveJob(
        resumed,
        built,
        request,
        await this.#store.workerTokenHash(id),
        history,
      );
      await this.#store.putJob(resumed);
      this.#live.set(id, job);
      this.#events.emit(id, {
        type: "resumed",
        epoch: history.epoch.length,
        detail:
          `taken over from a server that stopped; resuming after epoch ${history.epoch.length}`,
      });
      this.#events.emit(id, { type: "status", status: "queued" });
      this.#queue.push(job);
    }
  }

  async #finish(
    job: LiveJob,
    status: JobStatus | "suspended",
    error: JobRecord["error"] = null,
  ): Promise<void> {
    const { record } = job;
    /** The last writes of a job leaving this server, then its last event here. */
    const leave = async (last: JobEvent) => {
      try {
        const workers = job.lastWorkers;
        if (workers !== null) await this.#store.putJobWorkers(record.id, workers);
        await this.#store.putJob(record);
      } finally {
        this.#live.delete(record.id);
        this.#events.emit(record.id, last);
      }
    };
    if (status === "suspended") {
      // Not an end: the record stays queued or running, for the next server.
      job.remote?.pool.close("suspended");
      return await leave({
        type: "waiting",
        detail: "this server shuts down: the job resumes from its newest checkpoint on the " +
          "next server started on this data dir",
      });
    }
    if (error === null && status === "interrupted") {
      error = {
        code: "server_shutdown",
        message: `The server shut down while the job was ${record.status}; submit it again`,
      };
    }
    record.status = status;
    record.finishedAt = new Date().toISOString();
    record.error = error;
    job.remote?.pool.close();
    await leave({ type: "end", job: this.#snapshot(job) });
  }

  #snapshot(job: LiveJob): JobRecord {
    return structuredClone({ ...job.record, history: job.history });
  }

  /**
   * The remote-worker gate of job `id` while it is queued or running here;
   * otherwise why not: `ended` (with its status), `elsewhere` (another
   * server owns it), `local` (it takes no remote workers) or `unknown`.
   */
  async remoteOf(
    id: string,
  ): Promise<
    { gate: JobRemote } | { why: "ended" | "elsewhere" | "local" | "unknown"; status?: JobStatus }
  > {
    const live = this.#live.get(id);
    if (live !== undefined) return live.remote === null ? { why: "local" } : { gate: live.remote };
    const record = isId("job", id) ? await this.#store.getJob(id) : null;
    if (record === null) return { why: "unknown" };
    if (TERMINAL_STATUSES.includes(record.status)) return { why: "ended", status: record.status };
    return { why: "elsewhere", status: record.status };
  }

  /**
   * Job `id`'s workers now (local and remote) and what its remote workers
   * did; `NotFoundError` when it is not live here.
   */
  async workersOf(
    id: string,
  ): Promise<{
    workers: WorkerStats[];
    remote: RemoteWorkers["counts"] | null;
    batches?: { applied: number; repeated: number } | null;
  }> {
    const live = this.#live.get(id);
    type Workers = {
      workers: WorkerStats[];
      remote: RemoteWorkers["counts"] | null;
      batches?: { applied: number; repeated: number } | null;
    };
    if (live === undefined) {
      await this.get(id); // NotFoundError when unknown
      return await this.#store.jobWorkers<Workers>(id) ?? { workers: [], remote: null };
    }
    // Its run is over (the job is finishing): what it ended with.
    if (live.lastWorkers !== null) return structuredClone(live.lastWorkers);
    const strategy = live.strategy;
    const workers = strategy instanceof WorkerStrategy
      ? strategy.liveWorkers
      : live.remote?.pool.stats ?? [];
    return {
      workers,
      remote: live.remote === null ? null : structuredClone(live.remote.pool.counts),
    };
  }

  /** Whether `token` is job `id`'s worker token (false for jobs without one). */
  async acceptsWorkerToken(id: string, token: string): Promise<boolean> {
    const hash = this.#live.get(id)?.remote?.tokenHash ??
      (isId("job", id) ? await this.#store.workerTokenHash(id) : null);
    if (hash === null) return false;
    return await tokensEqual(await sha256Hex(token), hash);
  }

  /** Job `id` with its History; `NotFoundError` when unknown. */
  async get(id: string): Promise<JobRecord> {
    const live = this.#live.get(id);
    if (live !== undefined) return this.#snapshot(live);
    const record = isId("job", id) ? await this.#store.getJob(id) : null;
    if (record === null) throw new NotFoundError("job", id);
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
   * two (waiting up to `waitMs` for it). Resolves with the record.
   * `NotFoundError` when unknown, `JobNotCancellableError` when it already
   * ended or runs on another server.
   */
  async cancel(id: string, waitMs = 10_000): Promise<JobRecord> {
    const job = this.#live.get(id);
    if (job === undefined) {
      const record = await this.get(id);
      const why = TERMINAL_STATUSES.includes(record.status)
        ? `it already ended (${record.status})`
        : `it runs on another server (${record.owner})`;
      throw new JobNotCancellableError(id, record.status, why);
    }
    await this.#stop(job, "cancelled", waitMs);
    return this.#live.has(id) ? this.#snapshot(job) : await this.get(id);
  }

  async #stop(
    job: LiveJob,
    reason: "cancelled" | "interrupted" | "suspended",
    waitMs: number,
  ): Promise<void> {
    // Workers of a suspended job reconnect to the next server, not exit.
    if (reason === "suspended") job.remote?.pool.close("suspended");
    if (this.#queue.remove(job)) {
      job.built.dispose();
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
    return this.#events.subscribe(id, after, listener);
  }

  /**
   * Stops taking jobs and stops the queued and running ones (running ones
   * within a step or two; after `shutdownTimeoutMs` their Workers are
   * terminated), then gives up this server's lease. With `jobsDir` they are
   * left `queued`/`running` for the next server on the folder to resume;
   * without, they end `interrupted`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#queue.close();
    await this.#lease.stop();
    const jobs = [...this.#live.values()];
    // With job files, jobs are left for the next server to resume.
    const reason = this.#jobsDir === null ? "interrupted" : "suspended";
    for (const job of this.#queue.waiting.reverse()) await this.#stop(job, reason, 0);
    await Promise.all(
      jobs.map((job) => this.#stop(job, reason, this.#o.shutdownTimeoutMs)),
    );
    // Jobs that did not stop in time: terminate their Workers (fit rejects).
    await Promise.all(jobs.map(async (job) => {
      if (!this.#live.has(job.record.id)) return;
      await job.strategy?.close();
      const timeout = sleep(this.#o.shutdownTimeoutMs);
      await Promise.race([job.done, timeout.promise]);
      timeout.cancel();
    }));
    await this.#lease.release();
  }
}
