// Private: bearer-token authentication with a constant-time comparison. Both
// tokens are hashed first, so the comparison takes the same time whatever
// their lengths and wherever they differ.
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./_errors.ts";

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Whether `a` and `b` are equal, in time independent of where they differ. */
export async function tokensEqual(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256(a), sha256(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

/**
 * Requires `Authorization: Bearer <token>` on every request except those to
 * `open` paths and CORS preflights; throws a 401 `HttpError` otherwise.
 */
export function bearerAuth(token: string, open: readonly string[]): MiddlewareHandler {
  if (token === "") throw new TypeError('token must be a non-empty string, received ""');
  return async (c, next) => {
    if (open.includes(c.req.path) || c.req.method === "OPTIONS") return await next();
    const header = c.req.header("authorization");
    const match = header?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
    if (match === undefined || match === null) {
      throw new HttpError(
        401,
        "unauthorized",
        header === undefined
          ? 'Missing credentials: expected an "Authorization: Bearer <token>" header'
          : 'Malformed credentials: expected "Authorization: Bearer <token>"',
        { headers: { "WWW-Authenticate": 'Bearer realm="dtrain"' } },
      );
    }
    if (!(await tokensEqual(match[1]!, token))) {
      throw new HttpError(401, "unauthorized", "Invalid token", {
        headers: { "WWW-Authenticate": 'Bearer realm="dtrain", error="invalid_token"' },
      });
    }
    await next();
  };
}
