import assert from "node:assert/strict";
import {
  allocFrame,
  BufferPool,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameConn,
  FrameType,
  MAX_CONTROL_BYTES,
} from "../../src/cluster/_frames.ts";
import { controlFrame, parseControl } from "../../src/cluster/_messages.ts";
import { ClusterTimeoutError, FrameError, PeerLostError } from "../../src/cluster/errors.ts";
import { readAll, socketPair, writeAll } from "./_loopback.ts";

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("FrameConn round-trips control, data and heartbeat frames, dripped byte by byte", async () => {
  const [a, b] = await socketPair();
  const reader = new FrameConn(b, { maxFrameBytes: 4 << 20 });
  try {
    const big = new Uint8Array(3 << 20).map((_, i) => (i * 7 + 3) & 0xff);
    const hello = controlFrame({ type: "abort", rank: 3, reason: "test" });
    // Several frames in one write, then one frame in 1-byte and 5-byte pieces.
    const dataFrame = encodeFrame(FrameType.data, big);
    const burst = new Uint8Array([
      ...hello,
      ...encodeFrame(FrameType.heartbeat),
      ...encodeFrame(FrameType.data),
    ]);
    await writeAll(a, burst);
    const small = encodeFrame(FrameType.data, new Uint8Array([9, 8, 7]));
    for (let i = 0; i < small.length; i += i < FRAME_HEADER_BYTES ? 1 : 5) {
      await writeAll(a, small.subarray(i, i < FRAME_HEADER_BYTES ? i + 1 : i + 5));
      await delay(1);
    }
    const writing = writeAll(a, dataFrame);
    const f1 = await reader.next(2000);
    assert.deepEqual(parseControl(f1), { type: "abort", rank: 3, reason: "test" });
    const f2 = await reader.next(2000); // the heartbeat is consumed silently
    assert.equal(f2.type, FrameType.data);
    assert.equal(f2.payload.byteLength, 0);
    const f3 = await reader.next(2000);
    assert.deepEqual([...f3.payload], [9, 8, 7]);
    const f4 = await reader.next(5000);
    await writing;
    assert.equal(f4.payload.byteLength, big.byteLength);
    assert.ok(f4.payload.every((v, i) => v === big[i]), "3 MiB payload intact");
  } finally {
    a.close();
    await reader.close();
  }
});

Deno.test("FrameConn refuses a frame over maxFrameBytes and closes the connection", async () => {
  const [a, b] = await socketPair();
  const reader = new FrameConn(b, { maxFrameBytes: 1024 });
  try {
    const { frame } = allocFrame(FrameType.data, 1025);
    await writeAll(a, frame.subarray(0, FRAME_HEADER_BYTES)); // the header alone is refused
    await assert.rejects(() => reader.next(2000), {
      name: "FrameError",
      message:
        /too large: expected at most 1024 payload bytes for type 2, received a header announcing 1025/,
    });
    assert.equal(
      (await readAll(a, 2000)).byteLength,
      0,
      "the refusing side closed the socket (EOF)",
    );
    // Control frames are bounded by MAX_CONTROL_BYTES even when maxFrameBytes is larger.
    const [c, d] = await socketPair();
    const r2 = new FrameConn(d, { maxFrameBytes: 1 << 20 });
    await writeAll(c, allocFrame(FrameType.control, MAX_CONTROL_BYTES + 1).frame.subarray(0, 12));
    await assert.rejects(() => r2.next(2000), { name: "FrameError", message: /at most 65536/ });
    c.close();
    await r2.close();
  } finally {
    a.close();
    await reader.close();
  }
});

Deno.test("FrameConn reports a truncated frame, and a peer of known rank as lost", async () => {
  const [a, b] = await socketPair();
  const reader = new FrameConn(b);
  const { frame } = allocFrame(FrameType.data, 100);
  await writeAll(a, frame.subarray(0, FRAME_HEADER_BYTES + 10));
  a.close();
  await assert.rejects(() => reader.next(2000), (e) => {
    assert.ok(e instanceof FrameError);
    assert.match(e.message, /Truncated frame .*: expected 100 bytes, received 10 before EOF/);
    return true;
  });
  await reader.close();

  const [c, d] = await socketPair();
  const ranked = new FrameConn(d, { peerRank: 4 });
  c.close();
  await assert.rejects(() => ranked.next(2000), (e) => {
    assert.ok(e instanceof PeerLostError);
    assert.equal(e.rank, 4);
    assert.equal(e.reason, "connection closed by the peer");
    return true;
  });
  await ranked.close();
});

