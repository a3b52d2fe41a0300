/**
 * The server side of one edge worker's WebSocket: a {@linkcode RemoteSession}
 * driven by the messages of the socket. Transport-neutral: it takes any
 * object with `send` and `close` (Hono's `WSContext`, a Deno `WebSocket`).
 *
 * Order of a session: `hello` (text) → `welcome` → `ready` → assignment
 * frame → gradient frame → ... → `end`. Anything out of that order, a
 * malformed message or frame, or a gradient the session refuses, gets an
 * `error` message and closes the socket with 1008; the refusal is counted
 * in the pool and nothing of it is applied. Pings go out every third of the
 * pool's `timeoutMs`; any message counts as a sign of life.
 *
 * @module
 */
import {
  RemoteRefusedError,
  type RemoteSession,
  type RemoteWelcome,
  type RemoteWorkers,
} from "../strategy/ps/remote_workers.ts";
import { assignmentFrame, deliverFrame } from "./_exchange.ts";
import { EDGE_PROTOCOL } from "./frames.ts";
import {
  MessageError,
  parseWorkerMessage,
  type ServerMessage,
  type WorkerMessage,
} from "./messages.ts";

/** What the driver needs of a socket. */
export interface SocketLike {
  /** Sends a text (control) or binary (frame) message. */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  /** Closes the connection. */
  close(code?: number, reason?: string): void;
}

type Incoming = { text: WorkerMessage } | { binary: Uint8Array } | { closed: true };

/** A connection must say hello within this long. */
const HELLO_TIMEOUT_MS = 10_000;

/** Close codes: normal, policy violation (refused), try again later (full). */
const NORMAL = 1000, POLICY = 1008, TRY_LATER = 1013;

/**
 * Drives one WebSocket's session: call `open` once the socket is open, then
 * `message` for each message and `closed` when it closes.
 *
 * @example
 * ```ts ignore
 * const driver = new SocketSession(job.remote, { job: id, address, allowFp16: true });
 * upgradeWebSocket(() => ({
 *   onOpen: (_e, ws) => driver.open(ws),
 *   onMessage: (e) => driver.message(e.data),
 *   onClose: () => driver.closed(),
 * }));
 * ```
 */
export class SocketSession {
  #pool: RemoteWorkers;
  #job: string;
  #address: string;
  #allowFp16: boolean;
  #socket: SocketLike | undefined;
  #session: RemoteSession | undefined;
  #inbox: Incoming[] = [];
  #wake: (() => void) | undefined;
  #ping: ReturnType<typeof setInterval> | undefined;
  #over = false;
  #said = false;
  /** Settles once the session's loop is over. */
  readonly done: Promise<void>;
  #resolveDone!: () => void;

  /** A driver for one connection to `pool` (the job's remote workers). */
  constructor(pool: RemoteWorkers, options: { job: string; address: string; allowFp16?: boolean }) {
    this.#pool = pool;
    this.#job = options.job;
    this.#address = options.address;
    this.#allowFp16 = options.allowFp16 ?? true;
    this.done = new Promise((r) => (this.#resolveDone = r));
  }

  /** The socket is open: the session starts. */
  open(socket: SocketLike): void {
    this.#socket = socket;
    // A connection that never says hello holds no session: it goes.
    const hello = setTimeout(() => {
      if (this.#session === undefined) {
        this.#fail(new MessageError(`no hello within ${HELLO_TIMEOUT_MS} ms`));
      }
    }, HELLO_TIMEOUT_MS);
    this.done.then(() => clearTimeout(hello));
    this.#ping = setInterval(
      () => this.#send({ type: "ping" }),
      Math.max(50, this.#pool.timeoutMs / 3),
    );
    void this.#run().finally(() => {
      clearInterval(this.#ping);
      this.#resolveDone();
    });
  }

  /** A message arrived. */
  message(data: unknown): void {
    this.#session?.touch();
    let item: Incoming;
    if (typeof data === "string") {
      let parsed: WorkerMessage;
      try {
        parsed = parseWorkerMessage(data);
      } catch (e) {
        return this.#fail(e);
      }
      if (parsed.type === "ping") return this.#send({ type: "pong" });
      if (parsed.type === "pong") return;
      item = { text: parsed };
    } else if (data instanceof ArrayBuffer) {
      item = { binary: new Uint8Array(data) };
    } else if (data instanceof Uint8Array) {
      item = { binary: data };
    } else {
      return this.#fail(new MessageError("received a message that is neither text nor binary"));
    }
    this.#inbox.push(item);
    this.#wake?.();
  }

  /** The socket closed. */
  closed(): void {
    this.#over = true;
    this.#inbox.push({ closed: true });
    this.#wake?.();
    this.#session?.close("lost", "connection closed");
  }

  #send(message: ServerMessage): void {
    if (this.#over) return;
    try {
      this.#socket?.send(JSON.stringify(message));
    } catch {
      // The socket is closing; `closed` follows.
    }
  }

  #close(code: number, reason: string): void {
    if (this.#over) return;
    this.#over = true;
    try {
      this.#socket?.close(code, closeReason(reason));
    } catch {
      // Already closed.
    }
  }

  /** Reports `e` to the worker and closes (1008 for refusals and protocol errors). */
  #fail(e: unknown): void {
    if (this.#said) return;
    this.#said = true;
    const message = e instanceof Error ? e.message : String(e);
    let code: string;
    if (e instanceof RemoteRefusedError) {
      code = e.reason; // counted by the session already
    } else if (this.#session === undefined && e instanceof RangeError) {
      code = "full";
    } else {
      code = "protocol";
      this.#session?.refuse("protocol", message);
    }
    this.#send({ type: "error", code, message });
    this.#close(code === "full" ? TRY_LATER : POLICY, message);
  }

  async #receive(): Promise<Incoming> {
    while (this.#inbox.length === 0) {
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
    return this.#inbox.shift()!;
  }

  async #expectText(type: WorkerMessage["type"]): Promise<WorkerMessage | null> {
    const item = await this.#receive();
    if ("closed" in item) return null;
    if ("binary" in item || item.text.type !== type) {
      if ("text" in item && item.text.type === "bye") return null;
      throw new MessageError(
        `expected "${type}", received ${
          "binary" in item ? "a binary frame" : `"${item.text.type}"`
        }`,
      );
    }
    return item.text;
  }

