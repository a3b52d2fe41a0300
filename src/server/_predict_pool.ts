// Private: the inference Workers of the HTTP service, and the one typed
// protocol they speak (`_predict_worker.ts` is the other side).
//
// Who owns what: the registry (`registry.ts`) owns the model records and
// decides which models stay loaded (its LRU); this pool owns the Workers, one
// request queue per model and the batching; each Worker owns its tfjs, its
// backend (WASM on one thread where asked, with the host's BLAS when found)
// and its loaded copies of the models, read from the registry's folder by
// path. Training never runs here: a job's replicas are other Workers, so a
// running job does not stall predictions (the main thread only parses the
// request and copies its rows).
//
// Protocol (the rules of `src/strategy/protocol.ts`): one union per
// direction with a string `type`; each request carries an `id` its single
// reply echoes; errors cross as `{ type: "error", id, name, message }`;
// `event.data` stays `unknown` until `parsePredictRequest` /
// `parsePredictReply` validate it. A batch's rows cross as one Float32Array
// per model input, its outputs as one per model output (copied once by the
// structured clone, small next to the batch's compute).
import { setImmediate } from "node:timers";
import type { BlasReport } from "../../backends/types.ts";
import { checkEnvelope } from "../core/envelope.ts";
import { BackendUnavailableError, WorkerCrashedError } from "../errors.ts";
import { type ErrorReply, WorkerHandle } from "../workers/worker_handle.ts";
import { ModelFilesMissingError, ShuttingDownError } from "./_domain_errors.ts";

/** Backends an inference Worker can run. */
export type PredictBackend = "cpu" | "wasm";

/**
 * A failure a test makes an inference Worker suffer at its next `predict`:
 * `crash` throws an uncaught error (the Worker dies, its `error` event
 * fires), `hang` loops forever, `exit` closes the Worker without a word (the
 * last two are seen only by the batch timeout).
 */
export type FaultKind = "crash" | "hang" | "exit";

/** Requests from the main thread to an inference Worker. */
export type PredictRequest =
  /** Activate `backend` (WASM: one thread); reply `ready`. */
  | { type: "init"; id: number; backend: PredictBackend; cacheSize: number }
  /**
   * Run model `model` (its folder is `path`) on `rows` rows: `xs[k]` holds
   * those of input k (row-major, each that input's size), one entry per
   * model input in `model.inputs` order; reply `predicted`.
   */
  | { type: "predict"; id: number; model: string; path: string; rows: number; xs: Float32Array[] }
  /** Dispose the loaded copy of `model`, if any; reply `evicted`. */
  | { type: "evict"; id: number; model: string }
  /** Reply `stats`. */
  | { type: "stats"; id: number }
  /** Fail the next `predict` the way `kind` says; reply `armed`. */
  | { type: "fault"; id: number; kind: FaultKind }
  /** Dispose every model, reply `closed`, then close the Worker. */
  | { type: "close"; id: number };

/** Replies from an inference Worker. */
export type PredictReply =
  | {
    type: "ready";
    id: number;
    backend: string;
    reason: string;
    blas: BlasReport | null;
  }
  /**
   * `outputs[k]`: `rows x width_k` values of output k, row-major, one entry
   * per model output in `model.outputs` order.
   */
  | { type: "predicted"; id: number; outputs: Float32Array[] }
  | { type: "evicted"; id: number }
  /** `tensors`: `tf.memory().numTensors`; `loaded`: model ids, least recently used first. */
  | { type: "stats"; id: number; tensors: number; loaded: string[] }
  | { type: "armed"; id: number }
  | { type: "closed"; id: number }
  | ErrorReply;

const REQUEST_TYPES = new Set(["init", "predict", "evict", "stats", "fault", "close"]);
const REPLY_TYPES = new Set(["ready", "predicted", "evicted", "stats", "armed", "closed", "error"]);

function floatArrays(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Float32Array);
}

function malformed(side: string, expected: string, msg: unknown): TypeError {
  return new TypeError(
    `Malformed ${side} message: expected ${expected}, received ${
      JSON.stringify(msg)?.slice(0, 200)
    }`,
  );
}

/**
 * Validates a message received by an inference Worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePredictRequest } from "./_predict_pool.ts";
 * assert.ok(parsePredictRequest({ type: "stats", id: 1 }).type === "stats");
 * ```
 */
