/**
 * Backend selection and model rebuild at the start of a Worker entry point.
 * Kept apart from `_model.ts` because it loads the backends (registering
 * WASM), which the main thread's library graph must not do on import.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { type BackendReport, selectBackend } from "../../backends/select.ts";
import type { BackendName } from "../../backends/types.ts";
import { type FusedLayout, modelLayout } from "./_layout.ts";
import { buildModel } from "./_model.ts";
import type { CompileSpec, ModelSource, Reply } from "./protocol.ts";

/** The `ready` reply of a Worker that built `model` on the backend `report` names. */
export function readyReply(
  id: number,
  model: tf.LayersModel,
  report: BackendReport,
): Extract<Reply, { type: "ready" }> {
  return {
    type: "ready",
    id,
    backend: report.name,
    backendReason: report.reason,
    threads: report.threads,
    blas: report.blas ?? null,
    metricsNames: model.metricsNames,
    paramCount: model.countParams(),
    tensors: tf.memory().numTensors,
  };
}

/**
 * Selects the backend and rebuilds the compiled model in a Worker, checking
 * that its fused gradient layout has the length the main thread computed
 * (a mismatch means the Worker built a different model).
 */
export async function prepareWorkerModel(options: {
  backend: BackendName | "auto";
  threads: number;
  model: ModelSource;
  compile: CompileSpec;
  expectedLength: number;
  /** Who is speaking in the error message, e.g. "Replica 1". */
  who: string;
}): Promise<{ model: tf.LayersModel; layout: FusedLayout; report: BackendReport }> {
  const report = await selectBackend({
    require: options.backend === "auto" ? undefined : options.backend,
    threads: options.threads,
  });
  const model = await buildModel(options.model, options.compile);
  const layout = modelLayout(model);
  if (layout.length !== options.expectedLength) {
    throw new RangeError(
      `${options.who} rebuilt a model whose gradient layout has ${layout.length} floats, ` +
        `expected ${options.expectedLength}: its model differs from the main thread's model`,
    );
  }
  return { model, layout, report };
}
