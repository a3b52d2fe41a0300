/**
 * The backend contract: every implementation (`cpu`, `wasm`, `webgpu`) can be
 * probed without side effects and activated as the tfjs backend.
 *
 * @module
 */

/** Names of the backends dtrain knows, in auto-selection order. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** All backend names, in the order `auto` selection probes them. */
export const BACKEND_NAMES: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

/** Result of probing one backend. */
export interface ProbeResult {
  /** Whether the backend can run here. */
  available: boolean;
  /** Why it is or is not available. */
  reason: string;
  /** For WebGPU: the adapter is a software rasteriser (llvmpipe, SwiftShader). */
  software?: boolean;
  /** For WASM: whether SIMD is supported. */
  simd?: boolean;
  /** For WASM: how many threads could run (1 when threads are unsupported). */
  maxThreads?: number;
  /** Adapter or runtime description, when known. */
  description?: string;
}

/** Options passed when activating a backend. */
export interface ActivateOptions {
  /**
   * Threads for backends that can use several (WASM).
   * @default all cores
   */
  threads?: number;
  /**
   * The host's BLAS for the WASM backend's matrix products: `"auto"` (find
   * OpenBLAS, BLIS, MKL or Accelerate), `"off"`, or a library path.
   * @default Deno.env.get("DTRAIN_BLAS") ?? "auto"
   */
  blas?: string;
}

/**
 * Whether the WASM backend's matrix products (`BatchMatMul`, `_FusedMatMul`,
 * `Conv2D` and its backprop kernels) run on the host's BLAS through FFI, and
 * why. Where `used` is false, they run on dtrain's WASM kernels as before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { BlasReport } from "./types.ts";
 * const report: BlasReport = { used: false, reason: "refused by DTRAIN_BLAS=off" };
 * assert.equal(report.used, false);
 * ```
 */
export interface BlasReport {
  /** Whether the products run on the library. */
  used: boolean;
  /** Why it is or is not used. */
  reason: string;
  /** The library file, when one was opened. */
  library?: string;
  /** The library's own version string (`openblas_get_config()`), when it has one. */
  version?: string;
  /** The core type the library runs (`openblas_get_corename()`), when it says. */
  coreName?: string;
  /** What the library detected on its own, when dtrain replaced it (misdetected CPU). */
  detectedCore?: string;
  /** The `OPENBLAS_CORETYPE` dtrain set before reloading the library, when it set one. */
  coreTypeSet?: string;
  /** `OPENBLAS_CORETYPE` as the environment set it (dtrain keeps it), when set. */
  coreTypeFromEnv?: string;
  /** A better core type the CPU's flags allow than the one running, when there is one. */
  betterCoreType?: string;
  /** Threads the library runs per call. */
  threads?: number;
  /** Measured 128x784 by 784x512 float32 product on plain arrays, GFLOP/s. */
  gflops?: number;
  /** Largest difference from dtrain's own GEMM in the correctness probe. */
  probeMaxError?: number;
}

/** What an activated backend reports about itself. */
export interface ActivateResult {
  /** Threads actually running (1 for single-threaded backends). */
  threads: number;
  /** WASM: whether its products run on the host's BLAS, and why. */
  blas?: BlasReport;
}

/** One backend implementation. */
export interface Backend {
  /** The tfjs backend name. */
  readonly name: BackendName;
  /** Checks whether the backend can run here, without activating it. */
  probe(): Promise<ProbeResult>;
  /**
   * Makes this the active tfjs backend. Rejects when `tf.setBackend()`
   * returns false or initialisation throws.
   */
  activate(options?: ActivateOptions): Promise<ActivateResult>;
}
