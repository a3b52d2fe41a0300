/**
 * Remote gradient workers of a WorkerStrategy: workers on other machines
 * that join a run over some transport (the HTTP service's WebSocket or
 * request/response routes, `src/edge/`). This module knows no transport: a
 * transport calls {@linkcode RemoteWorkers.join} for each worker that
 * connects and drives the {@linkcode RemoteSession} it gets back
 * (`welcome`, then `next` / `deliver` in turn, `close` when it goes).
 *
 * Who owns what: the parameter server (WorkerStrategy's main thread) owns
 * the weights and applies every gradient; this pool hands each remote worker
 * its batch (the rows themselves, so data never needs to exist on the
 * worker), checks what comes back before the server sees it, and queues it
 * in a gradient slot like an in-process worker's.
 *
 * Batches: a remote worker's batch is drawn from the run's one batch stream
 * (the cursor the in-process workers share). A batch handed to a worker
 * that leaves, is lost or is refused before its gradient was accepted goes
 * back to a queue that the next remote assignment takes first, so no batch
 * of the stream is lost. An epoch still ends after `ceil(samples /
 * batchSize)` applied gradients: a reassigned batch counts in the epoch in
 * which its gradient is applied, and its staleness is measured from the
 * weights its new worker was given.
 *
 * Containment: a gradient of the wrong length, with a non-finite value, for
 * another batch, or computed on a version the server has not published
 * (from the future) is refused, counted in {@linkcode RemoteWorkers.counts},
 * never applied, and the session ends.
 *
 * @module
 */
import { GradientSlot } from "../../collective/gradient_slot.ts";
import type { GradientSlot as Slot, SlotInfo } from "../../collective/gradient_slot.ts";
import { VersionedBuffer } from "../../collective/versioned_buffer.ts";
import { nonNegativeInt, positiveInt, refuseUnknownOptions } from "../../core/checks.ts";
import { epochOrder } from "../../core/random.ts";
import type { BackendName } from "../../../backends/types.ts";
import { gatherRows } from "../_sharding.ts";
import type { CompileSpec, ModelSource, SharedColumn, SharedData } from "../protocol.ts";
import { PS_CURSOR, PS_DOORBELL, PS_STOP, PS_TICKET } from "./_layout.ts";
import { newWorkerStats, type WorkerStats } from "./_worker_set.ts";

export type { CompileSpec, GradientSlot, ModelSource, SharedData, SlotInfo };

/** Options of {@linkcode RemoteWorkers}. */
export interface RemoteWorkersOptions {
  /**
   * Remote workers attached at once; one more is refused.
   * @default 64
   */
  maxWorkers?: number;
  /**
   * How long a run waits with no worker at all (remote or local) before it
   * fails.
   * @default 600000
   */
  waitMs?: number;
  /**
   * A remote worker that sends nothing for this long is lost (its batch is
   * reassigned). Must exceed its slowest step plus the round trip.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * Batches a worker is given while its earlier gradients still wait for
   * the server: with 1, a worker computes its next batch while the server
   * applies its last gradient (one more version of staleness, no idle
   * round trip); with 0, it waits for the apply and its next batch's
   * weights include its own last gradient. At most 4.
   * @default 1
   */
  prefetch?: number;
}

/** The option names {@linkcode RemoteWorkers} takes. */
export const REMOTE_WORKERS_OPTIONS = [
  "maxWorkers",
  "waitMs",
  "timeoutMs",
  "prefetch",
] as const satisfies readonly (keyof RemoteWorkersOptions)[];

/** What a worker says of itself when it joins. */
export interface RemoteHello {
  /** Where it connects from (as the transport sees it). */
  address: string;
  /** Its own name for itself, shown in stats. */
  name?: string;
}

