/**
 * The request loop (`serveRequests`, from `serve_requests.ts`) and the
 * graceful close every model-training Worker entry point shares: each
 * request is parsed, handled, and answered exactly once (a reply, or
 * `{ type: "error", id, name, message }`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type * as tf from "../tf.ts";
import { shutdownWasmThreads } from "../../backends/wasm/mod.ts";
export { serveRequests } from "./serve_requests.ts";

/**
 * Frees the Worker's model and wasm threads and closes the Worker once the
 * returned `closed` reply is on its way (the main thread waits for it).
 */
export function closeWorker(
  id: number,
  model: tf.LayersModel | undefined,
): { type: "closed"; id: number } {
  model?.dispose();
  shutdownWasmThreads();
  setTimeout(() => self.close(), 0);
  return { type: "closed", id };
}
