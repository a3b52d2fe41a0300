/**
 * A versioned, double-buffered Float32 vector in shared memory with one
 * writer and any number of readers: the parameter server publishes its
 * weights here and every worker reads the latest version, never a torn copy.
 *
 * Layout: an Int32 header `[latest, seq0, version0, seq1, version1, 0, 0, 0]`
 * (32 bytes) followed by two slots of `length` floats. Version `v` is written
 * into slot `v % 2` under a seqlock: the writer makes the slot's `seq` odd,
 * copies the data, records the version, makes `seq` even again and only then
 * moves `latest`. A reader copies the slot `latest` points to and keeps the
 * copy only when `seq` was even and unchanged around it; otherwise it retries.
 * With two slots a reader is only retried when the writer publishes twice
 * while it copies. The writer never blocks, so it may be the main thread.
 *
 * @module
 */

const LATEST = 0;
const HEADER_INTS = 8;
const HEADER_BYTES = HEADER_INTS * Int32Array.BYTES_PER_ELEMENT;

/**
 * Floats from the first slot to the second: rounded up to a multiple of 4, so
 * both start 16-byte aligned (V8 copies between shared and plain buffers
 * 6-8x slower when the two addresses differ modulo 8).
 */
const stride = (length: number) => Math.ceil(length / 4) * 4;

function seqIndex(slot: number): number {
  return 1 + 2 * slot;
}

/**
 * One handle on a shared versioned vector. Create the buffer with
 * {@linkcode VersionedBuffer.bytes}, give every thread its own handle, let
 * exactly one of them call {@linkcode VersionedBuffer.publish}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VersionedBuffer } from "./versioned_buffer.ts";
 * const shared = new SharedArrayBuffer(VersionedBuffer.bytes(3));
 * const writer = new VersionedBuffer(shared, 3);
 * writer.publish((into) => into.set([1, 2, 3])); // version 0
 * writer.publish((into) => into.set([4, 5, 6])); // version 1
 * const reader = new VersionedBuffer(shared, 3);
 * const copy = new Float32Array(3);
 * assert.ok(reader.read(copy) === 1 && copy[2] === 6);
 * ```
 */
export class VersionedBuffer {
  /** Floats in the vector. */
  readonly length: number;
  #header: Int32Array;
  #slots: [Float32Array, Float32Array];
  #next = -1;

  /** Bytes of the shared buffer for a vector of `length` floats. */
  static bytes(length: number): number {
    return HEADER_BYTES + 2 * stride(length) * Float32Array.BYTES_PER_ELEMENT;
  }

  /** Wraps `buffer`, which must hold at least `bytes(length)` bytes. */
  constructor(buffer: SharedArrayBuffer, length: number) {
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(`length must be an integer >= 0, received ${length}`);
    }
    const need = VersionedBuffer.bytes(length);
    if (buffer.byteLength < need) {
      throw new RangeError(
        `Versioned buffer too small: expected ${need} bytes for ${length} floats, ` +
          `received ${buffer.byteLength}`,
      );
    }
    this.length = length;
    this.#header = new Int32Array(buffer, 0, HEADER_INTS);
    this.#slots = [
      new Float32Array(buffer, HEADER_BYTES, length),
      new Float32Array(buffer, HEADER_BYTES + stride(length) * 4, length),
    ];
  }

  /** The latest published version (0 before and after the first publish). */
  get version(): number {
    return Atomics.load(this.#header, LATEST);
  }

  /**
   * Publishes the next version: `write` fills the slot (every float), then
   * the version becomes visible to readers. The first publish through a
   * handle is version 0 (or one after the buffer's latest, when it already
   * holds versions); returns the version. Never blocks.
   */
  publish(write: (into: Float32Array) => void): number {
    const h = this.#header;
    if (this.#next < 0) {
      const seq0 = Atomics.load(h, seqIndex(0));
      this.#next = seq0 === 0 ? 0 : Atomics.load(h, LATEST) + 1;
    }
    const version = this.#next++;
    const slot = version % 2;
    const seq = seqIndex(slot);
    Atomics.add(h, seq, 1); // odd: slot being written
    write(this.#slots[slot]!);
    Atomics.store(h, seq + 1, version);
    Atomics.add(h, seq, 1); // even: slot stable
    Atomics.store(h, LATEST, version);
    Atomics.notify(h, seq);
    return version;
  }

  /**
   * Copies the latest complete version into `into` (at least `length`
   * floats) and returns its number. Retries while the writer is mid-copy;
   * `onRetry` is called on every retry (e.g. to keep a heartbeat alive).
   * Waits on the slot only off the main thread.
   */
  read(into: Float32Array, onRetry: () => void = () => {}): number {
    const h = this.#header;
    for (;;) {
      const slot = Atomics.load(h, LATEST) % 2;
      const seq = seqIndex(slot);
      const before = Atomics.load(h, seq);
      if (before === 0) {
        throw new RangeError("Nothing to read: no version has been published yet");
      }
      if ((before & 1) === 0) {
        into.set(this.#slots[slot]!);
        const version = Atomics.load(h, seq + 1);
        // Seq-cst loads order the copy before this check: an unchanged even
        // sequence means no write overlapped the copy.
        if (Atomics.load(h, seq) === before) return version;
      }
      onRetry();
    }
  }
}