Deno.test("FrameConn refuses garbage magic, a wrong version and an unknown type", async () => {
  const cases: [Uint8Array, RegExp][] = [
    [
      new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"),
      /Bad frame magic .*expected 0x4e525444, received 0x20544547/,
    ],
    [
      (() => {
        const f = encodeFrame(FrameType.heartbeat);
        f[4] = 9;
        return f;
      })(),
      /Unsupported frame version .*expected 1, received 9/,
    ],
    [
      (() => {
        const f = encodeFrame(FrameType.heartbeat);
        f[5] = 77;
        return f;
      })(),
      /Unknown frame type .*expected 1, 2 or 3, received 77/,
    ],
  ];
  for (const [bytes, message] of cases) {
    const [a, b] = await socketPair();
    const reader = new FrameConn(b);
    await writeAll(a, bytes);
    await assert.rejects(() => reader.next(2000), { name: "FrameError", message });
    assert.equal((await readAll(a, 2000)).byteLength, 0, "closed after garbage");
    a.close();
    await reader.close();
  }
});

Deno.test("FrameConn.next() rejects with ClusterTimeoutError when nothing arrives", async () => {
  const [a, b] = await socketPair();
  const reader = new FrameConn(b, { label: "rank 1" });
  try {
    const t0 = performance.now();
    await assert.rejects(() => reader.next(150, "handshake"), (e) => {
      assert.ok(e instanceof ClusterTimeoutError);
      assert.equal(e.message, "handshake timed out after 150 ms: nothing arrived from rank 1");
      return true;
    });
    assert.ok(performance.now() - t0 >= 140);
  } finally {
    a.close();
    await reader.close();
  }
});

Deno.test("parseControl() refuses unknown messages and malformed fields", () => {
  const frame = (v: unknown) => ({
    type: FrameType.control,
    payload: new TextEncoder().encode(JSON.stringify(v)),
  });
  assert.deepEqual(parseControl(frame({ type: "go", extra: 1 })), { type: "go" });
  for (
    const bad of [
      { type: "launch" },
      { type: "hello", proto: 1, purpose: "join", rank: -1, nodes: 2, nonce: "00".repeat(32) },
      { type: "hello", proto: 1, purpose: "join", rank: 1, nodes: 2, nonce: "zz" },
      { type: "join", dataHost: null, dataPort: 70000, config: {} },
      { type: "join", dataHost: null, dataPort: 1, config: { nested: { a: 1 } } },
      [1, 2],
    ]
  ) {
    assert.throws(() => parseControl(frame(bad)), {
      name: "FrameError",
      message: /^Invalid control message: expected /,
    }, JSON.stringify(bad));
  }
  assert.throws(
    () => parseControl({ type: FrameType.control, payload: new Uint8Array([0xff, 0xfe]) }),
    {
      name: "FrameError",
      message: 'Invalid control message: expected UTF-8 JSON, received "2 undecodable bytes"',
    },
  );
  assert.throws(() => parseControl({ type: FrameType.data, payload: new Uint8Array() }), {
    name: "FrameError",
    message: 'Invalid control message: expected a control frame (type 1), received "type 2"',
  });
});

Deno.test("allocFrame() puts the payload 8-aligned in its buffer, as a received payload is", async () => {
  const pool = new BufferPool();
  for (const bytes of [0, 3, 16, 1 << 20]) {
    for (const from of [undefined, pool]) {
      const { frame, payload } = allocFrame(FrameType.data, bytes, from);
      assert.equal(payload.byteOffset % 8, 0, `${bytes} bytes`);
      assert.equal(payload.byteOffset, frame.byteOffset + FRAME_HEADER_BYTES);
      assert.equal(frame.byteLength, FRAME_HEADER_BYTES + bytes);
      from?.give(new Uint8Array(frame.buffer));
    }
  }
  // The frame still reads back whole from its view.
  const [a, b] = await socketPair();
  const reader = new FrameConn(b, { maxFrameBytes: 1 << 20 });
  try {
    const { frame, payload } = allocFrame(FrameType.data, 100_000, pool);
    payload.forEach((_, i) => payload[i] = i & 0xff);
    await writeAll(a, frame);
    const got = await reader.next(2000);
    assert.equal(got.payload.byteOffset % 8, 0);
    assert.ok(got.payload.every((v, i) => v === (i & 0xff)));
  } finally {
    a.close();
    await reader.close();
  }
});
