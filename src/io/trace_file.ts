/**
 * Writes a fit's Chrome-trace timeline (`training/trace.ts`) to a file,
 * atomically (a reader never sees half a trace).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Trace } from "../training/trace.ts";
 * import { writeTrace } from "./trace_file.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await writeTrace(path, new Trace(0));
 * assert.ok(Array.isArray(JSON.parse(await Deno.readTextFile(path)).traceEvents));
 * await Deno.remove(path);
 * ```
 * @module
 */
import type { Trace } from "../training/trace.ts";
import { writeFileAtomic } from "./_atomic_write.ts";

/** Writes `trace` as JSON to `path`. */
export async function writeTrace(path: string, trace: Trace): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(trace)));
}
