/**
 * The ring all-reduce (sum) across nodes: reduce-scatter then all-gather over
 * a ring where each node sends only to rank+1 and receives only from rank-1.
 * The vector is cut into `nodes` segments, each segment into sub-chunks of at
 * most `chunkBytes` on the wire, and a sender loop and a receiver loop run
 * concurrently, so chunk c of a step is forwarded while chunk c+1 is still
 * arriving. Node r owns segment r: it adds the last partial sum, and the
 * all-gather copies its bytes to everyone, so every node ends bit-identical.
 *
 * This file holds the algorithm over a small {@linkcode Ring} interface
 * (sockets come from `ClusterGroup`, tests can plug in memory).
 *
 * @module
 */
import { FrameError } from "./errors.ts";

/** Wire encoding of the values. */
export type Compression = "none" | "fp16";

/** Options of one all-reduce call. */
export interface AllReduceOptions {
  /**
   * `"fp16"` sends IEEE half floats (Horovod's `Compression.fp16`): half the
   * bytes, but inexact: partial sums are rounded to fp16 at every hop and the
   * final sum is rounded to fp16 (relative error about 2^-11 per hop; values
   * beyond 65504 become Infinity). Every node still ends bit-identical.
   * @default "none"
   */
  compression?: Compression;
  /**
   * Longest wait for the next chunk from rank-1 (a node that is slow to call
   * `allReduce` counts); past it the call rejects with `ClusterTimeoutError`.
   * @default the group's collectiveTimeoutMs
   */
  timeoutMs?: number;
}

/** What one all-reduce call did. Loops overlap, so the ms fields can sum past `totalMs`. */
export interface AllReduceStats {
  /** Bytes written to rank+1, frame headers included. */
  bytesSent: number;
  /** Bytes received from rank-1, frame headers included. */
  bytesReceived: number;
  /** Time in socket writes (backpressure from rank+1 shows here). */
  sendMs: number;
  /** Time waiting for chunks from rank-1. */
  recvMs: number;
  /** Time the sender waited for a chunk it must forward to be reduced. */
  waitMs: number;
  /** Time adding, encoding and decoding. */
  reduceMs: number;
  /** Wall time of the call. */
  totalMs: number;
}

/** The two ring neighbours as the algorithm sees them. */
export interface Ring {
  /** This node's rank. */
  readonly rank: number;
  /** Number of nodes in the ring. */
  readonly nodes: number;
  /** Wire bytes per frame besides the payload (for stats). */
  readonly frameOverhead: number;
  /** A writable payload buffer of `bytes` that {@linkcode Ring.send} can send without copying. */
  payload(bytes: number): Uint8Array;
  /** Sends a payload from {@linkcode Ring.payload} to rank+1. */
  send(payload: Uint8Array): Promise<void>;
  /** The next data payload from rank-1, waiting at most `timeoutMs`. */
  receive(timeoutMs: number): Promise<Uint8Array>;
  /** Optional: a payload from {@linkcode Ring.receive} the algorithm no longer reads. */
  release?(payload: Uint8Array): void;
  /** Called once when the call fails, so pending sends and receives reject. */
  fail(error: Error): void;
}

/** Bytes of the per-chunk header inside a data payload. */
/** All-zero {@linkcode AllReduceStats} (a call that moved nothing). */
export function noStats(): AllReduceStats {
  return {
    bytesSent: 0,
    bytesReceived: 0,
    sendMs: 0,
    recvMs: 0,
    waitMs: 0,
    reduceMs: 0,
    totalMs: 0,
  };
}

export const CHUNK_HEADER_BYTES = 16;

const CODES: Record<Compression, number> = { none: 0, fp16: 1 };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface Item {
  step: number;
  chunk: number;
  start: number;
  end: number;
}

/**
 * Floats that segment and chunk boundaries are multiples of (from the start of
 * the vector), so that a chunk's copy to or from an 8-aligned payload is
 * aligned too when the vector is: V8 copies between a shared and a plain
 * buffer 6-8x slower when the two addresses differ modulo 8.
 */
const ALIGN_FLOATS = 4;

/** Where segment `seg` of `nodes` starts (`length` for `seg === nodes`). */
function segmentStart(seg: number, nodes: number, length: number): number {
  if (seg >= nodes) return length;
  return Math.floor((seg * length) / (nodes * ALIGN_FLOATS)) * ALIGN_FLOATS;
}

