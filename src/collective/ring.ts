/**
 * A single-producer, single-consumer ring of fixed-width Float64 records in
 * shared memory. Replica 0 writes one record per step; the main thread reads
 * them for callbacks and progress without ever blocking a step, unless it
 * falls a whole ring behind (then the producer waits: callbacks see every
 * step, in order).
 *
 * Control (Int32Array): `[written, consumed, handled]`. The consumer marks a
 * record handled (its callbacks done) with {@linkcode RecordRing.ack}; the
 * producer can wait for that at points where the consumer's decisions must
 * take effect exactly (epoch ends).
 *
 * @module
 */

const WRITTEN = 0;
const CONSUMED = 1;
const HANDLED = 2;

/** Int32 slots of a ring's control array. */
export const RING_CONTROL_SLOTS = 3;

/**
 * Both ends of a record ring.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordRing, RING_CONTROL_SLOTS } from "./ring.ts";
 * const ring = new RecordRing(
 *   new SharedArrayBuffer(8 * 4 * 2),
 *   new SharedArrayBuffer(4 * RING_CONTROL_SLOTS),
 *   { records: 4, width: 2 },
 * );
 * ring.write([1, 2]);
 * assert.ok(ring.read()?.[1] === 2);
 * ```
 */
export class RecordRing {
  #data: Float64Array;
  #control: Int32Array;
  #records: number;
  #width: number;

  constructor(
    data: SharedArrayBuffer,
    control: SharedArrayBuffer,
    options: { records: number; width: number },
  ) {
    for (const key of ["records", "width"] as const) {
      const v = options[key];
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`RecordRing ${key} must be an integer >= 1, received ${v}`);
      }
    }
    this.#records = options.records;
    this.#width = options.width;
    this.#data = new Float64Array(data, 0, options.records * options.width);
    this.#control = new Int32Array(control, 0, RING_CONTROL_SLOTS);
  }

  /** Bytes of the data buffer for a ring of this size. */
  static bytes(records: number, width: number): number {
    return records * width * Float64Array.BYTES_PER_ELEMENT;
  }

  /**
   * Appends a record (shorter records are zero-padded). Blocks while the ring
   * is full; `isAborted` is polled so a stopped group never waits forever.
   */
  write(
    record: ArrayLike<number>,
    isAborted: () => boolean = () => false,
  ): void {
    const c = this.#control;
    const written = Atomics.load(c, WRITTEN);
    let consumed = Atomics.load(c, CONSUMED);
    while (written - consumed >= this.#records) {
      if (isAborted()) return;
      Atomics.wait(c, CONSUMED, consumed, 100);
      consumed = Atomics.load(c, CONSUMED);
    }
    const at = (written % this.#records) * this.#width;
    this.#data.fill(0, at, at + this.#width);
    for (let i = 0; i < Math.min(record.length, this.#width); i++) {
      this.#data[at + i] = record[i]!;
    }
    Atomics.store(c, WRITTEN, written + 1);
    Atomics.notify(c, WRITTEN);
  }

  /** Takes the next record, or `undefined` when none is waiting. */
  read(): Float64Array | undefined {
    const c = this.#control;
    const consumed = Atomics.load(c, CONSUMED);
    if (Atomics.load(c, WRITTEN) === consumed) return undefined;
    const at = (consumed % this.#records) * this.#width;
    const record = this.#data.slice(at, at + this.#width);
    Atomics.store(c, CONSUMED, consumed + 1);
    Atomics.notify(c, CONSUMED);
    return record;
  }

  /** Marks every record read so far as handled (their callbacks have run). */
  ack(): void {
    Atomics.store(this.#control, HANDLED, Atomics.load(this.#control, CONSUMED));
    Atomics.notify(this.#control, HANDLED);
  }

  /**
   * Producer side: blocks until every record written so far is handled.
   * `isAborted` is polled so a stopped group never waits forever.
   */
  waitHandled(isAborted: () => boolean = () => false): void {
    const c = this.#control;
    const target = Atomics.load(c, WRITTEN);
    let handled = Atomics.load(c, HANDLED);
    while (handled < target) {
      if (isAborted()) return;
      Atomics.wait(c, HANDLED, handled, 100);
      handled = Atomics.load(c, HANDLED);
    }
  }

  /** Resolves when a record may be waiting, or after `timeoutMs`. Non-blocking. */
  async waitForRecord(timeoutMs: number): Promise<void> {
    const c = this.#control;
    const consumed = Atomics.load(c, CONSUMED);
    const result = Atomics.waitAsync(c, WRITTEN, consumed, timeoutMs);
    if (result.async) await result.value;
  }

  /** Resets both counters (between runs, when no producer is active). */
  reset(): void {
    Atomics.store(this.#control, WRITTEN, 0);
    Atomics.store(this.#control, CONSUMED, 0);
    Atomics.store(this.#control, HANDLED, 0);
  }
}
