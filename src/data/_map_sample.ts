// Private: what the main thread (checking sample 0) and the map Workers share
// about one sample: its random stream and the checks on what the map returned.
import { seededRandom } from "../core/random.ts";
import type { LabelDtype } from "./_pipeline_protocol.ts";

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The generator `ParallelMap` passes as `ctx.random` for sample `index` of
 * `epoch`: uniform floats in `[0, 1)` that depend on `(seed, epoch, index)`
 * only. Use it to reproduce a mapped sample outside the pipeline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleRandom } from "./pipeline.ts";
 * const a = sampleRandom(42, 0, 7);
 * const b = sampleRandom(42, 0, 7);
 * assert.ok(a() === b() && sampleRandom(42, 1, 7)() !== sampleRandom(42, 0, 7)());
 * ```
 */
export function sampleRandom(
  seed: number,
  epoch: number,
  index: number,
): () => number {
  let h = fmix32(seed >>> 0);
  h = fmix32(h ^ Math.imul(epoch + 1, 0x9e3779b1));
  h = fmix32(h ^ Math.imul(index + 1, 0x85ebca77));
  return seededRandom(h);
}

/**
 * Size and label type every mapped sample must have. A map that returns
 * several x (or y) parts has them written side by side in one row:
 * `xParts` (`yParts`) are their sizes, in order, summing to `xSize`
 * (`ySize`); one part for a map that returns one array.
 */
export interface OutputSpec {
  xSize: number;
  ySize: number;
  yDtype: LabelDtype;
  xParts: number[];
  yParts: number[];
}

/** A short description of a received value, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name}(${(value as Float32Array).length})`;
  }
  if (Array.isArray(value)) return `an Array(${value.length})`;
  if (typeof value === "object") return `an object with keys [${Object.keys(value).join(", ")}]`;
  if (typeof value === "function") return "a function";
  return `${typeof value} ${String(value)}`;
}

/** The label dtype of `y`, or `undefined` when it is not a label array. */
export function dtypeOf(y: unknown): LabelDtype | undefined {
  if (y instanceof Float32Array) return "float32";
  if (y instanceof Uint8Array) return "uint8";
  return undefined;
}

/** `value` as a list of parts when it is one typed array or a non-empty array of them. */
function partsOf<T>(value: unknown, accept: (v: unknown) => v is T): T[] | undefined {
  if (accept(value)) return [value];
  if (Array.isArray(value) && value.length > 0 && value.every(accept)) return value;
  return undefined;
}

const isFloats = (v: unknown): v is Float32Array => v instanceof Float32Array;
const isLabels = (v: unknown): v is Float32Array | Uint8Array =>
  v instanceof Float32Array || v instanceof Uint8Array;

/**
 * Checks one map result against `spec` (sample 0's output when `spec` is
 * undefined, which only checks the types) and returns its x and y parts:
 * one each for a map that returns one array, else one per array returned
 * (for a model with several inputs or outputs). Several y parts are
 * Float32Arrays.
 */
export function checkMapResult(
  result: unknown,
  inputY: Float32Array | Uint8Array,
  spec: OutputSpec | undefined,
  epoch: number,
  index: number,
): { xs: Float32Array[]; ys: (Float32Array | Uint8Array)[] } {
  const where = `for sample ${index} of epoch ${epoch}`;
  const r = result as { x?: unknown; y?: unknown } | null;
  const xs = typeof r === "object" && r !== null ? partsOf(r.x, isFloats) : undefined;
  if (xs === undefined) {
    throw new TypeError(
      "map() must return { x: Float32Array | Float32Array[], y?: Float32Array | Uint8Array | " +
        `Float32Array[] }, received ${describe(result)}${
          r !== null && typeof r === "object" ? ` with x ${describe(r.x)}` : ""
        } ${where}`,
    );
  }
  const ys = r!.y === undefined ? [inputY] : partsOf(r!.y, isLabels);
  if (ys === undefined || (ys.length > 1 && !ys.every(isFloats))) {
    throw new TypeError(
      "map() must return y as a Float32Array or Uint8Array, an array of Float32Arrays (one " +
        `per model output), or omit it, received ${describe(r!.y)} ${where}`,
    );
  }
  if (spec !== undefined) {
    const sizes = (parts: ArrayLike<unknown>[]) => parts.map((p) => p.length).join(", ");
    if (xs.length !== spec.xParts.length || xs.some((p, i) => p.length !== spec.xParts[i])) {
      throw new RangeError(
        `map() returned x with ${
          xs.length === 1 ? `${xs[0]!.length} values` : `parts of [${sizes(xs)}] values`
        } ${where}, expected ${
          spec.xParts.length === 1 ? spec.xSize : `parts of [${spec.xParts.join(", ")}]`
        } as for sample 0 (the output shape must not change between samples)`,
      );
    }
    const yDtype = dtypeOf(ys[0])!;
    if (
      yDtype !== spec.yDtype || ys.length !== spec.yParts.length ||
      ys.some((p, i) => p.length !== spec.yParts[i])
    ) {
      throw new RangeError(
        `map() returned y as ${yDtype}[${sizes(ys)}] ${where}, expected ${spec.yDtype}[${
          spec.yParts.join(", ")
        }] as for sample 0 (the label shape and type must not change between samples)`,
      );
    }
  }
  return { xs, ys };
}
