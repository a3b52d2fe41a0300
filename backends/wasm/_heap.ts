/**
 * dtrain's in-heap wasm kernels (`_heap_wat.ts`) bound to tfjs' wasm
 * backend: the module imports the backend's own memory, so it reads and
 * writes tensors where they live, without the copies of the GEMM module.
 * Each function returns `null` when it does not take the call (no such
 * memory, a width that is not a multiple of 4, another dtype): the caller
 * then uses tfjs' kernel.
 *
 * @module
 */
import type { TensorInfo } from "@tensorflow/tfjs-core";
import { HEAP_WASM_BASE64 } from "./_heap_wasm.ts";
import { HEAP_SHARED_WASM_BASE64 } from "./_heap_shared_wasm.ts";

interface HeapExports {
  colsum(x: number, out: number, rows: number, cols: number): void;
  addrow(x: number, b: number, out: number, rows: number, cols: number): void;
  pool2x2(x: number, out: number, ...dims: number[]): void;
  pool2x2grad(x: number, g: number, dx: number, ...dims: number[]): void;
}

/** What these kernels read of tfjs' wasm backend (tfjs-backend-wasm 4.22). */
interface WasmInternals {
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } | undefined };
  wasm: { wasmMemory?: unknown; asm?: { memory?: unknown } };
  makeOutput(shape: number[], dtype: "float32"): TensorInfo;
}

let calls = 0;

/** Calls the in-heap kernels have taken in this thread (for tests). */
export function heapCalls(): number {
  return calls;
}

let bound: { memory: WebAssembly.Memory; exports: HeapExports | null } | undefined;

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/**
 * The module instantiated on `backend`'s memory (threaded builds export it
 * as `wasmMemory`, single-threaded ones as `asm.memory`), or null where there
 * is none or this runtime cannot run it.
 */
function kernels(backend: WasmInternals): HeapExports | null {
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  if (bound?.memory === memory) return bound.exports;
  const shared = memory.buffer instanceof SharedArrayBuffer;
  const bytes = decode(shared ? HEAP_SHARED_WASM_BASE64 : HEAP_WASM_BASE64);
  let exports: HeapExports | null = null;
  if (WebAssembly.validate(bytes)) {
    try {
      exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } })
        .exports as unknown as HeapExports;
    } catch {
      exports = null; // a memory this module cannot import: tfjs' kernels serve
    }
  }
  bound = { memory, exports };
  return exports;
}

/**
 * Whether the in-heap kernels run on this wasm backend, and on which memory
 * (for tests and reports): `"shared"` with threads, `"own"` without, `null`
 * when they do not run.
 */
export function heapKernelsMemory(backend: unknown): "shared" | "own" | null {
  if (kernels(backend as WasmInternals) === null) return null;
  return bound!.memory.buffer instanceof SharedArrayBuffer ? "shared" : "own";
}

function offset(backend: WasmInternals, t: TensorInfo): number {
  const at = backend.dataIdMap.get(t.dataId)?.memoryOffset;
  if (at === undefined) throw new Error("wasm in-heap kernel: expected a tensor in the wasm heap");
  return at;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The sum over every axis but the last of a float32 `x` (shape `outShape`:
 * the last dimension, or 1s and it with keepDims), each column summed in row
 * order as tfjs' Sum does. `null` unless the last dimension is a multiple of 4.
 */
export function heapSumLeading(
  backend: unknown,
  x: TensorInfo,
  outShape: number[],
): TensorInfo | null {
  const b = backend as WasmInternals;
  const cols = x.shape.at(-1)!;
  if (x.dtype !== "float32" || cols % 4 !== 0 || cols === 0 || size(x.shape) === 0) return null;
  const k = kernels(b);
  if (k === null) return null;
  const out = b.makeOutput(outShape, "float32");
  k.colsum(offset(b, x), offset(b, out), size(x.shape) / cols, cols);
  calls++;
  return out;
}

/**
 * `x + bias` for a float32 `x` of any rank whose last dimension is the
 * length of the float32 vector `bias` (a multiple of 4), else `null`.
 */
export function heapAddRow(backend: unknown, x: TensorInfo, bias: TensorInfo): TensorInfo | null {
  const b = backend as WasmInternals;
  const cols = x.shape.at(-1);
  if (
    x.dtype !== "float32" || bias.dtype !== "float32" || bias.shape.length !== 1 ||
    cols === undefined || cols === 0 || cols % 4 !== 0 || bias.shape[0] !== cols ||
    x.shape.length < 2 || size(x.shape) === 0
  ) {
    return null;
  }
  const k = kernels(b);
  if (k === null) return null;
  const out = b.makeOutput([...x.shape], "float32");
  k.addrow(offset(b, x), offset(b, bias), offset(b, out), size(x.shape) / cols, cols);
  calls++;
  return out;
}

/**
 * `MaxPool` of a 2x2 pool with stride 2 and no padding (NHWC, float32,
 * channels a multiple of 4), else `null`: each window's first maximum in
 * row-major order (with NaNs, the value {@linkcode heapMaxPool2x2Grad}
 * routes the gradient to).
 */
export function heapMaxPool2x2(backend: unknown, x: TensorInfo): TensorInfo | null {
  const b = backend as WasmInternals;
  const [n, h, w, ch] = x.shape as [number, number, number, number];
  const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
  if (x.dtype !== "float32" || x.shape.length !== 4 || ch % 4 !== 0 || n * oh * ow * ch === 0) {
    return null;
  }
  const k = kernels(b);
  if (k === null) return null;
  const out = b.makeOutput([n, oh, ow, ch], "float32");
  k.pool2x2(offset(b, x), offset(b, out), n, h, w, ch, oh, ow);
  calls++;
  return out;
}

/**
 * `MaxPoolGrad` of a 2x2 pool with stride 2 and no padding (NHWC, float32,
 * channels a multiple of 4), else `null`.
 */
export function heapMaxPool2x2Grad(
  backend: unknown,
  input: TensorInfo,
  dy: TensorInfo,
): TensorInfo | null {
  const b = backend as WasmInternals;
  const [n, h, w, ch] = input.shape as [number, number, number, number];
  const [, oh, ow] = dy.shape as [number, number, number, number];
  if (
    input.dtype !== "float32" || dy.dtype !== "float32" || ch % 4 !== 0 ||
    oh !== Math.floor(h / 2) || ow !== Math.floor(w / 2)
  ) {
    return null;
  }
  const k = kernels(b);
  if (k === null) return null;
  const dx = b.makeOutput([n, h, w, ch], "float32");
  k.pool2x2grad(offset(b, input), offset(b, dy), offset(b, dx), n, h, w, ch, oh, ow);
  calls++;
  return dx;
}
