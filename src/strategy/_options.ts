/**
 * The model source both strategies share (the option checks are `core/checks.ts`).
 *
 * @module
 */
import type * as tf from "../tf.ts";
import type { ModelSource } from "./protocol.ts";

/** A model module as Workers import it: an absolute URL and the export to call. */
export interface ModelModule {
  url: string;
  exportName: string;
}

/** The `modelModule` option resolved: an absolute URL, `exportName` defaulting to `"default"`. */
export function resolveModelModule(
  option: { url: string | URL; exportName?: string } | undefined,
): ModelModule | undefined {
  if (option === undefined) return undefined;
  return {
    url: new URL(option.url, import.meta.url).href,
    exportName: option.exportName ?? "default",
  };
}

/** Where Workers build the model from: the module when there is one, else the model's JSON. */
export function modelSource(model: tf.LayersModel, module: ModelModule | undefined): ModelSource {
  return module !== undefined
    ? { kind: "module", ...module }
    : { kind: "json", topology: model.toJSON(null, false) };
}
