/**
 * WorkerStrategy's elastic set of gradient workers: starting them, putting
 * them to work in a run, watching their heartbeats, noticing when one throws
 * or vanishes, starting replacements, adding and removing workers while a
 * run goes on, and closing them gracefully. The restart policy (how many,
 * what to report) belongs to the strategy; this module only does what it is
 * told and queues the crashes it sees.
 *
 * @module
 */
import type { BackendName, BlasReport } from "../../../backends/types.ts";
import { WorkerCrashedError } from "../../errors.ts";
import { Heartbeat, silentDetail, watching } from "../../workers/heartbeat.ts";
import { GradientSlot } from "../../collective/gradient_slot.ts";
import { PS_DOORBELL, PS_STOP } from "./_layout.ts";
import {
  type CompileSpec,
  type ModelSource,
  parseReply,
  type PsRequest,
  type Reply,
} from "../protocol.ts";
import { WorkerHandle } from "../../workers/worker_handle.ts";
import type { BatchStream } from "./remote_workers.ts";

const ENTRY = new URL("./ps_worker.ts", import.meta.url);
/** A worker that has not answered `psInit` after this long is declared dead. */
const INIT_TIMEOUT_MS = 60_000;

/** A backend name, or `"auto"` for runtime selection. */
export type WorkerBackend = BackendName | "auto";

/** One worker in `WorkerStrategy.stats`. */
export interface WorkerStats {
  /** The worker's id (its Worker is named `dtrain-ps-worker-<id>`). */
  id: number;
  /** The backend asked for. */
  requested: WorkerBackend;
  /** The backend it runs, once started. */
  backend: BackendName | undefined;
  /** Why that backend was chosen. */
  backendReason: string;
  /** WASM threads it runs. */
  threads: number;
  /** What its host-BLAS path chose, once started on WASM. */
  blas: BlasReport | null;
  /** `running` while training, `idle` otherwise, `crashed` or `removed` when gone. */
  status: "idle" | "running" | "crashed" | "removed";
  /** Id of the crashed worker this one replaced, or null. */
  replaces: number | null;
  /** Gradients it pushed in the last run. */
  computed: number;
  /** Of them, gradients the server applied (fresh or scaled). */
  applied: number;
  /** Of the applied ones, those down-weighted for staleness. */
  scaled: number;
  /** Gradients dropped for staleness. */
  dropped: number;
  /** Mean milliseconds per pushed gradient (pull weights, forward, backward). */
  stepMs: number;
  /** Tensors alive in the worker after the last run. */
  tensors: number;
  /** Why it crashed, when it did. */
  error?: string;
  /** `local`: a Worker of this process; `remote`: an edge worker over the network. */
  kind: "local" | "remote";
  /** A remote worker's address as the server sees it, else null. */
  address: string | null;
  /** A remote worker's name for itself, else null. */
  name: string | null;
  /** When a remote worker last sent anything (ISO time), else null. */
  lastSeen: string | null;
  /** Mean staleness of its gradients the server received. */
  meanStaleness: number;
}

/** How workers build their model. */
export interface Spawn {
  /** Equal keys: a started worker can serve the model as is. */
  key: string;
  source: ModelSource;
  compile: CompileSpec;
  threads: number;
  /** Floats in a gradient slot. */
  slotLength: number;
}

