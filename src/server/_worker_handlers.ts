// Private: the remote-worker routes of a job (the edge-worker protocol of
// `src/edge/`): a WebSocket per worker (`GET .../workers/connect`), the same
// exchange as request/response (`POST .../workers`, `POST
// .../workers/{session}/step`, `DELETE .../workers/{session}`), and the
// job's worker list (`GET .../workers`). Authentication (the service token or
// the job's worker token) is the middleware's; these handlers find the job's
// gate and hand the connection to the edge drivers.
import type { Context } from "hono";
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { getConnInfo, upgradeWebSocket } from "hono/deno";
import { SocketSession } from "../edge/serve_socket.ts";
import { MessageError } from "../edge/messages.ts";
import { HttpError } from "./_errors.ts";
import type { JobManager } from "./jobs.ts";
import type { JobRemote } from "./_job_runner.ts";

function address(c: Context): string {
  try {
    const info = getConnInfo(c);
    return `${info.remote.address ?? "?"}:${info.remote.port ?? "?"}`;
  } catch {
    return "unknown";
  }
}

/** The job's gate, or the HTTP error a worker acts on (stop, retry, give up). */
async function gateOf(jobs: JobManager, id: string): Promise<JobRemote> {
  const found = await jobs.remoteOf(id);
  if ("gate" in found) return found.gate;
  switch (found.why) {
    case "unknown":
      throw new HttpError(404, "not_found", `No job ${id}`);
    case "ended":
      throw new HttpError(409, "job_ended", `Job ${id} already ended (${found.status})`);
    case "local":
      throw new HttpError(409, "not_remote", `Job ${id} takes no remote workers (strategy.remote)`);
    case "elsewhere":
      throw new HttpError(
        503,
        "job_elsewhere",
        `Job ${id} is ${found.status} on another server, or waits to be taken over: retry`,
        { headers: { "Retry-After": "2" } },
      );
  }
}

const errorRefs = (statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, { description: `Error (${s})` }]));

/** The remote-worker routes in the OpenAPI document (binary bodies, so declared by hand). */
function documentWorkerRoutes(app: OpenAPIHono): void {
  const r = app.openAPIRegistry;
  r.registerPath({
    method: "get",
    path: "/v1/jobs/{id}/workers",
    summary: "The job's workers (local and remote) and what its remote workers did",
    request: { params: z.object({ id: z.string() }) },
    responses: {
      200: { description: "`{workers, remote, batches}`" },
      ...errorRefs([401, 404]),
    },
  });
  r.registerPath({
    method: "get",
    path: "/v1/jobs/{id}/workers/connect",
    summary: "An edge worker's WebSocket (Upgrade: websocket); the service token or the " +
      "job's workerToken",
    description: "Text frames: JSON control messages (hello, welcome, ready, ping, pong, bye, " +
      "end, error); binary frames: assignments and gradients (see src/edge/frames.ts). " +
      "Without the Upgrade header: 426 when the upgrade would be accepted.",
    request: { params: z.object({ id: z.string() }) },
    responses: {
      101: { description: "Switching protocols" },
      ...errorRefs([401, 404, 409, 426, 503]),
    },
  });
  r.registerPath({
    method: "post",
    path: "/v1/jobs/{id}/workers",
    summary: "Request/response form: join with a hello; answers the welcome and a session key",
    request: { params: z.object({ id: z.string() }) },
    responses: {
      200: { description: "`{session, welcome}`" },
      ...errorRefs([400, 401, 404, 409, 429, 503]),
    },
  });
  r.registerPath({
    method: "post",
    path: "/v1/jobs/{id}/workers/{session}/step",
    summary: "Request/response form: `ready` (JSON) or a gradient frame " +
      "(application/octet-stream) in, the next assignment frame out (or `{type: end}`)",
    request: { params: z.object({ id: z.string(), session: z.string() }) },
    responses: {
      200: {
        description: "An assignment frame, or a JSON end/error message",
        content: {
          "application/octet-stream": { schema: { type: "string", format: "binary" } },
        },
      },
      ...errorRefs([401, 404, 409]),
    },
  });
  r.registerPath({
    method: "delete",
    path: "/v1/jobs/{id}/workers/{session}",
    summary: "Request/response form: the worker leaves",
    request: { params: z.object({ id: z.string(), session: z.string() }) },
    responses: { 204: { description: "Left" }, ...errorRefs([401, 404, 409]) },
  });
}

/** Attaches the remote-worker routes to `app`. */
export function workerHandlers(app: OpenAPIHono, deps: { jobs: JobManager }): void {
  const { jobs } = deps;
  documentWorkerRoutes(app);

  app.get("/v1/jobs/:id/workers", async (c) => {
    const id = c.req.param("id");
    return c.json(await jobs.workersOf(id), 200);
  });

  app.get("/v1/jobs/:id/workers/connect", async (c) => {
    const id = c.req.param("id");
    const gate = await gateOf(jobs, id);
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError(
        426,
        "upgrade_required",
        "Connect with a WebSocket (Upgrade: websocket); this job accepts this worker",
      );
    }
    const driver = new SocketSession(gate.pool, { job: id, address: address(c) });
    return await upgradeWebSocket(c, {
      onOpen: (_e, ws) => {
        (ws.raw as WebSocket).binaryType = "arraybuffer";
        driver.open(ws);
      },
      onMessage: (e) => driver.message(e.data),
      onClose: () => driver.closed(),
    });
  });

  app.post("/v1/jobs/:id/workers", async (c) => {
    const id = c.req.param("id");
    const gate = await gateOf(jobs, id);
    let joined;
    try {
      joined = await gate.http.join(await c.req.text(), address(c));
    } catch (e) {
      if (e instanceof MessageError) throw new HttpError(400, "invalid_request", e.message);
      if (e instanceof RangeError) throw new HttpError(429, "workers_full", e.message);
      throw e;
    }
    if (joined === null) throw new HttpError(409, "job_ended", `Job ${id} ended`);
    return c.json({ session: joined.key, welcome: joined.welcome }, 200);
  });

  app.post("/v1/jobs/:id/workers/:session/step", async (c) => {
    const gate = await gateOf(jobs, c.req.param("id"));
    const key = c.req.param("session");
    if (!gate.http.has(key)) {
      throw new HttpError(404, "not_found", `No live worker session ${key}: join again`);
    }
    const type = c.req.header("content-type") ?? "";
    const body = type.startsWith("application/octet-stream")
      ? { binary: new Uint8Array(await c.req.arrayBuffer()) }
      : { text: await c.req.text() };
    const answer = await gate.http.step(key, body);
    if ("frame" in answer) {
      return c.body(answer.frame as Uint8Array<ArrayBuffer>, 200, {
        "Content-Type": "application/octet-stream",
      });
    }
    return c.json(answer.message, 200);
  });

  app.delete("/v1/jobs/:id/workers/:session", async (c) => {
    const gate = await gateOf(jobs, c.req.param("id"));
    gate.http.leave(c.req.param("session"));
    return c.body(null, 204);
  });
}
