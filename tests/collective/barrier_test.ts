import assert from "node:assert/strict";
import {
  abortShared,
  Barrier,
  BARRIER_SLOTS,
  CollectiveAbortedError,
} from "../../src/collective/barrier.ts";
import type { BarrierJob, BarrierReply } from "./_barrier_worker.ts";
import { TestWorker, until } from "./_test_worker.ts";

const FIXTURE = new URL("./_barrier_worker.ts", import.meta.url);
/** Control words, as the module documents them. */
const ARRIVED = 0, GENERATION = 1;
const ABORTED = {
  name: "CollectiveAbortedError",
  message: "The replica group was aborted while this replica waited at a barrier",
};

/** A control array with the barrier's slots followed by one heartbeat word per party. */
function control(parties: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (BARRIER_SLOTS + parties));
}

function start(job: BarrierJob): TestWorker {
  const w = new TestWorker(FIXTURE, `barrier-${job.id}`);
  w.post(job);
  return w;
}

Deno.test("Barrier() throws RangeError when parties is not an integer >= 1", () => {
  const ctrl = new Int32Array(control(0));
  for (const parties of [0, -1, 1.5, NaN]) {
    assert.throws(() => new Barrier(ctrl, parties), {
      name: "RangeError",
      message: `parties must be an integer >= 1, received ${parties}`,
    });
  }
});

Deno.test("Barrier.arrive() throws CollectiveAbortedError when the group was aborted before", () => {
  const ctrl = new Int32Array(control(0));
  // A group of one never blocks: only the abort flag can make it throw.
  const barrier = new Barrier(ctrl, 1);
  barrier.arrive();
  barrier.arrive();
  assert.equal(Atomics.load(ctrl, GENERATION), 2, "each completed round bumps the generation");
  abortShared(ctrl);
  for (let i = 0; i < 3; i++) assert.throws(() => barrier.arrive(), ABORTED);
  assert.throws(() => new Barrier(ctrl, 1).arrive(), CollectiveAbortedError);
});

Deno.test(
  "Barrier.arrive() releases a blocked waiter with CollectiveAbortedError when another party aborts",
  async () => {
    const buffer = control(2);
    const ctrl = new Int32Array(buffer);
    const heartbeat = BARRIER_SLOTS;
    // Party 0 arrives; party 1 never does, so party 0 blocks until the abort.
    using waiter = start({
      control: buffer,
      parties: 2,
      id: 0,
      rounds: 1,
      seen: new SharedArrayBuffer(8),
      heartbeat,
    });
    await until(() => Atomics.load(ctrl, ARRIVED) === 1, "party 0 to arrive");
    const beat = Atomics.load(ctrl, heartbeat);
    assert.ok(beat >= 1, "arriving bumps the heartbeat");
    // Past the spin and asleep: nothing comes back while the barrier holds.
    await assert.rejects(() => waiter.next("no reply", 700), /^Error: Timed out after 700 ms/);
    assert.ok(Atomics.load(ctrl, heartbeat) > beat, "a sleeping waiter keeps beating");
    const aborted = performance.now();
    abortShared(ctrl);
    const reply = await waiter.next("the waiter to be released", 5_000) as BarrierReply;
    const ms = performance.now() - aborted;
    assert.equal(reply.type, "error", `the waiter returned: ${JSON.stringify(reply)}`);
    if (reply.type !== "error") return;
    assert.deepEqual({ name: reply.name, message: reply.message }, ABORTED);
    assert.equal(reply.round, 1);
    assert.deepEqual(reply.again, ABORTED, "a later wait after the abort fails too");
    assert.ok(ms < 2_000, `release took ${ms} ms`);
    // A party that arrives later, from another thread, is refused as well.
    assert.throws(() => new Barrier(ctrl, 1).arrive(), ABORTED);
  },
);

Deno.test(
  "Barrier.arrive() keeps every party in step when one barrier is reused for many rounds",
  async () => {
    const parties = 3, rounds = 2_000;
    const buffer = control(parties);
    const ctrl = new Int32Array(buffer);
    const seen = new SharedArrayBuffer(4 * parties);
    const workers = Array.from(
      { length: parties },
      (_, id) =>
        start({ control: buffer, parties, id, rounds, seen, heartbeat: BARRIER_SLOTS + id }),
    );
    try {
      const replies = await Promise.all(
        workers.map((w, id) => w.next(`party ${id} to finish`, 20_000)),
      ) as BarrierReply[];
      for (const reply of replies) {
        assert.deepEqual(reply, { type: "done", rounds, violations: [] });
      }
      assert.equal(Atomics.load(ctrl, GENERATION), rounds, "one generation per round");
      assert.equal(Atomics.load(ctrl, ARRIVED), 0, "the count is reset after the last round");
      for (let id = 0; id < parties; id++) {
        assert.ok(Atomics.load(ctrl, BARRIER_SLOTS + id) >= rounds, `party ${id} heartbeat`);
      }
    } finally {
      for (const w of workers) w[Symbol.dispose]();
    }
  },
);