/** Items (step, chunk) in order, for sending (`send`) or receiving. */
function plan(rank: number, nodes: number, length: number, chunkElems: number, send: boolean) {
  const items: Item[] = [];
  const firstOfStep: number[] = [];
  for (let step = 0; step < 2 * (nodes - 1); step++) {
    const gather = step >= nodes - 1;
    const k = gather ? step - (nodes - 1) : step;
    // reduce: send r-k-1, receive r-k-2; gather: send r-k, receive r-k-1.
    const seg = ((rank - k - (gather ? 0 : 1) - (send ? 0 : 1)) % nodes + 2 * nodes) % nodes;
    const lo = segmentStart(seg, nodes, length);
    const hi = segmentStart(seg + 1, nodes, length);
    firstOfStep.push(items.length);
    for (let start = lo, chunk = 0; start < hi; start += chunkElems, chunk++) {
      items.push({ step, chunk, start, end: Math.min(hi, start + chunkElems) });
    }
  }
  return { items, firstOfStep };
}

function checkOptions(options: AllReduceOptions & { chunkBytes: number; timeoutMs: number }) {
  const { compression = "none", chunkBytes, timeoutMs } = options;
  if (compression !== "none" && compression !== "fp16") {
    throw new TypeError(
      `compression must be "none" or "fp16", received ${JSON.stringify(compression)}`,
    );
  }
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4) {
    throw new RangeError(`chunkBytes must be an integer >= 4, received ${chunkBytes}`);
  }
  if (!(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
    throw new RangeError(`timeoutMs must be in 1..2147483647, received ${timeoutMs}`);
  }
  return compression;
}

/**
 * Sums `data` in place across the ring and returns what the call did.
 * `nodes === 1` or an empty vector is a no-op (no rounding either). Every node
 * must call it with the same length, compression and `sequence`; a difference
 * is detected from the chunk headers and rejects with `FrameError`.
 *
 * @param ring The neighbours (see {@linkcode Ring}).
 * @param data The vector to sum; overwritten with the sum.
 * @param options `chunkBytes` (wire bytes per chunk), `timeoutMs`, `sequence` (the call number).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ringAllReduce, type Ring } from "./ring_all_reduce.ts";
 * // Two nodes in memory: each one's "send" is the other's "receive".
 * const boxes: Uint8Array[][] = [[], []];
 * const wake: (() => void)[] = [() => {}, () => {}];
 * const ring = (rank: number): Ring => ({
 *   rank, nodes: 2, frameOverhead: 0,
 *   payload: (n) => new Uint8Array(n),
 *   send: (p) => { boxes[1 - rank]!.push(p); wake[1 - rank]!(); return Promise.resolve(); },
 *   receive: async () => {
 *     while (boxes[rank]!.length === 0) await new Promise<void>((r) => wake[rank] = r);
 *     return boxes[rank]!.shift()!;
 *   },
 *   fail: () => {},
 * });
 * const a = new Float32Array([1, 2, 3]);
 * const b = new Float32Array([10, 20, 30]);
 * const opts = { chunkBytes: 1 << 16, timeoutMs: 1000 };
 * await Promise.all([ringAllReduce(ring(0), a, opts), ringAllReduce(ring(1), b, opts)]);
 * assert.deepEqual([...a], [11, 22, 33]);
 * assert.deepEqual([...b], [11, 22, 33]);
 * ```
 */
