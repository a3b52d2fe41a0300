import type { ActivateResult, Backend, ProbeResult } from "./types.ts";
import { setBackendOrThrow } from "./cpu.ts";

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp/i;

/**
 * The tfjs WebGPU backend. The probe asks `navigator.gpu` for an adapter and
 * flags software adapters (llvmpipe, SwiftShader), which work but are slower
 * than WASM on a CPU. The backend's code is loaded only on activation.
 *
 * @example
 * ```ts
 * import { webgpuBackend } from "./webgpu.ts";
 * const probe = await webgpuBackend.probe();
 * console.log(probe.available, probe.software);
 * ```
 */
export const webgpuBackend: Backend = {
  name: "webgpu",
  async probe(): Promise<ProbeResult> {
    const gpu = (navigator as { gpu?: GPU }).gpu;
    if (gpu === undefined) {
      return {
        available: false,
        reason: "navigator.gpu is not defined in this runtime",
      };
    }
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpu.requestAdapter({
        powerPreference: "high-performance",
      });
    } catch (cause) {
      return {
        available: false,
        reason: `requestAdapter() threw: ${String(cause)}`,
      };
    }
    if (adapter === null) {
      return {
        available: false,
        reason: "navigator.gpu.requestAdapter() returned null",
      };
    }
    const info = adapter.info;
    const description = [
      info.vendor,
      info.architecture,
      info.description,
    ]
      // Software adapters report numeric vendor ids (llvmpipe: 65541): leave those out.
      .filter((s) => s !== undefined && s !== "" && !/^\d+$/.test(s)).join(" ");
    const software = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter) ||
      SOFTWARE.test(description);
    return {
      available: true,
      software,
      description,
      reason: software
        ? `software adapter (${description}): works, but slower than WASM on this CPU`
        : `hardware adapter (${description})`,
    };
  },
  async activate(): Promise<ActivateResult> {
    await import("@tensorflow/tfjs-backend-webgpu");
    await setBackendOrThrow("webgpu");
    return { threads: 1 };
  },
};
