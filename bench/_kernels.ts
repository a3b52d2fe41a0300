/**
 * Kernel micro-benchmarks for the WASM fixes, in one process per variant
 * (the matMul patch is process-wide). Prints one JSON row as its last line.
 *
 * Usage: deno run -A bench/_kernels.ts stock|dtrain [threads] [quick]
 *
 * @module
 */
import * as tf from "../src/tf.ts";

/** Kernel timings of one variant. */
export interface KernelRow {
  variant: "stock" | "dtrain";
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
}

async function time(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  await fn();
  const start = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - start) / reps;
}

if (import.meta.main) {
  const variant = Deno.args[0] === "stock" ? "stock" : "dtrain";
  const threads = Number(Deno.args[1] ?? 1);
  const quick = Deno.args[2] === "quick";
  const reps = (n: number) => quick ? Math.max(3, Math.round(n / 4)) : n;
  let running = 1;
  if (variant === "stock") {
    await import("@tensorflow/tfjs-backend-wasm");
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("setBackend(wasm) failed");
    }
  } else {
    const { selectBackend } = await import("../backends/mod.ts");
    running = (await selectBackend({ require: "wasm", threads, override: "" })).threads;
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
  };
  console.log(JSON.stringify(row));
  Deno.exit(0);
}
