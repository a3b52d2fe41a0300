/**
 * The request loop every Worker entry point shares: each request is parsed,
 * handled, and answered exactly once (a reply, or
 * `{ type: "error", id, name, message }`). It imports nothing heavy, so a
 * Worker that trains no model (a `ParallelMap` map Worker) can use it
 * without loading tfjs; `worker_loop.ts` re-exports it beside `closeWorker`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { ReplyEnvelope } from "./worker_handle.ts";

/** Answers every incoming message with `handle(parse(data))`, or an error reply. */
export function serveRequests<R extends { id: number }, Reply extends ReplyEnvelope>(
  parse: (data: unknown) => R,
  handle: (request: R) => Promise<Reply>,
): void {
  self.onmessage = async (event: MessageEvent<unknown>) => {
    let id = -1;
    try {
      const req = parse(event.data);
      id = req.id;
      self.postMessage(await handle(req));
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      self.postMessage({ type: "error", id, name: e.name, message: e.message, stack: e.stack });
    }
  };
}
