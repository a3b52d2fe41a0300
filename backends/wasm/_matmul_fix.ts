/**
 * Fast transposed matMul for the tfjs WASM backend.
 *
 * `@tensorflow/tfjs-backend-wasm@4.22.0` only takes its XNNPACK path for
 * `BatchMatMul` and `_FusedMatMul` when neither `transposeA` nor `transposeB`
 * is set; otherwise it falls back to a scalar loop that is 7-35x slower. Every
 * Dense backward pass sets one of the flags, so stock wasm training spends most
 * of its time there. This module re-registers both kernels so that a
 * transposed operand is first transposed explicitly (a fast wasm `Transpose`)
 * and the untransposed fast path does the product. When dtrain's own GEMM is
 * on (`_gemm.ts`, one-thread backends), `BatchMatMul` goes there first.
 * Ahead of both, where the host's BLAS is in use (`_blas_kernels.ts`), both
 * kernels run on it.
 *
 * @module
 */
import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from "@tensorflow/tfjs-core";
import { gemmBatchMatMul } from "./_gemm.ts";
import { blasBatchMatMul, blasFusedMatMul } from "./_blas_kernels.ts";

type Attrs = { transposeA?: boolean; transposeB?: boolean };
type Backend = { disposeData(dataId: unknown): void };

const PATCHED = Symbol.for("dtrain.wasmMatMulPatched");

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function wrap(original: KernelFunc, transpose: KernelFunc, gemm: boolean): KernelFunc {
  const blas = gemm ? blasBatchMatMul : blasFusedMatMul;
  return (args) => {
    const viaBlas = blas(args);
    if (viaBlas !== null) return viaBlas;
    if (gemm) {
      const out = gemmBatchMatMul(args);
      if (out !== null) return out;
    }
    const attrs = args.attrs as Attrs;
    if (!attrs.transposeA && !attrs.transposeB) return original(args);
    const inputs = { ...args.inputs };
    const backend = args.backend as unknown as Backend;
    const temps: TensorInfo[] = [];
    for (
      const [key, flag] of [["a", attrs.transposeA], [
        "b",
        attrs.transposeB,
      ]] as const
    ) {
      const x = inputs[key];
      if (!flag || x === undefined) continue;
      const t = transpose({
        inputs: { x },
        backend: args.backend,
        attrs: { perm: swapLastTwo(x.shape.length) },
      }) as TensorInfo;
      temps.push(t);
      inputs[key] = t;
    }
    try {
      return original({
        ...args,
        inputs,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/**
 * Re-registers the wasm `BatchMatMul` and `_FusedMatMul` kernels with the
 * transpose-first fast path. Idempotent; safe before or after the wasm backend
 * has been initialised. Returns the kernel names it patched.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-wasm";
 * import { patchWasmMatMul } from "./_matmul_fix.ts";
 * patchWasmMatMul();
 * ```
 */
export function patchWasmMatMul(): string[] {
  const patched: string[] = [];
  const transposeKernel = getKernel("Transpose", "wasm");
  if (transposeKernel === undefined) {
    throw new Error(
      "Cannot patch wasm matMul: expected the wasm Transpose kernel to be registered " +
        "(import @tensorflow/tfjs-backend-wasm first), received none",
    );
  }
  for (const name of ["BatchMatMul", "_FusedMatMul"]) {
    const config = getKernel(name, "wasm") as KernelConfig | undefined;
    if (config === undefined) continue;
    if ((config as unknown as Record<symbol, boolean>)[PATCHED]) {
      patched.push(name);
      continue;
    }
    unregisterKernel(name, "wasm");
    const next: KernelConfig = {
      ...config,
      kernelFunc: wrap(config.kernelFunc, transposeKernel.kernelFunc, name === "BatchMatMul"),
    };
    (next as unknown as Record<symbol, boolean>)[PATCHED] = true;
    registerKernel(next);
    patched.push(name);
  }
  return patched;
}
