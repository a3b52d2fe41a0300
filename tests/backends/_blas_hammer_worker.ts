/// <reference lib="deno.worker" />
// Worker for blas_test.ts: opens the host's BLAS in its own thread, waits for
// every Worker to be ready, then runs products concurrently with the others
// on pointers into its own WebAssembly.Memory and checks each one against
// dtrain's GEMM computed beforehand.
import {
  CBLAS_NO_TRANS,
  CBLAS_ROW_MAJOR,
  CBLAS_TRANS,
  openHostBlas,
} from "../../backends/wasm/_blas_library.ts";
import { gemmReference } from "../../backends/wasm/_gemm.ts";
import { seeded } from "../../backends/wasm/_host_blas.ts";

type Start = {
  id: number;
  gate: SharedArrayBuffer;
  workers: number;
  rounds: number;
  threads: number;
};

self.onmessage = (event: MessageEvent<Start>) => {
  const { id, gate, workers, rounds, threads } = event.data;
  const blas = openHostBlas({ kind: "auto" });
  if (!("sgemm" in blas)) {
    self.postMessage({ type: "error", id, message: blas.reason });
    return;
  }
  blas.setThreads(threads);
  // Ragged sizes differ per Worker so that every thread runs its own blocking.
  const m = 61 + 7 * id, n = 129 - 5 * id, k = 200 + 11 * id;
  const cases = [false, true].flatMap((tA) => [false, true].map((tB) => ({ tA, tB })));
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 1024, shared: true });
  const f32 = new Float32Array(memory.buffer);
  const A = 0, B = m * k, C = B + k * n;
  const a = seeded(m * k, 10 + id), b = seeded(k * n, 20 + id);
  f32.set(a, A);
  f32.set(b, B);
  const expected = cases.map(({ tA, tB }) =>
    gemmReference(a, b, { m, n, k, transposeA: tA, transposeB: tB })!
  );
  const flags = new Int32Array(gate);
  Atomics.add(flags, 0, 1);
  Atomics.notify(flags, 0);
  while (Atomics.load(flags, 0) < workers) Atomics.wait(flags, 0, Atomics.load(flags, 0), 50);
  const base = Deno.UnsafePointer.of(new Uint8Array(memory.buffer))!;
  const at = (floats: number) => Deno.UnsafePointer.offset(base, floats * 4);
  let mismatches = 0, worst = 0, products = 0;
  for (let r = 0; r < rounds; r++) {
    const { tA, tB } = cases[r % cases.length]!;
    f32.fill(Number.NaN, C, C + m * n);
    blas.sgemm(
      CBLAS_ROW_MAJOR,
      tA ? CBLAS_TRANS : CBLAS_NO_TRANS,
      tB ? CBLAS_TRANS : CBLAS_NO_TRANS,
      m,
      n,
      k,
      1,
      at(A),
      tA ? m : k,
      at(B),
      tB ? k : n,
      0,
      at(C),
      n,
    );
    products++;
    const e = expected[r % cases.length]!;
    for (let i = 0; i < e.length; i++) {
      const err = Math.abs(f32[C + i]! - e[i]!);
      if (!(err <= 1e-4 + 1e-4 * Math.abs(e[i]!))) mismatches++;
      else worst = Math.max(worst, err);
    }
  }
  blas.close();
  self.postMessage({ type: "done", id, products, mismatches, worst });
};
