// Fixture Worker for ring_test.ts: the producer end of a RecordRing, writing
// `count` records [i, 2i + 1, -i] as fast as the ring lets it. `stop` (an
// Int32 flag) is its isAborted.
/// <reference lib="deno.worker" />
import { RecordRing } from "../../src/collective/ring.ts";

/** What the test sends. */
export interface RingJob {
  data: SharedArrayBuffer;
  control: SharedArrayBuffer;
  records: number;
  width: number;
  count: number;
  stop: SharedArrayBuffer;
}

/** What the Worker replies once it has written every record (or was stopped). */
export interface RingReply {
  type: "done";
  written: number;
}

self.onmessage = (e: MessageEvent<RingJob>) => {
  const { data, control, records, width, count } = e.data;
  const ring = new RecordRing(data, control, { records, width });
  const stop = new Int32Array(e.data.stop);
  const stopped = () => Atomics.load(stop, 0) !== 0;
  let written = 0;
  for (let i = 0; i < count && !stopped(); i++) {
    ring.write([i, 2 * i + 1, -i], stopped);
    written++;
  }
  self.postMessage({ type: "done", written } satisfies RingReply);
};