/** What every worker of a run needs to compute. */
export interface RunSpec extends BatchStream {
  /** The run's control words (see `_layout.ts`). */
  controlBuffer: SharedArrayBuffer;
  /** Weight of each output's loss (null: 1 each). */
  lossWeights: number[] | null;
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

type Status = "pending" | "starting" | "idle" | "training" | "leaving" | "crashed" | "removed";

/** One worker, started or not. */
export interface Member {
  readonly id: number;
  status: Status;
  handle: WorkerHandle<PsRequest, Reply> | undefined;
  heartbeat: Int32Array;
  stats: WorkerStats;
  started: Promise<void> | undefined;
  removeRequested: boolean;
  /** Its gradient slot in the current run. */
  slot: GradientSlot | undefined;
  /** Settles when its part in the current run is over. */
  finished: Promise<void> | undefined;
  /** Its heartbeat, while the watchdog watches it. */
  watched: Heartbeat | undefined;
}

/** A worker that failed during a run. */
export interface Crash {
  member: Member;
  error: WorkerCrashedError;
}

interface Run {
  spec: RunSpec;
  control: Int32Array;
  members: Set<Member>;
  joins: Set<Promise<void>>;
  crashes: Crash[];
  lost: Member[];
}

/**
 * The workers of one strategy.
 *
 * @example
 * ```ts ignore
 * const set = new WorkerSet(["cpu", "cpu"], { timeoutMs: 30_000 });
 * await set.prepare(spawn);
 * set.startRun(spec);
 * // ... serve set.full() ...
 * await set.endRun();
 * await set.close();
 * ```
 */
export class WorkerSet {
  #members: Member[] = [];
  /** Every Worker handle started and not yet closed by `#closeAll`. */
  #handles = new Set<WorkerHandle<PsRequest, Reply>>();
  #nextId = 0;
  #timeoutMs: number;
  #spawn: Spawn | undefined;
  #run: Run | undefined;
  #lastStats: WorkerStats[] = [];

  /** A fresh worker id (remote workers share the numbering). */
  nextId(): number {
    return this.#nextId++;
  }

  /** One pending worker per backend; `timeoutMs` is the heartbeat timeout. */
  constructor(backends: WorkerBackend[], options: { timeoutMs: number }) {
    this.#timeoutMs = options.timeoutMs;
    for (const b of backends) this.#members.push(this.#newMember(b, null));
  }

  /** Workers in service: running, idle, or waiting to start. */
  get serving(): number {
    return this.#serving().length;
  }

  /** Every worker that took part in the last run (or `evaluate`), as copies. */
  get stats(): WorkerStats[] {
    return this.#lastStats.map((s) => ({ ...s }));
  }

  #serving(): Member[] {
    return this.#members.filter((m) => m.status !== "leaving" && !m.removeRequested);
  }

