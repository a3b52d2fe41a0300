/**
 * Kernel micro-benchmarks for the WASM fixes, in one process per variant
 * (the matMul patch is process-wide). Prints one JSON row as its last line.
 *
 * Usage: deno run -A bench/_kernels.ts stock|dtrain|blas [threads] [quick]
 *
 * `dtrain` is dtrain's wasm without the host's BLAS (run it with
 * `DTRAIN_BLAS=off`: `bench/main.ts` does); `blas` is dtrain's wasm with its
 * products on the host's BLAS, and fails where the library is not used.
 *
 * @module
 */
import * as tf from "../src/tf.ts";
import type { BlasReport } from "../backends/types.ts";

/** Kernel timings of one variant. */
export interface KernelRow {
  variant: "stock" | "dtrain" | "blas";
  threads: number;
  /** 512x512 matMul times (ms) for no transpose, transposeA, transposeB. */
  matmulMs: { plain: number; transposeA: number; transposeB: number };
  /** One training step of the 784-512-512-10 MLP (Adam) at batch 128, ms. */
  denseStepMs: number;
  /**
   * 128x784 by 784x512 with a right operand never seen before (as in
   * training, where weights, activations and gradients are new every step), ms.
   */
  freshMatmulMs: number;
  /** `dtrain` on 1 thread: the same with dtrain's GEMM off (XNNPACK), ms. */
  freshXnnpackMs?: number;
  /** `blas`: the same product on dtrain's own GEMM (library routed off), ms. */
  freshGemmMs?: number;
  /**
   * `blas`: the alternative design, on the same operands: copy both operands
   * out of the wasm heap into plain arrays, `cblas_sgemm` there, copy the
   * product back into a new heap tensor, ms.
   */
  freshCopyMs?: number;
  /** `blas`: `cblas_sgemm` alone on plain arrays (no tfjs, no copy), ms. */
  plainSgemmMs?: number;
  /** `blas`: what the selection reported. */
  blas?: BlasReport;
}

async function time(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  await fn();
  const start = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - start) / reps;
}

/**
 * The design not taken, timed on the same product: the operands copied out
 * of the wasm heap into plain arrays, `cblas_sgemm` on those, the product
 * copied back into a new tensor in the heap. Also the library alone.
 */
async function copyAlternative(
  lib: import("../backends/wasm/_blas_library.ts").HostBlas,
  left: tf.Tensor,
  count: number,
): Promise<{ freshCopyMs: number; plainSgemmMs: number }> {
  const { CBLAS_NO_TRANS, CBLAS_ROW_MAJOR } = await import("../backends/wasm/_blas_library.ts");
  const backend = tf.backend() as unknown as {
    dataIdMap: { get(id: unknown): { memoryOffset: number } };
    wasm: { HEAPU8: Uint8Array };
  };
  const heapView = (t: tf.Tensor) => {
    const heap = backend.wasm.HEAPU8;
    return new Float32Array(heap.buffer, backend.dataIdMap.get(t.dataId).memoryOffset, t.size);
  };
  const [M, K, N] = [128, 784, 512];
  const a = new Float32Array(M * K), b = new Float32Array(K * N), c = new Float32Array(M * N);
  const ptr = (x: Float32Array) => Deno.UnsafePointer.of(x);
  const sgemm = () =>
    lib.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_NO_TRANS,
      CBLAS_NO_TRANS,
      M,
      N,
      K,
      1,
      ptr(a),
      K,
      ptr(b),
      N,
      0,
      ptr(c),
      N,
    );
  const rights = Array.from({ length: count + 2 }, () => tf.randomUniform([K, N]));
  let next = 0;
  const freshCopyMs = await time(async () => {
    const right = rights[next++]!;
    a.set(heapView(left));
    b.set(heapView(right));
    sgemm();
    const out = tf.zeros([M, N]); // a new heap tensor, as a kernel's output
    heapView(out).set(c);
    await out.data();
    out.dispose();
  }, count);
  tf.dispose(rights);
  const plainSgemmMs = await time(() => Promise.resolve(sgemm()), count * 5);
  return { freshCopyMs, plainSgemmMs };
}

if (import.meta.main) {
  const variant = Deno.args[0] === "stock" ? "stock" : Deno.args[0] === "blas" ? "blas" : "dtrain";
  const threads = Number(Deno.args[1] ?? 1);
  const quick = Deno.args[2] === "quick";
  const reps = (n: number) => quick ? Math.max(3, Math.round(n / 4)) : n;
  let running = 1;
  let blas: BlasReport | undefined;
  if (variant === "stock") {
    await import("@tensorflow/tfjs-backend-wasm");
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("setBackend(wasm) failed");
    }
  } else {
    const { selectBackend } = await import("../backends/mod.ts");
    const report = await selectBackend({
      require: "wasm",
      threads,
      override: "",
      blas: variant === "blas" ? "auto" : "off",
    });
    running = report.threads;
    blas = report.blas;
    if (variant === "blas" && blas?.used !== true) {
      throw new Error(`the host's BLAS is not used: ${blas?.reason}`);
    }
  }
  const a = tf.randomUniform([512, 512]);
  const mm = (ta: boolean, tb: boolean) => async () => {
    const c = tf.matMul(a, a, ta, tb);
    await c.data();
    c.dispose();
  };
  const matmulMs = {
    plain: await time(mm(false, false), reps(20)),
    transposeA: await time(mm(true, false), reps(20)),
    transposeB: await time(mm(false, true), reps(20)),
  };
  const left = tf.randomUniform([128, 784]);
  const fresh = async (count: number) => {
    // Distinct tensors: XNNPACK caches its packed operand by tensor id.
    const rights = Array.from({ length: count + 2 }, () => tf.randomUniform([784, 512]));
    let next = 0;
    const ms = await time(async () => {
      const c = tf.matMul(left, rights[next++]!);
      await c.data();
      c.dispose();
    }, count);
    tf.dispose(rights);
    return ms;
  };
  const freshMatmulMs = await fresh(reps(20));
  let freshGemmMs: number | undefined, freshCopyMs: number | undefined;
  let plainSgemmMs: number | undefined;
  if (variant === "blas") {
    const kernels = await import("../backends/wasm/_blas_kernels.ts");
    const lib = kernels.useHostBlas(null)!;
    freshGemmMs = await fresh(reps(20));
    kernels.useHostBlas(lib);
    ({ freshCopyMs, plainSgemmMs } = await copyAlternative(lib, left, reps(20)));
  }
  let freshXnnpackMs: number | undefined;
  if (variant === "dtrain" && running === 1) {
    const { useWasmGemm } = await import("../backends/wasm/_gemm.ts");
    const before = useWasmGemm("off");
    freshXnnpackMs = await fresh(reps(20));
    useWasmGemm(before);
  }
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 512, activation: "relu", inputShape: [784] }),
      tf.layers.dense({ units: 512, activation: "relu" }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  model.compile({ optimizer: "adam", loss: "categoricalCrossentropy" });
  const x = tf.randomUniform([128, 784]);
  const y = tf.oneHot(tf.randomUniform([128], 0, 10, "int32"), 10);
  const denseStepMs = await time(async () => {
    await model.trainOnBatch(x, y);
  }, reps(10));
  const row: KernelRow = {
    variant,
    threads: running,
    matmulMs,
    denseStepMs,
    freshMatmulMs,
    freshXnnpackMs,
    freshGemmMs,
    freshCopyMs,
    plainSgemmMs,
    blas,
  };
  console.log(JSON.stringify(row));
  Deno.exit(0);
}
