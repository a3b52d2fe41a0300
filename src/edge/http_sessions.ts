/**
 * The request/response form of the edge-worker protocol, for platforms
 * without long-lived sockets: `join` answers the welcome, each `step`
 * delivers the worker's last answer (its `ready` message first, then a
 * gradient frame) and answers the next assignment frame, or the end.
 * Sessions are named by a random key; one that sends nothing for the pool's
 * `timeoutMs` is lost and its batch reassigned, as over a WebSocket.
 *
 * @module
 */
import type { RemoteSession, RemoteWelcome, RemoteWorkers } from "../strategy/ps/remote_workers.ts";
import { assignmentFrame, deliverFrame } from "./_exchange.ts";
import { EDGE_PROTOCOL } from "./frames.ts";
import { MessageError, parseWorkerMessage, type ServerMessage } from "./messages.ts";

/** What a step answers: the next assignment, or how the session ended. */
export type StepAnswer =
  | { frame: Uint8Array }
  | { message: Extract<ServerMessage, { type: "end" | "error" }> };

interface HttpSession {
  session: RemoteSession;
  welcome: RemoteWelcome;
  fp16: boolean;
  ready: boolean;
  busy: boolean;
}

/**
 * The request/response sessions of one job.
 *
 * @example
 * ```ts ignore
 * const http = new HttpSessions(job.remote, { job: id });
 * const { key, welcome } = await http.join(helloText, address);
 * let answer = await http.step(key, { text: readyText });
 * while ("frame" in answer) answer = await http.step(key, { binary: gradientFrame });
 * ```
 */
export class HttpSessions {
  #pool: RemoteWorkers;
  #job: string;
  #sessions = new Map<string, HttpSession>();
  /** How recently ended sessions ended, so their next step learns it. */
  #ended = new Map<string, { why: string; lost: boolean }>();

  /** Sessions of `pool` (the job's remote workers). */
  constructor(pool: RemoteWorkers, options: { job: string }) {
    this.#pool = pool;
    this.#job = options.job;
  }

  /**
   * Joins with a `hello` message: resolves with the session key and the
   * welcome once the job's run is on, or null when it ended first. Throws
   * `MessageError` for a bad hello, `RangeError` when the job is full.
   */
  async join(
    helloText: string,
    address: string,
  ): Promise<{ key: string; welcome: ServerMessage } | null> {
    const hello = parseWorkerMessage(helloText);
    if (hello.type !== "hello") {
      throw new MessageError(`expected "hello", received "${hello.type}"`);
    }
    const session = this.#pool.join({ address, name: hello.name });
    const key = crypto.randomUUID();
    session.onClose((why) => {
      this.#sessions.delete(key);
      this.#ended.set(key, { why, lost: session.stats.status === "crashed" });
      // Bounded: the oldest reasons go first.
      if (this.#ended.size > 1024) this.#ended.delete(this.#ended.keys().next().value!);
    });
    const welcome = await session.welcome();
    if (welcome === null) {
      session.close("left", "the job ended");
      return null;
    }
    const fp16 = hello.fp16 === true;
    this.#sessions.set(key, { session, welcome, fp16, ready: false, busy: false });
    return {
      key,
      welcome: { type: "welcome", protocol: EDGE_PROTOCOL, job: this.#job, fp16, ...welcome },
    };
  }

  /** Whether `key` names a live or recently ended session. */
  has(key: string): boolean {
    return this.#sessions.has(key) || this.#ended.has(key);
  }

  /**
   * One exchange: `ready` (text) or a gradient frame (binary) in, the next
   * assignment or the end out. A refused gradient answers an `error` and
   * ends the session (counted in the pool).
   */
  async step(key: string, body: { text: string } | { binary: Uint8Array }): Promise<StepAnswer> {
    const s = this.#sessions.get(key);
    if (s === undefined) {
      const ended = this.#ended.get(key);
      if (ended?.lost === true) {
        return { message: { type: "error", code: "lost", message: ended.why } };
      }
      return { message: { type: "end", reason: ended?.why ?? "unknown session" } };
    }
    if (s.busy) {
      return this.#refuse(s, "protocol", "a step is already in progress for this session");
    }
    s.busy = true;
    try {
      s.session.touch();
      if ("text" in body) {
        const m = parseWorkerMessage(body.text);
        if (m.type === "bye") {
          s.session.close("left", "bye");
          return { message: { type: "end", reason: "bye" } };
        }
        if (m.type !== "ready" || s.ready) {
          return this.#refuse(s, "protocol", `unexpected "${m.type}"`);
        }
        s.session.describe(m);
        s.ready = true;
      } else {
        if (!s.ready) return this.#refuse(s, "protocol", 'a gradient before "ready"');
        deliverFrame(s.session, body.binary, s.welcome, s.fp16);
      }
      const a = await s.session.next();
      if (a === null) {
        s.session.close("left", "the run is over");
        return { message: { type: "end", reason: "the run is over" } };
      }
      return { frame: assignmentFrame(a, s.fp16) };
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (!s.session.gone) s.session.refuse("protocol", message);
      const code = (e as { reason?: string }).reason ?? "protocol";
      return { message: { type: "error", code, message } };
    } finally {
      s.busy = false;
    }
  }

  #refuse(s: HttpSession, reason: "protocol", message: string): StepAnswer {
    const error = s.session.refuse(reason, message);
    return { message: { type: "error", code: reason, message: error.message } };
  }

  /** The worker leaves. */
  leave(key: string): void {
    this.#sessions.get(key)?.session.close("left", "bye");
  }
}
