/**
 * Backends for dtrain: runtime selection among WebGPU, WASM (SIMD,
 * multi-threaded, with a fast transposed matMul) and CPU.
 *
 * @example
 * ```ts
 * import { selectBackend } from "@dtrain/dtrain/backends";
 * const report = await selectBackend({ prefer: "wasm" });
 * console.log(`running on ${report.name}: ${report.reason}`);
 * ```
 * @module
 */
export { cpuBackend, setBackendOrThrow } from "./cpu.ts";
export { wasmBackend } from "./wasm/mod.ts";
export { webgpuBackend } from "./webgpu.ts";
export {
  type BackendReport,
  type CandidateReport,
  selectBackend,
  type SelectBackendOptions,
} from "./select.ts";
export {
  type ActivateOptions,
  type ActivateResult,
  type Backend,
  BACKEND_NAMES,
  type BackendName,
  type BlasReport,
  type ProbeResult,
} from "./types.ts";
export { BackendUnavailableError } from "./errors.ts";
