/**
 * Private: one output slot of a `ParallelMap`, the shared buffers that hold
 * one epoch's mapped samples in epoch order (`prefetch + 1` of them, reused in
 * turn). The slot owns its buffers and the main thread's view of its control
 * array (which chunks are done, waiting for rows, the epoch and batch views
 * handed out); the map Workers own the writing (`_map_worker.ts`); which
 * epoch a slot holds is decided by `_slot_schedule.ts`.
 *
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { OutputSpec } from "./_map_sample.ts";
import type { FirstFailure } from "./_pipeline_failure.ts";
import {
  type LabelDtype,
  SLOT_CURSOR,
  SLOT_DONE,
  SLOT_FLAGS,
  type SlotBuffers,
} from "./_pipeline_protocol.ts";
import type { MappedBatch, MappedEpoch, PipelineShapes } from "./pipeline_types.ts";

/** What every slot of a pipeline has in common. */
export interface SlotLayout {
  /** Samples per epoch. */
  count: number;
  /** Samples per chunk. */
  chunkSize: number;
  /** Size and label type of one mapped sample. */
  spec: OutputSpec;
  /** The shapes reported in the views. */
  shapes: PipelineShapes;
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

/** One reusable output slot. */
export class OutputSlot {
  /** The slot's number, in `[0, prefetch]`. */
  readonly index: number;
  /** The shared buffers, as sent to the Workers in `init`. */
  readonly buffers: SlotBuffers;
  /** Mapped features. */
  readonly x: Float32Array;
  /** Mapped labels. */
  readonly y: Float32Array | Uint8Array;
  /** Source index of each row. */
  readonly order: Uint32Array;
  /** `[cursor, done, chunkDone_0, ...]` (see `SlotBuffers`). */
  readonly control: Int32Array;
  /** Chunks per epoch. */
  readonly chunks: number;
  /** Epoch held or being mapped; -1 when free. */
  epoch = -1;
  /** Whether the run of `epoch` was handed to the Workers (the flags are its own). */
  live = false;
  /** Resolves once every Worker has replied to the slot's last run. */
  settled: Promise<void> = Promise.resolve();
  /** Chunks known done, as a prefix. */
  #prefix = 0;
  #layout: SlotLayout;
  #failure: FirstFailure;

  /** Allocates slot `index`'s shared buffers. */
  constructor(index: number, layout: SlotLayout, failure: FirstFailure) {
    const { count, chunkSize, spec } = layout;
    this.index = index;
    this.#layout = layout;
    this.#failure = failure;
    this.chunks = Math.ceil(count / chunkSize);
    const yBytes = spec.yDtype === "float32" ? 4 : 1;
    this.buffers = {
      x: new SharedArrayBuffer(count * spec.xSize * 4),
      y: new SharedArrayBuffer(Math.max(4, count * spec.ySize * yBytes)),
      order: new SharedArrayBuffer(count * 4),
      control: new SharedArrayBuffer((SLOT_FLAGS + this.chunks) * 4),
    };
    this.x = new Float32Array(this.buffers.x);
    this.y = labelArray(spec.yDtype, this.buffers.y, count * spec.ySize);
    this.order = new Uint32Array(this.buffers.order);
    this.control = new Int32Array(this.buffers.control);
  }

  /** Prepares a run in `order`: no chunk handed out, none done (the last run must be over). */
  reset(order: Uint32Array): void {
    this.order.set(order);
    this.control.fill(0);
    this.#prefix = 0;
    this.live = true;
  }

  /** Stops handing out chunks of the current run (Workers finish the chunk they hold). */
  stop(): void {
    Atomics.store(this.control, SLOT_CURSOR, this.chunks);
  }

  /** Rows of the current run mapped so far, read from shared memory. */
  mappedRows(): number {
    const { count, chunkSize } = this.#layout;
    if (Atomics.load(this.control, SLOT_DONE) === this.chunks) return count;
    let rows = 0;
    for (let c = 0; c < this.chunks; c++) {
      if (Atomics.load(this.control, SLOT_FLAGS + c) === 1) {
        rows += Math.min(count, (c + 1) * chunkSize) - c * chunkSize;
      }
    }
    return rows;
  }

  /**
   * Waits until rows `[0, rows)` of `epoch` are mapped. Resolves `true` when
   * it had to wait, `false` when they were ready; rejects when the pipeline
   * failed or the slot was given to another epoch meanwhile.
   */
  async waitRows(epoch: number, rows: number): Promise<boolean> {
    const needed = Math.ceil(rows / this.#layout.chunkSize);
    let waited = false;
    for (;;) {
      this.#failure.throwIfFailed();
      if (this.epoch !== epoch) {
        throw new PipelineError(
          `ParallelMap epoch ${epoch} was released while it was being read: the pipeline was ` +
            "asked for another epoch meanwhile (read one epoch at a time)",
          { epoch },
        );
      }
      const seen = Atomics.load(this.control, SLOT_DONE);
      while (
        this.#prefix < needed && Atomics.load(this.control, SLOT_FLAGS + this.#prefix) === 1
      ) this.#prefix++;
      if (this.#prefix >= needed) return waited;
      waited = true;
      const wait = Atomics.waitAsync(this.control, SLOT_DONE, seen, 100);
      if (wait.async) await this.#failure.race(wait.value);
    }
  }

  /** The epoch the slot holds, as handed to the consumer. */
  epochView(waitMs: number): MappedEpoch {
    const { count, shapes } = this.#layout;
    return {
      epoch: this.epoch,
      count,
      x: this.x,
      y: this.y,
      featureShape: shapes.featureShape,
      labelShape: shapes.labelShape,
      order: this.order,
      shared: {
        x: this.buffers.x,
        y: this.buffers.y,
        xShape: [...shapes.featureShape],
        yShape: [...shapes.labelShape],
        count,
        yDtype: shapes.labelDtype,
      },
      slot: this.index,
      waitMs,
    };
  }

  /** Rows `[from, to)` of `epoch`, as batch `step`. */
  batchView(epoch: number, step: number, from: number, to: number): MappedBatch {
    const { count, shapes } = this.#layout;
    const xSize = this.x.length / count;
    const ySize = this.y.length / count;
    return {
      epoch,
      step,
      offset: from,
      x: this.x.subarray(from * xSize, to * xSize),
      y: this.y.subarray(from * ySize, to * ySize),
      count: to - from,
      featureShape: shapes.featureShape,
      labelShape: shapes.labelShape,
    };
  }
}
