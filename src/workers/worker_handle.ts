/**
 * One Worker with typed request/reply matching, crash reporting and a
 * graceful close: the building block of every Worker dtrain starts (the
 * replica group, WorkerStrategy's elastic worker set). The channel's types
 * and reply parser come from its protocol module; this file knows only the
 * envelope (`type`, `id`, and the `error` reply every channel shares).
 *
 * @module
 */
import { WorkerCrashedError, type WorkerRole } from "../errors.ts";

/** The reply every channel shares for a request that failed. */
export interface ErrorReply {
  /** Always `"error"`. */
  type: "error";
  /** The failed request's id (-1 when it could not be read). */
  id: number;
  /** The error's `name`. */
  name: string;
  /** The error's `message`. */
  message: string;
  /** The error's stack, when known. */
  stack?: string;
}

/** What every reply carries: its kind and the id of the request it answers. */
export interface ReplyEnvelope {
  /** The reply kind; `"error"` for a failed request. */
  type: string;
  /** The id of the request answered. */
  id: number;
}

/** A message without its `id`, distributed over a union. */
export type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

type Pending<R> = { resolve: (r: R) => void; reject: (e: unknown) => void };

/** Options of {@linkcode WorkerHandle}. */
export interface WorkerHandleOptions<Reply> {
  /** Module URL of the Worker entry point. */
  entry: URL;
  /** What kind of Worker this is (named in crash errors). */
  role: WorkerRole;
  /** Number reported in errors (`WorkerCrashedError.index`). */
  index: number;
  /** Worker name (`self.name` inside it). */
  name: string;
  /** Validates a message received from the Worker (throws when malformed). */
  parse: (data: unknown) => Reply;
  /** Called once when the Worker fails outside a request (uncaught error). */
  onCrash?: (error: WorkerCrashedError) => void;
  /**
   * Builds the crash error (a subclass for a role). `reply` is the `error`
   * reply it stands for, when there is one (a channel whose error replies
   * carry more fields can read them there).
   * @default `new WorkerCrashedError(role, ...)`
   */
  crashError?: CrashErrorFactory;
}

/** Builds a Worker's crash error; `reply` is the `error` reply behind it, if any. */
export type CrashErrorFactory = (
  index: number,
  detail: string,
  cause?: unknown,
  reply?: ErrorReply,
) => WorkerCrashedError;

/** Turns an `error` reply into the crash error of the Worker that sent it. */
export function replyError(
  reply: ErrorReply,
  index: number,
  make: CrashErrorFactory,
): WorkerCrashedError {
  const cause = Object.assign(new Error(reply.message), { name: reply.name, stack: reply.stack });
  return make(index, `${reply.name}: ${reply.message}`, cause, reply);
}

/**
 * A single module Worker. An `error` reply rejects its request with a
 * `WorkerCrashedError` (the Worker stays usable: the owner decides); an
 * uncaught error or an unreadable message rejects every pending request and
 * calls `onCrash`.
 *
 * @example
 * ```ts ignore
 * const w = new WorkerHandle<PsRequest, Reply>({
 *   entry: new URL("./ps_worker.ts", import.meta.url), role: "worker", index: 0, name: "w0", parse: parseReply,
 * });
 * await w.request({ type: "psInit", ... });
 * await w.close();
 * ```
 */
export class WorkerHandle<Request extends { type: string }, Reply extends ReplyEnvelope> {
  /** Number reported in errors. */
  readonly index: number;
  /** What kind of Worker this is. */
  readonly role: WorkerRole;
  #worker: Worker;
  #parse: (data: unknown) => Reply;
  #make: CrashErrorFactory;
  #pending = new Map<number, Pending<Reply>>();
  #nextId = 1;
  #crash: WorkerCrashedError | undefined;
  #closed = false;
  #onCrash: ((error: WorkerCrashedError) => void) | undefined;
  /** The last message was an `error` reply: the Worker is alive and can close itself. */
  #answeredError = false;
  /** A close asked of a Worker that failed a request: its reply id, and when it is over. */
  #closingAfterError: { id: number; done: Promise<void>; finish: () => void } | undefined;

  /** Starts the Worker. */
  constructor(options: WorkerHandleOptions<Reply>) {
    this.index = options.index;
    this.role = options.role;
    this.#parse = options.parse;
    this.#make = options.crashError ??
      ((index, detail, cause) => new WorkerCrashedError(options.role, index, detail, { cause }));
    this.#onCrash = options.onCrash;
    this.#worker = new Worker(options.entry, { type: "module", name: options.name });
    this.#worker.onmessage = (e: MessageEvent<unknown>) => this.#onReply(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(this.crashError(e.message, e.error));
    };
    this.#worker.onmessageerror = () => this.fail(this.crashError("unreadable message"));
  }

  /** A crash error naming this Worker, for `detail`. */
  crashError(detail: string, cause?: unknown): WorkerCrashedError {
    return this.#make(this.index, detail, cause);
  }

  /** The failure that ended this Worker, if any. */
  get crash(): WorkerCrashedError | undefined {
    return this.#crash;
  }

  /** Whether the Worker can still take requests. */
  get alive(): boolean {
    return !this.#closed && this.#crash === undefined;
  }

  /** Whether a request is waiting for its reply. */
  get busy(): boolean {
    return this.#pending.size > 0;
  }

  #onReply(data: unknown): void {
    let reply: Reply;
    try {
      reply = this.#parse(data);
    } catch (e) {
      this.fail(this.crashError(String(e)));
      return;
    }
    if (this.#closingAfterError?.id === reply.id) {
      this.#closingAfterError.finish();
      return;
    }
    this.#answeredError = reply.type === "error";
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) {
      // An error for no request (one the Worker could not even read) ends it.
      if (reply.type === "error") {
        this.fail(replyError(reply as unknown as ErrorReply, this.index, this.#make));
      }
      return;
    }
    this.#pending.delete(reply.id);
    if (reply.type === "error") {
      pending.reject(replyError(reply as unknown as ErrorReply, this.index, this.#make));
    } else {
      pending.resolve(reply);
    }
  }

  /**
   * Records a failure: rejects every pending request, stops the Worker and
   * calls `onCrash`. A Worker that just answered a request with an error is
   * still running: it is asked to close itself first (`graceful`, the
   * default), else it is terminated at once. The first failure wins; a
   * closed handle ignores it.
   */
  fail(error: WorkerCrashedError, options: { graceful?: boolean } = {}): void {
    if (this.#crash !== undefined || this.#closed) return;
    this.#crash = error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    if (this.#answeredError && options.graceful !== false) this.#closeAfterError();
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
  request(message: WithoutId<Request>): Promise<Reply> {
    if (this.#crash !== undefined) return Promise.reject(this.#crash);
    if (this.#closed) {
      return Promise.reject(new Error(`${this.#label()} is closed`));
    }
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id });
    });
  }

  #label(): string {
    return this.role === "replica" ? `Replica ${this.index}` : `Worker ${this.index}`;
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
      const replied = this.request({ type: "close" } as WithoutId<Request>).catch(() => {});
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
    for (const p of this.#pending.values()) p.reject(new Error(`${this.#label()} was closed`));
    this.#pending.clear();
    this.#worker.terminate();
  }
}
