import assert from "node:assert/strict";
import { type Ring, ringAllReduce } from "../../src/cluster/ring_all_reduce.ts";
import { FrameError, PeerLostError } from "../../src/cluster/errors.ts";
import { formGroups, memoryRings, randomFloats, ringOracle } from "./_groups.ts";

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function assertBitIdentical(results: Float32Array[]) {
  const first = bytesOf(results[0]!);
  for (let r = 1; r < results.length; r++) {
    const other = bytesOf(results[r]!);
    const i = first.findIndex((b, j) => b !== other[j]);
    assert.equal(i, -1, `rank ${r} differs from rank 0 at byte ${i}`);
  }
}

function integers(length: number, rank: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => ((i * 31 + rank * 17) % 201) - 100);
}

Deno.test("ringAllReduce() sums integer-valued floats exactly for 2..4 nodes and odd lengths (in memory)", async () => {
  for (const nodes of [2, 3, 4]) {
    for (const length of [0, 1, 2, 3, 5, 7, 1000]) {
      const { rings } = memoryRings(nodes);
      const inputs = rings.map((_, r) => integers(length, r));
      const want = Float64Array.from({ length }, (_, i) => inputs.reduce((s, x) => s + x[i]!, 0));
      const data = inputs.map((x) => x.slice());
      // 64-byte chunks: 12 floats per chunk, so segments take several chunks.
      await Promise.all(
        rings.map((ring, r) => ringAllReduce(ring, data[r]!, { chunkBytes: 64, timeoutMs: 2000 })),
      );
      for (let r = 0; r < nodes; r++) {
        assert.deepEqual([...data[r]!], [...want], `nodes ${nodes} length ${length} rank ${r}`);
      }
    }
  }
});

Deno.test("ringAllReduce() matches the ring-order float32 oracle bit for bit, and the exact sum within 1e-6", async () => {
  const nodes = 3;
  const length = 4099;
  const { rings } = memoryRings(nodes);
  const inputs = rings.map((_, r) => randomFloats(length, r + 1, 0.5, 1.5));
  const data = inputs.map((x) => x.slice());
  await Promise.all(
    rings.map((ring, r) => ringAllReduce(ring, data[r]!, { chunkBytes: 1000, timeoutMs: 2000 })),
  );
  assertBitIdentical(data);
  assert.deepEqual(bytesOf(data[0]!), bytesOf(ringOracle(inputs)));
  for (let i = 0; i < length; i++) {
    const exact = inputs.reduce((s, x) => s + x[i]!, 0);
    assert.ok(
      Math.abs(data[1]![i]! - exact) <= 1e-6 * exact,
      `element ${i}: ${data[1]![i]} vs ${exact}`,
    );
  }
});

Deno.test("ringAllReduce() cuts segments and chunks on multiples of 4 floats (aligned copies)", async () => {
  // Each node holds one constant; who starts an element's sum shows in the
  // result: the rank-1 value survives only where it is added after the two
  // that cancel (1e8 + -1e8 is exact, 1 + 1e8 rounds the 1 away).
  const nodes = 3;
  for (const length of [10, 37, 4099]) {
    for (const [seg, values] of [[0, [1, 1e8, -1e8]], [1, [-1e8, 1, 1e8]]] as const) {
      const { rings } = memoryRings(nodes);
      const data = rings.map((_, r) => new Float32Array(length).fill(values[r]!));
      // 13 floats fit a 68-byte chunk: chunks of 12, so no chunk ends off the grid.
      await Promise.all(
        rings.map((ring, r) => ringAllReduce(ring, data[r]!, { chunkBytes: 68, timeoutMs: 2000 })),
      );
      assertBitIdentical(data);
      const start = (k: number) => k === nodes ? length : Math.floor((k * length) / 12) * 4;
      const ones = [...data[0]!].flatMap((v, i) => v === 1 ? [i] : []);
      const want = Array.from({ length: start(seg + 1) - start(seg) }, (_, i) => start(seg) + i);
      assert.deepEqual(ones, want, `length ${length}, segment ${seg}`);
      assert.equal(start(seg) % 4, 0);
    }
  }
});

