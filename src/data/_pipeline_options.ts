/**
 * Private: the arguments of `new ParallelMap()`. Checks the source and the
 * options before anything starts (every error names what was expected and
 * what was received), fills in the defaults, and places the checked source in
 * shared memory for the map Workers. Owns no state.
 *
 * @module
 */
import { describe, dtypeOf } from "./_map_sample.ts";
import type { LabeledData } from "./labeled_data.ts";
import type { MapRequest } from "./_pipeline_protocol.ts";
import type { MapModule, ParallelMapOptions } from "./pipeline_types.ts";

/** The checked source samples. */
export interface Source {
  x: Float32Array;
  y: Float32Array | Uint8Array;
  count: number;
  xSize: number;
  ySize: number;
  featureShape: readonly number[];
}

/** The checked options, defaults filled in. */
export interface PipelineConfig {
  url: string;
  exportName: string;
  workers: number;
  seed: number;
  shuffle: boolean;
  prefetch: number;
  chunkSize: number;
  outputShape: number[] | undefined;
  workerTimeoutMs: number;
}

/** Whether `v` is an integer >= 1. */
export function isPositiveInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1;
}

/** Checks the source of `new ParallelMap()`. */
export function checkSource(source: LabeledData): Source {
  if (typeof source !== "object" || source === null) {
    throw new TypeError(
      `new ParallelMap() expected a LabeledData source { x, y, count, featureShape }, received ${
        describe(source)
      }`,
    );
  }
  const { x, y, count, featureShape } = source;
  if (!(x instanceof Float32Array)) {
    throw new TypeError(
      `new ParallelMap() expected source.x to be a Float32Array, received ${describe(x)}`,
    );
  }
  if (dtypeOf(y) === undefined) {
    throw new TypeError(
      `new ParallelMap() expected source.y to be a Float32Array or Uint8Array, received ${
        describe(y)
      }`,
    );
  }
  if (!isPositiveInt(count)) {
    throw new RangeError(
      `new ParallelMap() expected source.count to be an integer >= 1, received ${count}`,
    );
  }
  if (!Array.isArray(featureShape) || !featureShape.every(isPositiveInt)) {
    throw new RangeError(
      `new ParallelMap() expected source.featureShape to be positive integers, received ${
        JSON.stringify(featureShape)
      }`,
    );
  }
  const xSize = featureShape.reduce((a, b) => a * b, 1);
  if (x.length !== count * xSize) {
    throw new RangeError(
      `new ParallelMap() expected source.x.length ${count * xSize} (count ${count} * ${xSize} ` +
        `features), received ${x.length}`,
    );
  }
  if (y.length < count || y.length % count !== 0) {
    throw new RangeError(
      `new ParallelMap() expected source.y.length to be a multiple of count ${count} ` +
        `(one or more values per sample), received ${y.length}`,
    );
  }
  return { x, y, count, xSize, ySize: y.length / count, featureShape: [...featureShape] };
}

/** Checks the options of `new ParallelMap()` and fills in the defaults. */
export function checkOptions(options: ParallelMapOptions): PipelineConfig {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `new ParallelMap() expected an options object with a map module, received ${
        describe(options)
      }`,
    );
  }
  const map = options.map as MapModule | undefined;
  if (typeof map !== "object" || map === null) {
    throw new TypeError(
      `new ParallelMap() expected options.map to be { url, exportName }, received ${describe(map)}`,
    );
  }
  let url: string;
  try {
    url = new URL(map.url).href;
  } catch {
    throw new TypeError(
      "new ParallelMap() expected options.map.url to be an absolute URL " +
        `(e.g. new URL("./augment.ts", import.meta.url)), received ${
          JSON.stringify(String(map.url))
        }`,
    );
  }
  const exportName = map.exportName ?? "default";
  if (typeof exportName !== "string" || exportName === "") {
    throw new TypeError(
      `new ParallelMap() expected options.map.exportName to be a non-empty string, received ${
        describe(exportName)
      }`,
    );
  }
  const workers = options.workers ?? Math.max(1, navigator.hardwareConcurrency ?? 1);
  if (!isPositiveInt(workers)) {
    throw new RangeError(
      `new ParallelMap() expected workers to be an integer >= 1, received ${workers}`,
    );
  }
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(
      `new ParallelMap() expected seed to be an integer in [0, 2^32), received ${seed}`,
    );
  }
  const shuffle = options.shuffle ?? true;
  if (typeof shuffle !== "boolean") {
    throw new TypeError(
      `new ParallelMap() expected shuffle to be a boolean, received ${describe(shuffle)}`,
    );
  }
  const prefetch = options.prefetch ?? 1;
  if (!Number.isInteger(prefetch) || prefetch < 0) {
    throw new RangeError(
      `new ParallelMap() expected prefetch to be an integer >= 0, received ${prefetch}`,
    );
  }
  const chunkSize = options.chunkSize ?? 64;
  if (!isPositiveInt(chunkSize)) {
    throw new RangeError(
      `new ParallelMap() expected chunkSize to be an integer >= 1, received ${chunkSize}`,
    );
  }
  const outputShape = options.outputShape;
  if (
    outputShape !== undefined &&
    (!Array.isArray(outputShape) || !outputShape.every(isPositiveInt))
  ) {
    throw new RangeError(
      `new ParallelMap() expected outputShape to be positive integers, received ${
        JSON.stringify(outputShape)
      }`,
    );
  }
  const workerTimeoutMs = options.workerTimeoutMs ?? 30000;
  if (
    typeof workerTimeoutMs !== "number" || !Number.isFinite(workerTimeoutMs) ||
    workerTimeoutMs <= 0
  ) {
    throw new RangeError(
      `new ParallelMap() expected workerTimeoutMs to be a positive number, received ${workerTimeoutMs}`,
    );
  }
  return {
    url,
    exportName,
    workers,
    seed,
    shuffle,
    prefetch,
    chunkSize,
    outputShape: outputShape === undefined ? undefined : [...outputShape],
    workerTimeoutMs,
  };
}

/** Places a typed array in shared memory: as it is when it already is. */
function share<T extends Float32Array | Uint8Array>(
  a: T,
): { buffer: SharedArrayBuffer; byteOffset: number } {
  if (a.buffer instanceof SharedArrayBuffer) {
    return { buffer: a.buffer, byteOffset: a.byteOffset };
  }
  const buffer = new SharedArrayBuffer(Math.max(4, a.byteLength));
  new Uint8Array(buffer).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return { buffer, byteOffset: 0 };
}

/** The source as the map Workers' `init` request carries it (copied once into shared memory). */
export function sharedSource(src: Source): Extract<MapRequest, { type: "init" }>["source"] {
  const sx = share(src.x);
  const sy = share(src.y);
  return {
    x: sx.buffer,
    xByteOffset: sx.byteOffset,
    y: sy.buffer,
    yByteOffset: sy.byteOffset,
    yDtype: dtypeOf(src.y)!,
    count: src.count,
    xSize: src.xSize,
    ySize: src.ySize,
  };
}
