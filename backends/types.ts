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
}

/** What an activated backend reports about itself. */
export interface ActivateResult {
  /** Threads actually running (1 for single-threaded backends). */
  threads: number;
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