export function parsePredictRequest(data: unknown): PredictRequest {
  const msg = checkEnvelope(data, REQUEST_TYPES, "predict request") as PredictRequest;
  if (
    msg.type === "predict" &&
    (!floatArrays(msg.xs) || !Number.isInteger(msg.rows) || msg.rows < 1 ||
      typeof msg.model !== "string" || typeof msg.path !== "string")
  ) {
    throw malformed("predict request", "{ model, path, rows >= 1, xs: Float32Array[] }", msg);
  }
  return msg;
}

/**
 * Validates a message received by the main thread from an inference Worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePredictReply } from "./_predict_pool.ts";
 * const reply = parsePredictReply({ type: "predicted", id: 2, outputs: [new Float32Array(2)] });
 * assert.ok(reply.type === "predicted");
 * ```
 */
export function parsePredictReply(data: unknown): PredictReply {
  const msg = checkEnvelope(data, REPLY_TYPES, "predict reply") as PredictReply;
  if (msg.type === "predicted" && !floatArrays(msg.outputs)) {
    throw malformed("predict reply", "{ outputs: Float32Array[] }", msg);
  }
  if (msg.type === "error" && (typeof msg.name !== "string" || typeof msg.message !== "string")) {
    throw malformed("predict reply", "an error with string name and message", msg);
  }
  return msg;
}

/**
 * An inference Worker died, hung or exited while it owed an answer: the
 * requests of its batch are answered 503 and a new Worker takes its place.
 * (A request the Worker answered with an error is not a crash: `reply`
 * holds that error, and the pool rethrows it as the error it stands for.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PredictWorkerCrashedError } from "./_predict_pool.ts";
 * const err = new PredictWorkerCrashedError(0, "no answer within 5 ms");
 * assert.match(err.message, /^Inference worker 0 crashed: no answer within 5 ms/);
 * ```
 */
export class PredictWorkerCrashedError extends WorkerCrashedError {
  /** Always `"predict_worker_crashed"`. */
  readonly code = "predict_worker_crashed";
  /** The error reply this stands for, when the Worker answered one. */
  readonly reply: ErrorReply | undefined;

  /** `index` says which Worker, `detail` what happened. */
  constructor(
    index: number,
    detail: string,
    options: { cause?: unknown; reply?: ErrorReply } = {},
  ) {
    super("worker", index, detail, { cause: options.cause });
    this.name = "PredictWorkerCrashedError";
    this.message = `Inference worker ${index} crashed: ${detail}; the requests it was running ` +
      "are answered 503 and a new Worker replaces it (retry)";
    this.reply = options.reply;
  }
}

/** Options of {@linkcode PredictPool}. */
export interface PredictPoolOptions {
  /** Inference Workers (each runs one batch at a time). */
  workers: number;
  /**
   * Backend of every Worker (`wasm`: one thread, host BLAS when found).
   * @default "wasm"
   */
  backend?: PredictBackend;
  /**
   * Models each Worker keeps loaded (least recently used is disposed).
   * @default 8
   */
  cacheSize?: number;
  /**
   * Most rows of one batch (a single larger request still runs, alone).
   * @default 1024
   */
  maxBatchRows?: number;
  /**
   * A batch not answered this long (model load included) means a dead or
   * hung Worker: it is terminated, its requests rejected, and replaced.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * A Worker not started (code, backend) this long is given up.
   * @default 60000
   */
  startTimeoutMs?: number;
}

/** A model as the pool runs it: its id, its folder, the values of one row of each input. */
export interface PoolModel {
  /** The registry id (the Workers' cache key). */
  id: string;
  /** Folder holding its `model.json` and weights. */
  path: string;
  /** Values of one row of each input, in `model.inputs` order. */
  inSizes: number[];
}