export async function ringAllReduce(
  ring: Ring,
  data: Float32Array,
  options: AllReduceOptions & { chunkBytes: number; timeoutMs: number; sequence?: number },
): Promise<AllReduceStats> {
  if (!(data instanceof Float32Array)) {
    throw new TypeError(
      `data must be a Float32Array, received ${Object.prototype.toString.call(data)}`,
    );
  }
  if (data.length > 0xffffffff) {
    throw new RangeError(`data must hold at most 2^32-1 floats, received ${data.length}`);
  }
  const compression = checkOptions(options);
  if (!LITTLE_ENDIAN) throw new RangeError("ringAllReduce needs a little-endian host");
  const t0 = performance.now();
  const stats = noStats();
  const { rank, nodes } = ring;
  const length = data.length;
  if (nodes === 1 || length === 0) return stats;
  const fp16 = compression === "fp16";
  const elemBytes = fp16 ? 2 : 4;
  const fits = Math.max(1, Math.floor((options.chunkBytes - CHUNK_HEADER_BYTES) / elemBytes));
  const chunkElems = fits >= ALIGN_FLOATS ? fits - (fits % ALIGN_FLOATS) : fits;
  const seq = (options.sequence ?? 0) >>> 0;
  const code = CODES[compression];
  const sends = plan(rank, nodes, length, chunkElems, true);
  const recvs = plan(rank, nodes, length, chunkElems, false);
  const ownerStep = nodes - 2; // the last reduce step completes segment `rank`
  const scratch16 = fp16 ? new Float16Array(chunkElems) : null;
  const scratch32 = fp16 ? new Float32Array(chunkElems) : null;

  let received = 0; // receive items done
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const fail = (e: Error) => {
    if (failure) return;
    failure = e;
    wake?.();
    ring.fail(e);
  };
  const until = async (n: number) => {
    while (received < n && !failure) await new Promise<void>((r) => wake = r);
    if (failure) throw failure;
  };

  const sender = async () => {
    let inFlight: Promise<void> = Promise.resolve();
    for (const item of sends.items) {
      if (item.step > 0) {
        // Forward what the previous step's same chunk produced.
        const dep = recvs.firstOfStep[item.step - 1]! + item.chunk + 1;
        if (received < dep) {
          const w = performance.now();
          await until(dep);
          stats.waitMs += performance.now() - w;
        }
      }
      if (failure) throw failure;
      const tr = performance.now();
      const n = item.end - item.start;
      const payload = ring.payload(CHUNK_HEADER_BYTES + n * elemBytes);
      const head = new DataView(payload.buffer, payload.byteOffset, CHUNK_HEADER_BYTES);
      head.setUint32(0, seq, true);
      head.setUint32(4, length, true);
      head.setUint8(8, code);
      head.setUint16(10, item.step, true);
      head.setUint32(12, item.chunk, true);
      const src = data.subarray(item.start, item.end);
      const body = payload.byteOffset + CHUNK_HEADER_BYTES;
      if (fp16) new Float16Array(payload.buffer, body, n).set(src);
      else new Float32Array(payload.buffer, body, n).set(src);
      stats.reduceMs += performance.now() - tr;
      const ts = performance.now();
      await inFlight; // one write in flight while the next chunk is encoded
      stats.sendMs += performance.now() - ts;
      inFlight = ring.send(payload);
      // The loop may stop (failure) before it awaits this write again: a rejection
      // must still be observed (an unhandled one kills the process), and is reported at once.
      inFlight.catch((e) => fail(e instanceof Error ? e : new Error(String(e))));
      stats.bytesSent += payload.byteLength + ring.frameOverhead;
    }
    const ts = performance.now();
    await inFlight;
    stats.sendMs += performance.now() - ts;
  };

  const receiver = async () => {
    for (const item of recvs.items) {
      const tw = performance.now();
      const payload = await ring.receive(options.timeoutMs);
      stats.recvMs += performance.now() - tw;
      if (failure) throw failure;
      const tr = performance.now();
      const n = item.end - item.start;
      const expected = CHUNK_HEADER_BYTES + n * elemBytes;
      const head = payload.byteLength >= CHUNK_HEADER_BYTES
        ? new DataView(payload.buffer, payload.byteOffset, CHUNK_HEADER_BYTES)
        : null;
      const got = head && {
        seq: head.getUint32(0, true),
        length: head.getUint32(4, true),
        code: head.getUint8(8),
        step: head.getUint16(10, true),
        chunk: head.getUint32(12, true),
      };
      if (
        !got || got.seq !== seq || got.length !== length || got.code !== code ||
        got.step !== item.step || got.chunk !== item.chunk || payload.byteLength !== expected
      ) {
        throw new FrameError(
          `All-reduce chunk from rank ${
            (rank + nodes - 1) % nodes
          } does not match: expected call ` +
            `${seq} of ${length} floats (${compression}), step ${item.step} chunk ${item.chunk}, ` +
            `${expected} bytes; received ` +
            (got
              ? `call ${got.seq} of ${got.length} floats (code ${got.code}), step ${got.step} ` +
                `chunk ${got.chunk}, ${payload.byteLength} bytes`
              : `${payload.byteLength} bytes`) +
            " (is every node calling allReduce alike?)",
        );
      }
      stats.bytesReceived += payload.byteLength + ring.frameOverhead;
      const dst = data.subarray(item.start, item.end);
      const off = payload.byteOffset + CHUNK_HEADER_BYTES;
      let src: Float32Array;
      if (fp16) {
        scratch32!.subarray(0, n).set(new Float16Array(payload.buffer, off, n));
        src = scratch32!.subarray(0, n);
      } else if (off % 4 === 0) {
        src = new Float32Array(payload.buffer, off, n);
      } else {
        src = new Float32Array(payload.slice(CHUNK_HEADER_BYTES).buffer, 0, n);
      }
      if (item.step < nodes - 1) {
        for (let i = 0; i < n; i++) dst[i] = src[i]! + dst[i]!;
        if (fp16 && item.step === ownerStep) {
          // The owner keeps what everyone else will decode: the fp16 rounding of its sum.
          const h = scratch16!.subarray(0, n);
          h.set(dst);
          dst.set(h);
        }
      } else {
        dst.set(src);
      }
      ring.release?.(payload);
      stats.reduceMs += performance.now() - tr;
      received++;
      wake?.();
    }
  };

  const guard = (p: Promise<void>) =>
    p.catch((e) => {
      fail(e instanceof Error ? e : new Error(String(e)));
    });
  await Promise.all([guard(sender()), guard(receiver())]);
  if (failure) throw failure;
  stats.totalMs = performance.now() - t0;
  return stats;
}