  #newMember(backend: WorkerBackend, replaces: number | null): Member {
    const id = this.#nextId++;
    return {
      id,
      status: "pending",
      handle: undefined,
      heartbeat: new Int32Array(new SharedArrayBuffer(4)),
      stats: newWorkerStats(id, backend, { replaces }),
      started: undefined,
      removeRequested: false,
      slot: undefined,
      finished: undefined,
      watched: undefined,
    };
  }

  /** Starts a pending member's Worker and waits for `ready`. */
  #start(m: Member, spawn: Spawn): Promise<void> {
    m.status = "starting";
    const handle = new WorkerHandle<PsRequest, Reply>({
      entry: ENTRY,
      role: "worker",
      index: m.id,
      parse: parseReply,
      name: `dtrain-ps-worker-${m.id}`,
      onCrash: (e) => this.#lose(m, e),
    });
    m.handle = handle;
    this.#handles.add(handle);
    m.started = (async () => {
      const timer = setTimeout(
        () =>
          handle.fail(
            handle.crashError(`no reply to psInit within ${INIT_TIMEOUT_MS} ms`),
          ),
        INIT_TIMEOUT_MS,
      );
      try {
        const reply = await handle.request({
          type: "psInit",
          worker: m.id,
          backend: m.stats.requested,
          threads: spawn.threads,
          model: spawn.source,
          compile: spawn.compile,
          heartbeat: m.heartbeat.buffer as SharedArrayBuffer,
          slotLength: spawn.slotLength,
        });
        if (reply.type !== "ready") {
          throw handle.crashError(`expected a "ready" reply, received "${reply.type}"`);
        }
        m.stats.backend = reply.backend;
        m.stats.backendReason = reply.backendReason;
        m.stats.threads = reply.threads;
        m.stats.blas = reply.blas ?? null;
        m.stats.tensors = reply.tensors;
        if (m.status === "starting") m.status = "idle";
      } finally {
        clearTimeout(timer);
      }
    })();
    return m.started;
  }

  /**
   * A member failed: mark it. During a run the crash is queued for the
   * strategy to decide on; between runs a fresh member takes its place. A
   * member that was being removed is not replaced.
   */
  #lose(m: Member, error: WorkerCrashedError): void {
    if (m.status === "crashed" || m.status === "removed") return;
    m.status = "crashed";
    m.watched = undefined;
    m.stats.status = "crashed";
    m.stats.error = error.detail;
    m.stats.computed = Math.max(m.stats.computed, m.stats.applied + m.stats.dropped);
    m.handle?.fail(error);
    this.#members = this.#members.filter((x) => x !== m);
    if (m.removeRequested) {
      // It was leaving anyway: nothing to replace.
    } else if (this.#run !== undefined) {
      this.#run.crashes.push({ member: m, error });
    } else {
      this.#members.push(this.#newMember(m.stats.requested, m.id));
    }
    this.wake();
  }

  /** Rings the run's doorbell so the server loop looks again. */
  wake(): void {
    const run = this.#run;
    if (run === undefined) return;
    Atomics.add(run.control, PS_DOORBELL, 1);
    Atomics.notify(run.control, PS_DOORBELL);
  }

  /** Declares watched members whose heartbeat stopped for the timeout dead. */
  checkBeats(): void {
    const now = performance.now();
    for (const m of [...this.#members]) {
      const silent = m.watched?.silentFor(now) ?? 0;
      if (silent > this.#timeoutMs) {
        m.handle?.fail(
          m.handle.crashError(silentDetail(silent, "workerTimeoutMs", this.#timeoutMs)),
        );
      }
    }
  }

  /** Runs `work` with the heartbeat watchdog on. */
  watching<T>(work: () => Promise<T>): Promise<T> {
    return watching(work, this.#timeoutMs, () => this.checkBeats());
  }

  #watch(m: Member): void {
    m.watched = new Heartbeat(() => Atomics.load(m.heartbeat, 0));
  }

  /**
   * Makes every member run a Worker built for `spawn` (restarting all of them
   * when the model changed). Rejects, with every Worker closed, when one
   * fails to start.
   */
  async prepare(spawn: Spawn): Promise<void> {
    if (this.#spawn?.key !== spawn.key) {
      await this.#closeAll();
    }
    this.#spawn = spawn;
    const results = await Promise.allSettled(
      this.#members.filter((m) => m.status === "pending").map((m) => this.#start(m, spawn)),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      await this.#closeAll();
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  /** Idle members, ready for a request. */
  idle(): Member[] {
    return this.#members.filter((m) => m.status === "idle" && !m.removeRequested);
  }

  /** Sends `message` to an idle member, watching its heartbeat until it replies. */
  async request(m: Member, message: WithoutId<PsRequest>): Promise<Reply> {
    if (!this.#lastStats.includes(m.stats)) this.#lastStats.push(m.stats);
    this.#watch(m);
    try {
      return await m.handle!.request(message);
    } catch (e) {
      this.#lose(m, asCrash(m, e));
      throw e;
    } finally {
      m.watched = undefined;
    }
  }

  /** Starts a run: every serving member joins it. */
  startRun(spec: RunSpec): void {
    this.#run = {
      spec,
      control: new Int32Array(spec.controlBuffer),
      members: new Set(),
      joins: new Set(),
      crashes: [],
      lost: [],
    };
    this.#lastStats = [];
    for (const m of this.#members) {
      Object.assign(m.stats, {
        computed: 0,
        applied: 0,
        scaled: 0,
        dropped: 0,
        stepMs: 0,
        meanStaleness: 0,
      });
      m.stats.error = undefined;
    }
    for (const m of this.#serving()) void this.#join(this.#run, m);
  }

  /** Members of the run with a gradient waiting, in arrival (ticket) order. */
  full(): Member[] {
    const run = this.#run!;
    for (const m of [...run.members]) {
      if ((m.status === "crashed" || m.status === "removed") && !m.slot?.full) {
        run.members.delete(m);
      }
    }
    return [...run.members].filter((m) => m.slot?.full).sort((a, b) =>
      a.slot!.info().ticket - b.slot!.info().ticket
    );
  }

  /** Crashes since the last call. */
  takeCrashes(): Crash[] {
    return this.#run?.crashes.splice(0) ?? [];
  }

  /** Starts a replacement for a crashed member; it joins the run once started. */
  replace(crash: Crash): Member {
    const next = this.#newMember(crash.member.stats.requested, crash.member.id);
    this.#members.push(next);
    void this.#join(this.#run!, next);
    return next;
  }

  /** Records a crashed member that is not replaced in this run. */
  abandon(crash: Crash): void {
    this.#run!.lost.push(crash.member);
  }

  /** Whether any worker can still hand over a gradient in this run. */
  hasLive(): boolean {
    const run = this.#run!;
    return this.#members.some((m) => m.status !== "crashed" && m.status !== "removed") ||
      [...run.members].some((m) => m.slot?.full);
  }

  /**
   * Ends the run: sets `stop`, waits until every member finished its step
   * and replied, and queues fresh members for the ones lost (the next run
   * starts them).
   */
  async endRun(): Promise<void> {
    const run = this.#run;
    if (run === undefined) return;
    Atomics.store(run.control, PS_STOP, 1);
    this.wake();
    while (run.joins.size > 0) {
      const joins = [...run.joins];
      await Promise.allSettled(joins);
      for (const j of joins) run.joins.delete(j);
    }
    this.#run = undefined;
    for (const m of [...run.lost, ...run.crashes.map((c) => c.member)]) {
      this.#members.push(this.#newMember(m.stats.requested, m.id));
    }
  }

  /**
   * Puts a member to work in `run`; resolves once it computes (or failed to
   * start). Its part ends when `finished` settles.
   */
  #join(run: Run, m: Member): Promise<void> {
    let joined!: () => void;
    const whenJoined = new Promise<void>((r) => (joined = r));
    if (!this.#lastStats.includes(m.stats)) this.#lastStats.push(m.stats);
    const finished = (async () => {
      try {
        if (m.status === "pending") await this.#start(m, this.#spawn!);
        else if (m.status === "starting") await m.started;
        if (m.status !== "idle") return;
        if (m.removeRequested) return await this.#retire(m);
        if (Atomics.load(run.control, PS_STOP) !== 0) return;
        const slotBuffer = new SharedArrayBuffer(GradientSlot.bytes(this.#spawn!.slotLength));
        m.slot = new GradientSlot(slotBuffer, this.#spawn!.slotLength);
        m.status = "training";
        m.stats.status = "running";
        run.members.add(m);
        this.#watch(m);
        const s = run.spec;
        const request = m.handle!.request({
          type: "psTrain",
          buffers: { control: s.controlBuffer, weights: s.weightsBuffer, slot: slotBuffer },
          data: s.data,
          trainCount: s.trainCount,
          batchSize: s.batchSize,
          shuffle: s.shuffle,
          seed: s.seed,
          initialEpoch: s.initialEpoch,
          lossWeights: s.lossWeights,
        });
        joined();
        const reply = await request;
        m.watched = undefined;
        if (reply.type === "psDone") {
          m.stats.computed = reply.computed;
          m.stats.stepMs = reply.computed > 0 ? reply.computeMs / reply.computed : 0;
          m.stats.tensors = reply.tensors;
        }
        if ((m.status as Status) === "leaving") await this.#retire(m);
        else if (m.status === "training") {
          m.status = "idle";
          m.stats.status = "idle";
        }
      } catch (e) {
        this.#lose(m, asCrash(m, e));
      } finally {
        joined();
        this.wake();
      }
    })();
    m.finished = finished;
    run.joins.add(finished);
    return whenJoined;
  }

  /** Closes a member that was asked to leave. */
  async #retire(m: Member): Promise<void> {
    m.status = "removed";
    m.stats.status = "removed";
    this.#members = this.#members.filter((x) => x !== m);
    await m.handle?.close();
    if (m.handle !== undefined) this.#handles.delete(m.handle);
  }

  /**
   * Adds a worker: during a run it starts at once and resolves once it
   * computes; otherwise it starts with the next run. Resolves with its id.
   */
  async add(backend: WorkerBackend): Promise<number> {
    const m = this.#newMember(backend, null);
    this.#members.push(m);
    if (this.#run !== undefined) {
      await this.#join(this.#run, m);
      if (m.status === "crashed") {
        throw m.handle?.crash ??
          new WorkerCrashedError("worker", m.id, m.stats.error ?? "failed to start");
      }
    }
    return m.id;
  }

  /**
   * Removes worker `id` (default: the newest). A training worker finishes
   * its step and leaves; resolves once its Worker is closed. The last
   * serving worker cannot be removed.
   */
  async remove(id?: number): Promise<void> {
    const serving = this.#serving();
    const m = id === undefined ? serving.at(-1) : serving.find((x) => x.id === id);
    if (m === undefined) {
      throw new RangeError(
        `No worker ${id} to remove: the workers are ${serving.map((x) => x.id).join(", ")}`,
      );
    }
    if (serving.length <= 1) {
      throw new RangeError(
        `Cannot remove worker ${m.id}: it is the last worker, and a WorkerStrategy needs at least one`,
      );
    }
    m.removeRequested = true;
    if (m.status === "pending") {
      m.status = "removed";
      m.stats.status = "removed";
      this.#members = this.#members.filter((x) => x !== m);
      return;
    }
    if (m.status === "starting") await m.started?.catch(() => {});
    if ((m.status as Status) === "training") {
      m.status = "leaving";
      m.slot?.requestLeave();
      await m.finished;
    } else if ((m.status as Status) === "idle") {
      await this.#retire(m);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Closes every Worker gracefully; members stay, to start again on the next run. */
  async #closeAll(): Promise<void> {
    // Every Worker started, crashed ones included: a crashed Worker that is
    // still closing itself must be done before the process may exit.
    const open = [...this.#handles];
    this.#handles.clear();
    await Promise.all(open.map((h) => h.close()));
    for (const m of this.#members) {
      if (m.status !== "crashed") m.status = "pending";
      m.handle = undefined;
    }
    // A Worker's thread is still winding down right after it replied.
    if (open.length > 0) await new Promise((r) => setTimeout(r, 100));
  }

  /** Closes every Worker (call after `endRun`). A later run starts fresh ones. */
  async close(): Promise<void> {
    await this.#closeAll();
    this.#spawn = undefined;
  }
}

/** A worker's stats before it did anything: a local worker's unless `over` says otherwise. */
export function newWorkerStats(
  id: number,
  requested: WorkerBackend,
  over: Partial<WorkerStats> = {},
): WorkerStats {
  return {
    id,
    requested,
    backend: undefined,
    backendReason: "",
    threads: 0,
    blas: null,
    status: "idle",
    replaces: null,
    computed: 0,
    applied: 0,
    scaled: 0,
    dropped: 0,
    stepMs: 0,
    tensors: 0,
    kind: "local",
    address: null,
    name: null,
    lastSeen: null,
    meanStaleness: 0,
    ...over,
  };
}

function asCrash(m: Member, e: unknown): WorkerCrashedError {
  return e instanceof WorkerCrashedError
    ? e
    : new WorkerCrashedError("worker", m.id, e instanceof Error ? e.message : String(e), {
      cause: e,
    });
}
