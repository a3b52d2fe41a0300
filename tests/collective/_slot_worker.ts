// Fixture Worker for gradient_slot_test.ts: the worker side of a GradientSlot.
// "produce": hands over `count` gradients, gradient i being every float = i
// with header { base: i, batch: 2i, samples: i % 7, ticket: 3i }, then waits
// for the last one to be taken.
// "wait": pushes one gradient and reports how long waitEmpty() blocked and
// what it returned, with a poll interval far longer than the test waits.
/// <reference lib="deno.worker" />
import { GradientSlot } from "../../src/collective/gradient_slot.ts";

/** What the test sends. */
export interface SlotJob {
  mode: "produce" | "wait";
  buffer: SharedArrayBuffer;
  length: number;
  count: number;
}

/** What the Worker replies. */
export type SlotReply =
  | { type: "produced"; pushed: number; lastTaken: boolean }
  | { type: "waited"; result: boolean; ms: number };

self.onmessage = (e: MessageEvent<SlotJob>) => {
  const { mode, buffer, length, count } = e.data;
  const slot = new GradientSlot(buffer, length);
  const leaving = () => slot.leaving;
  if (mode === "wait") {
    slot.payload.fill(1);
    slot.push({ base: 0, batch: 0, samples: 1, ticket: 0 });
    const started = performance.now();
    const result = slot.waitEmpty(leaving, 10_000);
    self.postMessage(
      { type: "waited", result, ms: performance.now() - started } satisfies SlotReply,
    );
    return;
  }
  let pushed = 0;
  for (let i = 0; i < count; i++) {
    if (!slot.waitEmpty(leaving)) break;
    slot.payload.fill(i);
    slot.push({ base: i, batch: 2 * i, samples: i % 7, ticket: 3 * i });
    pushed++;
  }
  const lastTaken = slot.waitEmpty(leaving);
  self.postMessage({ type: "produced", pushed, lastTaken } satisfies SlotReply);
};
