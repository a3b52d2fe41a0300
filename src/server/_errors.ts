// Private: the one place where errors become HTTP statuses. The HTTP layer
// (middleware, the validation hook) throws `HttpError` for request-level
// problems; everything else throws domain errors: the service's own
// (`_domain_errors.ts`: each carries its API code) and the library's
// (`RangeError`, `BackendUnavailableError`, ...). `toHttpError` maps them all
// to the status, code and message of the answer.
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { BackendUnavailableError } from "../errors.ts";
import {
  errorCode,
  InputError,
  JobNotCancellableError,
  ModelFilesMissingError,
  NotFoundError,
  QueueFullError,
  ShuttingDownError,
} from "./_domain_errors.ts";

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

/** The service's domain errors, each with the status it answers with. */
const DOMAIN_STATUSES: readonly [
  new (...args: never[]) => Error & { code: string; details?: unknown },
  ContentfulStatusCode,
][] = [
  [InputError, 400],
  [NotFoundError, 404],
  [JobNotCancellableError, 409],
  [QueueFullError, 429],
  [ModelFilesMissingError, 500],
  [ShuttingDownError, 503],
];

/** Extra headers of a domain error's answer. */
function domainHeaders(err: Error): Record<string, string> | undefined {
  // A full queue drains as jobs finish: tell clients when to come back.
  return err instanceof QueueFullError ? { "Retry-After": "10" } : undefined;
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
  for (const [type, status] of DOMAIN_STATUSES) {
    if (err instanceof type) {
      return new HttpError(status, err.code, err.message, {
        details: err.details,
        headers: domainHeaders(err),
        cause: err,
      });
    }
  }
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
