/**
 * ParallelMap: a parallel, prefetching input pipeline (Keras'
 * `fit(..., workers=2)` idea). A user `map` function (decode, augment,
 * normalise one sample) runs in a pool of Workers while the consumer trains
 * on the previous epoch.
 *
 * Who owns what: the main thread validates the options, checks the map
 * function on sample 0, places the source samples once in a
 * `SharedArrayBuffer`, computes each epoch's order from `(seed, epoch)` and
 * hands out output slots (`prefetch + 1` of them, reused in turn). The map
 * Workers (`_map_worker.ts`) own the work: they take chunks of an epoch from
 * a shared atomic cursor, map each sample with randomness derived from
 * `(seed, epoch, index)` only, write it at its row of the slot and flag the
 * chunk. No message per sample and none per chunk, so the Workers keep going
 * while the main thread is busy; which Worker maps which sample never changes
 * the result.
 *
 * @example
 * ```ts
 * import { ParallelMap } from "./pipeline.ts";
 * const source = {
 *   x: new Float32Array([1, 2, 3, 4, 5, 6]),
 *   y: new Uint8Array([0, 1, 0]),
 *   count: 3,
 *   featureShape: [2],
 * };
 * await using pipeline = new ParallelMap(source, {
 *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
 *   workers: 2,
 *   seed: 1,
 * });
 * for await (const epoch of pipeline.epochs(2)) {
 *   console.assert(epoch.count === 3 && epoch.x.length === 6);
 * }
 * ```
 * @module
 */
import { PipelineError } from "../errors.ts";
import { epochOrder } from "../strategy/_sharding.ts";
import { checkMapResult, describe, dtypeOf, type OutputSpec, sampleRandom } from "./_map_sample.ts";
import type { LabeledData } from "./labeled_data.ts";
import {
  type LabelDtype,
  type MapReply,
  type MapRequest,
  parseMapReply,
  SLOT_CURSOR,
  SLOT_DONE,
  SLOT_FLAGS,
  type SlotBuffers,
} from "./_pipeline_protocol.ts";

export type { LabelDtype };
export { sampleRandom };

/** What a map function sees besides the sample. */
export interface MapContext {
  /** Index of the sample in the source. */
  index: number;
  /** Row of the sample in this epoch's output (its position in the epoch order). */
  position: number;
  /** Zero-based epoch. */
  epoch: number;
  /** The pipeline's seed. */
  seed: number;
  /**
   * Uniform floats in `[0, 1)` drawn from `(seed, epoch, index)` only: use it
   * for every random choice, so the result does not depend on the Worker
   * count or on which Worker maps the sample.
   */
  random: () => number;
}

/** What a map function returns for one sample. */
export interface MapResult {
  /** The mapped features: the same length for every sample. */
  x: Float32Array;
  /**
   * The mapped label (same type and length for every sample).
   * @default the (possibly modified in place) input label
   */
  y?: Float32Array | Uint8Array;
}

/**
 * A map function: maps ONE sample. `x` and `y` are private copies of the
 * source sample, so the function may modify them in place and return them.
 * It may be async.
 */
export type MapFunction = (
  x: Float32Array,
  y: Float32Array | Uint8Array,
  ctx: MapContext,
) => MapResult | Promise<MapResult>;

/** Where the map function lives: a module URL and the name of its export. */
export interface MapModule {
  /** Absolute URL of the module, e.g. `new URL("./augment.ts", import.meta.url)`. */
  url: URL | string;
  /**
   * Name of the exported {@linkcode MapFunction}.
   * @default "default"
   */
  exportName?: string;
}

