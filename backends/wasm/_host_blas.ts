/**
 * Decides, at WASM activation and once per thread, whether the training
 * products run on the host's BLAS: opens the library (`_blas_library.ts`),
 * checks it against dtrain's own GEMM on ragged products with every
 * transpose, measures it, and routes the kernels (`_blas_kernels.ts`) to it
 * only when it agrees. The report says what it chose and why.
 *
 * @module
 */
import type { BlasReport } from "../types.ts";
import {
  type BlasRequest,
  CBLAS_NO_TRANS,
  CBLAS_ROW_MAJOR,
  CBLAS_TRANS,
  type HostBlas,
  openHostBlas,
  parseBlasRequest,
  readEnv,
} from "./_blas_library.ts";
import { useHostBlas } from "./_blas_kernels.ts";
import { gemmReference } from "./_gemm.ts";

/** Probe tolerance: |blas - reference| <= ATOL + RTOL * |reference|. */
const RTOL = 1e-4;
const ATOL = 1e-4;

let opened: HostBlas | null = null;
let last: { key: string; report: BlasReport } | undefined;

/** `n` deterministic values in [-1, 1) from `seed` (an LCG): probe operands. */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Row-major `op(A) * op(B)` in float64, for runtimes without dtrain's GEMM. */
function plainProduct(
  a: Float32Array,
  b: Float32Array,
  d: { m: number; n: number; k: number; transposeA: boolean; transposeB: boolean },
): Float32Array {
  const out = new Float32Array(d.m * d.n);
  for (let i = 0; i < d.m; i++) {
    for (let j = 0; j < d.n; j++) {
      let sum = 0;
      for (let p = 0; p < d.k; p++) {
        const x = d.transposeA ? a[p * d.m + i]! : a[i * d.k + p]!;
        const y = d.transposeB ? b[j * d.k + p]! : b[p * d.n + j]!;
        sum += x * y;
      }
      out[i * d.n + j] = sum;
    }
  }
  return out;
}

function ptr(a: Float32Array): Deno.PointerObject {
  return Deno.UnsafePointer.of(a)!;
}

/** One product through the library on plain arrays. */
function libraryProduct(
  blas: HostBlas,
  a: Float32Array,
  b: Float32Array,
  d: { m: number; n: number; k: number; transposeA: boolean; transposeB: boolean },
): Float32Array {
  const c = new Float32Array(d.m * d.n).fill(Number.NaN);
  blas.sgemm(
    CBLAS_ROW_MAJOR,
    d.transposeA ? CBLAS_TRANS : CBLAS_NO_TRANS,
    d.transposeB ? CBLAS_TRANS : CBLAS_NO_TRANS,
    d.m,
    d.n,
    d.k,
    1,
    ptr(a),
    d.transposeA ? d.m : d.k,
    ptr(b),
    d.transposeB ? d.k : d.n,
    0,
    ptr(c),
    d.n,
  );
  return c;
}

/**
 * Compares the library with dtrain's GEMM (or a float64 loop where the GEMM
 * cannot run) on ragged products, every transpose. Returns the largest
 * difference, or a sentence naming the first element that differs.
 */
export function probeProducts(blas: HostBlas): { maxError: number } | { mismatch: string } {
  let maxError = 0;
  const shapes: [number, number, number][] = [[37, 29, 53], [6, 17, 130], [1, 9, 33]];
  for (const [m, n, k] of shapes) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const d = { m, n, k, transposeA, transposeB };
        const a = seeded(m * k, m + k), b = seeded(k * n, n + 7 * k);
        const expected = gemmReference(a, b, d) ?? plainProduct(a, b, d);
        const actual = libraryProduct(blas, a, b, d);
        for (let i = 0; i < expected.length; i++) {
          const e = expected[i]!, x = actual[i]!;
          const err = Math.abs(x - e);
          if (!(err <= ATOL + RTOL * Math.abs(e))) {
            return {
              mismatch: `${m}x${k} by ${k}x${n} (transposeA=${transposeA}, ` +
                `transposeB=${transposeB}): element ${i} is ${x}, expected ${e}`,
            };
          }
          maxError = Math.max(maxError, err);
        }
      }
    }
  }
  return { maxError };
}

