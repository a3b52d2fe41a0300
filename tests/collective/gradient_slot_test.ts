import assert from "node:assert/strict";
import { GradientSlot } from "../../src/collective/gradient_slot.ts";
import type { SlotJob, SlotReply } from "./_slot_worker.ts";
import { TestWorker, until } from "./_test_worker.ts";

const FIXTURE = new URL("./_slot_worker.ts", import.meta.url);

function slotBuffer(length: number): SharedArrayBuffer {
  return new SharedArrayBuffer(GradientSlot.bytes(length));
}

Deno.test("GradientSlot() throws RangeError when the buffer is smaller than bytes(length)", () => {
  assert.equal(GradientSlot.bytes(10), 32 + 40);
  assert.throws(() => new GradientSlot(new SharedArrayBuffer(71), 10), {
    name: "RangeError",
    message: "Gradient slot too small: expected 72 bytes for 10 floats, received 71",
  });
});

Deno.test("GradientSlot.push() publishes the payload and header to another handle until release()", () => {
  const buffer = slotBuffer(3);
  const worker = new GradientSlot(buffer, 3);
  const server = new GradientSlot(buffer, 3);
  assert.equal(server.full, false);
  let polls = 0;
  assert.equal(worker.waitEmpty(() => ++polls > 0), true, "an empty slot is writable at once");
  assert.equal(polls, 0);
  worker.payload.set([0.5, -1.5, 2]);
  worker.push({ base: 7, batch: 123456, samples: 31, ticket: 2 ** 30 });
  assert.equal(server.full, true);
  assert.deepEqual(server.info(), { base: 7, batch: 123456, samples: 31, ticket: 2 ** 30 });
  assert.deepEqual(Array.from(server.payload), [0.5, -1.5, 2]);
  // While full, waitEmpty() polls shouldStop and gives up when it says stop.
  assert.equal(worker.waitEmpty(() => ++polls >= 3, 10), false);
  assert.equal(polls, 3);
  server.release();
  assert.equal(worker.full, false);
  assert.equal(
    worker.waitEmpty(() => true),
    true,
    "a released slot is writable even when stopping",
  );
  assert.equal(worker.leaving, false);
  server.requestLeave();
  assert.equal(worker.leaving, true);
});

Deno.test("GradientSlot hands every gradient over whole and in order when a worker Worker produces them", async () => {
  const length = 4096, count = 300;
  const buffer = slotBuffer(length);
  const server = new GradientSlot(buffer, length);
  using producer = new TestWorker(FIXTURE, "slot-producer");
  producer.post({ mode: "produce", buffer, length, count } satisfies SlotJob);
  for (let i = 0; i < count; i++) {
    await until(() => server.full, `gradient ${i}`);
    assert.deepEqual(server.info(), { base: i, batch: 2 * i, samples: i % 7, ticket: 3 * i });
    // Dwell on the payload: a worker that did not wait for release() would overwrite it now.
    for (let pass = 0; pass < 3; pass++) {
      const bad = server.payload.findIndex((v) => v !== i);
      assert.equal(bad, -1, `gradient ${i}: float ${bad} is ${server.payload[bad]}`);
    }
    assert.equal(server.info().base, i, `gradient ${i} was replaced before release()`);
    server.release();
  }
  const reply = await producer.next("the producer to finish", 10_000) as SlotReply;
  assert.deepEqual(reply, { type: "produced", pushed: count, lastTaken: true });
  assert.equal(server.full, false, "nothing was pushed after the last release");
});

for (const how of ["release", "requestLeave"] as const) {
  Deno.test(`GradientSlot.waitEmpty() wakes at once when the server calls ${how}()`, async () => {
    const buffer = slotBuffer(8);
    const server = new GradientSlot(buffer, 8);
    using waiter = new TestWorker(FIXTURE, "slot-waiter");
    waiter.post({ mode: "wait", buffer, length: 8, count: 1 } satisfies SlotJob);
    await until(() => server.full, "the worker to push");
    // Its poll interval is 10 s: only the server's notify can wake it sooner.
    await assert.rejects(() => waiter.next("no reply", 300), /Timed out/);
    if (how === "release") server.release();
    else server.requestLeave();
    const reply = await waiter.next("the worker to wake", 5_000) as SlotReply;
    assert.equal(reply.type, "waited");
    if (reply.type !== "waited") return;
    assert.equal(reply.result, how === "release", "true when released, false when asked to leave");
    assert.ok(reply.ms < 3_000, `waitEmpty() returned after ${reply.ms} ms`);
  });
}
