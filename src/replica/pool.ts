/**
 * A group of replica Workers: spawning, request/reply matching, crash
 * detection (error replies, uncaught errors and a heartbeat watchdog for
 * Workers that vanish silently) and shutdown.
 *
 * @module
 */
import { ReplicaCrashedError } from "../errors.ts";
import { abortShared } from "../collective/barrier.ts";
import { heartbeatIndex } from "./_layout.ts";
import { parseReply, type Reply, type Request } from "./protocol.ts";

type Pending = { resolve: (r: Reply) => void; reject: (e: unknown) => void };
type Distributive<T> = T extends unknown ? Omit<T, "id"> : never;

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
  #workers: Worker[];
  #pending = new Map<number, Pending & { replica: number }>();
  #nextId = 1;
  #crash: ReplicaCrashedError | undefined;
  #control: Int32Array;
  #closed = false;

  constructor(size: number, control: Int32Array) {
    this.size = size;
    this.#control = control;
    this.#workers = Array.from({ length: size }, (_, r) => {
      const w = new Worker(new URL("./replica_worker.ts", import.meta.url), {
        type: "module",
        name: `dtrain-replica-${r}`,
      });
      w.onmessage = (e: MessageEvent<unknown>) => this.#onReply(r, e.data);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.fail(new ReplicaCrashedError(r, e.message, { cause: e.error }));
      };
      w.onmessageerror = () => this.fail(new ReplicaCrashedError(r, "unreadable message"));
      return w;
    });
  }

  /** The crash that ended this pool, if any. */
  get crash(): ReplicaCrashedError | undefined {
    return this.#crash;
  }

  /** Whether the pool can still take requests. */
  get alive(): boolean {
    return !this.#closed && this.#crash === undefined;
  }

  #onReply(replica: number, data: unknown): void {
    let reply: Reply;
    try {
      reply = parseReply(data);
    } catch (e) {
      this.fail(new ReplicaCrashedError(replica, String(e)));
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (reply.type === "error") {
      // A replica woken by an abort is a consequence, not the cause.
      const cause = Object.assign(new Error(reply.message), {
        name: reply.name,
        stack: reply.stack,
      });
      if (
        reply.name !== "CollectiveAbortedError" || this.#crash === undefined
      ) {
        this.fail(
          new ReplicaCrashedError(replica, `${reply.name}: ${reply.message}`, {
            cause,
          }),
        );
      }
      return;
    }
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    pending.resolve(reply);
  }

  /**
   * Records a crash: aborts the group's barriers, rejects every pending
   * request and terminates every Worker. The first crash wins.
   */
  fail(error: ReplicaCrashedError): void {
    if (this.#crash !== undefined || this.#closed) return;
    this.#crash = error;
    abortShared(this.#control);
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const w of this.#workers) w.terminate();
  }

  /** Sends one request to replica `r`; resolves with its reply. */
  request(r: number, message: Distributive<Request>): Promise<Reply> {
    if (this.#crash !== undefined) return Promise.reject(this.#crash);
    if (this.#closed) {
      return Promise.reject(new Error("The replica pool is closed"));
    }
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, replica: r });
      this.#workers[r]!.postMessage({ ...message, id });
    });
  }

  /** Sends a request to every replica and waits for all replies. */
  all(make: (r: number) => Distributive<Request>): Promise<Reply[]> {
    return Promise.all(
      Array.from({ length: this.size }, (_, r) => this.request(r, make(r))),
    );
  }

  /**
   * Watches the replicas' heartbeats while `run` is pending: a replica whose
   * heartbeat stops for `timeoutMs` while the run is in progress is declared
   * dead (a Worker that closed or exited sends no event).
   */
  async watch<T>(run: Promise<T>, timeoutMs: number): Promise<T> {
    const last = Array.from({ length: this.size }, (_, r) => ({
      beat: Atomics.load(this.#control, heartbeatIndex(r)),
      at: performance.now(),
    }));
    const timer = setInterval(() => {
      const now = performance.now();
      for (let r = 0; r < this.size; r++) {
        const beat = Atomics.load(this.#control, heartbeatIndex(r));
        // A replica that already answered is idle, not dead.
        if (beat !== last[r]!.beat || !this.#busy(r)) last[r] = { beat, at: now };
        else if (now - last[r]!.at > timeoutMs) {
          this.fail(
            new ReplicaCrashedError(
              r,
              `no heartbeat for ${Math.round(now - last[r]!.at)} ms (the Worker died or hangs; ` +
                `replicaTimeoutMs is ${timeoutMs})`,
            ),
          );
        }
      }
    }, Math.min(500, timeoutMs / 4));
    try {
      return await run;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Asks every Worker to free its resources and close, waits for them (at
   * most `timeoutMs`), then terminates any that did not. Terminating Workers
   * right before the process exits can crash Deno; closing them first does
   * not. Idempotent.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    if (this.#crash === undefined) {
      const replies = this.all(() => ({ type: "close" })).catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        replies,
        new Promise((r) => (timer = setTimeout(r, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    this.terminate();
    // A Worker's thread is still winding down right after it replied or was
    // terminated; give it a moment before the caller may exit the process.
    await new Promise((r) => setTimeout(r, 100));
  }

  #busy(r: number): boolean {
    for (const p of this.#pending.values()) if (p.replica === r) return true;
    return false;
  }

  /** Terminates every Worker at once. Idempotent. */
  terminate(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) {
      p.reject(new Error("The replica pool was closed"));
    }
    this.#pending.clear();
    for (const w of this.#workers) w.terminate();
  }
}
