// Private: the handlers of the datasets resource (upload, list, get, delete).
// They translate between HTTP and the dataset library (`datasets.ts`): the
// format from `?format=` or the Content-Type, the upload's own size limit
// (the app's global body limit does not apply to this route, which streams
// its body to disk), and the library's errors as 400 and 413.
import type { OpenAPIHono } from "@hono/zod-openapi";
import { HttpError } from "./_errors.ts";
import { boundaryOf } from "./_multipart.ts";
import { ROUTES } from "./_routes.ts";
import { type DatasetLibrary, DatasetUploadError } from "./datasets.ts";
import type { JobManager } from "./jobs.ts";
import type { DatasetFormat } from "./types.ts";

/** The upload route, as `bodyLimitOf`'s `except` names it: it enforces its own limit. */
export const DATASET_UPLOAD_ROUTE = "POST /v1/datasets";

const FORMATS: Record<string, DatasetFormat> = {
  "application/octet-stream": "f32",
  "text/csv": "csv",
  "multipart/form-data": "idx",
};

function notFound(id: string): HttpError {
  return new HttpError(404, "not_found", `No dataset with id ${JSON.stringify(id)}`);
}

function tooLarge(message: string, maxBytes: number): HttpError {
  return new HttpError(413, "payload_too_large", message, {
    details: { maxDatasetBytes: maxBytes },
  });
}

/** Ids of the queued and running jobs (of any server on the KV) that train on dataset `id`. */
async function jobsTrainingOn(jobs: JobManager, id: string): Promise<string[]> {
  const users: string[] = [];
  for (const status of ["queued", "running"] as const) {
    let cursor: string | undefined;
    do {
      const page = await jobs.list({ status, limit: 1000, cursor });
      for (const job of page.jobs) {
        if (job.spec.data.startsWith(`upload ${id}:`)) users.push(job.id);
      }
      cursor = page.cursor ?? undefined;
    } while (cursor !== undefined);
  }
  return users;
}

/**
 * Attaches POST and GET `/v1/datasets`, GET and DELETE `/v1/datasets/{id}`
 * to `app`. A delete is refused (409) while a queued or running job trains on
 * the dataset.
 */
export function datasetHandlers(
  app: OpenAPIHono,
  deps: { datasets: DatasetLibrary; jobs: JobManager },
): void {
  const { datasets, jobs } = deps;

  app.openapi(ROUTES.uploadDataset, async (c) => {
    const query = c.req.valid("query");
    const contentType = c.req.header("content-type") ?? "";
    const format = query.format ?? FORMATS[contentType.split(";")[0]!.trim().toLowerCase()];
    if (format === undefined) {
      throw new HttpError(
        415,
        "unsupported_media_type",
        `Unsupported Content-Type ${JSON.stringify(contentType)} for a dataset: expected ` +
          "application/octet-stream (f32), text/csv (csv) or multipart/form-data (idx), " +
          "or a ?format= of f32, csv or idx",
      );
    }
    const length = Number(c.req.header("content-length"));
    if (length > datasets.maxBytes) {
      throw tooLarge(
        `Dataset too large: Content-Length ${length}; expected at most ${datasets.maxBytes} ` +
          "bytes (maxDatasetBytes)",
        datasets.maxBytes,
      );
    }
    try {
      const record = await datasets.upload(c.req.raw.body, {
        format,
        name: query.name,
        label: query.label,
        header: query.header === undefined ? undefined : query.header === "true",
        classes: query.classes,
        boundary: format === "idx" ? boundaryOf(contentType) ?? undefined : undefined,
      });
      c.header("Location", `/v1/datasets/${record.id}`);
      return c.json(record, 201);
    } catch (e) {
      if (!(e instanceof DatasetUploadError)) throw e;
      if (e.code === "dataset_too_large") throw tooLarge(e.message, datasets.maxBytes);
      throw new HttpError(400, e.code, e.message, { details: e.details, cause: e });
    }
  });

  app.openapi(ROUTES.listDatasets, async (c) => {
    return c.json({ datasets: await datasets.list() }, 200);
  });

  app.openapi(ROUTES.getDataset, async (c) => {
    const { id } = c.req.valid("param");
    const record = await datasets.find(id);
    if (record === null) throw notFound(id);
    return c.json(record, 200);
  });

  app.openapi(ROUTES.deleteDataset, async (c) => {
    const { id } = c.req.valid("param");
    if (await datasets.find(id) === null) throw notFound(id);
    const users = await jobsTrainingOn(jobs, id);
    if (users.length > 0) {
      throw new HttpError(
        409,
        "dataset_in_use",
        `Cannot delete dataset ${id}: queued or running jobs train on it (${
          users.join(", ")
        }); cancel them or wait for them to end`,
        { details: { jobs: users } },
      );
    }
    if (!(await datasets.delete(id))) throw notFound(id);
    return c.body(null, 204);
  });
}
