// The edge protocol's frames and control messages: what is accepted, and
// that everything else is refused with a reason.
import assert from "node:assert/strict";
import {
  decodeFrame,
  EDGE_PROTOCOL,
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
    new Float32Array([5, 6, 7, 8, 9, 10]),
    new Float32Array([0.5, 2]),
  ],
});
const ANY = { kind: "assignment" as const, maxBytes: 1 << 20, sections: 5 };

Deno.test("frames round-trip in float32 and float16, aligned or not", () => {
  for (const fp16 of [false, true]) {
    const bytes = encodeFrame(frame(fp16));
    assert.equal(bytes.byteLength, frameBytes(fp16, [3, 4, 2, 6, 2]));
    // A frame at an odd offset inside a larger buffer decodes the same.
    const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
    shifted.set(bytes);
    for (const data of [bytes, shifted]) {
      const f = decodeFrame(data, ANY);
      assert.deepEqual(
        [f.batch, f.version, f.samples, f.fp16],
        [12, 34, 2, fp16],
      );
      assert.deepEqual([...f.sections[0]!], [0.5, -1.25, 3]); // exact in float16 too
      // Every float32 section is a view 8-aligned in its buffer (fast copies to shared memory).
      for (const [i, sec] of f.sections.entries()) {
        if (i > 0 || !fp16) assert.equal(sec.byteOffset % 8, 0, `section ${i}`);
      }
      assert.deepEqual(
        f.sections.slice(1).map((s) => [...s]),
        [[1, 2, 3, 4], [0, 1], [5, 6, 7, 8, 9, 10], [0.5, 2]],
      );
    }
  }
  // Lengths 24 + 4 * 2 = 32, float16 section 6 bytes padded to 8, then an empty one.
  assert.equal(frameBytes(true, [3, 0]), FRAME_HEADER_BYTES + 8 + 8, "float16 padded to 8 bytes");
  // Three lengths end at 36: the first section starts at 40; 3 floats take 16.
  assert.equal(frameBytes(false, [3, 1, 1]), 40 + 16 + 8 + 8);
});

Deno.test("malformed frames are refused with their reason", () => {
  const good = encodeFrame(frame(false));
  // A section length one value longer, the total unchanged: the header lies.
  const lying = good.slice();
  new DataView(lying.buffer).setUint32(FRAME_HEADER_BYTES + 4, 5, true);
  const cases: [Uint8Array, "shape" | "protocol", RegExp][] = [
    [good.slice(0, 20), "shape", /shorter than its header/],
    [good.slice(0, 30), "shape", /shorter than its header of 5 sections/],
    [good.slice(0, good.byteLength - 4), "shape", /its header says/],
    [new Uint8Array([...good, 0, 0, 0, 0]), "shape", /its header says/],
    [lying, "shape", /its header says .* \(3, 5, 2, 6, 2 values\)/],
    [Object.assign(good.slice(), { 16: 4 }), "shape", /assignment frame of 4 sections, expected 5/],
    [Object.assign(good.slice(), { 0: 0x45 }), "protocol", /not an edge protocol frame/],
    [Object.assign(good.slice(), { 3: 7 }), "protocol", /unknown dtype 7/],
    // A protocol 1 peer (three fixed sections, 32-byte header) is named, not misread.
    [
      Object.assign(good.slice(), { 1: 1 }),
      "protocol",
      new RegExp(`an edge protocol 1 frame, this side speaks protocol ${EDGE_PROTOCOL}`),
    ],
  ];
  for (const [bytes, reason, message] of cases) {
    assert.throws(
      () => decodeFrame(bytes, ANY),
      (e: unknown) => e instanceof FrameError && e.reason === reason && message.test(e.message),
    );
  }
  assert.throws(
    () => decodeFrame(good, { ...ANY, kind: "gradient" }),
    /expected a gradient frame, received kind 1/,
  );
  assert.throws(
    () => decodeFrame(good, { ...ANY, maxBytes: 64 }),
    /larger than the 64 allowed/,
  );
});

Deno.test("control messages are validated on arrival", () => {
  assert.deepEqual(parseWorkerMessage('{"type":"bye","extra":1}'), { type: "bye" });
  assert.equal(parseWorkerMessage('{"type":"hello","protocol":3,"fp16":true}').type, "hello");
  for (
    const [text, message] of [
      ["not json", /not JSON/],
      ["[1]", /not a JSON object/],
      ['{"type":"hello","protocol":1}', /hello.protocol must be 3, received 1: .*same dtrain/],
      ['{"type":"hello","protocol":3,"fp16":"yes"}', /hello.fp16 must be a boolean/],
      ['{"type":"ready","backend":"cpu"}', /ready needs backend/],
      ['{"type":"gradient"}', /unknown control message type "gradient"/],
      [`{"type":"hello","protocol":3,"name":"${"x".repeat(300)}"}`, /longer than 200/],
      ["x".repeat(70_000), /characters \(most 65536\)/],
    ] as [string, RegExp][]
  ) {
    assert.throws(
      () => parseWorkerMessage(text),
      (e: unknown) => e instanceof MessageError && message.test(e.message),
    );
  }
  assert.throws(() => parseServerMessage('{"type":"welcome","protocol":3}'), /welcome.worker/);
  assert.throws(
    () => parseServerMessage('{"type":"welcome","protocol":1}'),
    /the server speaks edge protocol 1, this worker 3/,
  );
  const welcome = {
    type: "welcome",
    protocol: 3,
    worker: 0,
    slotLength: 10,
    weightCount: 8,
    metricCount: 1,
    batchSize: 4,
    xShape: [8],
    yShape: [3],
    inputShapes: [[8], [4]],
    outputShapes: [[3], [1]],
    lossWeights: [1, 0.5],
    weightedOutputs: [true, false],
  };
  assert.equal(parseServerMessage(JSON.stringify(welcome)).type, "welcome");
  for (
    const [change, message] of [
      [{ inputShapes: undefined }, /welcome.inputShapes must be a non-empty array of shapes/],
      [{ outputShapes: [[3], [-1]] }, /welcome.outputShapes must be a non-empty array/],
      [{ lossWeights: [1] }, /welcome.lossWeights must be null or 2 finite numbers/],
      [{ weightedOutputs: [1, 0] }, /welcome.weightedOutputs must be null or 2 booleans/],
    ] as [Record<string, unknown>, RegExp][]
  ) {
    assert.throws(
      () => parseServerMessage(JSON.stringify({ ...welcome, ...change })),
      (e: unknown) => e instanceof MessageError && message.test(e.message),
    );
  }
  assert.deepEqual(parseServerMessage('{"type":"end","reason":"done"}'), {
    type: "end",
    reason: "done",
  });
});
