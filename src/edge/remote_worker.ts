/**
 * An edge worker: lends this machine's cores to a WorkerStrategy job of a
 * dtrain service. It connects out (so it works behind NAT, no port opened),
 * gets the model and, for each step, the weights and the batch's rows, and
 * sends back the batch's gradient. It runs until the job ends, reconnecting
 * with backoff when the connection or the server goes away.
 *
 * @module
 */
import type { BackendName } from "../../backends/types.ts";
import { nonNegativeInt, positiveInt, refuseUnknownOptions } from "../core/checks.ts";
// Type only: the computer loads the backends, which importing the library must not do.
import type { GradientComputer } from "../strategy/ps/gradient_computer.ts";
import { readAssignment } from "./_exchange.ts";
import { EDGE_PROTOCOL, encodeFrame } from "./frames.ts";
import { parseServerMessage, type ServerMessage, type WorkerMessage } from "./messages.ts";

/** Options of {@linkcode runRemoteWorker}. */
export interface RemoteWorkerOptions {
  /** The service's base URL, e.g. `http://10.0.0.2:8787`. */
  server: string | URL;
  /** The job to work for. */
  job: string;
  /** The service token or the job's `workerToken`. */
  token: string;
  /**
   * Backend to compute on.
   * @default "auto"
   */
  backend?: BackendName | "auto";
  /**
   * WASM threads.
   * @default 1
   */
  threads?: number;
  /**
   * `websocket` (one connection, binary frames) or `http` (one request per
   * gradient, for platforms without long-lived sockets).
   * @default "websocket"
   */
  transport?: "websocket" | "http";
  /**
   * Ask for float16 weights and gradients on the wire (half the bytes).
   * @default false
   */
  fp16?: boolean;
  /** A name shown in the job's worker list. */
  name?: string;
  /** Aborting it makes the worker say goodbye and return. */
  signal?: AbortSignal;
  /**
   * Consecutive failed connection attempts before giving up; the wait
   * between them doubles from 200 ms up to 5 s.
   * @default 30
   */
  maxRetries?: number;
  /** Called on each connection, welcome and end (for logs and progress). */
  onEvent?: (event: RemoteWorkerEvent) => void;
}

/** What {@linkcode RemoteWorkerOptions.onEvent} hears. */
export type RemoteWorkerEvent =
  | { type: "connecting"; attempt: number }
  | { type: "welcome"; worker: number; backend: string; reason: string }
  | { type: "disconnected"; detail: string; retryInMs: number }
  | { type: "end"; reason: string };

/** How a remote worker's run ended. */
export interface RemoteWorkerResult {
  /** Why it stopped: the job's end, or `aborted`. */
  reason: string;
  /** Gradients it sent. */
  gradients: number;
  /** Milliseconds spent computing them (weights in, forward, backward, gradient out). */
  computeMs: number;
  /** Connections after the first. */
  reconnects: number;
}

