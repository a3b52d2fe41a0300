/**
 * ParallelMap: a parallel, prefetching input pipeline (Keras'
 * `fit(..., workers=2)` idea). A user `map` function (decode, augment,
 * normalise one sample) runs in a pool of Workers while the consumer trains
 * on the previous epoch.
 *
 * Who owns what: the main thread validates the options
 * (`_pipeline_options.ts`), checks the map function on sample 0
 * (`_first_sample.ts`), places the source samples once in a
 * `SharedArrayBuffer`, computes each epoch's order from `(seed, epoch)` and
 * hands out output slots (`prefetch + 1` of them, reused in turn:
 * `_output_slot.ts`, `_slot_schedule.ts`); iterating is `_epoch_iteration.ts`.
 * The map Workers own the work (`_map_worker.ts`, started and watched by
 * `_map_worker_group.ts` on the runtime in `src/workers/`): they take chunks
 * of an epoch from a shared atomic cursor, map each sample with randomness
 * derived from `(seed, epoch, index)` only, write it at its row of the slot
 * and flag the chunk. No message per sample and none per chunk, so the
 * Workers keep going while the main thread is busy; which Worker maps which
 * sample never changes the result. This file is the public module: the
 * `ParallelMap` class, which ties those parts together and owns the
 * pipeline's lifetime (start, first failure, close), and its types
 * (`pipeline_types.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
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
 *   assert.ok(epoch.count === 3 && epoch.x.length === 6);
 * }
 * ```
 * @module
 */
import { PipelineError } from "../errors.ts";
import { checkFirstSample } from "./_first_sample.ts";
import { type EpochSlots, readBatches, readEpochs } from "./_epoch_iteration.ts";
import { MapWorkerGroup } from "./_map_worker_group.ts";
import { OutputSlot } from "./_output_slot.ts";
import { FirstFailure } from "./_pipeline_failure.ts";
import {
  checkOptions,
  checkSource,
  type PipelineConfig,
  sharedSource,
  type Source,
} from "./_pipeline_options.ts";
import { SlotSchedule } from "./_slot_schedule.ts";
import type { LabeledData } from "./labeled_data.ts";
import type {
  BatchesOptions,
  EpochsOptions,
  MappedBatch,
  MappedEpoch,
  ParallelMapOptions,
  PipelineShapes,
} from "./pipeline_types.ts";