interface Pending {
  xs: Float32Array[];
  rows: number;
  resolve: (outputs: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

interface Queue {
  model: PoolModel;
  items: Pending[];
}

interface Slot {
  index: number;
  handle: WorkerHandle<PredictRequest, PredictReply> | undefined;
  starting: Promise<WorkerHandle<PredictRequest, PredictReply>> | undefined;
  busy: boolean;
}

const ENTRY = new URL("./_predict_worker.ts", import.meta.url);

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, received ${value}`);
  }
  return value;
}

/** The error a failed `error` reply stands for (the Worker is alive and said why). */
function fromReply(reply: ErrorReply): Error {
  switch (reply.name) {
    case "ModelFilesMissingError":
      return new ModelFilesMissingError(reply.message);
    case "BackendUnavailableError":
      return new BackendUnavailableError(reply.message, { tried: [] });
    default:
      return Object.assign(new Error(reply.message), { name: reply.name });
  }
}

/**
 * A small pool of inference Workers that run predict requests in batches.
 *
 * Batching window: none while every Worker is busy, and the rest of the
 * current event-loop turn (`setImmediate`) when one is idle. Requests that
 * arrive while all Workers compute wait in their model's queue and leave
 * together, up to `maxBatchRows`, the moment a Worker is free: the batch
 * grows with the load (about arrival rate x batch time) without a fixed
 * delay, so one request alone is not held back and a busy server runs large
 * batches. A fixed timer would do worse at both ends, and in Deno
 * `setTimeout(0)` alone costs 1-4 ms (clamped), more than a small batch.
 * Models take turns: the queue waiting longest goes first.
 *
 * Workers start on the first request (tests that never predict start
 * none). A Worker that dies is replaced at once; the requests it was
 * running are rejected with {@linkcode PredictWorkerCrashedError}, never left
 * waiting: an uncaught error is seen at once, a hang or silent exit after
 * `timeoutMs`.
 *
 * @example
 * ```ts ignore
 * const pool = new PredictPool({ workers: 1 });
 * const [out] = await pool.predict({ id, path, inSizes: [4] }, [new Float32Array([1, 2, 3, 4])], 1);
 * await pool.close();
 * ```
 */
export class PredictPool {
  #slots: Slot[];
  #backend: PredictBackend;
  #cacheSize: number;
  #maxRows: number;
  #timeoutMs: number;
  #startTimeoutMs: number;
  #queues = new Map<string, Queue>();
  #scheduled = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #stats = { batches: 0, requests: 0, restarts: 0 };
  #report: { name: string; reason: string; blas: BlasReport | null } | null = null;

  /** Validates the options; no Worker starts until the first request. */
  constructor(options: PredictPoolOptions) {
    const workers = positive(options.workers, "workers");
    this.#backend = options.backend ?? "wasm";
    if (this.#backend !== "cpu" && this.#backend !== "wasm") {
      throw new TypeError(`backend must be "cpu" or "wasm", received "${this.#backend}"`);
    }
    this.#cacheSize = positive(options.cacheSize ?? 8, "cacheSize");
    this.#maxRows = positive(options.maxBatchRows ?? 1024, "maxBatchRows");
    this.#timeoutMs = positive(options.timeoutMs ?? 30_000, "timeoutMs");
    this.#startTimeoutMs = positive(options.startTimeoutMs ?? 60_000, "startTimeoutMs");
    this.#slots = Array.from({ length: workers }, (_, index) => ({
      index,
      handle: undefined,
      starting: undefined,
      busy: false,
    }));
  }

  /**
   * Runs `model` on `rows` rows, `xs[k]` holding those of input k
   * (`rows * model.inSizes[k]` values), in the next batch; resolves with
   * one array of `rows x width` values per model output. Rejects with
   * `PredictWorkerCrashedError` when the Worker dies meanwhile,
   * `ShuttingDownError` once the pool closes, or the error the Worker
   * answered (`ModelFilesMissingError`, `BackendUnavailableError`, ...).
   */
  predict(model: PoolModel, xs: Float32Array[], rows: number): Promise<Float32Array[]> {
    if (this.#closing) {
      return Promise.reject(new ShuttingDownError("The server is shutting down: not predicting"));
    }
    if (
      xs.length !== model.inSizes.length ||
      xs.some((x, k) => x.length !== rows * model.inSizes[k]!)
    ) {
      return Promise.reject(
        new RangeError(
          `Cannot predict ${rows} rows of [${model.inSizes.join(", ")}] values (one size per ` +
            `input) from [${xs.map((x) => x.length).join(", ")}] values`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(model.id);
      if (queue === undefined) {
        queue = { model, items: [] };
        this.#queues.set(model.id, queue);
      }
      queue.items.push({ xs, rows, resolve, reject });
      if (!this.#scheduled && this.#slots.some((s) => !s.busy)) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#dispatch();
        });
      }
    });
  }

  /** Hands queued batches to idle Workers. */
  #dispatch(): void {
    if (this.#closing) return;
    for (const slot of this.#slots) {
      if (slot.busy) continue;
      const first = this.#queues.keys().next();
      if (first.done) return;
      const queue = this.#queues.get(first.value)!;
      this.#queues.delete(first.value);
      const items: Pending[] = [];
      let rows = 0;
      let taken = 0;
      while (taken < queue.items.length) {
        const next = queue.items[taken]!;
        if (items.length > 0 && rows + next.rows > this.#maxRows) break;
        items.push(next);
        rows += next.rows;
        taken++;
      }
      queue.items.splice(0, taken);
      if (queue.items.length > 0) this.#queues.set(first.value, queue); // its turn is over
      slot.busy = true;
      void this.#run(slot, queue.model, items, rows);
    }
  }

  /** Runs one batch on `slot`; settles every request of it, never rejects. */
  async #run(slot: Slot, model: PoolModel, items: Pending[], rows: number): Promise<void> {
    this.#stats.batches++;
    this.#stats.requests += items.length;
    const xs = model.inSizes.map((size, k) => {
      const only = items.length === 1 ? items[0]!.xs[k]! : undefined;
      if (
        only !== undefined && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength
      ) {
        return only; // the clone copies exactly these rows
      }
      const x = new Float32Array(rows * size);
      let offset = 0;
      for (const p of items) {
        x.set(p.xs[k]!, offset);
        offset += p.xs[k]!.length;
      }
      return x;
    });
    let outputs: Float32Array[] | undefined;
    let failure: unknown;
    let handle: WorkerHandle<PredictRequest, PredictReply> | undefined;
    try {
      handle = slot.handle?.alive ? slot.handle : await this.#start(slot);
      const reply = await this.#timed(
        handle,
        handle.request({ type: "predict", model: model.id, path: model.path, rows, xs }),
        this.#timeoutMs,
        `a batch of ${rows} rows`,
      );
      if (reply.type !== "predicted" || reply.outputs.some((d) => d.length % rows !== 0)) {
        throw new TypeError(
          `Inference worker ${slot.index} answered a predict of ${rows} rows with ${
            reply.type === "predicted"
              ? `outputs of [${reply.outputs.map((d) => d.length).join(", ")}] values`
              : reply.type
          }`,
        );
      }
      outputs = reply.outputs;
    } catch (e) {
      failure = this.#translate(e);
    }
    slot.busy = false;
    this.#dispatch(); // keep the Worker fed before answering this batch
    if (outputs === undefined) {
      for (const p of items) p.reject(failure);
      return;
    }
    const widths = outputs.map((d) => d.length / rows);
    let row = 0;
    for (const p of items) {
      p.resolve(outputs.map((d, k) => d.subarray(row * widths[k]!, (row + p.rows) * widths[k]!)));
      row += p.rows;
    }
  }

  /** What a rejected Worker request means to the caller. */
  #translate(e: unknown): unknown {
    if (e instanceof PredictWorkerCrashedError && e.reply !== undefined) return fromReply(e.reply);
    if (this.#closing && !(e instanceof PredictWorkerCrashedError)) {
      return new ShuttingDownError("The server is shutting down: the predict request was not run");
    }
    return e;
  }

  /** `promise`, or the Worker declared dead (terminated, replaced) after `ms`. */
  async #timed<T>(
    handle: WorkerHandle<PredictRequest, PredictReply>,
    promise: Promise<T>,
    ms: number,
    what: string,
  ): Promise<T> {
    const timer = setTimeout(() => {
      handle.fail(
        handle.crashError(`no answer to ${what} within ${ms} ms (the Worker hangs or exited)`),
        { graceful: false },
      );
    }, ms);
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts the Worker of `slot` (once at a time); resolves when its backend is up. */
  #start(slot: Slot): Promise<WorkerHandle<PredictRequest, PredictReply>> {
    slot.starting ??= (async () => {
      if (this.#closing) throw new ShuttingDownError("The server is shutting down: not predicting");
      const handle: WorkerHandle<PredictRequest, PredictReply> = new WorkerHandle({
        entry: ENTRY,
        role: "worker",
        index: slot.index,
        name: `dtrain-predict-${slot.index}`,
        parse: parsePredictReply,
        crashError: (index, detail, cause, reply) =>
          new PredictWorkerCrashedError(index, detail, { cause, reply }),
        onCrash: () => this.#crashed(slot, handle),
      });
      try {
        const ready = await this.#timed(
          handle,
          handle.request({ type: "init", backend: this.#backend, cacheSize: this.#cacheSize }),
          this.#startTimeoutMs,
          "its start",
        );
        if (ready.type !== "ready") throw new TypeError(`expected ready, received ${ready.type}`);
        this.#report = { name: ready.backend, reason: ready.reason, blas: ready.blas };
      } catch (e) {
        await handle.close(500);
        throw e;
      }
      slot.handle = handle;
      return handle;
    })().finally(() => (slot.starting = undefined));
    return slot.starting;
  }

  /** A Worker of `slot` died: forget it and start its replacement. */
  #crashed(slot: Slot, handle: WorkerHandle<PredictRequest, PredictReply>): void {
    if (slot.handle !== handle) return; // it died while starting: the request said so
    slot.handle = undefined;
    this.#stats.restarts++;
    if (this.#closing) return;
    // The replacement loads the models again on their next batch; if it
    // fails to start, the next batch tries again (and answers why).
    this.#start(slot).then(() => this.#dispatch(), () => {});
  }

  /** Tells every running Worker to dispose model `id` (evicted or deleted). */
  evict(id: string): void {
    for (const slot of this.#slots) {
      if (slot.handle?.alive) slot.handle.request({ type: "evict", model: id }).catch(() => {});
    }
  }

  /**
   * Workers of the pool and how many run now, batches run (`batches`) for
   * how many requests (`requests`), Workers replaced after a crash
   * (`restarts`), and the backend the last Worker to start runs, with why
   * and its BLAS report (null before any started).
   */
  get stats(): {
    workers: number;
    running: number;
    batches: number;
    requests: number;
    restarts: number;
    backend: { name: string; reason: string; blas: BlasReport | null } | null;
  } {
    return {
      workers: this.#slots.length,
      running: this.#slots.filter((s) => s.handle?.alive).length,
      ...this.#stats,
      backend: this.#report,
    };
  }

  /** Each running Worker's live tensors and loaded model ids (tests: leaks, evictions). */
  async workerStats(): Promise<{ index: number; tensors: number; loaded: string[] }[]> {
    const out: { index: number; tensors: number; loaded: string[] }[] = [];
    for (const slot of this.#slots) {
      if (!slot.handle?.alive) continue;
      const reply = await slot.handle.request({ type: "stats" });
      if (reply.type === "stats") {
        out.push({ index: slot.index, tensors: reply.tensors, loaded: reply.loaded });
      }
    }
    return out;
  }

  /**
   * Fault injection for tests: Worker `index` (started if needed) fails its
   * next batch the way `kind` says.
   */
  async injectFault(index: number, kind: FaultKind): Promise<void> {
    const slot = this.#slots[index];
    if (slot === undefined) {
      throw new RangeError(`No inference worker ${index}: the pool has ${this.#slots.length}`);
    }
    const handle = slot.handle?.alive ? slot.handle : await this.#start(slot);
    await handle.request({ type: "fault", kind });
  }

  /**
   * Rejects queued requests with `ShuttingDownError`, lets running batches
   * finish (a Worker that does not close within 2 s is terminated) and stops
   * every Worker. Idempotent.
   */
  close(): Promise<void> {
    return this.#closed ??= (async () => {
      this.#closing = true;
      const refused = new ShuttingDownError("The server is shutting down: not predicting");
      for (const queue of this.#queues.values()) for (const p of queue.items) p.reject(refused);
      this.#queues.clear();
      await Promise.allSettled(this.#slots.map((s) => s.starting));
      const open = this.#slots.filter((s) => s.handle !== undefined);
      await Promise.all(open.map((s) => s.handle!.close()));
      for (const s of open) s.handle = undefined;
      // A Worker's thread is still winding down right after it replied or was
      // terminated; give it a moment before the caller may exit the process.
      if (open.length > 0) await new Promise((r) => setTimeout(r, 100));
    })();
  }
}
