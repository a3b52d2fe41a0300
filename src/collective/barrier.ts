/**
 * A reusable barrier for a fixed group of threads over shared memory.
 *
 * Layout (Int32Array): `[arrived, generation, aborted]`. The last thread to
 * arrive resets the count and bumps the generation; the others wait on the
 * generation. Setting `aborted` (see {@linkcode abortShared}) wakes every
 * waiter, which then throws {@linkcode CollectiveAbortedError}.
 *
 * @module
 */

const ARRIVED = 0;
const GENERATION = 1;
const ABORTED = 2;

/** Int32 slots a barrier needs in its control array. */
export const BARRIER_SLOTS = 3;

/**
 * Thrown inside a replica when the group was aborted while it waited
 * (another replica crashed, or the main thread stopped training).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectiveAbortedError } from "./barrier.ts";
 * assert.ok(new CollectiveAbortedError().name === "CollectiveAbortedError");
 * ```
 */
export class CollectiveAbortedError extends Error {
  constructor() {
    super(
      "The replica group was aborted while this replica waited at a barrier",
    );
    this.name = "CollectiveAbortedError";
  }
}

/**
 * Marks a barrier's group as aborted and wakes every waiter. Safe from any
 * thread, including the main thread.
 *
 * @example
 * ```ts
 * import { abortShared, BARRIER_SLOTS } from "./barrier.ts";
 * const ctrl = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * abortShared(ctrl);
 * ```
 */
export function abortShared(control: Int32Array): void {
  Atomics.store(control, ABORTED, 1);
  Atomics.add(control, GENERATION, 1);
  Atomics.notify(control, GENERATION);
}

/** Whether the group of this barrier's `control` array was aborted. */
export function isAbortedShared(control: Int32Array): boolean {
  return Atomics.load(control, ABORTED) !== 0;
}

/**
 * A sense-counting barrier for `parties` threads. Each thread constructs its
 * own `Barrier` over the same shared `control` array.
 *
 * @example
 * ```ts
 * import { Barrier, BARRIER_SLOTS } from "./barrier.ts";
 * const ctrl = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * new Barrier(ctrl, 1).arrive(); // a group of one never waits
 * ```
 */
export class Barrier {
  #control: Int32Array;
  #parties: number;
  #heartbeat: number;

  /**
   * @param heartbeat index of an Int32 word in `control` that this thread
   * bumps whenever it arrives or wakes while waiting, so a watchdog can tell
   * a waiting thread from a dead one; -1 for none.
   */
  constructor(control: Int32Array, parties: number, heartbeat = -1) {
    if (!Number.isInteger(parties) || parties < 1) {
      throw new RangeError(
        `parties must be an integer >= 1, received ${parties}`,
      );
    }
    this.#control = control;
    this.#parties = parties;
    this.#heartbeat = heartbeat;
  }

  /** Blocks until all parties have arrived. Throws when the group is aborted. */
  arrive(): void {
    const c = this.#control;
    // The generation is read before the abort flag: an abort between the two
    // bumps the generation, so this waiter wakes and sees the flag.
    const generation = Atomics.load(c, GENERATION);
    if (Atomics.load(c, ABORTED) !== 0) throw new CollectiveAbortedError();
    if (this.#heartbeat >= 0) Atomics.add(c, this.#heartbeat, 1);
    if (Atomics.add(c, ARRIVED, 1) === this.#parties - 1) {
      Atomics.store(c, ARRIVED, 0);
      Atomics.add(c, GENERATION, 1);
      Atomics.notify(c, GENERATION);
      return;
    }
    // Spin briefly (the other replicas are usually close), then sleep.
    for (let i = 0; i < 2000; i++) {
      if (Atomics.load(c, GENERATION) !== generation) return this.#check();
    }
    while (Atomics.load(c, GENERATION) === generation) {
      Atomics.wait(c, GENERATION, generation, 250);
      if (this.#heartbeat >= 0) Atomics.add(c, this.#heartbeat, 1);
    }
    this.#check();
  }

  #check(): void {
    if (Atomics.load(this.#control, ABORTED) !== 0) {
      throw new CollectiveAbortedError();
    }
  }
}