/** 128x784 by 784x512 on plain arrays, GFLOP/s (median of 7 after 2 warm-ups). */
export function measureGflops(blas: HostBlas): number {
  const d = { m: 128, n: 512, k: 784, transposeA: false, transposeB: false };
  const a = seeded(d.m * d.k, 1), b = seeded(d.k * d.n, 2), c = new Float32Array(d.m * d.n);
  const run = () =>
    blas.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_NO_TRANS,
      CBLAS_NO_TRANS,
      d.m,
      d.n,
      d.k,
      1,
      ptr(a),
      d.k,
      ptr(b),
      d.n,
      0,
      ptr(c),
      d.n,
    );
  run();
  run();
  const ms: number[] = [];
  for (let i = 0; i < 7; i++) {
    const start = performance.now();
    run();
    ms.push(performance.now() - start);
  }
  const median = ms.sort((x, y) => x - y)[3]!;
  return Math.round((2 * d.m * d.n * d.k) / (median * 1e6) * 10) / 10;
}

function describe(blas: HostBlas): Omit<BlasReport, "used" | "reason"> {
  return {
    library: blas.path,
    ...(blas.version === undefined ? {} : { version: blas.version }),
    ...(blas.coreName === undefined ? {} : { coreName: blas.coreName }),
    ...(blas.detectedCore === undefined ? {} : { detectedCore: blas.detectedCore }),
    ...(blas.coreTypeSet === undefined ? {} : { coreTypeSet: blas.coreTypeSet }),
    ...(blas.coreTypeFromEnv === undefined ? {} : { coreTypeFromEnv: blas.coreTypeFromEnv }),
    ...(blas.betterCoreType === undefined ? {} : { betterCoreType: blas.betterCoreType }),
  };
}

/**
 * Opens, checks and measures the host's BLAS per `request` (`DTRAIN_BLAS` by
 * default) and routes this thread's products to it with `threads` library
 * threads, or routes them back to dtrain's kernels; reports either way. A
 * second call with the same request and threads returns the first report.
 * Throws a `TypeError` for a malformed request.
 */
export function activateHostBlas(options: { request?: string; threads: number }): BlasReport {
  const raw = options.request ?? readEnv("DTRAIN_BLAS");
  const request: BlasRequest = parseBlasRequest(
    raw,
    options.request === undefined ? "DTRAIN_BLAS" : "blas",
  );
  const key = `${JSON.stringify(request)} ${options.threads}`;
  if (last !== undefined && last.key === key) return last.report;
  useHostBlas(null);
  if (
    opened !== null &&
    (request.kind === "off" || (request.kind === "path" && request.path !== opened.path))
  ) {
    opened.close();
    opened = null;
  }
  let report: BlasReport;
  const blas = opened ?? openHostBlas(request);
  if (!("sgemm" in blas)) {
    report = { used: false, reason: blas.reason, ...(blas.path ? { library: blas.path } : {}) };
  } else {
    opened = blas;
    const threaded = blas.setThreads(options.threads);
    const probe = probeProducts(blas);
    if ("mismatch" in probe) {
      report = {
        used: false,
        ...describe(blas),
        reason: `refused: it differs from dtrain's GEMM on ${probe.mismatch}`,
      };
    } else {
      const gflops = measureGflops(blas);
      useHostBlas(blas);
      const core = blas.detectedCore !== undefined
        ? `; it detected the CPU as ${blas.detectedCore}, dtrain reloaded it as ` +
          `${blas.coreName} (OPENBLAS_CORETYPE=${blas.coreTypeSet}, from the CPU's flags)`
        : blas.coreTypeFromEnv !== undefined
        ? `; runs ${blas.coreName} as OPENBLAS_CORETYPE=${blas.coreTypeFromEnv} in the ` +
          `environment asks, though this CPU's flags allow ${blas.betterCoreType} ` +
          `(unset OPENBLAS_CORETYPE to let dtrain choose)`
        : blas.coreName === undefined
        ? ""
        : `; core ${blas.coreName}`;
      report = {
        used: true,
        ...describe(blas),
        ...(threaded ? { threads: options.threads } : {}),
        gflops,
        probeMaxError: probe.maxError,
        reason: `matches dtrain's GEMM (max error ${probe.maxError.toExponential(1)}), ` +
          `${gflops} GFLOP/s on 128x784x512${core}` +
          (threaded ? "" : "; the library has no thread-count call (runs its default)"),
      };
    }
  }
  last = { key, report };
  return report;
}
