/**
 * The request loop and the graceful close every Worker entry point shares:
 * each request is parsed, handled, and answered exactly once (a reply, or
 * `{ type: "error", id, name, message }`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type * as tf from "../tf.ts";
import { shutdownWasmThreads } from "../../backends/wasm/_threads.ts";
import type { Reply } from "./protocol.ts";

/** Answers every incoming message with `handle(parse(data))`, or an error reply. */
export function serveRequests<R extends { id: number }>(
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

/**
 * Frees the Worker's model and wasm threads and closes the Worker once the
 * returned `closed` reply is on its way (the main thread waits for it).
 */
export function closeWorker(id: number, model: tf.LayersModel | undefined): Reply {
  model?.dispose();
  shutdownWasmThreads();
  setTimeout(() => self.close(), 0);
  return { type: "closed", id };
}
