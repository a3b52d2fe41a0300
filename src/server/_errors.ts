// Private: the one place where errors become HTTP statuses. Handlers throw
// `HttpError` for request-level problems; domain errors from the library
// (`RangeError`, `BackendUnavailableError`, ...) are mapped by `toHttpError`.
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  BackendUnavailableError,
  DataFormatError,
  NonFiniteLossError,
  ReplicaCrashedError,
} from "../errors.ts";

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** An error with the HTTP status and machine-readable code it answers with. */
export class HttpError extends Error {
  /** HTTP status code. */
  readonly status: ContentfulStatusCode;
  /** Stable machine-readable code, e.g. `"not_found"`. */
  readonly code: string;
  /** Extra structured information (validation issues, limits). */
  readonly details: unknown;
  /** Extra response headers (`Retry-After`, `WWW-Authenticate`). */
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }

  /** The JSON body for this error. */
  body(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** Machine-readable code for an error a job ended with (stored in job records). */
export function errorCode(err: unknown): string {
  if (err instanceof HttpError) return err.code;
  if (err instanceof NonFiniteLossError) return "non_finite_loss";
  if (err instanceof ReplicaCrashedError) return "replica_crashed";
  if (err instanceof BackendUnavailableError) return "backend_unavailable";
  if (err instanceof DataFormatError) return "data_format";
  if (err instanceof Deno.errors.NotFound) return "not_found";
  if (err instanceof RangeError || err instanceof TypeError) return "invalid_argument";
  return "internal";
}

const STATUS_CODES: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "too_many_requests",
  503: "unavailable",
};

/**
 * Maps any thrown value to an `HttpError`: bad arguments are the client's
 * fault (400), an unavailable backend is the server's state (503), a corrupt
 * stored file or a crashed replica is a server error (500).
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof HTTPException) {
    const code = STATUS_CODES[err.status] ?? "http_error";
    const message = err.status === 413
      ? "Request body too large"
      : err.status === 415
      ? 'Unsupported media type: expected "Content-Type: application/json"'
      : err.message || code;
    return new HttpError(err.status, code, message, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof RangeError || err instanceof TypeError) {
    return new HttpError(400, "invalid_argument", message, { cause: err });
  }
  if (err instanceof BackendUnavailableError) {
    return new HttpError(503, "backend_unavailable", message, {
      details: { tried: err.tried },
      cause: err,
    });
  }
  if (err instanceof Deno.errors.NotFound) {
    return new HttpError(404, "not_found", message, { cause: err });
  }
  return new HttpError(500, errorCode(err), message, { cause: err });
}

/** 404 for an id that names nothing. */
export function notFound(kind: "job" | "model" | "file", id: string): HttpError {
  return new HttpError(404, "not_found", `No ${kind} with id ${JSON.stringify(id)}`);
}
