/**
 * Private: the map Workers of one `ParallelMap`, on the project's Worker
 * runtime (`src/workers/`): one {@linkcode WorkerHandle} per Worker (request
 * and reply matching, crash wrapping, graceful close), one
 * {@linkcode Heartbeat} each, read by a watchdog that runs while any request
 * is owed. The group owns the Workers and turns whatever goes wrong with one
 * into the error the pipeline's user sees (`PipelineError`, or the
 * `TypeError`/`RangeError` of a wrong map output), which it hands to
 * `onFail`; what a failure stops (slots, the other Workers) is the
 * pipeline's business.
 *
 * @module
 */
import { PipelineError, WorkerCrashedError } from "../errors.ts";
import { Heartbeat, silentDetail, watching } from "../workers/heartbeat.ts";
import { type WithoutId, WorkerHandle } from "../workers/worker_handle.ts";
import type { FirstFailure } from "./_pipeline_failure.ts";
import { type MapReply, type MapRequest, parseMapReply } from "./_pipeline_protocol.ts";

const ENTRY = new URL("./_map_worker.ts", import.meta.url);
/** How long a Worker may take to import the map module before it is declared dead. */
const STARTUP_TIMEOUT_MS = 60_000;
/** How long `close()` waits for the Workers' `closed` replies. */
const CLOSE_TIMEOUT_MS = 2000;

type MapErrorReply = Extract<MapReply, { type: "error" }>;
type InitRequest = WithoutId<Extract<MapRequest, { type: "init" }>>;

/** Options of {@linkcode MapWorkerGroup}. */
export interface MapWorkerGroupOptions {
  /** Number of Workers. */
  workers: number;
  /** A Worker owing a reply whose heartbeat stands still this long is dead, ms. */
  workerTimeoutMs: number;
  /** The pipeline's failure: the group stops watching and sends nothing once it is set. */
  failure: FirstFailure;
  /** Called with the user-facing error when a Worker fails (the first call wins). */
  onFail: (error: Error) => void;
}

/** A request a Worker owes a reply to. */
interface Owed {
  /** The epoch a `map` request maps; undefined for `init`. */
  epoch: number | undefined;
}

/** The map Workers of one pipeline. */
export class MapWorkerGroup {
  /** One Int32 per Worker, bumped after every sample (sent in `init`). */
  readonly heartbeat: Int32Array<SharedArrayBuffer>;
  #handles: WorkerHandle<MapRequest, MapReply>[];
  #beats: Heartbeat[];
  /** Per Worker, the requests it owes a reply to, oldest first. */
  #owed: Owed[][];
  /** The `error` reply behind a crash error, where there was one. */
  #replies = new WeakMap<WorkerCrashedError, MapErrorReply>();
  #options: MapWorkerGroupOptions;
  /** Requests in flight, over all Workers; the watchdog runs while > 0. */
  #inFlight = 0;
  #drained: () => void = () => {};

