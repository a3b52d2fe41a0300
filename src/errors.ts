/**
 * Named domain errors. Every error dtrain raises on purpose is either a
 * `TypeError`/`RangeError` for a bad argument or one of these classes. Only the
 * HTTP layer maps them to status codes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BackendUnavailableError } from "./errors.ts";
 * const err = new BackendUnavailableError("no backend", { tried: [] });
 * assert.ok(err.name === "BackendUnavailableError");
 * ```
 * @module
 */

/** Options shared by the dtrain error constructors. */
export interface DtrainErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

export { BackendUnavailableError } from "../backends/errors.ts";

/** Which kind of Worker crashed. */
export type WorkerRole = "replica" | "worker" | "map";

/**
 * Raised when a Worker dies or throws while dtrain depends on it: a
 * MirroredStrategy replica (`role: "replica"`, thrown as its subclass
 * {@linkcode ReplicaCrashedError}), a WorkerStrategy gradient worker
 * (`"worker"`) or an input-pipeline map Worker (`"map"`). `index` is the
 * Worker's number, `detail` what happened, `cause` the original error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerCrashedError } from "./errors.ts";
 * const err = new WorkerCrashedError("worker", 2, "no heartbeat for 31000 ms");
 * assert.equal(err.message, "Worker 2 crashed: no heartbeat for 31000 ms");
 * assert.deepEqual([err.role, err.index, err.detail], ["worker", 2, "no heartbeat for 31000 ms"]);
 * ```
 */
export class WorkerCrashedError extends Error {
  /** The kind of Worker. */
  readonly role: WorkerRole;
  /** The Worker's number within its group. */
  readonly index: number;
  /** What happened, without the "... crashed:" prefix. */
  readonly detail: string;
  /** `role` and `index` say which Worker; `detail` what happened. */
  constructor(
    role: WorkerRole,
    index: number,
    detail: string,
    options: DtrainErrorOptions = {},
  ) {
    const who = role === "replica" ? "Replica" : role === "worker" ? "Worker" : "Map worker";
    super(`${who} ${index} crashed: ${detail}`, { cause: options.cause });
    this.name = "WorkerCrashedError";
    this.role = role;
    this.index = index;
    this.detail = detail;
  }
}

/**
 * Raised when a MirroredStrategy replica Worker throws or dies during
 * training or evaluation: a {@linkcode WorkerCrashedError} whose `role` is
 * `"replica"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReplicaCrashedError, WorkerCrashedError } from "./errors.ts";
 * const err = new ReplicaCrashedError(1, "Worker terminated");
 * assert.ok(err instanceof WorkerCrashedError);
 * assert.deepEqual([err.replica, err.role, err.message], [1, "replica", "Replica 1 crashed: Worker terminated"]);
 * ```
 */
export class ReplicaCrashedError extends WorkerCrashedError {
  /** Index of the replica that failed (same as `index`). */
  readonly replica: number;
  /** `replica` is the failed replica's index; `detail` says what happened. */
  constructor(
    replica: number,
    detail: string,
    options: DtrainErrorOptions = {},
  ) {
    super("replica", replica, detail, options);
    this.name = "ReplicaCrashedError";
    this.replica = replica;
  }
}

/**
 * Raised when training produces a NaN or infinite loss.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NonFiniteLossError } from "./errors.ts";
 * const err = new NonFiniteLossError(0, 3, NaN);
 * assert.ok(err.message.includes("epoch 1"));
 * ```
 */
export class NonFiniteLossError extends Error {
  /** Zero-based epoch in which the loss became non-finite. */
  readonly epoch: number;
  /** Zero-based step within the epoch. */
  readonly step: number;
  /** Zero-based `epoch` and `step`; the message counts from 1. */
  constructor(epoch: number, step: number, loss: number) {
    super(
      `Loss became ${loss} at epoch ${epoch + 1}, step ${step + 1}: ` +
        "expected a finite loss (lower the learning rate, check the inputs for NaN, " +
        "or pass terminateOnNaN: false)",
    );
    this.name = "NonFiniteLossError";
    this.epoch = epoch;
    this.step = step;
  }
}

/**
 * Raised when a data or model file exists but its contents are not what the
 * reader expects: a wrong IDX magic number, a truncated file, a ragged or
 * non-numeric CSV row, a weights file shorter than its manifest says.
 *
 * The message names the file (and line, where there is one) and says what was
 * expected and what was received. `path` holds the file that failed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DataFormatError } from "./errors.ts";
 * const err = new DataFormatError("x.idx: expected 16 bytes, received 3", { path: "x.idx" });
 * assert.ok(err.name === "DataFormatError" && err.path === "x.idx");
 * ```
 */
export class DataFormatError extends Error {
  /** The file whose contents were rejected. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param message What was wrong: the file, what was expected, what was received.
   * @param options `path` of the rejected file and an optional `cause`.
   */
  constructor(message: string, options: { path: string; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "DataFormatError";
    this.path = options.path;
  }
}

/**
 * Raised when a `ParallelMap` input pipeline fails while it runs:
 * the user's map function threw, a map Worker died or stopped responding, or
 * the pipeline was closed while an epoch was pending. `worker`, `epoch` and
 * `index` (the source sample) say where, when known; `cause` holds the
 * original error (with its `name` and `message`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PipelineError } from "./errors.ts";
 * const err = new PipelineError("map() threw on sample 7", { worker: 1, epoch: 0, index: 7 });
 * assert.ok(err.name === "PipelineError" && err.index === 7);
 * ```
 */
export class PipelineError extends Error {
  /** Index of the map Worker that failed, if one did. */
  readonly worker: number | undefined;
  /** Zero-based epoch being mapped, if known. */
  readonly epoch: number | undefined;
  /** Source index of the sample being mapped, if known. */
  readonly index: number | undefined;
  /**
   * Creates the error.
   *
   * @param message What failed, where, and what was expected.
   * @param options Where it failed (`worker`, `epoch`, `index`) and the `cause`.
   */
  constructor(
    message: string,
    options: { worker?: number; epoch?: number; index?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "PipelineError";
    this.worker = options.worker;
    this.epoch = options.epoch;
    this.index = options.index;
  }
}
