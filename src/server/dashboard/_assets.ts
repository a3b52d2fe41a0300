// Private: the dashboard's files, served by the app itself at `/` and
// `/assets/*` with no authentication (the page asks for the token and sends it
// on every `/v1` call). The page's own files and uPlot (from its npm package)
// are text imports, so they are part of the module graph: they work offline,
// with `deno run`, `deno compile` and a remote import alike. The script is a
// set of ES modules (`app.js` imports the others by relative URL, so each is
// served at `/assets/<name>.js`): add a new module to MODULES below.
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import apiJs from "./api.js" with { type: "text" };
import appJs from "./app.js" with { type: "text" };
import backendsJs from "./backends.js" with { type: "text" };
import chartJs from "./chart.js" with { type: "text" };
import domJs from "./dom.js" with { type: "text" };
import errorsJs from "./errors.js" with { type: "text" };
import indexHtml from "./index.html" with { type: "text" };
import jobFormJs from "./job_form.js" with { type: "text" };
import jobViewJs from "./job_view.js" with { type: "text" };
import jobsJs from "./jobs.js" with { type: "text" };
import modelsJs from "./models.js" with { type: "text" };
import predictJs from "./predict.js" with { type: "text" };
import sseJs from "./sse.js" with { type: "text" };
import stateJs from "./state.js" with { type: "text" };
import styleCss from "./style.css" with { type: "text" };
import tokenJs from "./token.js" with { type: "text" };
import workersJs from "./workers.js" with { type: "text" };

/** The dashboard's script modules, by file name. */
const MODULES: Record<string, string> = {
  "app.js": appJs,
  "api.js": apiJs,
  "backends.js": backendsJs,
  "chart.js": chartJs,
  "dom.js": domJs,
  "errors.js": errorsJs,
  "job_form.js": jobFormJs,
  "job_view.js": jobViewJs,
  "jobs.js": jobsJs,
  "models.js": modelsJs,
  "predict.js": predictJs,
  "sse.js": sseJs,
  "state.js": stateJs,
  "token.js": tokenJs,
  "workers.js": workersJs,
};

interface Asset {
  type: string;
  body: string;
  etag: string;
  headers?: Record<string, string>;
}

/** FNV-1a of the text: a cheap, stable validator for `ETag`. */
function etagOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `"${(h >>> 0).toString(16)}-${text.length.toString(16)}"`;
}

function asset(type: string, body: string, headers?: Record<string, string>): Asset {
  return { type, body, etag: etagOf(body), headers };
}

// Scripts and styles only from the app itself; uPlot sets inline styles.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";

const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", asset("text/html; charset=utf-8", indexHtml, { "content-security-policy": CSP })],
  ...Object.entries(MODULES).map(([name, body]): [string, Asset] => [
    `/assets/${name}`,
    asset("text/javascript; charset=utf-8", body),
  ]),
  ["/assets/style.css", asset("text/css; charset=utf-8", styleCss)],
  ["/assets/uPlot.iife.min.js", asset("text/javascript; charset=utf-8", uplotJs)],
  ["/assets/uPlot.min.css", asset("text/css; charset=utf-8", uplotCss)],
]);

/**
 * Paths of the dashboard's page and assets; they need no token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DASHBOARD_PATHS } from "./_assets.ts";
 * assert.ok(DASHBOARD_PATHS.includes("/") && DASHBOARD_PATHS.includes("/assets/app.js"));
 * ```
 */
export const DASHBOARD_PATHS: readonly string[] = [...ASSETS.keys()];

/**
 * The response to a GET of dashboard path `path` (one of
 * {@linkcode DASHBOARD_PATHS}): the file with its content type, or 304 when
 * `ifNoneMatch` names its current ETag. Throws `RangeError` for other paths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dashboardResponse } from "./_assets.ts";
 * const page = dashboardResponse("/");
 * assert.ok(page.headers.get("content-type") === "text/html; charset=utf-8");
 * const etag = page.headers.get("etag") ?? "";
 * assert.ok(dashboardResponse("/", etag).status === 304);
 * await page.body?.cancel();
 * ```
 */
export function dashboardResponse(path: string, ifNoneMatch?: string): Response {
  const found = ASSETS.get(path);
  if (found === undefined) {
    throw new RangeError(
      `No dashboard file at ${path}: expected one of ${DASHBOARD_PATHS.join(", ")}`,
    );
  }
  const headers = {
    "content-type": found.type,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    etag: found.etag,
    ...found.headers,
  };
  const tags = ifNoneMatch?.split(",").map((t) => t.trim().replace(/^W\//, "")) ?? [];
  if (tags.includes(found.etag) || tags.includes("*")) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(found.body, { headers });
}