Deno.test("ringAllReduce() with fp16 is bit-identical across nodes, within fp16 tolerance, half the bytes", async () => {
  const nodes = 3;
  const length = 3001;
  const inputs = Array.from({ length: nodes }, (_, r) => randomFloats(length, 10 + r, -4, 4));
  const run = async (compression: "none" | "fp16") => {
    const { rings } = memoryRings(nodes);
    const data = inputs.map((x) => x.slice());
    const stats = await Promise.all(
      rings.map((ring, r) =>
        ringAllReduce(ring, data[r]!, { chunkBytes: 4096, timeoutMs: 2000, compression })
      ),
    );
    return { data, stats };
  };
  const plain = await run("none");
  const half = await run("fp16");
  assertBitIdentical(half.data);
  assert.deepEqual(bytesOf(half.data[2]!), bytesOf(ringOracle(inputs, true)));
  for (let i = 0; i < length; i++) {
    const exact = inputs.reduce((s, x) => s + x[i]!, 0);
    const scale = inputs.reduce((s, x) => s + Math.abs(x[i]!), 0);
    // nodes-1 roundings of partial sums + 1 of the result, each <= 2^-11 relative.
    assert.ok(
      Math.abs(half.data[0]![i]! - exact) <= nodes * 2 ** -11 * scale + 1e-7,
      `element ${i}`,
    );
    assert.equal(Math.f16round(half.data[0]![i]!), half.data[0]![i], "an fp16 value");
  }
  const sent = (s: { bytesSent: number }[]) => s.reduce((a, x) => a + x.bytesSent, 0);
  const ratio = sent(half.stats) / sent(plain.stats);
  assert.ok(ratio > 0.49 && ratio < 0.52, `fp16 bytes / float32 bytes = ${ratio}`);
});

Deno.test("ringAllReduce() on one node or an empty vector changes nothing and sends nothing", async () => {
  const { rings } = memoryRings(1);
  const x = new Float32Array([0.1, 0.2]);
  const stats = await ringAllReduce(rings[0]!, x, {
    chunkBytes: 64,
    timeoutMs: 100,
    compression: "fp16",
  });
  assert.deepEqual([...x], [Math.fround(0.1), Math.fround(0.2)]);
  assert.equal(stats.bytesSent, 0);
  await assert.rejects(
    () =>
      ringAllReduce(rings[0]!, [1, 2] as unknown as Float32Array, {
        chunkBytes: 64,
        timeoutMs: 100,
      }),
    { name: "TypeError", message: "data must be a Float32Array, received [object Array]" },
  );
  await assert.rejects(
    () =>
      ringAllReduce(rings[0]!, x, {
        chunkBytes: 64,
        timeoutMs: 100,
        compression: "int8" as "fp16",
      }),
    { name: "TypeError", message: 'compression must be "none" or "fp16", received "int8"' },
  );
});

Deno.test("ringAllReduce() rejects on every node, and fails the ring once, when a receive fails", async () => {
  const { rings, fails } = memoryRings(3);
  const data = rings.map(() => new Float32Array(100));
  const lost = new PeerLostError(1, "test cut");
  // Rank 1 never calls: the others starve until the ring is failed.
  const calls = [0, 2].map((r) =>
    ringAllReduce(rings[r]!, data[r]!, { chunkBytes: 64, timeoutMs: 5000 })
  );
  setTimeout(() => rings[1]!.fail(lost), 20);
  for (const c of calls) await assert.rejects(() => c, (e) => e === lost);
  assert.equal(fails[0], lost);
});

Deno.test("ClusterGroup.allReduce() over loopback sockets: 2 and 3 nodes, lengths 0..1e6+3, bit-identical", async () => {
  for (const nodes of [2, 3]) {
    const groups = await formGroups(nodes, { chunkBytes: 256 * 1024 });
    try {
      for (const length of [0, 1, 2, 5, 1_000_003]) {
        const inputs = groups.map((_, r) => randomFloats(length, 100 * nodes + r));
        const data = inputs.map((x) => x.slice());
        const stats = await Promise.all(groups.map((g, r) => g.allReduce(data[r]!)));
        assertBitIdentical(data);
        assert.deepEqual(
          bytesOf(data[0]!),
          bytesOf(ringOracle(inputs)),
          `nodes ${nodes} length ${length}`,
        );
        if (length === 1_000_003) {
          // Each node sends 2(N-1)/N of the vector (plus 28 header bytes per chunk).
          const want = (2 * (nodes - 1) / nodes) * length * 4;
          for (const s of stats) {
            assert.ok(
              s.bytesSent >= want && s.bytesSent < want * 1.01,
              `bytesSent ${s.bytesSent} vs ${want}`,
            );
            assert.ok(Math.abs(s.bytesReceived - s.bytesSent) < want * 0.01);
          }
        }
      }
      const ints = groups.map((_, r) => integers(4097, r));
      const want = Float32Array.from(
        { length: 4097 },
        (_, i) => ints.reduce((s, x) => s + x[i]!, 0),
      );
      await Promise.all(groups.map((g, r) => g.allReduce(ints[r]!)));
      for (const x of ints) assert.deepEqual(x, want);
    } finally {
      await Promise.all(groups.map((g) => g.close()));
    }
  }
});