  /** Starts the Workers (they wait for `init`). */
  constructor(options: MapWorkerGroupOptions) {
    this.#options = options;
    const { workers } = options;
    this.heartbeat = new Int32Array(new SharedArrayBuffer(4 * workers));
    this.#owed = Array.from({ length: workers }, () => []);
    this.#handles = Array.from(
      { length: workers },
      (_, w) =>
        new WorkerHandle<MapRequest, MapReply>({
          entry: ENTRY,
          role: "map",
          index: w,
          name: `dtrain-map-${w}`,
          parse: (data) => this.#parse(w, data),
          crashError: (index, detail, cause, reply) => {
            const error = new WorkerCrashedError("map", index, detail, { cause });
            if (reply !== undefined) this.#replies.set(error, reply as MapErrorReply);
            return error;
          },
          onCrash: (e) => this.#lost(w, e),
        }),
    );
    this.#beats = this.#handles.map((_, w) => new Heartbeat(() => Atomics.load(this.heartbeat, w)));
  }

  /** Sends every Worker its `init` request; resolves once all are ready. */
  async init(request: (worker: number) => InitRequest): Promise<void> {
    await Promise.all(this.#handles.map((_, w) => this.#request(w, request(w))));
  }

  /** Has every Worker map `epoch` into `slot`; resolves (never rejects) once all replied. */
  async run(slot: number, epoch: number): Promise<void> {
    await Promise.allSettled(
      this.#handles.map((_, w) => this.#request(w, { type: "map", slot, epoch })),
    );
  }

  /**
   * Asks every live Worker to close, waits for them (at most 2 s), then
   * terminates the rest, and gives the threads a moment to wind down before
   * the caller may exit the process. Terminating a Worker right before the
   * process exits can crash Deno; closing it first does not.
   */
  async close(): Promise<void> {
    await Promise.all(this.#handles.map((h) => h.close(CLOSE_TIMEOUT_MS)));
    await new Promise((r) => setTimeout(r, 100));
  }

  /**
   * Sends one request to Worker `w`, watching its heartbeat until it
   * replies. Rejects with the pipeline's failure when anything goes wrong.
   */
  #request(w: number, message: WithoutId<MapRequest>): Promise<MapReply> {
    const { failure } = this.#options;
    if (failure.error !== undefined) return Promise.reject(failure.error);
    const handle = this.#handles[w]!;
    // The clock starts when the Worker goes from idle to owing a reply.
    if (!handle.busy) this.#beats[w]!.reset();
    const owed: Owed = { epoch: message.type === "map" ? message.epoch : undefined };
    this.#owed[w]!.push(owed);
    this.#watch();
    return handle.request(message)
      .finally(() => {
        const list = this.#owed[w]!;
        list.splice(list.indexOf(owed), 1);
        if (--this.#inFlight === 0) this.#drained();
      })
      .catch((e: unknown) => {
        if (e instanceof WorkerCrashedError) this.#lost(w, e);
        throw failure.error ?? e;
      });
  }

  /** Counts a request in flight; the first one starts the watchdog. */
  #watch(): void {
    if (this.#inFlight++ > 0) return;
    const drained = new Promise<void>((resolve) => (this.#drained = resolve));
    const { failure, workerTimeoutMs } = this.#options;
    // Never rejects: both promises only resolve.
    void watching(
      () => Promise.race([drained, failure.recorded]),
      workerTimeoutMs,
      () => this.#checkBeats(),
    );
  }

  /** Declares a Worker that owes a reply and whose heartbeat stood still too long dead. */
  #checkBeats(): void {
    const { failure, workerTimeoutMs: timeout } = this.#options;
    if (failure.error !== undefined) return;
    const now = performance.now();
    for (let w = 0; w < this.#handles.length; w++) {
      const handle = this.#handles[w]!;
      if (!handle.busy) continue;
      const silent = this.#beats[w]!.silentFor(now);
      if (silent <= timeout) continue;
      // Requests are handled in order: the oldest is the one it is on.
      const epoch = this.#owed[w]![0]?.epoch;
      // Starting (importing the map module) may take long on a cold cache.
      if (epoch === undefined && silent <= Math.max(timeout, STARTUP_TIMEOUT_MS)) continue;
      const crash = handle.crashError(silentDetail(silent, "workerTimeoutMs", timeout));
      this.#options.onFail(
        new PipelineError(
          `Pipeline worker ${w} stopped responding ${
            epoch === undefined ? "while starting" : `while mapping epoch ${epoch}`
          }: no sample finished for ${Math.round(silent)} ms (the Worker died or ` +
            `its map hangs; workerTimeoutMs is ${timeout})`,
          { worker: w, epoch, cause: crash },
        ),
      );
      handle.fail(crash, { graceful: false });
      return;
    }
  }

  /** Validates a reply; a malformed one fails the pipeline, naming it (the handle then stops the Worker). */
  #parse(w: number, data: unknown): MapReply {
    try {
      return parseMapReply(data);
    } catch (e) {
      this.#options.onFail(
        new PipelineError(`Pipeline worker ${w} sent a malformed reply`, { worker: w, cause: e }),
      );
      throw e;
    }
  }

  /** Worker `w` failed: hands the user-facing error to `onFail`. */
  #lost(w: number, crash: WorkerCrashedError): void {
    this.#options.onFail(userError(w, crash, this.#replies.get(crash)));
  }
}

/** The error a pipeline's user sees for map Worker `w`'s `crash`. */
function userError(w: number, crash: WorkerCrashedError, reply: MapErrorReply | undefined): Error {
  if (reply !== undefined) return errorFromReply(w, reply, crash.cause);
  // The handle's detail for a message that could not be deserialised.
  if (crash.detail === "unreadable message") {
    return new PipelineError(`Pipeline worker ${w} sent an unreadable message`, {
      worker: w,
      cause: crash,
    });
  }
  return new PipelineError(`Pipeline worker ${w} died: ${crash.detail}`, {
    worker: w,
    cause: crash,
  });
}

/** The error for an `error` reply; `cause` is the Worker's error rebuilt from it. */
function errorFromReply(w: number, reply: MapErrorReply, cause: unknown): Error {
  if (reply.origin === "output") {
    return reply.name === "TypeError"
      ? new TypeError(reply.message)
      : new RangeError(reply.message);
  }
  if (reply.origin === "map") {
    return new PipelineError(
      `map() threw on sample ${reply.index} of epoch ${reply.epoch} in pipeline worker ${w}: ` +
        `${reply.name}: ${reply.message}`,
      { worker: w, epoch: reply.epoch, index: reply.index, cause },
    );
  }
  return new PipelineError(`Pipeline worker ${w} failed: ${reply.name}: ${reply.message}`, {
    worker: w,
    cause,
  });
}
