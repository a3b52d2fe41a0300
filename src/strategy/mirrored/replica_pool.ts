/**
 * The replica group's Workers: N {@linkcode WorkerHandle}s that live and fail
 * together. Any replica's failure (an error reply, an uncaught error, a
 * stopped heartbeat) ends the whole group: the group's barriers are aborted
 * so that no replica waits for a dead one, and every pending request rejects
 * with that first `ReplicaCrashedError`.
 *
 * @module
 */
import { ReplicaCrashedError, type WorkerCrashedError } from "../../errors.ts";
import { abortShared } from "../../collective/barrier.ts";
import { Heartbeat, silentDetail, watching } from "../../workers/heartbeat.ts";
import { type WithoutId, WorkerHandle } from "../../workers/worker_handle.ts";
import { heartbeatIndex } from "../_layout.ts";
import { parseReply, type Reply, type Request } from "../protocol.ts";

const ENTRY = new URL("./replica_worker.ts", import.meta.url);

/**
 * N replica Workers sharing one control array.
 *
 * @example
 * ```ts ignore
 * const pool = new ReplicaPool(2, control);
 * await pool.all((r) => ({ type: "loadWeights" }));
 * await pool.close();
 * ```
 */
export class ReplicaPool {
  readonly size: number;
  #handles: WorkerHandle<Request, Reply>[];
  #crash: Error | undefined;
  #control: Int32Array;
  #closed = false;

  constructor(size: number, control: Int32Array) {
    this.size = size;
    this.#control = control;
    this.#handles = Array.from({ length: size }, (_, r) =>
      new WorkerHandle<Request, Reply>({
        entry: ENTRY,
        role: "replica",
        index: r,
        name: `dtrain-replica-${r}`,
        parse: parseReply,
        crashError: (index, detail, cause) => new ReplicaCrashedError(index, detail, { cause }),
        onCrash: (e) => this.fail(e as ReplicaCrashedError),
      }));
  }

  /** The failure that ended this pool (a replica's crash, or a lost peer host), if any. */
  get crash(): Error | undefined {
    return this.#crash;
  }

  /** Whether the pool can still take requests. */
  get alive(): boolean {
    return !this.#closed && this.#crash === undefined;
  }

  /**
   * Records a failure (a replica's crash, or one outside the host such as a
   * lost peer): aborts the group's barriers, rejects every pending request
   * with `error` and terminates every Worker. The first failure wins.
   */
  fail(error: Error): void {
    if (this.#crash !== undefined || this.#closed) return;
    this.#crash = error;
    abortShared(this.#control);
    const crash = error instanceof ReplicaCrashedError
      ? error
      : new ReplicaCrashedError(-1, `the group was stopped: ${error.message}`, { cause: error });
    for (const h of this.#handles) h.fail(crash, { graceful: false });
  }

  /** Sends one request to replica `r`; resolves with its reply. */
  request(r: number, message: WithoutId<Request>): Promise<Reply> {
    if (this.#crash !== undefined) return Promise.reject(this.#crash);
    if (this.#closed) return Promise.reject(new Error("The replica pool is closed"));
    return this.#handles[r]!.request(message).catch((e: unknown) => {
      // A replica woken by an abort is a consequence, not the cause.
      const consequence = (e as WorkerCrashedError).cause instanceof Error &&
        ((e as WorkerCrashedError).cause as Error).name === "CollectiveAbortedError" &&
        this.#crash !== undefined;
      if (e instanceof ReplicaCrashedError && !consequence) this.fail(e);
      throw this.#crash ?? e;
    });
  }

  /** Sends a request to every replica and waits for all replies. */
  all(make: (r: number) => WithoutId<Request>): Promise<Reply[]> {
    return Promise.all(Array.from({ length: this.size }, (_, r) => this.request(r, make(r))));
  }

  /**
   * Watches the replicas' heartbeats while `run` is pending: a replica whose
   * heartbeat stops for `timeoutMs` while it owes a reply is declared dead.
   * `option` names the bound in the error.
   */
  watch<T>(run: Promise<T>, timeoutMs: number, option = "replicaTimeoutMs"): Promise<T> {
    const beats = this.#handles.map((_, r) =>
      new Heartbeat(() => Atomics.load(this.#control, heartbeatIndex(r)))
    );
    return watching(() => run, timeoutMs, () => {
      const now = performance.now();
      this.#handles.forEach((h, r) => {
        // A replica that already answered is idle, not dead.
        if (!h.busy) return beats[r]!.reset(now);
        const silent = beats[r]!.silentFor(now);
        if (silent > timeoutMs) {
          this.fail(new ReplicaCrashedError(r, silentDetail(silent, option, timeoutMs)));
        }
      });
    });
  }

  /**
   * Asks every Worker to free its resources and close, waits for them (at
   * most `timeoutMs`), then terminates any that did not. Terminating Workers
   * right before the process exits can crash Deno; closing them first does
   * not. Idempotent.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    if (this.#crash === undefined) await Promise.all(this.#handles.map((h) => h.close(timeoutMs)));
    this.terminate();
    // A Worker's thread is still winding down right after it replied or was
    // terminated; give it a moment before the caller may exit the process.
    await new Promise((r) => setTimeout(r, 100));
  }

  /** Terminates every Worker at once. Idempotent. */
  terminate(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#handles) h.terminate();
  }
}