/** Everything a remote worker needs to build the model and compute. */
export interface RemoteWelcome {
  /** The worker's id in the strategy's stats. */
  worker: number;
  /** How to rebuild the model. */
  model: ModelSource;
  /** Loss and metrics. */
  compile: CompileSpec;
  /** Floats of the fused gradient layout. */
  slotLength: number;
  /** Floats of a weight vector (= floats of a gradient's values section). */
  weightCount: number;
  /** Metrics after the loss. */
  metricCount: number;
  /** Per-sample shape of x (the first input: `inputShapes[0]`). */
  xShape: number[];
  /** Per-sample shape of y (the first output: `outputShapes[0]`). */
  yShape: number[];
  /** Per-sample shape of every input, in `model.inputs` order. */
  inputShapes: number[][];
  /** Per-sample shape of every output's targets, in `model.outputs` order. */
  outputShapes: number[][];
  /** Weight of each output's loss in the total loss (null: 1 each). */
  lossWeights: number[] | null;
  /**
   * Which outputs' per-sample loss weights (from `classWeight`) come with
   * each assignment, one flag per output; null: none do.
   */
  weightedOutputs: boolean[] | null;
  /** Samples per batch (the last batch of a pass may have fewer). */
  batchSize: number;
  /** Milliseconds of silence after which the server drops the worker. */
  timeoutMs: number;
}

/** One batch to compute, with the weights to compute it on. */
export interface RemoteAssignment {
  /** Index in the run's batch stream. */
  batch: number;
  /** Samples in it. */
  samples: number;
  /** The weights' version. */
  version: number;
  /** `weightCount` floats: trainable then non-trainable weights. */
  weights: Float32Array;
  /** `samples` rows of every input, flattened, in `model.inputs` order. */
  inputs: Float32Array[];
  /** `samples` rows of every output's targets, flattened, in `model.outputs` order. */
  outputs: Float32Array[];
  /**
   * `samples` per-sample loss weights per output (null: that output is not
   * weighted), or null when none is: as the welcome's `weightedOutputs`.
   */
  sampleWeights: (Float32Array | null)[] | null;
}

/** A remote worker's answer to an assignment. */
export interface RemoteGradient {
  /** The assignment's batch. */
  batch: number;
  /** The version the gradient was computed on. */
  base: number;
  /** The assignment's samples. */
  samples: number;
  /** `weightCount` floats: trainable gradients then non-trainable values. */
  values: Float32Array;
  /** `1 + metricCount` floats: loss then metrics. */
  logs: Float32Array;
}

/** Why a remote worker's message was refused. */
export type RefusalReason = "shape" | "nonFinite" | "futureVersion" | "protocol";

/** A remote worker's message was refused: the session is over. */
export class RemoteRefusedError extends Error {
  /** Which rule it broke. */
  readonly reason: RefusalReason;
  /** `message` says what the worker sent and what was expected. */
  constructor(reason: RefusalReason, message: string) {
    super(message);
    this.name = "RemoteRefusedError";
    this.reason = reason;
  }
}

/** Totals over the pool's life. */
export interface RemoteCounts {
  /** Sessions accepted. */
  joined: number;
  /** Joins refused because `maxWorkers` were attached. */
  full: number;
  /** Sessions that ended without saying goodbye (connection lost, silent). */
  lost: number;
  /** Batches handed again after their worker went. */
  reassigned: number;
  /** Refused messages, by reason (each ended its session). */
  refused: Record<RefusalReason, number>;
}

/**
 * The batch stream of one run and the weights it is computed on: what every
 * worker of the run, in process or remote, draws its batches from.
 */
export interface BatchStream {
  /** The server's versioned weights. */
  weightsBuffer: SharedArrayBuffer;
  /** The training samples. */
  data: SharedData;
  /** Samples trained on (the first `trainCount` of `data`). */
  trainCount: number;
  /** Samples per batch. */
  batchSize: number;
  /** Reshuffle every pass. */
  shuffle: boolean;
  /** Shuffle seed. */
  seed: number;
  /** Epoch of the run's first pass (its permutation). */
  initialEpoch: number;
}

