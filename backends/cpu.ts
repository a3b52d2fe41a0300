import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type { ActivateResult, Backend, ProbeResult } from "./types.ts";

// tfjs sees `process.versions.node` in Deno and, on first use, suggests
// installing tfjs-node; production mode silences that advice (kernels and
// shape checks are unchanged).
tf.env().set("PROD", true);

/**
 * The tfjs reference CPU backend (plain JavaScript): always available, slow,
 * and the oracle the other backends are checked against.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpuBackend } from "./cpu.ts";
 * const probe = await cpuBackend.probe();
 * assert.ok(probe.available);
 * ```
 */
export const cpuBackend: Backend = {
  name: "cpu",
  probe(): Promise<ProbeResult> {
    return Promise.resolve({
      available: true,
      reason: "plain JavaScript kernels, always available",
      maxThreads: 1,
    });
  },
  async activate(): Promise<ActivateResult> {
    await setBackendOrThrow("cpu");
    return { threads: 1 };
  },
};

/**
 * Calls `tf.setBackend(name)` and throws when it returns false: tfjs reports a
 * failed initialisation only through that boolean.
 *
 * @example
 * ```ts
 * import { setBackendOrThrow } from "./cpu.ts";
 * await setBackendOrThrow("cpu");
 * ```
 */
export async function setBackendOrThrow(name: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (cause) {
    throw new Error(`tf.setBackend("${name}") threw: ${String(cause)}`, {
      cause,
    });
  }
  if (!ok || tf.getBackend() !== name) {
    throw new Error(
      `tf.setBackend("${name}") returned ${ok}; the active backend is ${tf.getBackend()}`,
    );
  }
}