/** Options for {@linkcode ParallelMap}. */
export interface ParallelMapOptions {
  /** The map function's module; imported in the main thread and in every Worker. */
  map: MapModule;
  /**
   * Number of map Workers.
   * @default navigator.hardwareConcurrency
   */
  workers?: number;
  /**
   * Seed of the epoch order and of every sample's `ctx.random`.
   * @default a random integer (read it back from `pipeline.seed`)
   */
  seed?: number;
  /**
   * Visit the samples in a seeded order that changes every epoch (the same
   * order `MirroredStrategy.fit` uses for the same seed); `false` keeps the
   * source order.
   * @default true
   */
  shuffle?: boolean;
  /**
   * Epochs mapped ahead of the one the consumer holds: while the consumer
   * works on epoch `e`, epochs `e+1 .. e+prefetch` are mapped. Each costs
   * one more output buffer; `0` maps an epoch only when it is asked for.
   * @default 1
   */
  prefetch?: number;
  /**
   * Samples a Worker takes at a time from the shared cursor.
   * @default 64
   */
  chunkSize?: number;
  /**
   * Shape of one mapped sample's features (the map returns them flat).
   * @default the source's featureShape when the sizes agree, else `[size]`
   */
  outputShape?: readonly number[];
  /**
   * A Worker that finishes no sample for this long while it has work is
   * declared dead (must exceed the slowest single sample). Starting a Worker
   * (importing the map module) may take up to 60 s or this, whichever is more.
   * @default 30000
   */
  workerTimeoutMs?: number;
}

/** Per-sample shapes and label type of the mapped samples. */
export interface PipelineShapes {
  /** Shape of one sample's features, e.g. `[28, 28]`. */
  featureShape: readonly number[];
  /** Shape of one sample's label: `[]` for a single value, `[10]` for one-hot. */
  labelShape: readonly number[];
  /** Element type of the labels. */
  labelDtype: LabelDtype;
}

/**
 * One epoch's mapped samples as shared buffers, ready to hand to Workers
 * without copying (the same fields as the replicas' `SharedData`, plus
 * `yDtype`). `x` and `y` hold exactly `count` rows, starting at byte 0.
 */
export interface SharedSamples {
  /** Features, float32, `count * product(xShape)`. */
  x: SharedArrayBuffer;
  /** Labels, `count * product(yShape)` of `yDtype`. */
  y: SharedArrayBuffer;
  /** Shape of one sample's features. */
  xShape: number[];
  /** Shape of one sample's label. */
  yShape: number[];
  /** Number of samples. */
  count: number;
  /** Element type of `y`. */
  yDtype: LabelDtype;
}

/**
 * One mapped epoch. Rows are in epoch order (row `i` is source sample
 * `order[i]`), so batches are contiguous slices. The arrays live in a reused
 * output slot: they stay valid until the consumer asks the pipeline for
 * another epoch.
 */
export interface MappedEpoch extends LabeledData {
  /** Zero-based epoch. */
  epoch: number;
  /** Mapped features, in a `SharedArrayBuffer`. */
  x: Float32Array;
  /** Mapped labels (`count * product(labelShape)`), in a `SharedArrayBuffer`. */
  y: Float32Array | Uint8Array;
  /** Shape of one sample's label. */
  labelShape: readonly number[];
  /** Source index of each row, in a `SharedArrayBuffer`. */
  order: Uint32Array;
  /** The slot's shared buffers (see {@linkcode SharedSamples}). */
  shared: SharedSamples;
  /** Which output slot holds the epoch, in `[0, prefetch]`; slots are reused in turn. */
  slot: number;
  /**
   * Milliseconds the consumer waited for this epoch's samples to be mapped:
   * 0 when they were ready when asked for (start-up is not counted).
   */
  waitMs: number;
}

/** A slice of consecutive rows of a {@linkcode MappedEpoch}. */
export interface MappedBatch extends LabeledData {
  /** Zero-based epoch. */
  epoch: number;
  /** Zero-based batch within the epoch. */
  step: number;
  /** Row of the batch's first sample in the epoch. */
  offset: number;
  /** Mapped features: a view into the epoch's shared buffer. */
  x: Float32Array;
  /** Mapped labels: a view into the epoch's shared buffer. */
  y: Float32Array | Uint8Array;
  /** Shape of one sample's label. */
  labelShape: readonly number[];
}

/** Options for {@linkcode ParallelMap.epochs}. */
export interface EpochsOptions {
  /**
   * Zero-based epoch to start from (to resume a run).
   * @default 0
   */
  initialEpoch?: number;
}

