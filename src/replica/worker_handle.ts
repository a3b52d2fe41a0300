/**
 * One Worker with typed request/reply matching, crash reporting and a
 * graceful close: the building block of WorkerStrategy's elastic worker set,
 * where every member lives, fails and is replaced on its own.
 *
 * @module
 */
import { ReplicaCrashedError } from "../errors.ts";
import { parseReply, type PsRequest, type Reply, type Request } from "./protocol.ts";

type Pending = { resolve: (r: Reply) => void; reject: (e: unknown) => void };
type Distributive<T> = T extends unknown ? Omit<T, "id"> : never;

/** Options of {@linkcode WorkerHandle}. */
export interface WorkerHandleOptions {
  /** Module URL of the Worker entry point. */
  entry: URL;
  /** Number reported in errors (`ReplicaCrashedError.replica`). */
  index: number;
  /** Worker name (`self.name` inside it). */
  name: string;
  /** Called once when the Worker fails outside a request (uncaught error). */
  onCrash?: (error: ReplicaCrashedError) => void;
}

/**
 * A single module Worker. An `error` reply rejects its request with a
 * `ReplicaCrashedError`; an uncaught error or an unreadable message rejects
 * every pending request and calls `onCrash`.
 *
 * @example
 * ```ts ignore
 * const w = new WorkerHandle({ entry: new URL("./ps_worker.ts", import.meta.url), index: 0, name: "w0" });
 * await w.request({ type: "psInit", ... });
 * await w.close();
 * ```
 */
export class WorkerHandle {
  /** Number reported in errors. */
  readonly index: number;
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #crash: ReplicaCrashedError | undefined;
  #closed = false;
  #onCrash: ((error: ReplicaCrashedError) => void) | undefined;
  /** The last message was an `error` reply: the Worker is alive and can close itself. */
  #answeredError = false;
  /** A close asked of a Worker that failed a request: its reply id, and when it is over. */
  #closingAfterError: { id: number; done: Promise<void>; finish: () => void } | undefined;

  /** Starts the Worker. */
  constructor(options: WorkerHandleOptions) {
    this.index = options.index;
    this.#onCrash = options.onCrash;
    this.#worker = new Worker(options.entry, { type: "module", name: options.name });
    this.#worker.onmessage = (e: MessageEvent<unknown>) => this.#onReply(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(new ReplicaCrashedError(this.index, e.message, { cause: e.error }));
    };
    this.#worker.onmessageerror = () =>
      this.fail(new ReplicaCrashedError(this.index, "unreadable message"));
  }

  /** The failure that ended this Worker, if any. */
  get crash(): ReplicaCrashedError | undefined {
    return this.#crash;
  }

  /** Whether the Worker can still take requests. */
  get alive(): boolean {
    return !this.#closed && this.#crash === undefined;
  }

  #onReply(data: unknown): void {
    let reply: Reply;
    try {
      reply = parseReply(data);
    } catch (e) {
      this.fail(new ReplicaCrashedError(this.index, String(e)));
      return;
    }
    if (this.#closingAfterError?.id === reply.id) {
      this.#closingAfterError.finish();
      return;
    }
    this.#answeredError = reply.type === "error";
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.type === "error") {
      const cause = Object.assign(new Error(reply.message), {
        name: reply.name,
        stack: reply.stack,
      });
      pending.reject(
        new ReplicaCrashedError(this.index, `${reply.name}: ${reply.message}`, { cause }),
      );
    } else {
      pending.resolve(reply);
    }
  }

  /**
   * Records a failure: rejects every pending request, terminates the Worker
   * and calls `onCrash`. The first failure wins; a closed handle ignores it.
   */
  fail(error: ReplicaCrashedError): void {
    if (this.#crash !== undefined || this.#closed) return;
    this.#crash = error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    if (this.#answeredError) this.#closeAfterError();
    else this.#worker.terminate();
    this.#onCrash?.(error);
  }

  /**
   * A Worker that failed a request is still running: ask it to free its
   * model and close (terminating a busy Worker just before the process exits
   * can crash Deno), and terminate it on its reply or after 2 s.
   */
  #closeAfterError(): void {
    const id = this.#nextId++;
    let finish = () => {};
    const done = new Promise<void>((resolve) => (finish = resolve));
    const timer = setTimeout(() => finish(), 2000);
    Deno.unrefTimer(timer);
    this.#closingAfterError = {
      id,
      done: done.then(() => {
        clearTimeout(timer);
        this.#worker.terminate();
      }),
      finish,
    };
    this.#worker.postMessage({ type: "close", id });
  }

  /** Sends one request; resolves with its reply. */
  request(message: Distributive<Request | PsRequest>): Promise<Reply> {
    if (this.#crash !== undefined) return Promise.reject(this.#crash);
    if (this.#closed) return Promise.reject(new Error(`Worker ${this.index} is closed`));
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id });
    });
  }

  /**
   * Asks the Worker to free its resources and close, waits for its reply (at
   * most `timeoutMs`), then terminates it. Terminating a Worker right before
   * the process exits can crash Deno; closing it first does not. Callers
   * should wait a moment (about 100 ms) after the last close before exiting.
   * Idempotent.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    if (this.#closingAfterError !== undefined) {
      await this.#closingAfterError.done;
    } else if (this.#crash === undefined) {
      const replied = this.request({ type: "close" }).catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([replied, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.terminate();
  }

  /** Terminates the Worker at once, rejecting pending requests. Idempotent. */
  terminate(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(new Error(`Worker ${this.index} was closed`));
    this.#pending.clear();
    this.#worker.terminate();
  }
}
