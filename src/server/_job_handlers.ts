// Private: the handlers of the jobs resource (submit, list, get, cancel).
// They only translate between HTTP and the job manager; a job's event stream
// has its own file (`_event_stream.ts`).
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { JobManager } from "./jobs.ts";
import { ROUTES } from "./_routes.ts";
import { TERMINAL_STATUSES } from "./schemas.ts";

/**
 * Attaches POST and GET `/v1/jobs`, GET and DELETE `/v1/jobs/{id}` to `app`.
 * A cancel waits up to `cancelWaitMs`: 200 once stopped, 202 while stopping.
 */
export function jobHandlers(
  app: OpenAPIHono,
  deps: { jobs: JobManager; cancelWaitMs: number },
): void {
  const { jobs, cancelWaitMs } = deps;

  app.openapi(ROUTES.submit, async (c) => {
    const record = await jobs.submit(c.req.valid("json"));
    c.header("Location", `/v1/jobs/${record.id}`);
    const { workerToken } = record;
    return c.json({
      id: record.id,
      status: record.status,
      ...(workerToken === undefined ? {} : { workerToken }),
    }, 202);
  });

  app.openapi(ROUTES.listJobs, async (c) => {
    return c.json(await jobs.list(c.req.valid("query")), 200);
  });

  app.openapi(ROUTES.getJob, async (c) => {
    return c.json(await jobs.get(c.req.valid("param").id), 200);
  });

  app.openapi(ROUTES.cancel, async (c) => {
    const record = await jobs.cancel(c.req.valid("param").id, cancelWaitMs);
    if (TERMINAL_STATUSES.includes(record.status)) return c.json(record, 200);
    return c.json(record, 202);
  });
}
