/**
 * Named domain errors. Every error dtrain raises on purpose is either a
 * `TypeError`/`RangeError` for a bad argument or one of these classes. Only the
 * HTTP layer maps them to status codes.
 *
 * @example
 * ```ts
 * import { BackendUnavailableError } from "./errors.ts";
 * const err = new BackendUnavailableError("no backend", { tried: [] });
 * console.assert(err.name === "BackendUnavailableError");
 * ```
 * @module
 */

/** Options shared by the dtrain error constructors. */
export interface DtrainErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Raised when no backend satisfies a selection request, or a required backend
 * failed to initialise. `tried` lists every candidate and why it was refused.
 *
 * @example
 * ```ts
 * import { BackendUnavailableError } from "./errors.ts";
 * const err = new BackendUnavailableError("webgpu required but unavailable", {
 *   tried: [{ name: "webgpu", available: false, reason: "navigator.gpu missing" }],
 * });
 * console.assert(err.tried.length === 1);
 * ```
 */
export class BackendUnavailableError extends Error {
  /** Every candidate the selection looked at, with the reason it was refused. */
  readonly tried: ReadonlyArray<
    { name: string; available: boolean; reason: string }
  >;
  /** `tried` lists every candidate with why it was refused. */
  constructor(
    message: string,
    options: {
      tried: ReadonlyArray<
        { name: string; available: boolean; reason: string }
      >;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "BackendUnavailableError";
    this.tried = options.tried;
  }
}

/**
 * Raised when a replica Worker throws or dies during training or evaluation.
 *
 * @example
 * ```ts
 * import { ReplicaCrashedError } from "./errors.ts";
 * const err = new ReplicaCrashedError(1, "Worker terminated");
 * console.assert(err.replica === 1);
 * ```
 */
export class ReplicaCrashedError extends Error {
  /** Index of the replica that failed. */
  readonly replica: number;
  /** `replica` is the failed replica's index; `detail` says what happened. */
  constructor(
    replica: number,
    detail: string,
    options: DtrainErrorOptions = {},
  ) {
    super(`Replica ${replica} crashed: ${detail}`, { cause: options.cause });
    this.name = "ReplicaCrashedError";
    this.replica = replica;
  }
}

/**
 * Raised when training produces a NaN or infinite loss.
 *
 * @example
 * ```ts
 * import { NonFiniteLossError } from "./errors.ts";
 * const err = new NonFiniteLossError(0, 3, NaN);
 * console.assert(err.message.includes("epoch 1"));
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
 * import { DataFormatError } from "./errors.ts";
 * const err = new DataFormatError("x.idx: expected 16 bytes, received 3", { path: "x.idx" });
 * console.assert(err.name === "DataFormatError" && err.path === "x.idx");
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
 * import { PipelineError } from "./errors.ts";
 * const err = new PipelineError("map() threw on sample 7", { worker: 1, epoch: 0, index: 7 });
 * console.assert(err.name === "PipelineError" && err.index === 7);
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
