// The edge protocol's frames and control messages: what is accepted, and
// that everything else is refused with a reason.
import assert from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  FRAME_HEADER_BYTES,
  frameBytes,
  FrameError,
  MessageError,
  parseServerMessage,
  parseWorkerMessage,
} from "../../src/edge/mod.ts";

const frame = (fp16: boolean) => ({
  kind: "assignment" as const,
  fp16,
  batch: 12,
  version: 34,
  samples: 2,
  sections: [
    new Float32Array([0.5, -1.25, 3]),
    new Float32Array([1, 2, 3, 4]),
    new Float32Array([0, 1]),
  ] as [Float32Array, Float32Array, Float32Array],
});

Deno.test("frames round-trip in float32 and float16, aligned or not", () => {
  for (const fp16 of [false, true]) {
    const bytes = encodeFrame(frame(fp16));
    assert.equal(bytes.byteLength, frameBytes(fp16, 3, 4, 2));
    // A frame at an odd offset inside a larger buffer decodes the same.
    const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
    shifted.set(bytes);
    for (const data of [bytes, shifted]) {
      const f = decodeFrame(data, { kind: "assignment", maxBytes: 1 << 20 });
      assert.deepEqual(
        [f.batch, f.version, f.samples, f.fp16],
        [12, 34, 2, fp16],
      );
      assert.deepEqual([...f.sections[0]], [0.5, -1.25, 3]); // exact in float16 too
      assert.deepEqual([...f.sections[1]], [1, 2, 3, 4]);
      assert.deepEqual([...f.sections[2]], [0, 1]);
    }
  }
  assert.equal(frameBytes(true, 3, 0, 0), FRAME_HEADER_BYTES + 8, "float16 padded to 4 bytes");
});

Deno.test("malformed frames are refused with their reason", () => {
  const good = encodeFrame(frame(false));
  const cases: [Uint8Array, "shape" | "protocol", RegExp][] = [
    [good.slice(0, 20), "shape", /shorter than its header/],
    [good.slice(0, good.byteLength - 4), "shape", /its header says/],
    [new Uint8Array([...good, 0, 0, 0, 0]), "shape", /its header says/],
    [Object.assign(good.slice(), { 0: 0x45 }), "protocol", /not an edge protocol 1 frame/],
    [Object.assign(good.slice(), { 1: 9 }), "protocol", /not an edge protocol 1 frame/],
    [Object.assign(good.slice(), { 3: 7 }), "protocol", /unknown dtype 7/],
  ];
  for (const [bytes, reason, message] of cases) {
    assert.throws(
      () => decodeFrame(bytes, { kind: "assignment", maxBytes: 1 << 20 }),
      (e: unknown) => e instanceof FrameError && e.reason === reason && message.test(e.message),
    );
  }
  assert.throws(
    () => decodeFrame(good, { kind: "gradient", maxBytes: 1 << 20 }),
    /expected a gradient frame, received kind 1/,
  );
  assert.throws(
    () => decodeFrame(good, { kind: "assignment", maxBytes: 64 }),
    /larger than the 64 allowed/,
  );
});

Deno.test("control messages are validated on arrival", () => {
  assert.deepEqual(parseWorkerMessage('{"type":"bye","extra":1}'), { type: "bye" });
  assert.equal(parseWorkerMessage('{"type":"hello","protocol":1,"fp16":true}').type, "hello");
  for (
    const [text, message] of [
      ["not json", /not JSON/],
      ["[1]", /not a JSON object/],
      ['{"type":"hello","protocol":2}', /hello.protocol must be 1/],
      ['{"type":"hello","protocol":1,"fp16":"yes"}', /hello.fp16 must be a boolean/],
      ['{"type":"ready","backend":"cpu"}', /ready needs backend/],
      ['{"type":"gradient"}', /unknown control message type "gradient"/],
      [`{"type":"hello","protocol":1,"name":"${"x".repeat(300)}"}`, /longer than 200/],
      ["x".repeat(70_000), /characters \(most 65536\)/],
    ] as [string, RegExp][]
  ) {
    assert.throws(
      () => parseWorkerMessage(text),
      (e: unknown) => e instanceof MessageError && message.test(e.message),
    );
  }
  assert.throws(() => parseServerMessage('{"type":"welcome","protocol":1}'), /welcome.worker/);
  assert.deepEqual(parseServerMessage('{"type":"end","reason":"done"}'), {
    type: "end",
    reason: "done",
  });
});
