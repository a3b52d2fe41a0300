/**
 * Option checks and the model source both strategies share.
 *
 * @module
 */
import type * as tf from "../tf.ts";
import type { ModelSource } from "../replica/protocol.ts";

/** A model module as Workers import it: an absolute URL and the export to call. */
export interface ModelModule {
  url: string;
  exportName: string;
}

/** `value` when it is an integer >= 1; a RangeError naming `name` otherwise. */
export function positiveInt(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, received ${value}`);
  }
  return value;
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
