/**
 * The tfjs WASM backend (XNNPACK, SIMD), with dtrain's fixes applied: the
 * transposed-matMul fast path, multi-threading inside Deno, and CPU fallbacks
 * for the kernels stock wasm lacks (so CNNs can train).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { setBackendOrThrow } from "../cpu.ts";
import type { ActivateOptions, ActivateResult, Backend, ProbeResult } from "../types.ts";
import { registerWasmTrainingKernels } from "./_training_kernels.ts";
import { registerWasmFallbacks } from "./_cpu_fallback.ts";
import { patchWasmMatMul } from "./_matmul_fix.ts";
import { useWasmGemm } from "./_gemm.ts";
import { enableWasmThreads, wasmThreadsRunning } from "./_threads.ts";
import { activateHostBlas } from "./_host_blas.ts";
import { parseBlasRequest } from "./_blas_library.ts";
export { parseBlasRequest } from "./_blas_library.ts";
export { shutdownWasmThreads } from "./_threads.ts";

function cores(): number {
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}

let initialised = false;

/**
 * The WASM backend. `activate({ threads })` chooses the thread count, which
 * is fixed for the process once the backend has initialised (a later call
 * with another count keeps the first one and reports it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmBackend } from "./mod.ts";
 * const probe = await wasmBackend.probe();
 * assert.ok(typeof probe.available === "boolean");
 * ```
 */
export const wasmBackend: Backend = {
  name: "wasm",
  async probe(): Promise<ProbeResult> {
    if (typeof WebAssembly === "undefined") {
      return {
        available: false,
        reason: "WebAssembly is not supported by this runtime",
      };
    }
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") as boolean;
    const shared = typeof SharedArrayBuffer !== "undefined" &&
      typeof Worker !== "undefined";
    const maxThreads = shared ? cores() : 1;
    return {
      available: true,
      simd,
      maxThreads,
      reason: `WebAssembly${simd ? " with SIMD" : " without SIMD"}, ` +
        (shared ? `up to ${maxThreads} threads` : "single-threaded (no SharedArrayBuffer)"),
    };
  },
  async activate(options: ActivateOptions = {}): Promise<ActivateResult> {
    const threads = options.threads ?? cores();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(
        `threads must be an integer >= 1, received ${threads}`,
      );
    }
    if (options.blas !== undefined) parseBlasRequest(options.blas, "blas");
    if (!initialised) {
      await enableWasmThreads(threads);
      patchWasmMatMul();
      registerWasmFallbacks();
      registerWasmTrainingKernels();
    }
    await setBackendOrThrow("wasm");
    initialised = true;
    const running = wasmThreadsRunning();
    // dtrain's GEMM beats XNNPACK on the new operands of training, and on one
    // thread on every operand (see _gemm.ts).
    useWasmGemm(running === 1 ? "always" : "fresh");
    // The host's BLAS, where it is found and agrees with the GEMM, takes the
    // products ahead of both (see _host_blas.ts); one library thread per
    // wasm thread.
    const blas = activateHostBlas({ request: options.blas, threads: running });
    return { threads: running, blas };
  },
};
