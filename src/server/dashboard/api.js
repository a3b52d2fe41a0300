// The API client: JSON calls under `v1/` with the bearer token, errors as
// ApiError. A 401 is handed to the handler `onUnauthorized` registered
// (token.js), before the call rejects.
import { ApiError, setConnection } from "./errors.js";
import { state } from "./state.js";

let unauthorizedHandler = () => {};

/** Registers what runs on a 401: `handler(error, tokenSent)`. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** The Authorization header of the current token (none without one). */
export function authHeaders() {
  return state.token === "" ? {} : { Authorization: `Bearer ${state.token}` };
}

/** The ApiError of a failed answer `res` to `request` ("GET /v1/..."). */
export async function errorOf(request, res) {
  const text = await res.text().catch(() => "");
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const e = body?.error;
  return new ApiError(
    request,
    res.status,
    e?.code ?? `http_${res.status}`,
    e?.message ?? (text.slice(0, 300) || res.statusText || "no message"),
    e?.details,
  );
}

/** Hands a 401 to `request`, sent with token `sent`, to the registered handler. */
export function unauthorized(error, sent) {
  unauthorizedHandler(error, sent);
}

/** Calls the API; resolves with the JSON answer, rejects with an ApiError. */
export async function api(method, path, body) {
  const request = `${method} /${path}`;
  const sent = state.token;
  const init = { method, headers: { ...authHeaders() } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    setConnection("server unreachable", false);
    throw new ApiError(request, 0, "network_error", `cannot reach the server: ${e.message}`);
  }
  if (!res.ok) {
    const error = await errorOf(request, res);
    if (res.status === 401) unauthorized(error, sent);
    throw error;
  }
  setConnection("connected", true);
  if (res.status === 204) return null;
  return await res.json();
}
