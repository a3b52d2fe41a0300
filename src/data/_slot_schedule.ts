/**
 * Private: which epoch each output slot of a `ParallelMap` holds. The
 * consumer holds one epoch; the schedule keeps it and the next `prefetch`
 * epochs in slots, frees the slots of epochs no longer wanted (their chunks
 * stop being handed out), and starts a run of the map Workers on each slot it
 * fills, once the slot's last run is over. Owns no buffers (`_output_slot.ts`)
 * and no Workers (`_map_worker_group.ts`).
 *
 * @module
 */
import { epochOrder } from "../core/random.ts";
import type { OutputSlot } from "./_output_slot.ts";
import type { FirstFailure } from "./_pipeline_failure.ts";

/** Options of {@linkcode SlotSchedule}. */
export interface SlotScheduleOptions {
  /** Samples per epoch. */
  count: number;
  /** Seed of the epoch order. */
  seed: number;
  /** Whether the epoch order is shuffled. */
  shuffle: boolean;
  /** The pipeline's failure: scheduling stops at it. */
  failure: FirstFailure;
  /** Has every Worker map `epoch` into slot `slot`; resolves (never rejects) once all replied. */
  run: (slot: number, epoch: number) => Promise<void>;
}

/** The epochs held by a pipeline's output slots. */
export class SlotSchedule {
  /** Every output slot, in slot order. */
  readonly slots: readonly OutputSlot[];
  #options: SlotScheduleOptions;

  /** Every slot starts free. */
  constructor(slots: readonly OutputSlot[], options: SlotScheduleOptions) {
    this.slots = slots;
    this.#options = options;
  }

  /**
   * Makes `epoch` the held epoch and schedules `epoch .. epoch + ahead`,
   * reusing slots whose epochs are no longer wanted. Resolves with the slot
   * of `epoch`. Calls must not overlap (the caller serialises them).
   */
  async acquire(epoch: number, ahead: number): Promise<OutputSlot> {
    const { failure } = this.#options;
    failure.throwIfFailed();
    const wanted = (e: number) => e >= epoch && e <= epoch + ahead;
    for (const slot of this.slots) {
      if (slot.epoch >= 0 && !wanted(slot.epoch)) {
        // Not wanted any more: stop handing out its chunks.
        slot.stop();
        slot.epoch = -1;
      }
    }
    for (let e = epoch; e <= epoch + ahead; e++) {
      if (this.slots.some((s) => s.epoch === e)) continue;
      const free = this.slots.find((s) => s.epoch === -1);
      if (free === undefined) break;
      await this.#launch(free, e);
      failure.throwIfFailed();
    }
    return this.slots.find((s) => s.epoch === epoch)!;
  }

  /** Starts mapping `epoch` into `slot` once the slot's last run is over. */
  async #launch(slot: OutputSlot, epoch: number): Promise<void> {
    const { count, seed, shuffle, failure, run } = this.#options;
    slot.epoch = epoch;
    slot.live = false;
    await failure.race(slot.settled);
    slot.reset(epochOrder(count, { seed, epoch, shuffle }));
    slot.settled = run(slot.index, epoch);
  }

  /** Samples of `epoch` mapped so far; 0 when no slot runs it. */
  progress(epoch: number): number {
    const slot = this.slots.find((s) => s.epoch === epoch && s.live);
    return slot === undefined ? 0 : slot.mappedRows();
  }

  /** Stops handing out chunks in every slot (the pipeline failed or closes). */
  stopAll(): void {
    for (const slot of this.slots) slot.stop();
  }
}