/** The service refused the worker for good (wrong token, unknown job, refused gradient). */
export class RemoteWorkerError extends Error {
  /** The server's error code. */
  readonly code: string;
  /** `code` is the server's error code, `message` what it said. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "RemoteWorkerError";
    this.code = code;
  }
}

const OPTIONS = [
  "server",
  "job",
  "token",
  "backend",
  "threads",
  "transport",
  "fp16",
  "name",
  "signal",
  "maxRetries",
  "onEvent",
] as const satisfies readonly (keyof RemoteWorkerOptions)[];

/** Connection trouble worth a retry. */
class Disconnected extends Error {}

/** The next thing the server said after a worker's message. */
type Answer = { frame: Uint8Array } | { message: ServerMessage };

interface Link {
  hello(message: WorkerMessage): Promise<Answer>;
  send(message: WorkerMessage): Promise<Answer>;
  gradient(frame: Uint8Array): Promise<Answer>;
  bye(): void;
}

/**
 * Works for job `job` of the service at `server` until the job ends;
 * resolves with how it ended. Rejects with {@linkcode RemoteWorkerError} when
 * the service refuses it for good, or when it cannot reach the service for
 * `maxRetries` attempts in a row.
 *
 * @example
 * ```ts ignore
 * import { runRemoteWorker } from "@dtrain/dtrain";
 * const result = await runRemoteWorker({
 *   server: "http://10.0.0.2:8787",
 *   job: "job_0mb1x2y3zabcdefgh",
 *   token: Deno.env.get("DTRAIN_TOKEN")!,
 * });
 * console.log(`${result.gradients} gradients, ${result.reason}`);
 * ```
 */
export async function runRemoteWorker(options: RemoteWorkerOptions): Promise<RemoteWorkerResult> {
  refuseUnknownOptions(options, OPTIONS, "runRemoteWorker");
  const base = new URL(options.server);
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`server must be an http(s) URL, received ${base.href}`);
  }
  if (typeof options.job !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(options.job)) {
    throw new TypeError(`job must be a job id, received ${JSON.stringify(options.job)}`);
  }
  if (typeof options.token !== "string" || options.token === "") {
    throw new TypeError("token must be the service token or the job's workerToken");
  }
  const transport = options.transport ?? "websocket";
  if (transport !== "websocket" && transport !== "http") {
    throw new TypeError(
      `transport must be "websocket" or "http", received ${JSON.stringify(transport)}`,
    );
  }
  const threads = positiveInt(options.threads ?? 1, "threads");
  const maxRetries = nonNegativeInt(options.maxRetries ?? 30, "maxRetries");
  const emit = options.onEvent ?? (() => {});
  const result: RemoteWorkerResult = { reason: "", gradients: 0, computeMs: 0, reconnects: -1 };
  let computer: { key: string; value: GradientComputer } | undefined;
  let failures = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) {
        return { ...result, reason: "aborted", reconnects: Math.max(0, result.reconnects) };
      }
      result.reconnects++;
      emit({ type: "connecting", attempt: failures + 1 });
      let link: Link | undefined;
      try {
        link = transport === "websocket"
          ? await socketLink(base, options)
          : httpLink(base, options);
        const end = await session(link, {
          options,
          threads,
          computerFor: async (welcome) => {
            const key = JSON.stringify([welcome.model, welcome.compile, welcome.slotLength]);
            if (computer?.key !== key) {
              computer?.value.dispose();
              computer = undefined;
              const { GradientComputer } = await import("../strategy/ps/gradient_computer.ts");
              const value = await GradientComputer.create({
                backend: options.backend ?? "auto",
                threads,
                model: welcome.model,
                compile: welcome.compile,
                slotLength: welcome.slotLength,
                who: `Remote worker ${welcome.worker}`,
              });
              computer = { key, value };
            }
            failures = 0;
            emit({
              type: "welcome",
              worker: welcome.worker,
              backend: computer.value.report.name,
              reason: computer.value.report.reason,
            });
            return computer.value;
          },
          sent: (ms) => {
            result.gradients++;
            result.computeMs += ms;
          },
        });
        emit({ type: "end", reason: end });
        return { ...result, reason: end };
      } catch (e) {
        // Whatever failed, the link goes: an open one would keep its session (and batch) alive.
        link?.bye();
        if (!(e instanceof Disconnected)) throw e;
        if (options.signal?.aborted) continue;
        failures++;
        if (failures > maxRetries) {
          throw new RemoteWorkerError(
            "unreachable",
            `Gave up after ${maxRetries} failed attempts to reach ${base.href}: ${e.message}`,
          );
        }
        const wait = Math.min(5_000, 200 * 2 ** Math.min(failures - 1, 5));
        emit({ type: "disconnected", detail: e.message, retryInMs: wait });
        await sleep(wait, options.signal);
      }
    }
  } finally {
    computer?.value.dispose();
  }
}