/** Options for {@linkcode ParallelMap.batches}. */
export interface BatchesOptions {
  /**
   * Zero-based epoch to slice.
   * @default 0
   */
  epoch?: number;
  /** Samples per batch; the last batch may be smaller. */
  batchSize: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 2000;
/** How long a Worker may take to import the map module before it is declared dead. */
const STARTUP_TIMEOUT_MS = 60_000;

interface Slot {
  index: number;
  /** Epoch held or being mapped; -1 when free. */
  epoch: number;
  buffers: SlotBuffers;
  x: Float32Array;
  y: Float32Array | Uint8Array;
  order: Uint32Array;
  control: Int32Array;
  chunks: number;
  /** Whether the run of `epoch` was handed to the Workers (the flags are its own). */
  live: boolean;
  /** Chunks known done, as a prefix. */
  prefix: number;
  /** Resolves once every Worker has replied to the slot's last run. */
  settled: Promise<void>;
}

interface Pending {
  worker: number;
  /** The epoch a `map` request maps; undefined for `init`. */
  epoch: number | undefined;
  resolve: (reply: MapReply) => void;
  reject: (error: unknown) => void;
}

interface Source {
  x: Float32Array;
  y: Float32Array | Uint8Array;
  count: number;
  xSize: number;
  ySize: number;
  featureShape: readonly number[];
}

function isPositiveInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1;
}