/** What the strategy hands the pool for one run. */
export interface RemoteRun extends BatchStream {
  /** The run's control words (see `ps/_layout.ts`): stop, cursor, doorbell, ticket. */
  control: Int32Array;
  /** How workers rebuild the model. */
  model: ModelSource;
  /** Loss and metrics. */
  compile: CompileSpec;
  /** Floats of the fused gradient layout. */
  slotLength: number;
  /** Floats of a weight vector. */
  weightCount: number;
  /** Metrics after the loss. */
  metricCount: number;
  /** Weight of each output's loss in the total loss (null: 1 each). */
  lossWeights: number[] | null;
  /** Reads the server's latest published version. */
  version: () => number;
  /** Whether the run needs no more gradients (its last one is applied, or it stops). */
  isOver: () => boolean;
  /** Allocates a worker id shared with the in-process workers. */
  nextId: () => number;
}

/** One column of the run's data: its rows and the values per row. */
interface Rows {
  rows: Float32Array;
  width: number;
  shape: number[];
}

interface RunState {
  spec: RemoteRun;
  weights: VersionedBuffer;
  inputs: Rows[];
  outputs: Rows[];
  sampleWeights: (Rows | null)[] | null;
  steps: number;
  pass: number;
  order: Uint32Array;
  requeue: number[];
  ended: boolean;
}

type SessionState = "waiting" | "ready" | "assigned" | "gone";

/**
 * One gradient slot of a remote session, as the parameter server sees it:
 * like an in-process worker, it has an id, stats and a slot to apply. A
 * session has `prefetch + 1` of them, so a gradient can wait for the server
 * in one while the worker computes the next batch.
 */
export class RemoteLane {
  /** The session this slot belongs to. */
  readonly session: RemoteSession;
  /** The slot. */
  readonly slot: Slot;
  /** Wraps `slot` of `session`. */
  constructor(session: RemoteSession, slot: Slot) {
    this.session = session;
    this.slot = slot;
  }
  /** The worker's id. */
  get id(): number {
    return this.session.id;
  }
  /** The worker's stats. */
  get stats(): WorkerStats {
    return this.session.stats;
  }
  /** @internal The server applied or dropped this slot's gradient. */
  _applied(): void {
    this.session._applied();
  }
}

/**
 * One remote worker's session, driven by its transport.
 */
export class RemoteSession {
  /** The worker's id, once a run welcomed it (-1 before). */
  id: number = -1;
  /** Its stats, as `WorkerStrategy.stats.workers` lists them. */
  readonly stats: WorkerStats;
  /** Its gradient slots in the current run (`prefetch + 1`). */
  lanes: RemoteLane[] = [];
  /** Settles with why the session ended. */
  readonly closed: Promise<string>;
  #pool: RemoteWorkers;
  #state: SessionState = "waiting";
  #assignment: { batch: number; samples: number; version: number } | undefined;
  #applied: (() => void) | undefined;
  /** Gradients delivered and not yet applied. */
  #pending = 0;
  #flat: Float32Array | undefined;
  #lastSeen = performance.now();
  #resolveClosed!: (why: string) => void;
  #onClose: ((why: string) => void)[] = [];
  #assignedAt = 0;
  #computeMs = 0;

  /** @internal Made by {@linkcode RemoteWorkers.join}. */
  constructor(pool: RemoteWorkers, hello: RemoteHello) {
    this.#pool = pool;
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    this.stats = newWorkerStats(-1, "auto", {
      kind: "remote",
      address: hello.address,
      name: hello.name ?? null,
      lastSeen: new Date().toISOString(),
    });
  }

  /** Whether the session ended. */
  get gone(): boolean {
    return this.#state === "gone";
  }

  /** Milliseconds since the worker last sent anything. */
  silentFor(now: number = performance.now()): number {
    return now - this.#lastSeen;
  }

  /** The transport heard from the worker. */
  touch(): void {
    this.#lastSeen = performance.now();
    this.stats.lastSeen = new Date().toISOString();
  }

  /** The backend the worker reports it runs, for stats. */
  describe(info: { backend?: string; backendReason?: string; threads?: number }): void {
    if (typeof info.backend === "string") this.stats.backend = info.backend as BackendName;
    if (typeof info.backendReason === "string") this.stats.backendReason = info.backendReason;
    if (typeof info.threads === "number") this.stats.threads = info.threads;
  }

