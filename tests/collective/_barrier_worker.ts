// Fixture Worker for barrier_test.ts: arrives at a shared Barrier `rounds`
// times. Before round r it stores r in its `seen` slot; after the barrier it
// checks that every party's slot holds r or r + 1 (nobody is left behind,
// nobody ran a round ahead). When a round throws, it arrives once more to see
// whether a later wait fails too, and reports both errors.
/// <reference lib="deno.worker" />
import { Barrier } from "../../src/collective/barrier.ts";

/** What the test sends. */
export interface BarrierJob {
  control: SharedArrayBuffer;
  parties: number;
  id: number;
  rounds: number;
  /** Int32 per party: the round it is in. */
  seen: SharedArrayBuffer;
  heartbeat: number;
}

/** What the Worker replies. */
export type BarrierReply =
  | { type: "done"; rounds: number; violations: string[] }
  | {
    type: "error";
    round: number;
    name: string;
    message: string;
    again: { name: string; message: string } | null;
  };

function describe(e: unknown): { name: string; message: string } {
  return e instanceof Error ? { name: e.name, message: e.message } : { name: "?", message: `${e}` };
}

self.onmessage = (e: MessageEvent<BarrierJob>) => {
  const { control, parties, id, rounds, heartbeat } = e.data;
  const barrier = new Barrier(new Int32Array(control), parties, heartbeat);
  const seen = new Int32Array(e.data.seen);
  const violations: string[] = [];
  let reply: BarrierReply;
  let round = 1;
  try {
    for (; round <= rounds; round++) {
      Atomics.store(seen, id, round);
      barrier.arrive();
      for (let p = 0; p < parties; p++) {
        const at = Atomics.load(seen, p);
        if ((at !== round && at !== round + 1) && violations.length < 10) {
          violations.push(`party ${id} left round ${round} while party ${p} was in round ${at}`);
        }
      }
    }
    reply = { type: "done", rounds, violations };
  } catch (err) {
    let again: { name: string; message: string } | null = null;
    try {
      barrier.arrive();
    } catch (err2) {
      again = describe(err2);
    }
    reply = { type: "error", round, ...describe(err), again };
  }
  self.postMessage(reply);
};
