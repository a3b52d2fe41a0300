// Private: the frame-level half of a session that both server transports
// (WebSocket and request/response) share: an assignment as a frame, and a
// received gradient frame checked and handed to the session.
import type {
  RemoteAssignment,
  RemoteSession,
  RemoteWelcome,
} from "../strategy/ps/remote_workers.ts";
import { decodeFrame, encodeFrame, frameBytes, FrameError } from "./frames.ts";

/** An assignment as a binary frame. */
export function assignmentFrame(a: RemoteAssignment, fp16: boolean): Uint8Array {
  return encodeFrame({
    kind: "assignment",
    fp16,
    batch: a.batch,
    version: a.version,
    samples: a.samples,
    sections: [a.weights, a.x, a.y],
  });
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
      maxBytes: frameBytes(fp16, welcome.weightCount, 1 + welcome.metricCount, 0),
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
    values: frame.sections[0],
    logs: frame.sections[1],
  });
}
