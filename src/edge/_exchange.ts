// Private: the frame-level half of a session. Server side (both transports,
// WebSocket and request/response): an assignment as a frame, and a received
// gradient frame checked and handed to the session. Worker side: an
// assignment frame checked against the welcome and read as rows.
import type {
  RemoteAssignment,
  RemoteSession,
  RemoteWelcome,
} from "../strategy/ps/remote_workers.ts";
import type { RowBatch } from "../strategy/ps/gradient_computer.ts";
import { decodeFrame, encodeFrame, frameBytes, FrameError } from "./frames.ts";

/** An assignment as a binary frame: weights, every input, every output, the sample weights. */
export function assignmentFrame(a: RemoteAssignment, fp16: boolean): Uint8Array {
  const weighted = (a.sampleWeights ?? []).filter((w): w is Float32Array => w !== null);
  return encodeFrame({
    kind: "assignment",
    fp16,
    batch: a.batch,
    version: a.version,
    samples: a.samples,
    sections: [a.weights, ...a.inputs, ...a.outputs, ...weighted],
  });
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The values of each section of a full batch of `welcome`'s assignments, in frame order. */
function fullLengths(welcome: RemoteWelcome): number[] {
  const b = welcome.batchSize;
  const weighted = (welcome.weightedOutputs ?? []).filter((w) => w).length;
  return [
    welcome.weightCount,
    ...welcome.inputShapes.map((s) => b * product(s)),
    ...welcome.outputShapes.map((s) => b * product(s)),
    ...Array<number>(weighted).fill(b),
  ];
}

/** An assignment as the worker reads it: the weights and the batch's rows. */
export interface ReadAssignment extends RowBatch {
  /** Index in the run's batch stream. */
  batch: number;
  /** The weights' version. */
  version: number;
  /** The weights to compute on. */
  weights: Float32Array;
}

/**
 * Decodes an assignment frame of the run `welcome` describes and checks
 * every section against it: one per input and output (and per weighted
 * output), each of `samples` rows of its shape. Throws
 * {@linkcode FrameError} otherwise.
 */
export function readAssignment(bytes: Uint8Array, welcome: RemoteWelcome): ReadAssignment {
  const full = fullLengths(welcome);
  const frame = decodeFrame(bytes, {
    kind: "assignment",
    maxBytes: frameBytes(false, full),
    sections: full.length,
  });
  const n = frame.samples;
  if (n < 1 || n > welcome.batchSize) {
    throw new FrameError(
      "shape",
      `assignment of ${n} samples, expected 1 to ${welcome.batchSize} (batchSize)`,
    );
  }
  const s = frame.sections;
  const expect = (i: number, what: string, width: number | null) => {
    const want = width === null ? welcome.weightCount : n * width;
    if (s[i]!.length !== want) {
      throw new FrameError(
        "shape",
        `assignment's ${what} has ${s[i]!.length} values, expected ${want}` +
          (width === null ? "" : ` (${n} samples of ${width})`),
      );
    }
    return s[i]!;
  };
  const weights = expect(0, "weights", null);
  const ins = welcome.inputShapes.length;
  const outs = welcome.outputShapes.length;
  const inputs = welcome.inputShapes.map((shape, i) => expect(1 + i, `input ${i}`, product(shape)));
  const outputs = welcome.outputShapes.map((shape, i) =>
    expect(1 + ins + i, `output ${i}`, product(shape))
  );
  let next = 1 + ins + outs;
  const sampleWeights =
    welcome.weightedOutputs?.map((weighted, i) =>
      weighted ? expect(next++, `sample weights of output ${i}`, 1) : null
    ) ?? null;
  return {
    batch: frame.batch,
    version: frame.version,
    samples: n,
    weights,
    inputs,
    outputs,
    inputShapes: welcome.inputShapes,
    outputShapes: welcome.outputShapes,
    sampleWeights,
    lossWeights: welcome.lossWeights,
  };
}

/**
 * Decodes a gradient frame and delivers it. A frame that breaks the format
 * is refused through the session (counted, session ended); throws the
 * refusal either way.
 */
export function deliverFrame(
  session: RemoteSession,
  bytes: Uint8Array,
  welcome: RemoteWelcome,
  fp16: boolean,
): void {
  let frame;
  try {
    frame = decodeFrame(bytes, {
      kind: "gradient",
      maxBytes: frameBytes(fp16, [welcome.weightCount, 1 + welcome.metricCount]),
      sections: 2,
    });
  } catch (e) {
    if (e instanceof FrameError) throw session.refuse(e.reason, e.message);
    throw e;
  }
  if (frame.fp16 !== fp16) {
    throw session.refuse(
      "protocol",
      `sent ${frame.fp16 ? "float16" : "float32"} values, agreed ${fp16 ? "float16" : "float32"}`,
    );
  }
  session.deliver({
    batch: frame.batch,
    base: frame.version,
    samples: frame.samples,
    values: frame.sections[0]!,
    logs: frame.sections[1]!,
  });
}