async function session(
  link: Link,
  ctx: {
    options: RemoteWorkerOptions;
    threads: number;
    computerFor: (w: Extract<ServerMessage, { type: "welcome" }>) => Promise<GradientComputer>;
    /** A gradient went out, computed in `ms`. */
    sent: (ms: number) => void;
  },
): Promise<string> {
  const { options } = ctx;
  const onAbort = () => link.bye();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const hello = await link.hello({
      type: "hello",
      protocol: EDGE_PROTOCOL,
      name: options.name,
      fp16: options.fp16 ?? false,
    });
    const welcome = messageOf(hello);
    if (welcome.type !== "welcome") return endOf(welcome);
    const computer = await ctx.computerFor(welcome);
    const report = computer.report;
    let answer = await link.send({
      type: "ready",
      backend: report.name,
      backendReason: report.reason,
      threads: report.threads,
    });
    const payload = new Float32Array(welcome.slotLength);
    const logsLength = 1 + welcome.metricCount;
    while ("frame" in answer) {
      // Every input, output and sample-weight column, checked against the welcome.
      const a = readAssignment(answer.frame, welcome);
      const t0 = performance.now();
      computer.setWeights(a.weights);
      await computer.computeRows(a, payload);
      if (options.signal?.aborted) return "aborted";
      const frame = encodeFrame({
        kind: "gradient",
        fp16: welcome.fp16,
        batch: a.batch,
        version: a.version,
        samples: a.samples,
        sections: [
          payload.subarray(0, welcome.weightCount),
          payload.subarray(welcome.weightCount, welcome.weightCount + logsLength),
        ],
      });
      const ms = performance.now() - t0;
      answer = await link.gradient(frame);
      ctx.sent(ms);
    }
    return endOf(answer.message);
  } catch (e) {
    if (options.signal?.aborted) return "aborted";
    throw e;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function messageOf(answer: Answer): ServerMessage {
  if ("frame" in answer) throw new Disconnected("the server sent a frame before its welcome");
  return answer.message;
}

/** The reason of an `end`; throws for an `error`. */
function endOf(message: ServerMessage): string {
  if (message.type === "end") return message.reason;
  if (message.type === "error") {
    if (message.code === "lost") throw new Disconnected(message.message);
    throw new RemoteWorkerError(message.code, `The server refused this worker: ${message.message}`);
  }
  throw new Disconnected(`unexpected "${message.type}" from the server`);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

function workersUrl(base: URL, job: string, rest = ""): URL {
  return new URL(
    `v1/jobs/${encodeURIComponent(job)}/workers${rest}`,
    base.href.endsWith("/") ? base : `${base.href}/`,
  );
}

/**
 * Turns an HTTP error answer into what the worker does next: retry
 * (server gone, 5xx), stop quietly (the job is over), or give up.
 */
async function refusal(response: Response): Promise<never | { ended: string }> {
  let code = "", message = response.statusText;
  try {
    const body = await response.json();
    code = String(body?.error?.code ?? "");
    message = String(body?.error?.message ?? message);
  } catch {
    // Not JSON.
  }
  if (response.status >= 500 || response.status === 429) {
    throw new Disconnected(`HTTP ${response.status}: ${message}`);
  }
  if (response.status === 409 && code === "job_ended") return { ended: message };
  throw new RemoteWorkerError(
    code || `http_${response.status}`,
    `HTTP ${response.status}: ${message}`,
  );
}

async function fetchOrRetry(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new Disconnected(e instanceof Error ? e.message : String(e));
  }
}

async function socketLink(base: URL, options: RemoteWorkerOptions): Promise<Link> {
  const headers = { Authorization: `Bearer ${options.token}` };
  // A plain request first: the service answers 426 when the upgrade would be
  // accepted, and the status and reason otherwise (a browser-style socket
  // error carries neither).
  const probe = await fetchOrRetry(workersUrl(base, options.job, "/connect"), { headers });
  if (probe.status !== 426) {
    const out = await refusal(probe);
    return endedLink(out.ended);
  }
  await probe.body?.cancel();
  const url = workersUrl(base, options.job, "/connect");
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  const inbox: (Answer | Disconnected)[] = [];
  let wake: (() => void) | undefined;
  const push = (item: Answer | Disconnected) => {
    inbox.push(item);
    wake?.();
  };
  let said = false;
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      let message: ServerMessage;
      try {
        message = parseServerMessage(e.data);
      } catch (err) {
        return push(new Disconnected(`bad message from the server: ${(err as Error).message}`));
      }
      if (message.type === "ping") return ws.send(JSON.stringify({ type: "pong" }));
      if (message.type === "pong") return;
      if (message.type === "end" || message.type === "error") said = true;
      push({ message });
    } else push({ frame: new Uint8Array(e.data as ArrayBuffer) });
  };
  ws.onclose = (e) => {
    if (!said) {
      push(new Disconnected(`connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`));
    }
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (e) => reject(new Disconnected((e as ErrorEvent).message ?? "WebSocket error"));
  });
  ws.onerror = () => {};
  const receive = async (): Promise<Answer> => {
    while (inbox.length === 0) {
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    const item = inbox.shift()!;
    if (item instanceof Disconnected) throw item;
    return item;
  };
  const sendText = (m: WorkerMessage) => {
    try {
      ws.send(JSON.stringify(m));
    } catch (e) {
      throw new Disconnected(`send failed: ${(e as Error).message}`);
    }
  };
  return {
    hello: (m) => (sendText(m), receive()),
    send: (m) => (sendText(m), receive()),
    gradient: (frame) => {
      try {
        ws.send(frame);
      } catch (e) {
        throw new Disconnected(`send failed: ${(e as Error).message}`);
      }
      return receive();
    },
    bye: () => {
      try {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "bye" }));
        ws.close(1000, "bye");
      } catch {
        // Closed already.
      }
    },
  };
}

