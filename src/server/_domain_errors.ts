// Private: the service's domain errors. The job queue, the job builder and the
// model registry throw these (or a plain TypeError/RangeError); they know
// nothing of HTTP. Each carries the machine-readable `code` the API answers
// with; `_errors.ts` alone decides which status each class becomes.
// `errorCode` gives the code a failed job records for any error.
import {
  BackendUnavailableError,
  DataFormatError,
  NonFiniteLossError,
  ReplicaCrashedError,
  WorkerCrashedError,
} from "../errors.ts";

/** A model's input or output names as errors list them: `"a", "b"`. */
export function portNames(ports: readonly { name: string }[]): string {
  return ports.map((p) => JSON.stringify(p.name)).join(", ");
}

/** A model's inputs or outputs as errors describe them: `2 inputs ("a", "b")`. */
export function describePorts(
  ports: readonly { name: string }[],
  kind: "input" | "output",
): string {
  return `${ports.length} ${kind}${ports.length === 1 ? "" : "s"} (${portNames(ports)})`;
}

/** The API codes of a request that cannot train or predict as sent (all 400s). */
export type InputErrorCode =
  | "invalid_request"
  | "invalid_model"
  | "invalid_compile"
  | "shape_mismatch";

/**
 * A job or predict request that passed the schema but cannot run: a model that
 * does not build or compile, data whose shape does not fit the model, a batch
 * too small for the replicas, more replicas than the server allows. A
 * `RangeError` (a bad argument) whose `code` names the kind of problem.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputError } from "./_domain_errors.ts";
 * const err = new InputError("shape_mismatch", "data: rows of x and y must not be empty");
 * assert.ok(err instanceof RangeError);
 * assert.equal(err.code, "shape_mismatch");
 * ```
 */
export class InputError extends RangeError {
  /** What is wrong, as the API's error code. */
  readonly code: InputErrorCode;
  /** Structured facts (field, expected, received), or undefined. */
  readonly details: unknown;

  /** `message` says what was expected and what was received. */
  constructor(code: InputErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = "InputError";
    this.code = code;
    this.details = details;
  }
}

/**
 * An id (of a job or a model) or a file name that names nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotFoundError } from "./_domain_errors.ts";
 * assert.equal(new NotFoundError("job", "x").message, 'No job with id "x"');
 * ```
 */
export class NotFoundError extends Error {
  /** Always `"not_found"`. */
  readonly code = "not_found";
  /** What was looked for. */
  readonly kind: "job" | "model" | "file";
  /** The id or file name that named nothing. */
  readonly id: string;

  /** `kind` and `id` say what was looked for. */
  constructor(kind: "job" | "model" | "file", id: string) {
    super(`No ${kind} with id ${JSON.stringify(id)}`);
    this.name = "NotFoundError";
    this.kind = kind;
    this.id = id;
  }
}

/**
 * The job queue holds `maxQueuedJobs` jobs already: retry once one finished.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { QueueFullError } from "./_domain_errors.ts";
 * const err = new QueueFullError(16, 16);
 * assert.deepEqual(err.details, { queued: 16, maxQueuedJobs: 16 });
 * ```
 */
export class QueueFullError extends Error {
  /** Always `"queue_full"`. */
  readonly code = "queue_full";
  /** Jobs waiting and the most that may wait. */
  readonly details: { queued: number; maxQueuedJobs: number };

  /** `queued` jobs wait, at most `maxQueuedJobs` may. */
  constructor(queued: number, maxQueuedJobs: number) {
    super(
      `The job queue is full: ${queued} jobs waiting, at most ${maxQueuedJobs}; ` +
        "retry once a job finished",
    );
    this.name = "QueueFullError";
    this.details = { queued, maxQueuedJobs };
  }
}

/**
 * The job queue is closing and takes no more jobs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ShuttingDownError } from "./_domain_errors.ts";
 * assert.equal(new ShuttingDownError().code, "shutting_down");
 * ```
 */
export class ShuttingDownError extends Error {
  /** Always `"shutting_down"`. */
  readonly code = "shutting_down";

  /** The message says what is refused. */
  constructor(message = "The server is shutting down: not taking jobs") {
    super(message);
    this.name = "ShuttingDownError";
  }
}

/**
 * A job that cannot be cancelled here: it already ended, or another server
 * of a shared KV runs it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobNotCancellableError } from "./_domain_errors.ts";
 * const err = new JobNotCancellableError("job_1", "succeeded", "it already ended (succeeded)");
 * assert.equal(err.message, "Cannot cancel job job_1: it already ended (succeeded)");
 * ```
 */
export class JobNotCancellableError extends Error {
  /** Always `"job_not_cancellable"`. */
  readonly code = "job_not_cancellable";
  /** The job's status when it was asked to stop. */
  readonly details: { status: string };

  /** `why` completes "Cannot cancel job <id>: ...". */
  constructor(id: string, status: string, why: string) {
    super(`Cannot cancel job ${id}: ${why}`);
    this.name = "JobNotCancellableError";
    this.details = { status };
  }
}

/**
 * A model the registry lists whose files are gone from disk: the server's
 * state is broken, not the request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModelFilesMissingError } from "./_domain_errors.ts";
 * assert.equal(new ModelFilesMissingError("m is gone").code, "model_files_missing");
 * ```
 */
export class ModelFilesMissingError extends Error {
  /** Always `"model_files_missing"`. */
  readonly code = "model_files_missing";

  /** `message` names the model and the missing file. */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "ModelFilesMissingError";
  }
}

/**
 * The machine-readable code of an error a job ended with (stored in its
 * record): the service's own errors' `code`, a name for each library domain
 * error, `invalid_argument` for a bad argument, `internal` otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorCode, NotFoundError } from "./_domain_errors.ts";
 * assert.equal(errorCode(new NotFoundError("job", "x")), "not_found");
 * assert.equal(errorCode(new RangeError("bad")), "invalid_argument");
 * assert.equal(errorCode(new Error("?")), "internal");
 * ```
 */
export function errorCode(err: unknown): string {
  if (
    err instanceof InputError || err instanceof NotFoundError || err instanceof QueueFullError ||
    err instanceof ShuttingDownError || err instanceof JobNotCancellableError ||
    err instanceof ModelFilesMissingError
  ) return err.code;
  if (err instanceof NonFiniteLossError) return "non_finite_loss";
  if (err instanceof ReplicaCrashedError) return "replica_crashed";
  if (err instanceof WorkerCrashedError) return "worker_crashed";
  if (err instanceof BackendUnavailableError) return "backend_unavailable";
  if (err instanceof DataFormatError) return "data_format";
  if (err instanceof Deno.errors.NotFound) return "not_found";
  if (err instanceof RangeError || err instanceof TypeError) return "invalid_argument";
  return "internal";
}
