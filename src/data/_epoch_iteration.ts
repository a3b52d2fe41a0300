/**
 * Private: what `ParallelMap.epochs()` and `ParallelMap.batches()` do with
 * their arguments: check them (lazily, on the first `next()`), walk the
 * epochs or the batches of one epoch, hold each epoch's slot through
 * `acquire` (which starts the pipeline and schedules the epochs ahead), wait
 * for its rows and yield views of it. Owns no state: the slots belong to the
 * pipeline.
 *
 * @module
 */
import { isPositiveInt } from "./_pipeline_options.ts";
import type { OutputSlot } from "./_output_slot.ts";
import type { BatchesOptions, EpochsOptions, MappedBatch, MappedEpoch } from "./pipeline_types.ts";

/** What iterating needs from the pipeline. */
export interface EpochSlots {
  /** Epochs mapped ahead of the held one (the `prefetch` option). */
  readonly prefetch: number;
  /** Samples per epoch. */
  readonly count: number;
  /** Starts the pipeline if needed, holds `epoch` and schedules `ahead` epochs after it. */
  acquire(epoch: number, ahead: number): Promise<OutputSlot>;
}

/** The generator behind `ParallelMap.epochs(count, options)`. */
export async function* readEpochs(
  slots: EpochSlots,
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
    const slot = await slots.acquire(e, Math.min(slots.prefetch, end - 1 - e));
    const t0 = performance.now();
    const waited = await slot.waitRows(e, slots.count);
    yield slot.epochView(waited ? performance.now() - t0 : 0);
  }
}

/** The generator behind `ParallelMap.batches(options)`. */
export async function* readBatches(
  slots: EpochSlots,
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
  const slot = await slots.acquire(epoch, slots.prefetch);
  const { count } = slots;
  for (let from = 0, step = 0; from < count; from += batchSize, step++) {
    const to = Math.min(count, from + batchSize);
    await slot.waitRows(epoch, to);
    yield slot.batchView(epoch, step, from, to);
  }
}