export { sampleRandom } from "./_map_sample.ts";
export type {
  BatchesOptions,
  EpochsOptions,
  LabelDtype,
  MapContext,
  MapFunction,
  MapModule,
  MappedBatch,
  MappedEpoch,
  MapResult,
  ParallelMapOptions,
  PipelineShapes,
  SharedSamples,
} from "./pipeline_types.ts";

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
 * import assert from "node:assert/strict";
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
 *   assert.ok(epoch.x.buffer instanceof SharedArrayBuffer);
 *   for await (const batch of pipeline.batches({ epoch: epoch.epoch, batchSize: 3 })) {
 *     assert.ok(batch.count === (batch.step === 0 ? 3 : 1));
 *   }
 * }
 * ```
 */
export class ParallelMap implements AsyncDisposable {
  readonly #source: Source;
  readonly #config: PipelineConfig;
  readonly #failure = new FirstFailure();
  readonly #epochSlots: EpochSlots;
  #started: Promise<PipelineShapes> | undefined;
  #schedule: SlotSchedule | undefined;
  #group: MapWorkerGroup | undefined;
  #closing: Promise<void> | undefined;
  #lock: Promise<unknown> = Promise.resolve();

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
    this.#config = checkOptions(options);
    this.#epochSlots = {
      prefetch: this.#config.prefetch,
      count: this.#source.count,
      acquire: (epoch, ahead) => this.#acquire(epoch, ahead),
    };
  }

  /** The seed in use (the given one, or the random one drawn when none was given). */
  get seed(): number {
    return this.#config.seed;
  }

  /** Number of map Workers. */
  get workers(): number {
    return this.#config.workers;
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
   * import assert from "node:assert/strict";
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(8), y: new Uint8Array(8), count: 8, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   * });
   * for await (const epoch of pipeline.epochs(1)) {
   *   assert.ok(pipeline.progress(epoch.epoch) === 8 && pipeline.progress(5) === 0);
   * }
   * ```
   */
  progress(epoch: number): number {
    return this.#schedule?.progress(epoch) ?? 0;
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
   * import assert from "node:assert/strict";
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(784), y: new Uint8Array(1), count: 1, featureShape: [28, 28] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "augment" },
   *   workers: 1,
   * });
   * const shapes = await pipeline.start();
   * assert.ok(shapes.featureShape.join() === "28,28" && shapes.labelDtype === "uint8");
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
    const failure = this.#failure;
    failure.throwIfFailed();
    // 1. The map module and sample 0, checked in the main thread before any Worker starts.
    const { spec, shapes } = await checkFirstSample(this.#source, this.#config);
    failure.throwIfFailed();
    // 2. Shared memory: the source once, and prefetch + 1 output slots.
    const { count } = this.#source;
    const { url, exportName, workers, seed, shuffle, prefetch, chunkSize, workerTimeoutMs } =
      this.#config;
    const source = sharedSource(this.#source);
    const layout = { count, chunkSize, spec, shapes };
    const slots = Array.from(
      { length: prefetch + 1 },
      (_, i) => new OutputSlot(i, layout, failure),
    );
    // 3. The Workers.
    const group = new MapWorkerGroup({
      workers,
      workerTimeoutMs,
      failure,
      onFail: (error) => this.#fail(error),
    });
    this.#group = group;
    this.#schedule = new SlotSchedule(slots, {
      count,
      seed,
      shuffle,
      failure,
      run: (slot, epoch) => group.run(slot, epoch),
    });
    await failure.race(group.init((worker) => ({
      type: "init",
      worker,
      map: { url, exportName },
      source,
      output: spec,
      slots: slots.map((s) => s.buffers),
      chunkSize,
      seed,
      heartbeat: group.heartbeat.buffer,
    })));
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
   * import assert from "node:assert/strict";
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array([1, 2, 3]), y: new Uint8Array([0, 1, 2]), count: 3, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   *   seed: 7,
   * });
   * const seen: number[] = [];
   * for await (const epoch of pipeline.epochs(2, { initialEpoch: 3 })) seen.push(epoch.epoch);
   * assert.ok(seen.join() === "3,4");
   * ```
   */
  async *epochs(
    count: number,
    options: EpochsOptions = {},
  ): AsyncGenerator<MappedEpoch, void, undefined> {
    yield* readEpochs(this.#epochSlots, count, options);
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
   * import assert from "node:assert/strict";
   * import { ParallelMap } from "./pipeline.ts";
   * const source = { x: new Float32Array(10), y: new Float32Array(10), count: 10, featureShape: [1] };
   * await using pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 2,
   *   seed: 1,
   * });
   * const sizes: number[] = [];
   * for await (const batch of pipeline.batches({ epoch: 0, batchSize: 4 })) sizes.push(batch.count);
   * assert.ok(sizes.join() === "4,4,2");
   * ```
   */
  async *batches(
    options: BatchesOptions,
  ): AsyncGenerator<MappedBatch, void, undefined> {
    yield* readBatches(this.#epochSlots, options);
  }

  /**
   * Holds `epoch` and schedules `epoch .. epoch + ahead` once the pipeline
   * has started, after every earlier call has finished.
   */
  #acquire(epoch: number, ahead: number): Promise<OutputSlot> {
    const run = this.#lock.then(async () => {
      await this.start();
      return await this.#schedule!.acquire(epoch, ahead);
    });
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Records the first failure (every waiter rejects with it) and shuts the Workers down. */
  #fail(error: Error): void {
    if (!this.#failure.record(error)) return;
    this.#schedule?.stopAll();
    this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    await this.#group?.close();
  }

  /**
   * Stops the pipeline: pending iterations reject with `PipelineError`, the
   * Workers finish their current chunk, are asked to close and are waited for
   * (closing Workers gracefully lets the process exit cleanly). Idempotent.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ParallelMap } from "./pipeline.ts";
   * import { PipelineError } from "../errors.ts";
   * const source = { x: new Float32Array(1), y: new Uint8Array(1), count: 1, featureShape: [1] };
   * const pipeline = new ParallelMap(source, {
   *   map: { url: new URL("../../examples/augment.ts", import.meta.url), exportName: "scale" },
   *   workers: 1,
   * });
   * await pipeline.start();
   * await pipeline.close();
   * await pipeline.close();
   * await assert.rejects(pipeline.epochs(1).next(), PipelineError);
   * ```
   */
  async close(): Promise<void> {
    if (this.#failure.error === undefined) {
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
