/**
 * Writes a JSON document to a file atomically (a reader never sees half of
 * it): where a fit's Chrome-trace timeline (`training/trace.ts`) goes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeJsonFile } from "./json_file.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await writeJsonFile(path, { traceEvents: [] });
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { traceEvents: [] });
 * await Deno.remove(path);
 * ```
 * @module
 */
import { writeFileAtomic } from "./_atomic_write.ts";

/** Writes `value` as JSON to `path`. */
export async function writeJsonFile(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(value)));
}