/** A link whose server already said the job is over. */
function endedLink(reason: string): Link {
  const end = () => Promise.resolve<Answer>({ message: { type: "end", reason } });
  return { hello: end, send: end, gradient: end, bye: () => {} };
}

function httpLink(base: URL, options: RemoteWorkerOptions): Link {
  const auth = { Authorization: `Bearer ${options.token}` };
  let key: string | undefined;
  const answerOf = async (response: Response): Promise<Answer> => {
    if (!response.ok) {
      const out = await refusal(response);
      return { message: { type: "end", reason: out.ended } };
    }
    const type = response.headers.get("content-type") ?? "";
    if (type.startsWith("application/octet-stream")) {
      return { frame: new Uint8Array(await response.arrayBuffer()) };
    }
    return { message: parseServerMessage(await response.text()) };
  };
  const step = async (body: BodyInit, contentType: string): Promise<Answer> => {
    if (key === undefined) throw new Disconnected("no session");
    const response = await fetchOrRetry(workersUrl(base, options.job, `/${key}/step`), {
      method: "POST",
      headers: { ...auth, "Content-Type": contentType },
      body,
    });
    return await answerOf(response);
  };
  return {
    hello: async (m) => {
      const response = await fetchOrRetry(workersUrl(base, options.job), {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify(m),
      });
      if (!response.ok) return await answerOf(response);
      const body = await response.json() as { session?: unknown; welcome?: unknown };
      if (typeof body.session !== "string") throw new Disconnected("join answered no session");
      key = body.session;
      return { message: parseServerMessage(JSON.stringify(body.welcome)) };
    },
    send: (m) => step(JSON.stringify(m), "application/json"),
    gradient: (frame) => step(frame as Uint8Array<ArrayBuffer>, "application/octet-stream"),
    bye: () => {
      if (key === undefined) return;
      fetch(workersUrl(base, options.job, `/${key}`), { method: "DELETE", headers: auth })
        .then((r) => r.body?.cancel()).catch(() => {});
    },
  };
}