  async #run(): Promise<void> {
    try {
      const hello = await this.#expectText("hello");
      if (hello === null || hello.type !== "hello") return;
      let session: RemoteSession;
      try {
        session = this.#pool.join({ address: this.#address, name: hello.name });
      } catch (e) {
        if (e instanceof RangeError) return this.#fail(e);
        this.#send({ type: "end", reason: e instanceof Error ? e.message : String(e) });
        return this.#close(NORMAL, "job ended");
      }
      this.#session = session;
      // The pool ended the session (job over, silent): tell the worker. A
      // refusal found here is reported by `#fail`, which runs first.
      session.onClose((why) =>
        setTimeout(() => {
          if (this.#over || this.#said) return;
          const left = session.stats.status === "removed";
          this.#send(
            left ? { type: "end", reason: why } : { type: "error", code: "lost", message: why },
          );
          this.#close(left ? NORMAL : POLICY, why);
        }, 0)
      );
      const welcome = await session.welcome();
      if (welcome === null) return this.#end("the job ended");
      const fp16 = hello.fp16 === true && this.#allowFp16;
      this.#send({ type: "welcome", protocol: EDGE_PROTOCOL, job: this.#job, fp16, ...welcome });
      const ready = await this.#expectText("ready");
      if (ready === null || ready.type !== "ready") return session.close("left", "bye");
      session.describe(ready);
      await this.#serve(session, welcome, fp16);
    } catch (e) {
      this.#fail(e);
    }
  }

  async #serve(session: RemoteSession, welcome: RemoteWelcome, fp16: boolean): Promise<void> {
    for (;;) {
      const a = await session.next();
      if (a === null) {
        return this.#end(session.gone ? session.stats.error ?? "closed" : "the run is over");
      }
      this.#socket!.send(assignmentFrame(a, fp16) as Uint8Array<ArrayBuffer>);
      const item = await this.#receive();
      if ("closed" in item) return;
      if ("text" in item) {
        if (item.text.type === "bye") return session.close("left", "bye");
        throw new MessageError(`expected a gradient frame, received "${item.text.type}"`);
      }
      deliverFrame(session, item.binary, welcome, fp16);
    }
  }

  #end(reason: string): void {
    this.#send({ type: "end", reason });
    this.#session?.close("left", reason);
    this.#close(NORMAL, "end");
  }
}

/** Bytes a WebSocket close reason may hold (RFC 6455: a control frame's 125, less the code). */
const MAX_REASON_BYTES = 123;

/**
 * `reason` cut to at most {@linkcode MAX_REASON_BYTES} UTF-8 bytes, on a
 * character boundary: `close()` throws on a longer one, which would leave
 * the socket open (a hello echoing a long non-ASCII field, say).
 */
function closeReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.length <= MAX_REASON_BYTES) return reason;
  let end = MAX_REASON_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // not inside a character
  return new TextDecoder().decode(bytes.subarray(0, end));
}
