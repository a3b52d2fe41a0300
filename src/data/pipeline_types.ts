/**
 * The public types of `ParallelMap` (re-exported by `pipeline.ts`): the map
 * function's contract (`MapFunction`, `MapContext`, `MapResult`,
 * `MapModule`), the pipeline's options, and what iterating yields
 * (`MappedEpoch`, `MappedBatch`, `SharedSamples`). Types only: the classes and
 * checks that give them meaning live in the pipeline's other files.
 *
 * @module
 */
import type { LabeledData } from "./labeled_data.ts";
import type { LabelDtype } from "./_pipeline_protocol.ts";

export type { LabelDtype };

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
  /**
   * The mapped features: the same length for every sample. For a model with
   * several inputs, one Float32Array per input in `model.inputs` order; the
   * pipeline stores them side by side in one row (see
   * {@linkcode PipelineShapes.featureParts}).
   */
  x: Float32Array | Float32Array[];
  /**
   * The mapped label (same type and length for every sample); for a model
   * with several outputs, one Float32Array per output in `model.outputs`
   * order, stored side by side as `x`'s parts.
   * @default the (possibly modified in place) input label
   */
  y?: Float32Array | Uint8Array | Float32Array[];
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
  /**
   * Sizes of the x parts the map returns, side by side in each row of `x`:
   * one entry (the whole row) unless it returns an array of parts, one per
   * model input; `featureShape` is then `[sum]`.
   */
  featureParts: readonly number[];
  /** Sizes of the y parts, as {@linkcode PipelineShapes.featureParts}. */
  labelParts: readonly number[];
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
