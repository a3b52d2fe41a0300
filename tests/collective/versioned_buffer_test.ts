import assert from "node:assert/strict";
import { VersionedBuffer } from "../../src/collective/versioned_buffer.ts";
import type { WriterJob, WriterReply } from "./_versioned_writer.ts";
import { TestWorker, until } from "./_test_worker.ts";

const WRITER = new URL("./_versioned_writer.ts", import.meta.url);

Deno.test("VersionedBuffer() throws RangeError when the length or the buffer is wrong", () => {
  // The second slot starts 16-byte aligned: 5 floats take 8.
  assert.equal(VersionedBuffer.bytes(5), 32 + 2 * 8 * 4);
  assert.throws(() => new VersionedBuffer(new SharedArrayBuffer(64), -1), {
    name: "RangeError",
    message: "length must be an integer >= 0, received -1",
  });
  assert.throws(() => new VersionedBuffer(new SharedArrayBuffer(95), 5), {
    name: "RangeError",
    message: "Versioned buffer too small: expected 96 bytes for 5 floats, received 95",
  });
});

Deno.test("VersionedBuffer.read() throws RangeError when nothing was published yet", () => {
  const reader = new VersionedBuffer(new SharedArrayBuffer(VersionedBuffer.bytes(2)), 2);
  assert.equal(reader.version, 0);
  assert.throws(() => reader.read(new Float32Array(2)), {
    name: "RangeError",
    message: "Nothing to read: no version has been published yet",
  });
});

Deno.test("VersionedBuffer.read() returns the latest version and its data when versions alternate slots", () => {
  const shared = new SharedArrayBuffer(VersionedBuffer.bytes(3));
  const writer = new VersionedBuffer(shared, 3);
  const reader = new VersionedBuffer(shared, 3);
  const copy = new Float32Array(3);
  for (let v = 0; v < 6; v++) {
    assert.equal(writer.publish((into) => into.set([v, 10 * v, -v])), v);
    assert.equal(reader.version, v);
    assert.equal(reader.read(copy), v);
    assert.deepEqual(Array.from(copy), [v, 10 * v, -v], `version ${v}`);
  }
});

Deno.test("VersionedBuffer.publish() continues after the buffer's latest version when a new handle writes", () => {
  const shared = new SharedArrayBuffer(VersionedBuffer.bytes(1));
  const copy = new Float32Array(1);
  // One version written (slot 0 only), then a second writer handle: it goes on at 1.
  assert.equal(new VersionedBuffer(shared, 1).publish((into) => into.set([5])), 0);
  const next = new VersionedBuffer(shared, 1);
  assert.equal(next.publish((into) => into.set([6])), 1);
  assert.equal(next.publish((into) => into.set([7])), 2);
  const third = new VersionedBuffer(shared, 1);
  assert.equal(third.publish((into) => into.set([8])), 3);
  assert.equal(new VersionedBuffer(shared, 1).read(copy), 3);
  assert.equal(copy[0], 8);
});

Deno.test(
  "VersionedBuffer.read() never accepts a torn copy when a writer Worker publishes in a tight loop",
  async () => {
    // Large enough that a copy takes long next to one publish, so the writer
    // often rewrites the slot under the reader.
    const length = 64 * 1024;
    const buffer = new SharedArrayBuffer(VersionedBuffer.bytes(length));
    const flags = new Int32Array(new SharedArrayBuffer(8));
    using writer = new TestWorker(WRITER, "versioned-writer");
    writer.post({ buffer, length, flags: flags.buffer } satisfies WriterJob);
    await until(() => Atomics.load(flags, 0) === 1, "the writer to start");
    const reader = new VersionedBuffer(buffer, length);
    const copy = new Float32Array(length);
    let reads = 0, retries = 0, last = -1, distinct = 0;
    const torn: string[] = [];
    const until_ = performance.now() + 1_500;
    try {
      while (performance.now() < until_ || reads < 200) {
        const version = reader.read(copy, () => retries++);
        reads++;
        assert.ok(version >= last, `version went back from ${last} to ${version}`);
        if (version !== last) distinct++;
        last = version;
        if (copy[0] !== version || copy[length - 1] !== version) {
          torn.push(`read ${reads}: version ${version}, ends ${copy[0]} / ${copy[length - 1]}`);
        } else {
          const bad = copy.findIndex((v) => v !== version);
          if (bad >= 0) {
            torn.push(`read ${reads}: version ${version}, float ${bad} is ${copy[bad]}`);
          }
        }
        if (torn.length >= 5) break;
      }
    } finally {
      Atomics.store(flags, 1, 1);
    }
    const reply = await writer.next("the writer to stop", 10_000) as WriterReply;
    assert.deepEqual(torn, [], `${torn.length} torn copies in ${reads} reads (${retries} retries)`);
    assert.ok(distinct >= 20, `the reader saw only ${distinct} versions in ${reads} reads`);
    assert.ok(last <= reply.last, `read version ${last} beyond the last published ${reply.last}`);
  },
);
