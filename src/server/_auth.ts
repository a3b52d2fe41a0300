// Private: bearer-token authentication with a constant-time comparison. Both
// tokens are hashed first, so the comparison takes the same time whatever
// their lengths and wherever they differ.
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./_errors.ts";

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** SHA-256 of `text`, as lowercase hex (how worker tokens are stored). */
export async function sha256Hex(text: string): Promise<string> {
  return [...await sha256(text)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Job id of a route of the remote-worker protocol (`GET .../workers/connect`,
 * `POST .../workers`, `.../workers/<session>...` under `/v1/jobs/<id>`), or
 * null. Listing a job's workers is not one of them.
 */
export function workerRouteJob(method: string, path: string): string | null {
  const m = path.match(/^\/v1\/jobs\/([^/]+)\/workers(\/.*)?$/);
  if (m === null) return null;
  if (m[2] === undefined) return method === "POST" ? m[1]! : null;
  return m[1]!;
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
 * `open` paths and CORS preflights; throws a 401 `HttpError` otherwise. On
 * a job's remote-worker routes (`/v1/jobs/<id>/workers...`) that job's
 * worker token is accepted too (`acceptsWorker`), and there a token is
 * required even when the service has none (`token` empty).
 */
export function bearerAuth(
  token: string,
  open: readonly string[],
  acceptsWorker: (job: string, token: string) => Promise<boolean> = () => Promise.resolve(false),
): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === "OPTIONS") return await next();
    const job = workerRouteJob(c.req.method, c.req.path);
    if (job === null && (token === "" || open.includes(c.req.path))) return await next();
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
    const given = match[1]!;
    const ok = (token !== "" && await tokensEqual(given, token)) ||
      (job !== null && await acceptsWorker(decodeURIComponent(job), given));
    if (!ok) {
      throw new HttpError(401, "unauthorized", "Invalid token", {
        headers: { "WWW-Authenticate": 'Bearer realm="dtrain", error="invalid_token"' },
      });
    }
    await next();
  };
}
