// Private: the handlers of the models resource: metadata, the tfjs files
// (`model.json` and its weight files, so `tf.loadLayersModel(url)` works),
// predict and delete. They only translate between HTTP and the registry.
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { JSONValue } from "hono/utils/types";
import type { ModelRegistry } from "./registry.ts";
import { ROUTES } from "./_routes.ts";

/** Attaches the `/v1/models` routes to `app`. */
export function modelHandlers(app: OpenAPIHono, deps: { models: ModelRegistry }): void {
  const { models } = deps;

  app.openapi(ROUTES.listModels, async (c) => {
    return c.json({ models: await models.list() }, 200);
  });

  app.openapi(ROUTES.getModel, async (c) => {
    return c.json(await models.get(c.req.valid("param").id), 200);
  });

  // Before `weights`: both match GET /v1/models/{id}/model.json, the first answers.
  app.openapi(ROUTES.modelJson, async (c) => {
    const bytes = await models.file(c.req.valid("param").id, "model.json");
    return c.json(JSON.parse(new TextDecoder().decode(bytes)) as Record<string, JSONValue>, 200);
  });

  app.openapi(ROUTES.weights, async (c) => {
    const { id, file } = c.req.valid("param");
    const bytes = await models.file(id, file);
    return new Response(bytes, {
      headers: {
        "content-type": "application/octet-stream",
        "cache-control": "private, max-age=31536000, immutable",
      },
    });
  });

  app.openapi(ROUTES.predict, async (c) => {
    const { id } = c.req.valid("param");
    const outputs = await models.predict(id, c.req.valid("json").inputs);
    return c.json({ outputs }, 200);
  });

  app.openapi(ROUTES.deleteModel, async (c) => {
    await models.delete(c.req.valid("param").id);
    return c.body(null, 204);
  });
}