  /** Calls `listener` once the session ends (at once when it has). */
  onClose(listener: (why: string) => void): void {
    if (this.gone) listener(this.stats.error ?? "closed");
    else this.#onClose.push(listener);
  }

  /**
   * Resolves with the welcome once a run is on (the worker may join before
   * `fit` starts), or null when the session ends first.
   */
  async welcome(): Promise<RemoteWelcome | null> {
    const run = await this.#pool._runFor(this);
    if (run === null || this.gone) return null;
    const s = run.spec;
    if (this.id < 0) {
      this.id = s.nextId();
      this.stats.id = this.id;
    }
    this.#state = "ready";
    this.#pending = 0;
    this.stats.status = "running";
    this.lanes = Array.from({ length: this.#pool.prefetch + 1 }, () =>
      new RemoteLane(
        this,
        new GradientSlot(new SharedArrayBuffer(GradientSlot.bytes(s.slotLength)), s.slotLength),
      ));
    return {
      worker: this.id,
      model: s.model,
      compile: s.compile,
      slotLength: s.slotLength,
      weightCount: s.weightCount,
      metricCount: s.metricCount,
      xShape: s.data.xShape,
      yShape: s.data.yShape,
      inputShapes: run.inputs.map((c) => c.shape),
      outputShapes: run.outputs.map((c) => c.shape),
      lossWeights: s.lossWeights,
      weightedOutputs: run.sampleWeights?.map((c) => c !== null) ?? null,
      batchSize: s.batchSize,
      timeoutMs: this.#pool.timeoutMs,
    };
  }

  /**
   * The next batch to compute, once at most `prefetch` of this worker's
   * gradients wait for the server (with `prefetch` 0: once the server
   * applied or dropped its last one); null when the run is over (the worker
   * may go).
   */
  async next(): Promise<RemoteAssignment | null> {
    while (this.#pending > this.#pool.prefetch && !this.gone && this.#state !== "waiting") {
      await new Promise<void>((r) => (this.#applied = r));
    }
    const run = this.#pool._current();
    if (this.gone || run === undefined || run.ended || this.#state === "waiting") return null;
    if (this.#state === "assigned") {
      throw this.refuse("protocol", "asked for a batch while one is assigned");
    }
    const control = run.spec.control;
    if (Atomics.load(control, PS_STOP) !== 0 || run.spec.isOver()) return null;
    const requeued = run.requeue.shift();
    const batch = requeued ?? Atomics.add(control, PS_CURSOR, 1);
    const p = Math.floor(batch / run.steps);
    if (p !== run.pass) {
      run.pass = p;
      run.order = epochOrder(run.spec.trainCount, {
        seed: run.spec.seed,
        epoch: run.spec.initialEpoch + p,
        shuffle: run.spec.shuffle,
      });
    }
    const start = (batch % run.steps) * run.spec.batchSize;
    const samples = Math.min(run.spec.batchSize, run.spec.trainCount - start);
    this.#flat ??= new Float32Array(run.spec.weightCount);
    const version = run.weights.read(this.#flat);
    this.#assignment = { batch, samples, version };
    this.#state = "assigned";
    this.#assignedAt = performance.now();
    return {
      batch,
      samples,
      version,
      weights: this.#flat,
      inputs: run.inputs.map((c) => gatherRows(c.rows, c.width, run.order, start, samples)),
      outputs: run.outputs.map((c) => gatherRows(c.rows, c.width, run.order, start, samples)),
      sampleWeights:
        run.sampleWeights?.map((c) =>
          c === null ? null : gatherRows(c.rows, 1, run.order, start, samples)
        ) ?? null,
    };
  }

  /**
   * Checks a gradient for the batch this worker was assigned and queues it
   * for the server. Throws {@linkcode RemoteRefusedError} (and ends the
   * session, reassigning the batch) when it breaks a rule.
   */
  deliver(g: RemoteGradient): void {
    if (this.gone) throw new RemoteRefusedError("protocol", "the session is over");
    const run = this.#pool._current();
    const a = this.#assignment;
    // A gradient that arrives after the run's last one was applied is not
    // wrong, only late: it is set aside, and the next `next` says the run is over.
    if (run === undefined || run.ended || run.spec.isOver()) {
      this.#assignment = undefined;
      if (this.#state === "assigned") this.#state = "ready";
      return;
    }
    if (this.#state !== "assigned" || a === undefined) {
      throw this.refuse("protocol", "sent a gradient without an assignment");
    }
    const s = run.spec;
    const version = s.version();
    if (g.base > version) {
      throw this.refuse(
        "futureVersion",
        `claims weights version ${g.base}, the server is at ${version}`,
      );
    }
    if (g.batch !== a.batch || g.base !== a.version || g.samples !== a.samples) {
      throw this.refuse(
        "protocol",
        `sent a gradient for batch ${g.batch} (version ${g.base}, ${g.samples} samples), ` +
          `assigned batch ${a.batch} (version ${a.version}, ${a.samples} samples)`,
      );
    }
    if (g.values.length !== s.weightCount || g.logs.length !== 1 + s.metricCount) {
      throw this.refuse(
        "shape",
        `sent ${g.values.length} values and ${g.logs.length} logs, expected ` +
          `${s.weightCount} and ${1 + s.metricCount}`,
      );
    }
    if (!allFinite(g.values) || !allFinite(g.logs)) {
      throw this.refuse("nonFinite", "sent a gradient with NaN or infinite values");
    }
    const slot = this.lanes.find((lane) => !lane.slot.full)?.slot;
    if (slot === undefined) throw this.refuse("protocol", "sent more gradients than it was given");
    slot.payload.set(g.values, 0);
    slot.payload.set(g.logs, s.weightCount);
    this.#state = "ready";
    this.#pending++;
    this.#assignment = undefined;
    this.stats.computed++;
    this.#computeMs += performance.now() - this.#assignedAt;
    this.stats.stepMs = this.#computeMs / this.stats.computed;
    slot.push({
      base: g.base,
      batch: g.batch,
      samples: g.samples,
      ticket: Atomics.add(s.control, PS_TICKET, 1),
    });
    Atomics.add(s.control, PS_DOORBELL, 1);
    Atomics.notify(s.control, PS_DOORBELL);
  }

  /** @internal The server applied or dropped this session's gradient. */
  _applied(): void {
    this.#pending = Math.max(0, this.#pending - 1);
    const resolve = this.#applied;
    this.#applied = undefined;
    resolve?.();
  }

  /** @internal The run ended: wake a waiting `next`. */
  _runEnded(): void {
    if (this.#state !== "gone") this.#state = "waiting";
    this.stats.status = this.gone ? this.stats.status : "idle";
    for (const lane of this.lanes) lane.slot.release();
    this.#pending = 0;
    this._applied();
  }

  /**
   * Refuses what the worker sent (its transport found it malformed): counts
   * it, ends the session, and returns the error to report.
   */
  refuse(reason: RefusalReason, message: string): RemoteRefusedError {
    const error = new RemoteRefusedError(reason, `remote worker ${this.id}: ${message}`);
    this.#pool._count(reason);
    this.close("refused", `${reason}: ${message}`);
    return error;
  }

  /**
   * Ends the session: `left` (the worker said goodbye or the transport
   * closed), `lost` (silent or its connection broke) or `refused`. A batch
   * assigned and not delivered is reassigned.
   */
  close(kind: "left" | "lost" | "refused", why: string = kind): void {
    if (this.gone) return;
    const held = this.#state === "assigned" ? this.#assignment : undefined;
    this.#state = "gone";
    this.#assignment = undefined;
    this.stats.status = kind === "left" ? "removed" : "crashed";
    if (kind !== "left") this.stats.error = why;
    this.#pool._leave(this, held?.batch, kind);
    const resolve = this.#applied;
    this.#applied = undefined;
    resolve?.();
    this.#resolveClosed(why);
    for (const listener of this.#onClose.splice(0)) listener(why);
  }
}

function rowsOf(c: SharedColumn): Rows {
  return {
    rows: new Float32Array(c.buffer),
    width: c.shape.reduce((a, b) => a * b, 1),
    shape: c.shape,
  };
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) return false;
  }
  return true;
}

/**
 * The remote workers of one WorkerStrategy (pass it as the strategy's
 * `remote` option, or let `remote: true` make one), and the gate transports
 * call.
 *
 * @example
 * ```ts ignore
 * const remote = new RemoteWorkers({ maxWorkers: 8 });
 * const strategy = new WorkerStrategy({ workers: 0, remote });
 * // In a transport, for each worker that connects:
 * const session = remote.join({ address: "10.0.0.7:51234" });
 * const welcome = await session.welcome();
 * for (let a = await session.next(); a !== null; a = await session.next()) {
 *   session.deliver(await computeRemotely(a));
 * }
 * ```
 */
export class RemoteWorkers {
  /** Largest number of sessions attached at once. */
  readonly maxWorkers: number;
  /** How long a run waits with no worker. */
  readonly waitMs: number;
  /** Silence after which a session is lost. */
  readonly timeoutMs: number;
  /** Assignments a worker gets while its earlier gradients wait for the server. */
  readonly prefetch: number;
  /** Totals over the pool's life. */
  readonly counts: RemoteCounts = {
    joined: 0,
    full: 0,
    lost: 0,
    reassigned: 0,
    refused: { shape: 0, nonFinite: 0, futureVersion: 0, protocol: 0 },
  };
  #sessions = new Set<RemoteSession>();
  #past: RemoteSession[] = [];
  #run: RunState | undefined;
  #waiters: ((run: RunState | null) => void)[] = [];
  #closed = false;
  #listeners = new Set<(event: RemoteEvent) => void>();

  /** Validates the options. */
  constructor(options: RemoteWorkersOptions = {}) {
    refuseUnknownOptions(options, REMOTE_WORKERS_OPTIONS, "RemoteWorkers");
    this.maxWorkers = positiveInt(options.maxWorkers ?? 64, "maxWorkers");
    this.waitMs = nonNegativeInt(options.waitMs ?? 600_000, "waitMs");
    this.timeoutMs = positiveInt(options.timeoutMs ?? 30_000, "timeoutMs");
    this.prefetch = nonNegativeInt(options.prefetch ?? 1, "prefetch");
    if (this.prefetch > 4) throw new RangeError(`prefetch must be <= 4, received ${this.prefetch}`);
  }

  /** Sessions attached now. */
  get attached(): number {
    return this.#sessions.size;
  }

  /** Every session of the current or last run, and those attached, as copies of their stats. */
  get stats(): WorkerStats[] {
    const all = [...this.#past, ...this.#sessions].filter((s) => s.id >= 0);
    return all.map((s) => ({ ...s.stats }));
  }

  /** Calls `listener` on joins, departures and refusals; returns the unsubscribe. */
  subscribe(listener: (event: RemoteEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: RemoteEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /**
   * Accepts a worker: a session to drive. Throws `RangeError` when
   * `maxWorkers` are attached, `Error` once the pool is closed.
   */
  join(hello: RemoteHello): RemoteSession {
    if (this.#closed) throw new Error("The job's remote workers are closed: it ended");
    if (this.#sessions.size >= this.maxWorkers) {
      this.counts.full++;
      throw new RangeError(
        `This job already has ${this.#sessions.size} remote workers (maxWorkers ${this.maxWorkers})`,
      );
    }
    const session = new RemoteSession(this, hello);
    this.#sessions.add(session);
    this.counts.joined++;
    this.#emit({ type: "joined", address: hello.address, attached: this.#sessions.size });
    return session;
  }

  /** @internal Resolves with the current run, or waits for one. */
  _runFor(_session: RemoteSession): Promise<RunState | null> {
    if (this.#closed) return Promise.resolve(null);
    if (this.#run !== undefined && !this.#run.ended) return Promise.resolve(this.#run);
    return new Promise((r) => this.#waiters.push(r));
  }

  /** @internal The current run. */
  _current(): RunState | undefined {
    return this.#run;
  }

  /** @internal */
  _count(reason: RefusalReason): void {
    this.counts.refused[reason]++;
  }

  /** @internal A session ended; `batch` was assigned to it and not delivered. */
  _leave(session: RemoteSession, batch: number | undefined, kind: string): void {
    if (!this.#sessions.delete(session)) return;
    if (session.id >= 0 && !this.#past.includes(session)) this.#past.push(session);
    if (kind === "lost") this.counts.lost++;
    const run = this.#run;
    if (batch !== undefined && run !== undefined && !run.ended) {
      run.requeue.push(batch);
      this.counts.reassigned++;
    }
    this.#lastAlone = performance.now();
    this.#emit({
      type: "left",
      worker: session.id,
      kind,
      reason: session.stats.error ?? kind,
      attached: this.#sessions.size,
    });
    this.#wake();
  }

  #lastAlone = performance.now();

  #wake(): void {
    const run = this.#run;
    if (run === undefined) return;
    Atomics.add(run.spec.control, PS_DOORBELL, 1);
    Atomics.notify(run.spec.control, PS_DOORBELL);
  }

  /** Starts serving a run: waiting sessions get their welcome. */
  startRun(spec: RemoteRun): void {
    const data = spec.data;
    this.#past = [];
    this.#run = {
      spec,
      weights: new VersionedBuffer(spec.weightsBuffer, spec.weightCount),
      inputs: (data.inputs ?? [{ buffer: data.x, shape: data.xShape }]).map(rowsOf),
      outputs: (data.outputs ?? [{ buffer: data.y, shape: data.yShape }]).map(rowsOf),
      sampleWeights:
        data.sampleWeights?.map((b) => b === null ? null : rowsOf({ buffer: b, shape: [] })) ??
          null,
      steps: Math.ceil(spec.trainCount / spec.batchSize),
      pass: -1,
      order: new Uint32Array(0),
      requeue: [],
      ended: false,
    };
    this.#lastAlone = performance.now();
    const run = this.#run;
    for (const w of this.#waiters.splice(0)) w(run);
  }

  /** Slots with a gradient waiting for the server. */
  full(): RemoteLane[] {
    return [...this.#sessions, ...this.#past].flatMap((s) => s.lanes.filter((l) => l.slot.full));
  }

  /**
   * Whether the run may still get gradients from remote workers: one is
   * attached, a gradient waits, or none has been missing for `waitMs` yet.
   */
  live(now: number = performance.now()): boolean {
    if (this.#sessions.size > 0 || this.full().length > 0) return true;
    return now - this.#lastAlone < this.waitMs;
  }

  /** Ends the sessions that have been silent for `timeoutMs`. */
  checkBeats(now: number = performance.now()): void {
    for (const s of [...this.#sessions]) {
      const silent = s.silentFor(now);
      if (silent > this.timeoutMs) {
        s.close(
          "lost",
          `silent for ${Math.round(silent)} ms (timeoutMs ${this.timeoutMs})`,
        );
      }
    }
  }

  /** Ends the run: every session's pending `next` resolves null. */
  endRun(): void {
    const run = this.#run;
    if (run === undefined) return;
    run.ended = true;
    for (const s of [...this.#sessions, ...this.#past]) s._runEnded();
  }

  /**
   * Refuses new sessions and ends the attached ones: `ended` tells the
   * workers the job is over (they exit), `suspended` that this server is
   * going away (they reconnect, to the server that resumes the job).
   * Idempotent.
   */
  close(how: "ended" | "suspended" = "ended"): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w(null);
    for (const s of [...this.#sessions]) {
      if (how === "ended") s.close("left", "the job ended");
      else s.close("lost", "the server is shutting down; the job resumes on the next server");
    }
    this.endRun();
  }
}

/** What {@linkcode RemoteWorkers.subscribe} reports. */
export type RemoteEvent =
  | { type: "joined"; address: string; attached: number }
  | { type: "left"; worker: number; kind: string; reason: string; attached: number };
