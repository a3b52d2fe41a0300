import assert from "node:assert/strict";
import { RecordRing, RING_CONTROL_SLOTS } from "../../src/collective/ring.ts";
import type { RingJob, RingReply } from "./_ring_writer.ts";
import { sleep, TestWorker } from "./_test_worker.ts";

const WRITER = new URL("./_ring_writer.ts", import.meta.url);
/** Control words, as the module documents them. */
const WRITTEN = 0, CONSUMED = 1;

function ring(records: number, width: number) {
  const data = new SharedArrayBuffer(RecordRing.bytes(records, width));
  const control = new SharedArrayBuffer(4 * RING_CONTROL_SLOTS);
  return {
    ring: new RecordRing(data, control, { records, width }),
    data,
    control,
    counters: new Int32Array(control),
  };
}

Deno.test("RecordRing.bytes() is records x width Float64 values", () => {
  assert.equal(RecordRing.bytes(4, 3), 4 * 3 * 8);
  assert.equal(RecordRing.bytes(1, 1), 8);
});

Deno.test("new RecordRing() refuses zero or fractional records and width", () => {
  const data = new SharedArrayBuffer(64);
  const control = new SharedArrayBuffer(4 * RING_CONTROL_SLOTS);
  assert.throws(
    () => new RecordRing(data, control, { records: 0, width: 2 }),
    new RangeError("RecordRing records must be an integer >= 1, received 0"),
  );
  assert.throws(
    () => new RecordRing(data, control, { records: 2, width: 1.5 }),
    new RangeError("RecordRing width must be an integer >= 1, received 1.5"),
  );
});

Deno.test("RecordRing.read() returns every record in order when the writer laps the ring many times", () => {
  const records = 5;
  const { ring: r, counters } = ring(records, 3);
  let next = 0, expected = 0;
  // Bursts of 1..records writes, each drained: 2000 records lap the ring 400 times.
  for (let burst = 0; next < 2000; burst++) {
    const n = 1 + (burst % records);
    for (let i = 0; i < n; i++, next++) r.write([next, 2 * next + 1, -next]);
    for (let i = 0; i < n; i++, expected++) {
      assert.deepEqual(Array.from(r.read() ?? []), [expected, 2 * expected + 1, -expected]);
    }
    assert.equal(r.read(), undefined, `burst ${burst}: the ring is drained`);
  }
  assert.equal(Atomics.load(counters, WRITTEN), next);
  assert.equal(Atomics.load(counters, CONSUMED), next);
});

Deno.test("RecordRing.write() waits for the reader instead of overwriting when a writer Worker laps the ring", async () => {
  const records = 4, width = 3, count = 5_000;
  const { ring: r, data, control, counters } = ring(records, width);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  using writer = new TestWorker(WRITER, "ring-writer");
  writer.post({ data, control, records, width, count, stop: stop.buffer } satisfies RingJob);
  const deadline = performance.now() + 30_000;
  try {
    for (let expected = 0; expected < count;) {
      if (performance.now() > deadline) assert.fail(`only ${expected} of ${count} records arrived`);
      // Read slowly now and then, so the writer fills the ring and has to wait.
      if (expected % 500 === 0) await sleep(20);
      const ahead = Atomics.load(counters, WRITTEN) - Atomics.load(counters, CONSUMED);
      assert.ok(ahead <= records, `the writer is ${ahead} records ahead in a ring of ${records}`);
      const record = r.read();
      if (record === undefined) {
        await r.waitForRecord(200);
        continue;
      }
      assert.deepEqual(
        Array.from(record),
        [expected, 2 * expected + 1, -expected],
        `record ${expected}`,
      );
      expected++;
    }
    assert.equal(r.read(), undefined, "nothing beyond the last record");
    const reply = await writer.next("the writer to finish", 10_000) as RingReply;
    assert.deepEqual(reply, { type: "done", written: count });
  } finally {
    Atomics.store(stop, 0, 1);
  }
});

Deno.test("RecordRing.write() refuses a record while a one-record ring is full, until it is read", () => {
  const { ring: r, counters } = ring(1, 3);
  r.write([1, 2, 3]);
  let polls = 0;
  const started = performance.now();
  r.write([4, 5, 6], () => ++polls >= 3); // blocks; stopped on the third poll
  assert.equal(polls, 3, "isAborted is polled while the ring is full");
  assert.ok(performance.now() - started >= 150, "it waited between polls");
  assert.equal(Atomics.load(counters, WRITTEN), 1, "the refused record is not written");
  assert.deepEqual(Array.from(r.read()!), [1, 2, 3], "the unread record is intact");
  assert.equal(r.read(), undefined);
  // Shorter records are zero-padded (clearing the slot's old values), longer ones cut.
  r.write([7]);
  assert.deepEqual(Array.from(r.read()!), [7, 0, 0]);
  r.write([8, 9, 10, 11]);
  assert.deepEqual(Array.from(r.read()!), [8, 9, 10]);
  r.write([]);
  assert.deepEqual(Array.from(r.read()!), [0, 0, 0]);
  polls = 0;
  r.write([12, 13, 14], () => ++polls > 0);
  assert.equal(polls, 0, "a ring with room never polls");
  assert.deepEqual(Array.from(r.read()!), [12, 13, 14]);
});

Deno.test("RecordRing.waitHandled() waits until ack() covers every record written", () => {
  const { ring: r } = ring(4, 1);
  for (let i = 0; i < 3; i++) r.write([i]);
  let polls = 0;
  const stopAfterTwo = () => ++polls > 2;
  r.read();
  r.read();
  r.ack(); // two of three handled
  r.waitHandled(stopAfterTwo);
  assert.equal(polls, 3, "it waited: one record is not handled");
  r.read();
  polls = 0;
  r.waitHandled(stopAfterTwo);
  assert.equal(polls, 3, "it waited: the record is read but not acked");
  r.ack();
  polls = 0;
  r.waitHandled(stopAfterTwo);
  assert.equal(polls, 0, "every record is handled: no wait");
});

Deno.test("RecordRing.waitForRecord() resolves at once when a record waits, else after the timeout", async () => {
  const { ring: r } = ring(2, 1);
  let started = performance.now();
  // Atomics.waitAsync alone does not keep Deno's event loop alive (in fit a
  // Worker does): a timer does here.
  const alive = setTimeout(() => {}, 10_000);
  try {
    await r.waitForRecord(60);
  } finally {
    clearTimeout(alive);
  }
  assert.ok(performance.now() - started >= 50, "an empty ring waits out the timeout");
  r.write([1]);
  started = performance.now();
  await r.waitForRecord(5_000);
  assert.ok(performance.now() - started < 1_000, "a waiting record resolves at once");
});

Deno.test("RecordRing.reset() empties the ring when no producer is active", () => {
  const { ring: r, counters } = ring(2, 1);
  r.write([1]);
  r.write([2]);
  r.read();
  r.ack();
  r.reset();
  assert.deepEqual(Array.from(counters), [0, 0, 0]);
  assert.equal(r.read(), undefined);
  r.write([3]);
  assert.deepEqual(Array.from(r.read()!), [3]);
});
