/**
 * A single-entry mailbox in shared memory through which one worker hands a
 * gradient to the parameter server, with no message and no copy beyond the
 * write itself.
 *
 * Layout: an Int32 header (32 bytes)
 * `[state, base, batch, samples, ticket, leave, 0, 0]` followed by `length`
 * floats of payload. `state` is `EMPTY` (the worker may write) or `FULL` (the
 * server may read). The worker fills the payload and the header fields, then
 * stores `FULL`; the server reads them, then stores `EMPTY` and notifies. So
 * each side only touches the payload while it owns the slot. `leave` is set by
 * the server to ask the worker to stop after its current step.
 *
 * @module
 */

const STATE = 0;
const BASE = 1;
const BATCH = 2;
const SAMPLES = 3;
const TICKET = 4;
const LEAVE = 5;
const HEADER_INTS = 8;
const HEADER_BYTES = HEADER_INTS * Int32Array.BYTES_PER_ELEMENT;

/** `state` value: the worker may write. */
export const SLOT_EMPTY = 0;
/** `state` value: a gradient waits for the server. */
export const SLOT_FULL = 1;

/** What a worker records with a gradient. */
export interface SlotInfo {
  /** Version of the weights the gradient was computed on. */
  base: number;
  /** Index of the batch in the run's batch stream. */
  batch: number;
  /** Samples in the batch. */
  samples: number;
  /** Arrival ticket: the server applies simultaneous gradients in ticket order. */
  ticket: number;
}

/**
 * Either side of one gradient slot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GradientSlot } from "./gradient_slot.ts";
 * const shared = new SharedArrayBuffer(GradientSlot.bytes(2));
 * const worker = new GradientSlot(shared, 2);
 * const server = new GradientSlot(shared, 2);
 * worker.payload.set([0.5, -0.5]);
 * worker.push({ base: 3, batch: 7, samples: 32, ticket: 0 });
 * assert.ok(server.full && server.info().base === 3);
 * server.release();
 * assert.ok(worker.waitEmpty(() => false));
 * ```
 */
export class GradientSlot {
  /** The gradient (and whatever else the layout puts after it). */
  readonly payload: Float32Array;
  #header: Int32Array;

  /** Bytes of the shared buffer for a payload of `length` floats. */
  static bytes(length: number): number {
    return HEADER_BYTES + length * Float32Array.BYTES_PER_ELEMENT;
  }

  /** Wraps `buffer`, which must hold at least `bytes(length)` bytes. */
  constructor(buffer: SharedArrayBuffer, length: number) {
    const need = GradientSlot.bytes(length);
    if (buffer.byteLength < need) {
      throw new RangeError(
        `Gradient slot too small: expected ${need} bytes for ${length} floats, ` +
          `received ${buffer.byteLength}`,
      );
    }
    this.#header = new Int32Array(buffer, 0, HEADER_INTS);
    this.payload = new Float32Array(buffer, HEADER_BYTES, length);
  }

  /** Whether a gradient waits for the server. */
  get full(): boolean {
    return Atomics.load(this.#header, STATE) === SLOT_FULL;
  }

  /** Whether the server asked the worker to leave. */
  get leaving(): boolean {
    return Atomics.load(this.#header, LEAVE) !== 0;
  }

  /** Worker side: publishes the payload written so far with its header. */
  push(info: SlotInfo): void {
    const h = this.#header;
    Atomics.store(h, BASE, info.base);
    Atomics.store(h, BATCH, info.batch);
    Atomics.store(h, SAMPLES, info.samples);
    Atomics.store(h, TICKET, info.ticket);
    Atomics.store(h, STATE, SLOT_FULL);
  }

  /**
   * Worker side: blocks until the server has taken the last gradient.
   * `shouldStop` is polled every `pollMs`; returns false when it said stop
   * first. Never call it on the main thread.
   */
  waitEmpty(shouldStop: () => boolean, pollMs = 50): boolean {
    const h = this.#header;
    while (Atomics.load(h, STATE) !== SLOT_EMPTY) {
      if (shouldStop()) return false;
      Atomics.wait(h, STATE, SLOT_FULL, pollMs);
    }
    return true;
  }

  /** Server side: the header of the waiting gradient. */
  info(): SlotInfo {
    const h = this.#header;
    return {
      base: Atomics.load(h, BASE),
      batch: Atomics.load(h, BATCH),
      samples: Atomics.load(h, SAMPLES),
      ticket: Atomics.load(h, TICKET),
    };
  }

  /** Server side: hands the slot back to the worker and wakes it. */
  release(): void {
    Atomics.store(this.#header, STATE, SLOT_EMPTY);
    Atomics.notify(this.#header, STATE);
  }

  /** Server side: asks the worker to stop after its current step. */
  requestLeave(): void {
    Atomics.store(this.#header, LEAVE, 1);
    Atomics.notify(this.#header, STATE);
  }
}
