/**
 * The binary frames of the edge-worker protocol: an assignment (server to
 * worker: weights and the batch's rows) and a gradient (worker to server).
 * Every other message is small JSON (see `messages.ts`).
 *
 * Layout, little-endian (protocol 3):
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
 * | 16..20 | k: sections in the frame (1 to `MAX_FRAME_SECTIONS`) |
 * | 20..24 | zero |
 * | 24..24+4k | values in each section |
 * | from 24+4k, padded to 8 bytes | section 0 in its dtype, then the others in float32, each padded to 8 bytes |
 *
 * Every section starts 8-aligned in the frame: V8 copies between a shared
 * and a plain buffer (weights, gradients and dataset rows to and from shared
 * memory) 6-8x slower when the two addresses differ modulo 8.
 *
 * Assignment: section 0 the weights, then one section of rows per model
 * input (`model.inputs` order), one per model output (`model.outputs`
 * order), and one of per-sample loss weights (from `classWeight`) per
 * weighted output (the welcome's `weightedOutputs`). Gradient: section 0 the
 * gradients and non-trainable values, section 1 the loss and metrics.
 * Float16 applies to section 0 only (weights and gradients), so data, loss
 * and metrics keep full precision.
 *
 * Protocol 1 (until dtrain's multi-input edge workers) had exactly three
 * sections (weights, x, y) and a 32-byte header; each side refuses the
 * other's frames and hello by version, with an error naming both.
 *
 * @module
 */

/** Version of the edge protocol (frames and messages). */
export const EDGE_PROTOCOL = 3;
/** Bytes before the section lengths (a frame's header is this plus 4 per section). */
export const FRAME_HEADER_BYTES = 24;
/** Most sections a frame may have. */
export const MAX_FRAME_SECTIONS = 1024;
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
  /**
   * Weights, then every input's, output's and sample-weight column's rows
   * (assignment); values, then loss and metrics (gradient).
   */
  sections: Float32Array[];
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

function pad8(bytes: number): number {
  return Math.ceil(bytes / 8) * 8;
}

/** Byte offset of each section in a frame, then the frame's size. */
function sectionOffsets(fp16: boolean, lengths: readonly number[]): number[] {
  const at = [pad8(FRAME_HEADER_BYTES + 4 * lengths.length)];
  lengths.forEach((n, i) => at.push(at[i]! + pad8(n * (i === 0 && fp16 ? 2 : 4))));
  return at;
}

/** Bytes of a frame whose sections have these lengths (values each). */
export function frameBytes(fp16: boolean, lengths: readonly number[]): number {
  return sectionOffsets(fp16, lengths).at(-1)!;
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
 *   sections: [new Float32Array([0.5, -1]), new Float32Array([0.25])],
 * });
 * const frame = decodeFrame(bytes, { kind: "gradient", maxBytes: 1024, sections: 2 });
 * assert.deepEqual([...frame.sections[0]!], [0.5, -1]);
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  const sections = frame.sections;
  if (sections.length < 1 || sections.length > MAX_FRAME_SECTIONS) {
    throw new RangeError(
      `A frame has 1 to ${MAX_FRAME_SECTIONS} sections, received ${sections.length}`,
    );
  }
  const offsets = sectionOffsets(frame.fp16, sections.map((s) => s.length));
  const bytes = new Uint8Array(offsets.at(-1)!);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, MAGIC);
  view.setUint8(1, EDGE_PROTOCOL);
  view.setUint8(2, FRAME_KINDS[frame.kind]);
  view.setUint8(3, frame.fp16 ? 1 : 0);
  view.setUint32(4, frame.batch, true);
  view.setUint32(8, frame.version, true);
  view.setUint32(12, frame.samples, true);
  view.setUint32(16, sections.length, true);
  sections.forEach((s, i) => view.setUint32(FRAME_HEADER_BYTES + 4 * i, s.length, true));
  sections.forEach((s, i) => {
    if (i === 0 && frame.fp16) new Float16Array(bytes.buffer, offsets[i]!, s.length).set(s);
    else new Float32Array(bytes.buffer, offsets[i]!, s.length).set(s);
  });
  return bytes;
}

/**
 * Decodes a frame of kind `expect.kind` with `expect.sections` sections,
 * checking every size against the bytes received; throws
 * {@linkcode FrameError} otherwise. Sections are float32 views of `data`
 * (section 0 a widened copy when it came as float16; all copies when `data`
 * is not 8-byte aligned).
 */
export function decodeFrame(
  data: Uint8Array,
  expect: { kind: FrameKind; maxBytes: number; sections: number },
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
  if (view.getUint8(0) !== MAGIC) {
    throw new FrameError(
      "protocol",
      `not an edge protocol frame (first byte ${view.getUint8(0)}, expected ${MAGIC})`,
    );
  }
  const version = view.getUint8(1);
  if (version !== EDGE_PROTOCOL) {
    throw new FrameError(
      "protocol",
      `an edge protocol ${version} frame, this side speaks protocol ${EDGE_PROTOCOL}: run the ` +
        "same dtrain release on the server and its workers",
    );
  }
  const kind = view.getUint8(2);
  if (kind !== FRAME_KINDS[expect.kind]) {
    throw new FrameError("protocol", `expected a ${expect.kind} frame, received kind ${kind}`);
  }
  const dtype = view.getUint8(3);
  if (dtype !== 0 && dtype !== 1) throw new FrameError("protocol", `unknown dtype ${dtype}`);
  const fp16 = dtype === 1;
  const k = view.getUint32(16, true);
  if (k !== expect.sections) {
    throw new FrameError(
      "shape",
      `${expect.kind} frame of ${k} sections, expected ${expect.sections}`,
    );
  }
  if (data.byteLength < FRAME_HEADER_BYTES + 4 * k) {
    throw new FrameError(
      "shape",
      `frame of ${data.byteLength} bytes, shorter than its header of ${k} sections`,
    );
  }
  const lengths = Array.from(
    { length: k },
    (_, i) => view.getUint32(FRAME_HEADER_BYTES + 4 * i, true),
  );
  const offsets = sectionOffsets(fp16, lengths);
  const need = offsets.at(-1)!;
  if (need !== data.byteLength) {
    throw new FrameError(
      "shape",
      `frame of ${data.byteLength} bytes, its header says ${need} (${lengths.join(", ")} values)`,
    );
  }
  // Float views need 4-byte alignment (and copies out of them 8): a frame at
  // another offset is copied first.
  let aligned = data;
  if (data.byteOffset % 8 !== 0) {
    aligned = new Uint8Array(data.byteLength);
    aligned.set(data);
  }
  const sections = lengths.map((n, i) => {
    const at = aligned.byteOffset + offsets[i]!;
    return i === 0 && fp16
      ? Float32Array.from(new Float16Array(aligned.buffer, at, n))
      : new Float32Array(aligned.buffer, at, n);
  });
  return {
    kind: expect.kind,
    fp16,
    batch: view.getUint32(4, true),
    version: view.getUint32(8, true),
    samples: view.getUint32(12, true),
    sections,
  };
}