function checkSource(source: LabeledData): Source {
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

function checkOptions(options: ParallelMapOptions): {
  url: string;
  exportName: string;
  workers: number;
  seed: number;
  shuffle: boolean;
  prefetch: number;
  chunkSize: number;
  outputShape: number[] | undefined;
  workerTimeoutMs: number;
} {
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

function labelArray(
  dtype: LabelDtype,
  buffer: SharedArrayBuffer,
  length: number,
): Float32Array | Uint8Array {
  return dtype === "float32"
    ? new Float32Array(buffer, 0, length)
    : new Uint8Array(buffer, 0, length);
}

/**
 * Runs a map function over every sample of a {@linkcode LabeledData} in a pool
 * of Workers, one epoch (or batch) ahead of the consumer.
 *
 * - **Deterministic**: epoch `e`'s order comes from `(seed, e)` and each
 *   sample's randomness from `(seed, e, index)`, so the output is identical
 *   for any Worker count and across runs.
 * - **No copies per sample**: the source is placed once in shared memory;
 *   Workers write mapped rows straight into a shared output slot, and the
 *   epochs and batches handed out are views of it.
 * - **Overlap**: while the consumer holds epoch `e`, epochs
 *   `e+1 .. e+prefetch` are mapped; `batches()` also yields each batch as
 *   soon as its rows are mapped.
 * - **Failures** reject the iteration: `PipelineError` when the map throws
 *   (naming the epoch and sample) or a Worker dies; `TypeError`/`RangeError`
 *   when the map returns a wrong type or a shape that differs from sample 0's.
 *   Bad options throw before any Worker starts; the map module is imported and
 *   checked on sample 0 in the main thread, also before any Worker starts.
 *
 * Workers start on the first `start()`, `epochs()` or `batches()`; call
 * `close()` (or use `await using`) so the process can exit.
 *
 * @example
 * ```ts
 * import { ParallelMap } from "./pipeline.ts";
 * const source = {
 *   x: new Float32Array(4 * 784).fill(0.5),
 *   y: new Uint8Array([3, 1, 4, 1]),
 *   count: 4,
 *   featureShape: [28, 28],
 * };
 * await using pipeline = new ParallelMap(source, {
 *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "augment" },
 *   workers: 2,
 *   seed: 42,
 * });
 * for await (const epoch of pipeline.epochs(2)) {
 *   console.assert(epoch.x.buffer instanceof SharedArrayBuffer);
 *   for await (const batch of pipeline.batches({ epoch: epoch.epoch, batchSize: 3 })) {
 *     console.assert(batch.count === (batch.step === 0 ? 3 : 1));
 *   }
 * }
 * ```
 */
export class ParallelMap implements AsyncDisposable {
  readonly #source: Source;
  readonly #options: ReturnType<typeof checkOptions>;
  #started: Promise<PipelineShapes> | undefined;
  #shapes: PipelineShapes | undefined;
  #workers: Worker[] = [];
  #slots: Slot[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #error: Error | undefined;
  #failure: Promise<never>;
  #rejectFailure!: (error: Error) => void;
  #closing: Promise<void> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #dead = new Set<number>();
  #heartbeat = new Int32Array(new SharedArrayBuffer(4));
  #beats: { value: number; at: number; busy: number }[] = [];
  #watchdog: ReturnType<typeof setInterval> | undefined;

  /**
   * Validates the source and the options; starts nothing.
   *
   * @param source The samples to map (`y` holds one or more values per sample).
   * @param options The map module and how to run it.
   * @throws {TypeError} When the source arrays or the map module are of the wrong type.
   * @throws {RangeError} When a count, size or option is out of range.
   */
  constructor(source: LabeledData, options: ParallelMapOptions) {
    this.#source = checkSource(source);
    this.#options = checkOptions(options);
    this.#failure = new Promise<never>((_, reject) => (this.#rejectFailure = reject));
    this.#failure.catch(() => {});
  }

  /** The seed in use (the given one, or the random one drawn when none was given). */
  get seed(): number {
    return this.#options.seed;
  }

  /** Number of map Workers. */
  get workers(): number {
    return this.#options.workers;
  }

  /** Number of samples per epoch. */
  get count(): number {
    return this.#source.count;
  }

  /**
   * How many samples of `epoch` are mapped so far: `count` when it is ready,
   * `0` when it is not scheduled (the pipeline maps the epochs after the one
   * the consumer holds, up to `prefetch`). Reads shared memory only, so it
   * is exact even while the main thread has been busy.
   *
   * @param epoch Zero-based epoch.
   * @returns Mapped samples of `epoch`, in `[0, count]`.
   *
   * @example
   * ```ts
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(8), y: new Uint8Array(8), count: 8, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   * });
   * for await (const epoch of pipeline.epochs(1)) {
   *   console.assert(pipeline.progress(epoch.epoch) === 8 && pipeline.progress(5) === 0);
   * }
   * ```
   */
  progress(epoch: number): number {
    const slot = this.#slots.find((s) => s.epoch === epoch && s.live);
    if (slot === undefined) return 0;
    const { count } = this.#source;
    if (Atomics.load(slot.control, SLOT_DONE) === slot.chunks) return count;
    const size = this.#options.chunkSize;
    let rows = 0;
    for (let c = 0; c < slot.chunks; c++) {
      if (Atomics.load(slot.control, SLOT_FLAGS + c) === 1) {
        rows += Math.min(count, (c + 1) * size) - c * size;
      }
    }
    return rows;
  }

  /**
   * Imports the map module, checks it on sample 0 in the main thread, then
   * places the source in shared memory and starts the Workers. Iterating calls
   * it for you; call it first to learn the output shapes. Idempotent.
   *
   * @returns The shapes and label type of the mapped samples.
   * @throws {TypeError} When the module has no function `exportName`, or the
   *   map returns something other than `{ x: Float32Array, y? }`.
   * @throws {RangeError} When `outputShape` does not match the map's output.
   * @throws {PipelineError} When the map throws on sample 0 or a Worker fails to start.
   *
   * @example
   * ```ts
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(784), y: new Uint8Array(1), count: 1, featureShape: [28, 28] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "augment" },
   *   workers: 1,
   * });
   * const shapes = await pipeline.start();
   * console.assert(shapes.featureShape.join() === "28,28" && shapes.labelDtype === "uint8");
   * ```
   */
  start(): Promise<PipelineShapes> {
    if (this.#started === undefined) {
      this.#started = this.#start();
      this.#started.catch(() => {});
    }
    return this.#started;
  }

  async #start(): Promise<PipelineShapes> {
    if (this.#error !== undefined) throw this.#error;
    const { url, exportName, outputShape, seed } = this.#options;
    const src = this.#source;
    // 1. The map module, checked in the main thread before any Worker starts.
    let mod: Record<string, unknown>;
    try {
      mod = await import(url);
    } catch (e) {
      throw new TypeError(
        `ParallelMap could not import the map module ${url}: ${
          e instanceof Error ? e.message : String(e)
        }`,
        { cause: e },
      );
    }
    const fn = mod[exportName];
    if (typeof fn !== "function") {
      throw new TypeError(
        `ParallelMap map module ${url} has no function export "${exportName}": expected a ` +
          `function (x, y, ctx) => { x, y? }, received ${describe(fn)} (the module exports: ${
            Object.keys(mod).join(", ") || "nothing"
          })`,
      );
    }
    // 2. Sample 0 decides the output size and label type.
    const x0 = src.x.slice(0, src.xSize);
    const y0 = src.y.slice(0, src.ySize);
    let result: unknown;
    try {
      result = await (fn as MapFunction)(x0, y0, {
        index: 0,
        position: 0,
        epoch: 0,
        seed,
        random: sampleRandom(seed, 0, 0),
      });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      throw new PipelineError(
        `map() threw on sample 0 of epoch 0 (checked in the main thread before starting ` +
          `the Workers): ${err.name}: ${err.message}`,
        { epoch: 0, index: 0, cause: err },
      );
    }
    const first = checkMapResult(result, y0, undefined, 0, 0);
    const spec: OutputSpec = {
      xSize: first.x.length,
      ySize: first.y.length,
      yDtype: dtypeOf(first.y)!,
    };
    if (spec.xSize === 0) {
      throw new RangeError(
        "map() returned an empty x for sample 0 of epoch 0, expected >= 1 value",
      );
    }
    let featureShape: number[];
    if (outputShape !== undefined) {
      const size = outputShape.reduce((a, b) => a * b, 1);
      if (size !== spec.xSize) {
        throw new RangeError(
          `ParallelMap outputShape [${outputShape}] holds ${size} values, but map() returned x ` +
            `with ${spec.xSize} values for sample 0 of epoch 0`,
        );
      }
      featureShape = outputShape;
    } else {
      featureShape = spec.xSize === src.xSize ? [...src.featureShape] : [spec.xSize];
    }
    const shapes: PipelineShapes = {
      featureShape,
      labelShape: spec.ySize === 1 ? [] : [spec.ySize],
      labelDtype: spec.yDtype,
    };
    if (this.#error !== undefined) throw this.#error;

    // 3. Shared memory: the source once, and prefetch + 1 output slots.
    const sx = share(src.x);
    const sy = share(src.y);
    const { count } = src;
    const { chunkSize, prefetch, workers } = this.#options;
    const chunks = Math.ceil(count / chunkSize);
    const yBytes = spec.yDtype === "float32" ? 4 : 1;
    this.#slots = Array.from({ length: prefetch + 1 }, (_, index) => {
      const buffers: SlotBuffers = {
        x: new SharedArrayBuffer(count * spec.xSize * 4),
        y: new SharedArrayBuffer(Math.max(4, count * spec.ySize * yBytes)),
        order: new SharedArrayBuffer(count * 4),
        control: new SharedArrayBuffer((SLOT_FLAGS + chunks) * 4),
      };
      return {
        index,
        epoch: -1,
        buffers,
        x: new Float32Array(buffers.x),
        y: labelArray(spec.yDtype, buffers.y, count * spec.ySize),
        order: new Uint32Array(buffers.order),
        control: new Int32Array(buffers.control),
        chunks,
        live: false,
        prefix: 0,
        settled: Promise.resolve(),
      };
    });

    // 4. The Workers.
    this.#heartbeat = new Int32Array(new SharedArrayBuffer(4 * workers));
    this.#beats = Array.from({ length: workers }, () => ({ value: 0, at: 0, busy: 0 }));
    this.#workers = Array.from({ length: workers }, (_, w) => {
      const worker = new Worker(new URL("./_map_worker.ts", import.meta.url), {
        type: "module",
        name: `dtrain-map-${w}`,
      });
      worker.onmessage = (e: MessageEvent<unknown>) => this.#onReply(w, e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#dead.add(w);
        this.#fail(
          new PipelineError(`Pipeline worker ${w} died: ${e.message}`, {
            worker: w,
            cause: e.error,
          }),
        );
      };
      worker.onmessageerror = () => {
        this.#fail(
          new PipelineError(`Pipeline worker ${w} sent an unreadable message`, {
            worker: w,
          }),
        );
      };
      return worker;
    });
    await this.#race(Promise.all(this.#workers.map((_, w) =>
      this.#request(w, {
        type: "init",
        worker: w,
        map: { url, exportName },
        source: {
          x: sx.buffer,
          xByteOffset: sx.byteOffset,
          y: sy.buffer,
          yByteOffset: sy.byteOffset,
          yDtype: dtypeOf(src.y)!,
          count,
          xSize: src.xSize,
          ySize: src.ySize,
        },
        output: spec,
        slots: this.#slots.map((s) => s.buffers),
        chunkSize,
        seed,
        heartbeat: this.#heartbeat.buffer,
      })
    )));
    this.#shapes = shapes;
    return shapes;
  }

  /**
   * Yields `count` mapped epochs, starting at `initialEpoch`, each as soon as
   * all its samples are mapped. While the loop body works on epoch `e`, the
   * next `prefetch` epochs are mapped; an epoch's arrays stay valid until the
   * loop asks for the next one.
   *
   * @param count Number of epochs, an integer >= 0.
   * @param options Where to start.
   * @throws {RangeError} When `count` or `initialEpoch` is not a non-negative integer.
   * @throws {PipelineError} When the map throws, a Worker dies, or the pipeline is closed.
   *
   * @example
   * ```ts
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array([1, 2, 3]), y: new Uint8Array([0, 1, 2]), count: 3, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   *   seed: 7,
   * });
   * const seen: number[] = [];
   * for await (const epoch of pipeline.epochs(2, { initialEpoch: 3 })) seen.push(epoch.epoch);
   * console.assert(seen.join() === "3,4");
   * ```
   */
  async *epochs(
    count: number,
    options: EpochsOptions = {},
  ): AsyncGenerator<MappedEpoch, void, undefined> {
    const initialEpoch = options.initialEpoch ?? 0;
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(
        `ParallelMap.epochs() expected count to be an integer >= 0, received ${count}`,
      );
    }
    if (!Number.isInteger(initialEpoch) || initialEpoch < 0) {
      throw new RangeError(
        `ParallelMap.epochs() expected initialEpoch to be an integer >= 0, received ${initialEpoch}`,
      );
    }
    const end = initialEpoch + count;
    for (let e = initialEpoch; e < end; e++) {
      const slot = await this.#acquire(e, Math.min(this.#options.prefetch, end - 1 - e));
      const t0 = performance.now();
      const waited = await this.#waitRows(slot, e, this.#source.count);
      yield this.#epochView(slot, waited ? performance.now() - t0 : 0);
    }
  }

  /**
   * Yields epoch `epoch` in consecutive batches of `batchSize` rows (the last
   * one may be smaller), each as soon as its rows are mapped; the next
   * `prefetch` epochs are mapped meanwhile. Batches are views of the epoch's
   * shared buffer, valid until the pipeline is asked for another epoch.
   *
   * @param options The epoch and the batch size.
   * @throws {RangeError} When `epoch` or `batchSize` is out of range.
   * @throws {PipelineError} When the map throws, a Worker dies, or the pipeline is closed.
   *
   * @example
   * ```ts
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(10), y: new Float32Array(10), count: 10, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 2,
   *   seed: 1,
   * });
   * const sizes: number[] = [];
   * for await (const batch of pipeline.batches({ epoch: 0, batchSize: 4 })) sizes.push(batch.count);
   * console.assert(sizes.join() === "4,4,2");
   * ```
   */
  async *batches(
    options: BatchesOptions,
  ): AsyncGenerator<MappedBatch, void, undefined> {
    const epoch = options?.epoch ?? 0;
    const batchSize = options?.batchSize;
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(
        `ParallelMap.batches() expected epoch to be an integer >= 0, received ${epoch}`,
      );
    }
    if (!isPositiveInt(batchSize)) {
      throw new RangeError(
        `ParallelMap.batches() expected batchSize to be an integer >= 1, received ${batchSize}`,
      );
    }
    const slot = await this.#acquire(epoch, this.#options.prefetch);
    const shapes = this.#shapes!;
    const { count } = this.#source;
    const xSize = slot.x.length / count;
    const ySize = slot.y.length / count;
    for (let from = 0, step = 0; from < count; from += batchSize, step++) {
      const to = Math.min(count, from + batchSize);
      await this.#waitRows(slot, epoch, to);
      yield {
        epoch,
        step,
        offset: from,
        x: slot.x.subarray(from * xSize, to * xSize),
        y: slot.y.subarray(from * ySize, to * ySize),
        count: to - from,
        featureShape: shapes.featureShape,
        labelShape: shapes.labelShape,
      };
    }
  }

  #epochView(slot: Slot, waitMs: number): MappedEpoch {
    const shapes = this.#shapes!;
    const { count } = this.#source;
    return {
      epoch: slot.epoch,
      count,
      x: slot.x,
      y: slot.y,
      featureShape: shapes.featureShape,
      labelShape: shapes.labelShape,
      order: slot.order,
      shared: {
        x: slot.buffers.x,
        y: slot.buffers.y,
        xShape: [...shapes.featureShape],
        yShape: [...shapes.labelShape],
        count,
        yDtype: shapes.labelDtype,
      },
      slot: slot.index,
      waitMs,
    };
  }

  /** Runs `fn` after every earlier acquire has finished. */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /**
   * Makes `epoch` the held epoch and schedules `epoch .. epoch + ahead`,
   * reusing slots whose epochs are no longer wanted.
   */
  #acquire(epoch: number, ahead: number): Promise<Slot> {
    return this.#locked(async () => {
      await this.start();
      this.#throwIfFailed();
      const wanted = (e: number) => e >= epoch && e <= epoch + ahead;
      for (const slot of this.#slots) {
        if (slot.epoch >= 0 && !wanted(slot.epoch)) {
          // Not wanted any more: stop handing out its chunks.
          Atomics.store(slot.control, SLOT_CURSOR, slot.chunks);
          slot.epoch = -1;
        }
      }
      for (let e = epoch; e <= epoch + ahead; e++) {
        if (this.#slots.some((s) => s.epoch === e)) continue;
        const free = this.#slots.find((s) => s.epoch === -1);
        if (free === undefined) break;
        await this.#launch(free, e);
        this.#throwIfFailed();
      }
      return this.#slots.find((s) => s.epoch === epoch)!;
    });
  }

  /** Starts mapping `epoch` into `slot` once the slot's last run is over. */
  async #launch(slot: Slot, epoch: number): Promise<void> {
    slot.epoch = epoch;
    slot.live = false;
    await slot.settled;
    const { count } = this.#source;
    slot.order.set(
      epochOrder(count, { seed: this.#options.seed, epoch, shuffle: this.#options.shuffle }),
    );
    slot.control.fill(0);
    slot.prefix = 0;
    slot.live = true;
    const runs = this.#workers.map((_, w) =>
      this.#request(w, { type: "map", slot: slot.index, epoch })
    );
    slot.settled = Promise.allSettled(runs).then(() => {});
  }

  /**
   * Waits until rows `[0, rows)` of `slot` are mapped. Resolves `true` when it
   * had to wait, `false` when they were ready.
   */
  async #waitRows(slot: Slot, epoch: number, rows: number): Promise<boolean> {
    const needed = Math.ceil(rows / this.#options.chunkSize);
    let waited = false;
    for (;;) {
      this.#throwIfFailed();
      if (slot.epoch !== epoch) {
        throw new PipelineError(
          `ParallelMap epoch ${epoch} was released while it was being read: the pipeline was ` +
            "asked for another epoch meanwhile (read one epoch at a time)",
          { epoch },
        );
      }
      const seen = Atomics.load(slot.control, SLOT_DONE);
      while (
        slot.prefix < needed && Atomics.load(slot.control, SLOT_FLAGS + slot.prefix) === 1
      ) slot.prefix++;
      if (slot.prefix >= needed) return waited;
      waited = true;
      const wait = Atomics.waitAsync(slot.control, SLOT_DONE, seen, 100);
      if (wait.async) await this.#race(wait.value);
    }
  }

  #throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }

  /** `promise`, or the pipeline's failure if that comes first. */
  #race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.#failure]);
  }

  #request(w: number, message: Distributive<MapRequest>): Promise<MapReply> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const id = this.#nextId++;
    const beat = this.#beats[w]!;
    if (beat.busy++ === 0) {
      beat.value = Atomics.load(this.#heartbeat, w);
      beat.at = performance.now();
    }
    this.#startWatchdog();
    return new Promise<MapReply>((resolve, reject) => {
      const epoch = message.type === "map" ? message.epoch : undefined;
      this.#pending.set(id, { worker: w, epoch, resolve, reject });
      this.#workers[w]!.postMessage({ ...message, id });
    });
  }

  #onReply(w: number, data: unknown): void {
    let reply: MapReply;
    try {
      reply = parseMapReply(data);
    } catch (e) {
      this.#fail(
        new PipelineError(`Pipeline worker ${w} sent a malformed reply`, {
          worker: w,
          cause: e,
        }),
      );
      return;
    }
    if (reply.type === "closed") {
      this.#closedReplies.get(w)?.();
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (pending !== undefined) {
      this.#pending.delete(reply.id);
      if (--this.#beats[w]!.busy === 0 && this.#pending.size === 0) this.#stopWatchdog();
    }
    if (reply.type === "error") {
      this.#fail(errorFromReply(w, reply));
      return;
    }
    pending?.resolve(reply);
  }

  #startWatchdog(): void {
    if (this.#watchdog !== undefined) return;
    const timeout = this.#options.workerTimeoutMs;
    this.#watchdog = setInterval(() => {
      const now = performance.now();
      for (let w = 0; w < this.#beats.length; w++) {
        const beat = this.#beats[w]!;
        if (beat.busy === 0) continue;
        const value = Atomics.load(this.#heartbeat, w);
        if (value !== beat.value) {
          beat.value = value;
          beat.at = now;
        } else if (now - beat.at > timeout) {
          // Requests are handled in order: the oldest is the one it is on.
          const epoch = [...this.#pending.values()].find((p) => p.worker === w)?.epoch;
          // Starting (importing the map module) may take long on a cold cache.
          if (epoch === undefined && now - beat.at <= Math.max(timeout, STARTUP_TIMEOUT_MS)) {
            continue;
          }
          this.#dead.add(w);
          this.#fail(
            new PipelineError(
              `Pipeline worker ${w} stopped responding ${
                epoch === undefined ? "while starting" : `while mapping epoch ${epoch}`
              }: no sample finished for ${Math.round(now - beat.at)} ms (the Worker died or ` +
                `its map hangs; workerTimeoutMs is ${timeout})`,
              { worker: w, epoch },
            ),
          );
          return;
        }
      }
    }, Math.max(10, Math.min(500, timeout / 4)));
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Records the first failure, rejects every waiter and shuts the Workers down. */
  #fail(error: Error): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#rejectFailure(error);
    this.#stopWatchdog();
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const b of this.#beats) b.busy = 0;
    for (const slot of this.#slots) Atomics.store(slot.control, SLOT_CURSOR, slot.chunks);
    this.#closing ??= this.#shutdown();
  }

  #closedReplies = new Map<number, () => void>();

  /** Asks every live Worker to close, waits, then terminates the rest. */
  async #shutdown(): Promise<void> {
    if (this.#workers.length === 0) return;
    const replies = this.#workers.map((worker, w) => {
      if (this.#dead.has(w)) return Promise.resolve();
      return new Promise<void>((resolve) => {
        this.#closedReplies.set(w, resolve);
        worker.postMessage({ type: "close", id: this.#nextId++ });
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(replies),
      new Promise((r) => (timer = setTimeout(r, DEFAULT_CLOSE_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    for (const worker of this.#workers) worker.terminate();
    // A Worker's thread is still winding down right after it replied; give it
    // a moment before the caller may exit the process.
    await new Promise((r) => setTimeout(r, 100));
  }

  /**
   * Stops the pipeline: pending iterations reject with `PipelineError`, the
   * Workers finish their current chunk, are asked to close and are waited for
   * (closing Workers gracefully lets the process exit cleanly). Idempotent.
   *
   * @example
   * ```ts
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(1), y: new Uint8Array(1), count: 1, featureShape: [1] };
   * const pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   * });
   * await pipeline.start();
   * await pipeline.close();
   * await pipeline.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#error === undefined) {
      this.#fail(
        new PipelineError("ParallelMap is closed: create a new pipeline to map more epochs"),
      );
    }
    // Let a start() that is importing or spawning finish (or fail) first.
    await this.#started?.catch(() => {});
    this.#closing ??= this.#shutdown();
    await this.#closing;
  }

  /** `await using pipeline = new ParallelMap(...)` closes it on scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type Distributive<T> = T extends unknown ? Omit<T, "id"> : never;

function errorFromReply(w: number, reply: Extract<MapReply, { type: "error" }>): Error {
  const cause = Object.assign(new Error(reply.message), { name: reply.name, stack: reply.stack });
  if (reply.origin === "output") {
    return reply.name === "TypeError"
      ? new TypeError(reply.message)
      : new RangeError(reply.message);
  }
  if (reply.origin === "map") {
    return new PipelineError(
      `map() threw on sample ${reply.index} of epoch ${reply.epoch} in pipeline worker ${w}: ` +
        `${reply.name}: ${reply.message}`,
      { worker: w, epoch: reply.epoch, index: reply.index, cause },
    );
  }
  return new PipelineError(`Pipeline worker ${w} failed: ${reply.name}: ${reply.message}`, {
    worker: w,
    cause,
  });
}
