/**
 * The binary frames of the edge-worker protocol: an assignment (server to
 * worker: weights and the batch's rows) and a gradient (worker to server).
 * Every other message is small JSON (see `messages.ts`).
 *
 * Layout, little-endian:
 *
 * | bytes | field |
 * |---|---|
 * | 0 | `0x44` ("D") |
 * | 1 | protocol version (`EDGE_PROTOCOL`) |
 * | 2 | kind: 1 assignment, 2 gradient |
 * | 3 | dtype of section 0: 0 float32, 1 float16 |
 * | 4..8 | batch (index in the run's batch stream) |
 * | 8..12 | weights version (assignment) or base version (gradient) |
 * | 12..16 | samples in the batch |
 * | 16..28 | n0, n1, n2: values in sections 0, 1, 2 |
 * | 28..32 | zero |
 * | 32.. | section 0 in its dtype (padded to 4 bytes), sections 1 and 2 in float32 |
 *
 * Assignment: section 0 the weights, 1 the x rows, 2 the y rows. Gradient:
 * section 0 the gradients and non-trainable values, 1 the loss and metrics,
 * 2 empty. Float16 applies to section 0 only (weights and gradients), so
 * data, loss and metrics keep full precision.
 *
 * @module
 */

/** Version of the edge protocol (frames and messages). */
export const EDGE_PROTOCOL = 1;
/** Bytes before the first section. */
export const FRAME_HEADER_BYTES = 32;
const MAGIC = 0x44;

/** Frame kinds. */
export const FRAME_KINDS = { assignment: 1, gradient: 2 } as const;
/** A frame kind's name. */
export type FrameKind = keyof typeof FRAME_KINDS;

/** One decoded (or to be encoded) frame. */
export interface Frame {
  /** Assignment or gradient. */
  kind: FrameKind;
  /** Wire type of section 0. */
  fp16: boolean;
  /** Index of the batch in the run's batch stream. */
  batch: number;
  /** The weights' version (assignment) or the version computed on (gradient). */
  version: number;
  /** Samples in the batch. */
  samples: number;
  /** Weights, x rows, y rows (assignment); values, loss and metrics, empty (gradient). */
  sections: [Float32Array, Float32Array, Float32Array];
}

/** A frame broke the format; `reason` is `shape` (sizes) or `protocol` (anything else). */
export class FrameError extends Error {
  /** `shape` or `protocol`. */
  readonly reason: "shape" | "protocol";
  /** `message` names what is wrong with the frame. */
  constructor(reason: "shape" | "protocol", message: string) {
    super(message);
    this.name = "FrameError";
    this.reason = reason;
  }
}

function pad4(bytes: number): number {
  return (bytes + 3) & ~3;
}

/** Bytes of a frame with these section sizes. */
export function frameBytes(fp16: boolean, n0: number, n1: number, n2: number): number {
  return FRAME_HEADER_BYTES + pad4(n0 * (fp16 ? 2 : 4)) + 4 * (n1 + n2);
}

/**
 * Encodes a frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeFrame, encodeFrame } from "./frames.ts";
 * const bytes = encodeFrame({
 *   kind: "gradient", fp16: true, batch: 3, version: 7, samples: 32,
 *   sections: [new Float32Array([0.5, -1]), new Float32Array([0.25]), new Float32Array(0)],
 * });
 * const frame = decodeFrame(bytes, { kind: "gradient", maxBytes: 1024 });
 * assert.deepEqual([...frame.sections[0]], [0.5, -1]);
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  const [s0, s1, s2] = frame.sections;
  const bytes = new Uint8Array(frameBytes(frame.fp16, s0.length, s1.length, s2.length));
  const view = new DataView(bytes.buffer);
  view.setUint8(0, MAGIC);
  view.setUint8(1, EDGE_PROTOCOL);
  view.setUint8(2, FRAME_KINDS[frame.kind]);
  view.setUint8(3, frame.fp16 ? 1 : 0);
  view.setUint32(4, frame.batch, true);
  view.setUint32(8, frame.version, true);
  view.setUint32(12, frame.samples, true);
  view.setUint32(16, s0.length, true);
  view.setUint32(20, s1.length, true);
  view.setUint32(24, s2.length, true);
  let at = FRAME_HEADER_BYTES;
  if (frame.fp16) {
    new Float16Array(bytes.buffer, at, s0.length).set(s0);
    at += pad4(s0.length * 2);
  } else {
    new Float32Array(bytes.buffer, at, s0.length).set(s0);
    at += s0.length * 4;
  }
  new Float32Array(bytes.buffer, at, s1.length).set(s1);
  at += s1.length * 4;
  new Float32Array(bytes.buffer, at, s2.length).set(s2);
  return bytes;
}

/**
 * Decodes a frame of kind `expect.kind`, checking every size against the
 * bytes received; throws {@linkcode FrameError} otherwise. Sections are
 * float32 views of `data` (section 0 a widened copy when it came as
 * float16; all copies when `data` is not 4-byte aligned).
 */
export function decodeFrame(
  data: Uint8Array,
  expect: { kind: FrameKind; maxBytes: number },
): Frame {
  if (data.byteLength > expect.maxBytes) {
    throw new FrameError(
      "shape",
      `frame of ${data.byteLength} bytes, larger than the ${expect.maxBytes} allowed`,
    );
  }
  if (data.byteLength < FRAME_HEADER_BYTES) {
    throw new FrameError("shape", `frame of ${data.byteLength} bytes, shorter than its header`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint8(0) !== MAGIC || view.getUint8(1) !== EDGE_PROTOCOL) {
    throw new FrameError(
      "protocol",
      `not an edge protocol ${EDGE_PROTOCOL} frame (first bytes ${view.getUint8(0)}, ` +
        `${view.getUint8(1)})`,
    );
  }
  const kind = view.getUint8(2);
  if (kind !== FRAME_KINDS[expect.kind]) {
    throw new FrameError("protocol", `expected a ${expect.kind} frame, received kind ${kind}`);
  }
  const dtype = view.getUint8(3);
  if (dtype !== 0 && dtype !== 1) throw new FrameError("protocol", `unknown dtype ${dtype}`);
  const fp16 = dtype === 1;
  const n0 = view.getUint32(16, true), n1 = view.getUint32(20, true), n2 = view.getUint32(24, true);
  const need = frameBytes(fp16, n0, n1, n2);
  if (need !== data.byteLength) {
    throw new FrameError(
      "shape",
      `frame of ${data.byteLength} bytes, its header says ${need} (${n0}, ${n1}, ${n2} values)`,
    );
  }
  // Float views need 4-byte alignment: a frame at another offset is copied first.
  let aligned = data;
  if (data.byteOffset % 4 !== 0) {
    aligned = new Uint8Array(data.byteLength);
    aligned.set(data);
  }
  const base = aligned.byteOffset;
  let at = base + FRAME_HEADER_BYTES;
  let s0: Float32Array;
  if (fp16) {
    s0 = Float32Array.from(new Float16Array(aligned.buffer, at, n0));
    at += pad4(n0 * 2);
  } else {
    s0 = new Float32Array(aligned.buffer, at, n0);
    at += n0 * 4;
  }
  const s1 = new Float32Array(aligned.buffer, at, n1);
  at += n1 * 4;
  const s2 = new Float32Array(aligned.buffer, at, n2);
  return {
    kind: expect.kind,
    fp16,
    batch: view.getUint32(4, true),
    version: view.getUint32(8, true),
    samples: view.getUint32(12, true),
    sections: [s0, s1, s2],
  };
}
