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

/** Size and label type every mapped sample must have. */
export interface OutputSpec {
  xSize: number;
  ySize: number;
  yDtype: LabelDtype;
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

/**
 * Checks one map result against `spec` (sample 0's output when `spec` is
 * undefined, which only checks the types) and returns its x and y.
 */
export function checkMapResult(
  result: unknown,
  inputY: Float32Array | Uint8Array,
  spec: OutputSpec | undefined,
  epoch: number,
  index: number,
): { x: Float32Array; y: Float32Array | Uint8Array } {
  const where = `for sample ${index} of epoch ${epoch}`;
  const r = result as { x?: unknown; y?: unknown } | null;
  if (typeof r !== "object" || r === null || !(r.x instanceof Float32Array)) {
    throw new TypeError(
      `map() must return { x: Float32Array, y?: Float32Array | Uint8Array }, received ${
        describe(result)
      }${r !== null && typeof r === "object" ? ` with x ${describe(r.x)}` : ""} ${where}`,
    );
  }
  const y = (r.y === undefined ? inputY : r.y) as Float32Array | Uint8Array;
  const yDtype = dtypeOf(y);
  if (yDtype === undefined) {
    throw new TypeError(
      `map() must return y as a Float32Array or Uint8Array (or omit it), received ${
        describe(r.y)
      } ${where}`,
    );
  }
  if (spec !== undefined) {
    if (r.x.length !== spec.xSize) {
      throw new RangeError(
        `map() returned x with ${r.x.length} values ${where}, expected ${spec.xSize} as for ` +
          "sample 0 (the output shape must not change between samples)",
      );
    }
    if (yDtype !== spec.yDtype || y.length !== spec.ySize) {
      throw new RangeError(
        `map() returned y as ${yDtype}[${y.length}] ${where}, expected ${spec.yDtype}[${spec.ySize}] ` +
          "as for sample 0 (the label shape and type must not change between samples)",
      );
    }
  }
  return { x: r.x, y };
}
