// Private: the middleware every request passes, in the order `createApp`
// installs it: CORS, the shutdown gate (503), bearer auth (`_auth.ts`), the
// body limit (413); plus the app's error and not-found handlers, which turn
// whatever a handler threw into the JSON error body (`_errors.ts` decides the
// status), and the validation hook (a 400 naming the field, `_validation.ts`).
import type { OpenAPIHonoOptions } from "@hono/zod-openapi";
import type { Env, ErrorHandler, MiddlewareHandler, NotFoundHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HttpError, toHttpError } from "./_errors.ts";
import { validationError } from "./_validation.ts";

/** Answers a failed request validation with a 400 whose message names the field. */
export const validationHook: NonNullable<OpenAPIHonoOptions<Env>["defaultHook"]> = (result) => {
  if (!result.success) {
    const input = (result as unknown as { data: unknown }).data;
    throw validationError(result.error.issues, input, result.target);
  }
};

/** Answers any thrown value with its status and JSON error body; logs the 500s. */
export const onError: ErrorHandler = (err, c) => {
  const e = toHttpError(err);
  if (e.status === 500) console.error(`dtrain server: ${c.req.method} ${c.req.path}:`, err);
  return c.json(e.body(), e.status, e.headers);
};

/** Answers a path no route matches with a 404 naming it. */
export const notFound: NotFoundHandler = (c) =>
  c.json({
    error: { code: "not_found", message: `No route for ${c.req.method} ${c.req.path}` },
  }, 404);

/** Refuses every request but `/healthz` with a 503 once `closing()` is true. */
export function shutdownGate(closing: () => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (closing() && c.req.path !== "/healthz") {
      throw new HttpError(503, "shutting_down", "The server is shutting down");
    }
    await next();
  };
}

/**
 * Refuses a request body over `maxBytes` with a 413 saying the limit, except
 * on the routes `except` names as `"METHOD /path"` (they enforce their own
 * limit, e.g. `POST /v1/datasets` while it streams the body to disk).
 */
export function bodyLimitOf(
  maxBytes: number,
  options: { except?: readonly string[] } = {},
): MiddlewareHandler {
  const except = new Set(options.except ?? []);
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new HttpError(
        413,
        "payload_too_large",
        `Request body too large: expected at most ${maxBytes} bytes`,
        { details: { maxBodyBytes: maxBytes } },
      );
    },
  });
  return (c, next) => except.has(`${c.req.method} ${c.req.path}`) ? next() : limit(c, next);
}
