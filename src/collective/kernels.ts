/**
 * The replica group's SIMD kernels (`_kernels_wat.ts`) bound to the group's
 * shared `WebAssembly.Memory`. The all-reduce and the sharded optimizer step
 * call them when their arrays live in that memory; elsewhere (or where the
 * runtime lacks wasm SIMD) they run the same float32 arithmetic in
 * JavaScript.
 *
 * @module
 */
import { KERNELS_WASM_BASE64 } from "./_kernels_wasm.ts";

/** The kernels, on byte addresses in the memory they were bound to. */
export interface GroupKernels {
  /** The memory the addresses refer to. */
  readonly buffer: SharedArrayBuffer;
  wsum2(out: number, a: number, b: number, wa: number, wb: number, n: number): void;
  waxpy(out: number, a: number, wa: number, n: number): void;
  wscale(out: number, a: number, wa: number, n: number): void;
  sgd(w: number, g: number, n: number, lr: number): void;
  momentum(
    w: number,
    acc: number,
    g: number,
    n: number,
    lr: number,
    mu: number,
    nesterov: number,
  ): void;
  adam(
    w: number,
    m: number,
    v: number,
    g: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    c1: number,
    c2: number,
    eps: number,
  ): void;
}

let compiled: WebAssembly.Module | null | undefined;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  const bytes = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
  compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  return compiled;
}

/** Largest group memory: wasm32 addresses 4 GiB. */
const MAX_PAGES = 65536;

/**
 * A shared memory of at least `bytes` bytes for a replica group, or `null`
 * when the kernels cannot run here (no wasm SIMD, or more than 4 GiB): the
 * caller then uses a `SharedArrayBuffer` and the JavaScript loops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { groupKernels, groupMemory } from "./kernels.ts";
 * const memory = groupMemory(64)!;
 * const k = groupKernels(memory)!;
 * const f = new Float32Array(memory.buffer, 0, 8);
 * f.set([1, 2, 3, 4]);
 * k.wscale(16, 0, 2, 4); // floats 4..7 = 2 * floats 0..3
 * assert.ok(f[7] === 8);
 * ```
 */
export function groupMemory(bytes: number): WebAssembly.Memory | null {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  if (pages > MAX_PAGES || module() === null) return null;
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/** The kernels bound to `memory` (from {@linkcode groupMemory}), or null. */
export function groupKernels(memory: WebAssembly.Memory): GroupKernels | null {
  const mod = module();
  if (mod === null) return null;
  const exports = new WebAssembly.Instance(mod, { env: { memory } }).exports;
  return { ...exports, buffer: memory.buffer as SharedArrayBuffer } as unknown as GroupKernels;
}
