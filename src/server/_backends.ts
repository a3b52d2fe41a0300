// Private: the backend report of GET /v1/backends. It only probes (no
// backend is activated, no benchmark runs), once per server, and says which
// backend `"auto"` would pick for a job's replicas.
import { BACKEND_NAMES, type BackendName } from "../../backends/types.ts";
import { tf } from "../../mod.ts";
import type { z } from "@hono/zod-openapi";
import type { BackendReportSchema } from "./schemas.ts";

/** The report GET /v1/backends answers with. */
export type BackendReport = z.infer<typeof BackendReportSchema>;

function readOverride(): BackendName | null {
  let value: string | undefined;
  try {
    value = Deno.env.get("DTRAIN_BACKEND");
  } catch {
    return null;
  }
  return (BACKEND_NAMES as readonly string[]).includes(value ?? "") ? value as BackendName : null;
}

/** Probes webgpu, wasm and cpu (in auto order) without activating any. */
export async function probeBackends(): Promise<BackendReport> {
  // Loaded on first use: it registers the wasm backend with tfjs.
  const { cpuBackend, wasmBackend, webgpuBackend } = await import("../../backends/mod.ts");
  const backends: BackendReport["backends"] = [];
  for (const impl of [webgpuBackend, wasmBackend, cpuBackend]) {
    const probe = await impl.probe();
    backends.push({ name: impl.name, ...probe, auto: false });
  }
  const override = readOverride();
  const pick = override !== null
    ? backends.find((b) => b.name === override && b.available)
    : backends.find((b) => b.available && !b.software);
  if (pick !== undefined) pick.auto = true;
  return {
    backends,
    auto: pick?.name ?? null,
    override,
    predict: tf.getBackend(),
  };
}
