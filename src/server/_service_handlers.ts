// Private: the handlers about the service itself rather than a resource:
// liveness, the backend report, the options a job may name, the dashboard's
// static files, and the OpenAPI document with its rendered page.
import type { OpenAPIHono, z } from "@hono/zod-openapi";
import { fashionMnistClassNames } from "../data/mod.ts";
import { STRATEGY_KINDS, type StrategyKind } from "../../mod.ts";
import { type BackendReport, probeBackends } from "./_backends.ts";
import { renderDocs } from "./_docs.ts";
import { DOC_CONFIG, ROUTES } from "./_routes.ts";
import { DASHBOARD_PATHS, dashboardResponse } from "./dashboard/_assets.ts";
import {
  DATASETS,
  LOSSES,
  METRICS,
  MODEL_PRESETS,
  OPTIMIZERS,
  type OptionsSchema,
  STRATEGY_BACKENDS,
} from "./schemas.ts";

type Options = z.infer<typeof OptionsSchema>;

/** The answer of GET /v1/options: the schemas' own lists, in their order. */
function serviceOptions(): Options {
  const kinds = Object.keys(STRATEGY_KINDS) as StrategyKind[];
  return {
    strategies: kinds.map((kind) => {
      const { description, countOption, batchScope } = STRATEGY_KINDS[kind];
      return { kind, description, countOption, batchScope };
    }),
    backends: [...STRATEGY_BACKENDS],
    presets: [...MODEL_PRESETS],
    datasets: [...DATASETS],
    optimizers: [...OPTIMIZERS],
    losses: [...LOSSES],
    metrics: [...METRICS],
    classNames: {
      mnist: Array.from({ length: 10 }, (_, i) => String(i)),
      "fashion-mnist": [...fashionMnistClassNames],
    },
  };
}

/**
 * Attaches GET `/healthz`, `/v1/options` and `/v1/backends` (probed once;
 * `predict()` says where predictions run now) to `app`.
 */
export function serviceHandlers(app: OpenAPIHono, deps: { predict: () => string }): void {
  app.openapi(ROUTES.health, (c) => c.json({ status: "ok" as const }, 200));

  const options = serviceOptions();
  app.openapi(ROUTES.options, (c) => c.json(options, 200));

  let backendReport: Promise<BackendReport> | undefined;
  app.openapi(ROUTES.backends, async (c) => {
    backendReport ??= probeBackends();
    return c.json({ ...await backendReport, predict: deps.predict() }, 200);
  });
}

/** Attaches the dashboard (GET `/` and `/assets/*`), outside the OpenAPI document. */
export function dashboardHandlers(app: OpenAPIHono): void {
  for (const path of DASHBOARD_PATHS) {
    app.get(path, (c) => dashboardResponse(path, c.req.header("if-none-match")));
  }
}

/** Attaches GET `/openapi.json` and `/docs` (the document as one HTML page) to `app`. */
export function docHandlers(app: OpenAPIHono): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
  });
  app.doc("/openapi.json", DOC_CONFIG);
  app.get("/docs", (c) => c.html(renderDocs(app.getOpenAPIDocument(DOC_CONFIG) as never)));
}
