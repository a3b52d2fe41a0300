// Fixture Worker for versioned_buffer_test.ts: the one writer of a
// VersionedBuffer, publishing in a tight loop until told to stop (or 20 s
// pass). Version v holds v in every float: a copy that mixes versions, or
// whose floats differ from the version read() returned, is torn.
/// <reference lib="deno.worker" />
import { VersionedBuffer } from "../../src/collective/versioned_buffer.ts";

/** What the test sends. */
export interface WriterJob {
  buffer: SharedArrayBuffer;
  length: number;
  /** Int32 [writer started, stop]. */
  flags: SharedArrayBuffer;
}

/** What the Worker replies once stopped. */
export interface WriterReply {
  type: "stopped";
  /** The last version published. */
  last: number;
}

self.onmessage = (e: MessageEvent<WriterJob>) => {
  const { buffer, length } = e.data;
  const flags = new Int32Array(e.data.flags);
  const writer = new VersionedBuffer(buffer, length);
  const deadline = performance.now() + 20_000;
  let last = writer.publish((into) => into.fill(0));
  Atomics.store(flags, 0, 1);
  while (Atomics.load(flags, 1) === 0 && performance.now() < deadline) {
    last = writer.publish((into) => into.fill(last + 1));
  }
  self.postMessage({ type: "stopped", last } satisfies WriterReply);
};
