/**
 * `deno task backends [--json]`: probes every backend, measures a quick
 * matMul on each one that is available, and prints a table (or JSON).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { cpuBackend } from "./cpu.ts";
import { selectBackend } from "./select.ts";
import type { Backend, BackendName, BlasReport } from "./types.ts";
import { wasmBackend } from "./wasm/mod.ts";
import { webgpuBackend } from "./webgpu.ts";

/** One row of the backends report. */
export interface BackendRow {
  /** Backend name. */
  name: BackendName;
  /** Whether it can run here. */
  available: boolean;
  /** Why it is or is not available. */
  reason: string;
  /** Software GPU adapter (WebGPU only). */
  software?: boolean;
  /** Threads it runs. */
  threads?: number;
  /** Measured float32 matMul throughput. */
  matmulGflops?: number;
  /** Whether `auto` selection picks it on this machine. */
  auto?: boolean;
  /** WASM: whether its matrix products run on the host's BLAS, and why. */
  blas?: BlasReport;
}

async function matmulGflops(n: number): Promise<number> {
  const a = tf.randomUniform([n, n]);
  const b = tf.randomUniform([n, n]);
  try {
    const run = async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    };
    await run();
    const reps = 5;
    const start = performance.now();
    for (let i = 0; i < reps; i++) await run();
    const seconds = (performance.now() - start) / 1000 / reps;
    return Math.round((2 * n ** 3) / seconds / 1e7) / 100;
  } finally {
    a.dispose();
    b.dispose();
  }
}

/**
 * Probes and measures every backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendRows } from "./cli.ts";
 * const rows = await backendRows({ size: 128 });
 * assert.ok(rows.some((r) => r.name === "cpu" && r.available));
 * ```
 */
export async function backendRows(
  options: { size?: number } = {},
): Promise<BackendRow[]> {
  const size = options.size ?? 512;
  const auto = await selectBackend({ override: "" });
  const rows: BackendRow[] = [];
  const impls: Backend[] = [webgpuBackend, wasmBackend, cpuBackend];
  for (const impl of impls) {
    const probe = await impl.probe();
    const row: BackendRow = {
      name: impl.name,
      available: probe.available,
      reason: probe.reason,
    };
    if (probe.software !== undefined) row.software = probe.software;
    if (probe.available) {
      try {
        const active = await impl.activate();
        row.threads = active.threads;
        if (active.blas !== undefined) row.blas = active.blas;
        row.matmulGflops = await matmulGflops(
          impl.name === "cpu" ? Math.min(size, 256) : size,
        );
      } catch (cause) {
        row.available = false;
        row.reason = `initialisation failed: ${cause instanceof Error ? cause.message : cause}`;
      }
    }
    row.auto = impl.name === auto.name;
    rows.push(row);
  }
  return rows;
}

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const unknown = Deno.args.filter((a) => a !== "--json");
  if (unknown.length > 0) {
    console.error(
      `Unknown argument(s): ${unknown.join(" ")}. Usage: deno task backends [--json]`,
    );
    Deno.exit(2);
  }
  const rows = await backendRows();
  if (json) {
    console.log(JSON.stringify(rows));
  } else {
    console.log("backend  available  auto  threads  matmul GFLOP/s  reason");
    for (const r of rows) {
      console.log(
        `${r.name.padEnd(8)} ${String(r.available).padEnd(10)} ${(r.auto ? "*" : "").padEnd(5)} ` +
          `${String(r.threads ?? "-").padEnd(8)} ${String(r.matmulGflops ?? "-").padEnd(15)} ` +
          r.reason,
      );
    }
    for (const r of rows) {
      if (r.blas === undefined) continue;
      const b = r.blas;
      console.log(
        `\n${r.name} matrix products on the host's BLAS: ${b.used ? "yes" : "no"}` +
          (b.library === undefined ? "" : `\n  library: ${b.library}`) +
          (b.version === undefined ? "" : `\n  version: ${b.version}`) +
          (b.coreName === undefined ? "" : `\n  core:    ${b.coreName}` +
            (b.detectedCore === undefined ? "" : ` (the library detected ${b.detectedCore})`)) +
          (b.gflops === undefined ? "" : `\n  speed:   ${b.gflops} GFLOP/s (128x784x512)`) +
          `\n  why:     ${b.reason}`,
      );
    }
  }
  // WASM pthreads and GPU devices keep the event loop alive: exit explicitly.
  Deno.exit(0);
}