Deno.test("ClusterGroup.allReduce() with fp16 over sockets halves the bytes and stays bit-identical", async () => {
  const groups = await formGroups(2);
  try {
    const length = 675_000; // 2.7 MB of float32
    const inputs = groups.map((_, r) => randomFloats(length, 7 + r, -2, 2));
    const plain = inputs.map((x) => x.slice());
    const half = inputs.map((x) => x.slice());
    const s32 = await Promise.all(groups.map((g, r) => g.allReduce(plain[r]!)));
    const s16 = await Promise.all(
      groups.map((g, r) => g.allReduce(half[r]!, { compression: "fp16" })),
    );
    assertBitIdentical(half);
    assert.deepEqual(bytesOf(half[1]!), bytesOf(ringOracle(inputs, true)));
    for (let r = 0; r < 2; r++) {
      const ratio = s16[r]!.bytesSent / s32[r]!.bytesSent;
      assert.ok(ratio > 0.49 && ratio < 0.51, `rank ${r}: fp16/float32 bytes ${ratio}`);
    }
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("ClusterGroup.allReduce() rejects on every node when the nodes disagree on the length", async () => {
  const groups = await formGroups(2, { peerTimeoutMs: 2000 });
  try {
    const results = await Promise.allSettled([
      groups[0]!.allReduce(new Float32Array(5)),
      groups[1]!.allReduce(new Float32Array(6)),
    ]);
    const errors = results.map((r) => (r as PromiseRejectedResult).reason);
    assert.ok(
      errors.every((e) => e instanceof FrameError || e instanceof PeerLostError),
      String(errors),
    );
    assert.ok(
      errors.some((e) =>
        e instanceof FrameError && /expected call 0 of [56] floats/.test(e.message)
      ),
      errors.map(String).join("; "),
    );
    // The group is failed for good.
    await assert.rejects(() => groups[0]!.allReduce(new Float32Array(5)));
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("ClusterGroup.close() says goodbye: a neighbour's next allReduce rejects with PeerLostError at once", async () => {
  const groups = await formGroups(3, { peerTimeoutMs: 5000, collectiveTimeoutMs: 60000 });
  try {
    await Promise.all(groups.map((g) => g.allReduce(new Float32Array(10))));
    const closing = groups[1]!.close();
    const t0 = performance.now();
    const results = await Promise.allSettled(
      [0, 2].map((r) => groups[r]!.allReduce(new Float32Array(10))),
    );
    await closing;
    assert.ok(performance.now() - t0 < 3000, "no wait for a timeout");
    for (const r of results) {
      const e = (r as PromiseRejectedResult).reason;
      assert.ok(e instanceof PeerLostError, String(e));
      assert.equal(e.rank, 1);
    }
    await assert.rejects(() => groups[1]!.allReduce(new Float32Array(10)), {
      name: "FrameError",
      message: "Cluster group of rank 1 is closed",
    });
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("ringAllReduce() observes a send that fails after the call has failed (no unhandled rejection)", async () => {
  const unhandled: unknown[] = [];
  const listener = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    unhandled.push(e.reason);
  };
  globalThis.addEventListener("unhandledrejection", listener);
  try {
    // Rank 0 of 2: the receive fails first (a lost neighbour), the write in flight later.
    const ring: Ring = {
      rank: 0,
      nodes: 2,
      frameOverhead: 0,
      payload: (n) => new Uint8Array(n),
      send: () =>
        new Promise((_, reject) => setTimeout(() => reject(new Error("write failed")), 50)),
      receive: () =>
        new Promise((_, reject) => setTimeout(() => reject(new Error("peer lost")), 10)),
      fail: () => {},
    };
    await assert.rejects(
      () => ringAllReduce(ring, new Float32Array(8), { chunkBytes: 1 << 16, timeoutMs: 1000 }),
      { message: "peer lost" },
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", listener);
  }
});
