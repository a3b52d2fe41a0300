/**
 * dtrain's own single-threaded GEMM for the tfjs WASM backend's `BatchMatMul`.
 *
 * tfjs runs every float32 matMul through XNNPACK's fully-connected operator,
 * which packs the right operand into its own layout when the operator is
 * created and caches the operator by that tensor's id. That suits inference
 * (weights do not change), but in training every right operand is new each
 * step: updated weights, activations, gradients. Packing with the transposed
 * layout tfjs asks for costs about as much as the product itself (measured:
 * 128x784 by 784x512 takes 2.9 ms on a cached operator, 5.3 ms on a fresh
 * one). This kernel (`_gemm_wat.ts`) packs with one SIMD pass and multiplies
 * at the cached operator's speed, reads a transposed operand in place, and
 * needs no explicit transpose. It copies the operands into its own memory
 * (a few hundred microseconds at most) and the product back.
 *
 * The same module runs Conv2DBackpropFilter (im2col, then the product) and
 * Conv2DBackpropInput (the product, then col2im) without leaving its memory.
 * Where the host's BLAS takes the products (`_blas_kernels.ts`), this module
 * still lends it im2row and col2im in its memory (`gemmIm2row`,
 * `gemmCol2im`), and checks it once (`gemmReference`).
 *
 * On a one-thread backend (the MirroredStrategy default: one replica per
 * core) it takes every product; it even beats XNNPACK's cached operator. With
 * more threads XNNPACK's parallel product wins once its operator is cached,
 * so the kernel takes a product only the first time it sees its right
 * operand (training: always; inference with fixed weights: the first call).
 *
 * @module
 */
import type { KernelFunc, TensorInfo } from "@tensorflow/tfjs-core";
import { backend_util } from "@tensorflow/tfjs-core";
import { GEMM_WASM_BASE64 } from "./_gemm_wasm.ts";

interface GemmExports {
  memory: WebAssembly.Memory;
  im2col(x: number, p: number, ...conv: number[]): void;
  im2row(x: number, p: number, ...conv: number[]): void;
  col2im(cols: number, dx: number, ...conv: number[]): void;
  pack(braw: number, bp: number, k: number, n: number, bks: number, bjs: number): void;
  gemm(
    a: number,
    bp: number,
    braw: number,
    c: number,
    m: number,
    n: number,
    k: number,
    ars: number,
    aks: number,
    bks: number,
    bjs: number,
  ): void;
}

/** What this kernel reads of tfjs' wasm backend (tfjs-backend-wasm 4.22). */
interface WasmInternals {
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
  makeOutput(shape: number[], dtype: "float32"): TensorInfo;
}

let kernel: GemmExports | null | undefined;

/** Largest kernel memory: operands, product and packed copy, bytes. */
const MAX_BYTES = 64 * 2 ** 20;

/**
 * The instantiated kernel, or null where this runtime's WebAssembly lacks
 * SIMD or relaxed SIMD (tfjs' own kernel is used then).
 */
function instance(): GemmExports | null {
  if (kernel !== undefined) return kernel;
  const bytes = Uint8Array.from(atob(GEMM_WASM_BASE64), (c) => c.charCodeAt(0));
  kernel = WebAssembly.validate(bytes)
    ? new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as GemmExports
    : null;
  return kernel;
}

/** Whether this runtime can run the kernel. */
export function gemmAvailable(): boolean {
  return instance() !== null;
}

/** When the kernel takes a product. */
export type GemmMode = "off" | "always" | "fresh";

let mode: GemmMode = "off";
/** Right operands the kernel has multiplied (`fresh` mode). */
let seen = new WeakSet<object>();
let calls = 0;

/** Products the kernel has computed in this process (for tests). */
export function gemmCalls(): number {
  return calls;
}

/**
 * Routes single-batch float32 `BatchMatMul` through the kernel: `"always"`,
 * `"fresh"` (only for a right operand it has not multiplied before), or
 * `"off"` (tfjs' own kernel; the default until the wasm backend activates).
 * Returns the previous mode.
 */
export function useWasmGemm(next: GemmMode): GemmMode {
  const before = mode;
  mode = next !== "off" && gemmAvailable() ? next : "off";
  seen = new WeakSet();
  return before;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Bytes reserved in the kernel's memory, grown on demand. */
function ensure(k: GemmExports, bytes: number): void {
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / 65536));
}

/**
 * `BatchMatMul` through the kernel, or `null` when the call is not one it
 * takes (kernel off or unavailable, a batch of more than one matrix,
 * non-float32 operands, mismatched inner sizes: tfjs' kernel handles or
 * reports those).
 */
export function gemmBatchMatMul(args: Parameters<KernelFunc>[0]): TensorInfo | null {
  if (mode === "off") return null;
  const k = instance();
  const a = args.inputs.a as TensorInfo | undefined;
  const b = args.inputs.b as TensorInfo | undefined;
  if (k === null || a === undefined || b === undefined) return null;
  if (mode === "fresh") {
    if (seen.has(b.dataId)) return null;
    seen.add(b.dataId);
  }
  if (a.dtype !== "float32" || b.dtype !== "float32") return null;
  const ra = a.shape.length, rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  if (product(a.shape.slice(0, -2)) !== 1 || product(b.shape.slice(0, -2)) !== 1) return null;
  const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean };
  const tA = attrs.transposeA === true, tB = attrs.transposeB === true;
  const M = tA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = tA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const N = tB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if ((tB ? b.shape[rb - 1]! : b.shape[rb - 2]!) !== K) return null;
  // Layout in the kernel's memory: A | B | C | B panels (16-byte aligned).
  const { at, bytes } = regions([M * K, K * N, M * N, K * N]);
  // Bigger products (a whole dataset through predict) stay with XNNPACK, so
  // the kernel's memory stays small.
  if (bytes > MAX_BYTES) return null;
  const [A, B, C, PANELS] = at as [number, number, number, number];
  const backend = args.backend as unknown as WasmInternals;
  const outer = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (M * N === 0) return backend.makeOutput([...outer, M, N], "float32");
  ensure(k, bytes);
  copyIn(backend, k, [[a, A], [b, B]]);
  const ars = tA ? 1 : K, aks = tA ? M : 1;
  const bks = tB ? 1 : N, bjs = tB ? K : 1;
  k.pack(B * 4, PANELS * 4, K, N, bks, bjs);
  calls++;
  k.gemm(A * 4, PANELS * 4, B * 4, C * 4, M, N, K, ars, aks, bks, bjs);
  return copyOut(backend, k, C, [...outer, M, N]);
}

/** Float offsets of consecutive 16-byte aligned regions of the given sizes, and the bytes they span. */
function regions(sizes: number[]): { at: number[]; bytes: number } {
  const at: number[] = [];
  let next = 0;
  for (const size of sizes) {
    at.push(next);
    next += Math.ceil(size / 4) * 4;
  }
  return { at, bytes: next * 4 };
}

/** A tensor's values in the wasm heap (a view, taken after any allocation). */
function heapView(backend: WasmInternals, t: TensorInfo): Float32Array {
  const at = backend.dataIdMap.get(t.dataId)?.memoryOffset;
  if (at === undefined) {
    throw new Error("wasm GEMM: expected the operands to live in the wasm heap");
  }
  const size = product(t.shape);
  const heap = backend.wasm.HEAPU8;
  if (at + size * 4 > heap.byteLength) {
    throw new Error(
      `wasm GEMM: expected ${size * 4} bytes at heap offset ${at}, received a heap view of ` +
        `${heap.byteLength} bytes`,
    );
  }
  return new Float32Array(heap.buffer, heap.byteOffset + at, size);
}

/** Output pixels (`rows`), filter taps per output channel (`taps`) and output channels. */
function convSizes(info: backend_util.Conv2DInfo): { rows: number; taps: number; cout: number } {
  return {
    rows: info.batchSize * info.outHeight * info.outWidth,
    taps: info.filterHeight * info.filterWidth * info.inChannels,
    cout: info.outChannels,
  };
}

/** The conv geometry `im2col` and `col2im` take, after their two addresses. */
function geometry(info: backend_util.Conv2DInfo): number[] {
  return [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
}

/** Copies tensors into the kernel's memory at the given float offsets. */
function copyIn(backend: WasmInternals, k: GemmExports, pairs: [TensorInfo, number][]): void {
  const mem = new Float32Array(k.memory.buffer);
  for (const [t, at] of pairs) mem.set(heapView(backend, t), at);
}

/** Copies `size` floats from the kernel's memory into a new output of `shape`. */
function copyOut(backend: WasmInternals, k: GemmExports, at: number, shape: number[]): TensorInfo {
  const out = backend.makeOutput(shape, "float32");
  const view = heapView(backend, out);
  view.set(new Float32Array(k.memory.buffer, at * 4, view.length));
  return out;
}

/**
 * `Conv2DBackpropFilter` (NHWC, float32) in the kernel's memory: im2col of
 * `x` as `[k][rows]`, then `dW = patches * dy`. `null` when the kernel is
 * off or the operands exceed its memory cap.
 */
export function gemmConv2DBackpropFilter(
  backend: unknown,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | null {
  const k = mode === "off" ? null : instance();
  if (k === null) return null;
  const { rows, taps, cout } = convSizes(info);
  const { at, bytes } = regions([
    product(x.shape),
    rows * cout,
    taps * rows,
    rows * cout,
    taps * cout,
  ]);
  if (bytes > MAX_BYTES) return null;
  const [X, DY, P, PANELS, C] = at as [number, number, number, number, number];
  const wasm = backend as WasmInternals;
  ensure(k, bytes);
  copyIn(wasm, k, [[x, X], [dy, DY]]);
  k.im2col(X * 4, P * 4, ...geometry(info));
  k.pack(DY * 4, PANELS * 4, rows, cout, cout, 1);
  calls++;
  k.gemm(P * 4, PANELS * 4, DY * 4, C * 4, taps, cout, rows, rows, 1, cout, 1);
  return copyOut(wasm, k, C, [info.filterHeight, info.filterWidth, info.inChannels, cout]);
}

/**
 * `Conv2DBackpropInput` (NHWC, float32) in the kernel's memory:
 * `cols = dy * W^T`, then col2im. `null` when the kernel is off or the
 * operands exceed its memory cap.
 */
export function gemmConv2DBackpropInput(
  backend: unknown,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | null {
  const k = mode === "off" ? null : instance();
  if (k === null) return null;
  const { rows, taps, cout } = convSizes(info);
  const inSize = info.batchSize * info.inHeight * info.inWidth * info.inChannels;
  const { at, bytes } = regions([rows * cout, taps * cout, taps * cout, rows * taps, inSize]);
  if (bytes > MAX_BYTES) return null;
  const [DY, W, PANELS, COLS, DX] = at as [number, number, number, number, number];
  const wasm = backend as WasmInternals;
  ensure(k, bytes);
  copyIn(wasm, k, [[dy, DY], [filter, W]]);
  // B = W^T: element [o, j] of the [cout, taps] operand is W[j * cout + o].
  k.pack(W * 4, PANELS * 4, cout, taps, 1, cout);
  calls++;
  k.gemm(DY * 4, PANELS * 4, W * 4, COLS * 4, rows, taps, cout, cout, 1, 1, cout);
  k.col2im(COLS * 4, DX * 4, ...geometry(info));
  return copyOut(wasm, k, DX, [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
  ]);
}

/**
 * `C = op(A) * op(B)` of plain row-major arrays through the kernel, whatever
 * the mode: the host BLAS's correctness probe checks the library against it.
 * `null` where this runtime cannot run the kernel.
 */
export function gemmReference(
  a: Float32Array,
  b: Float32Array,
  dims: { m: number; n: number; k: number; transposeA: boolean; transposeB: boolean },
): Float32Array | null {
  const kern = instance();
  if (kern === null) return null;
  const { m: M, n: N, k: K, transposeA: tA, transposeB: tB } = dims;
  const { at, bytes } = regions([M * K, K * N, M * N, K * N]);
  const [A, B, C, PANELS] = at as [number, number, number, number];
  ensure(kern, bytes);
  const mem = new Float32Array(kern.memory.buffer);
  mem.set(a.subarray(0, M * K), A);
  mem.set(b.subarray(0, K * N), B);
  const ars = tA ? 1 : K, aks = tA ? M : 1;
  const bks = tB ? 1 : N, bjs = tB ? K : 1;
  kern.pack(B * 4, PANELS * 4, K, N, bks, bjs);
  kern.gemm(A * 4, PANELS * 4, B * 4, C * 4, M, N, K, ars, aks, bks, bjs);
  return new Float32Array(kern.memory.buffer).slice(C, C + M * N);
}

/** Largest im2row/col2im scratch lent to the host BLAS kernels, bytes. */
const SCRATCH_MAX_BYTES = 1024 * 2 ** 20;

/** The kernel's memory and a byte offset in it. */
export interface ScratchAt {
  /** The kernel's memory (take views and pointers after the call: growing detaches them). */
  memory: WebAssembly.Memory;
  /** Byte offset of the matrix in `memory`. */
  byteOffset: number;
}

/**
 * im2row of the NHWC input `x` in the kernel's memory: the patch matrix
 * `[rows][taps]` (one row per output pixel, taps ordered as the filter's
 * `[kh, kw, cin]`), for the host BLAS's Conv2D and Conv2DBackpropFilter.
 * `null` when the kernel cannot run here or the matrix would exceed its
 * scratch cap.
 */
export function gemmIm2row(
  backend: unknown,
  x: TensorInfo,
  info: backend_util.Conv2DInfo,
): ScratchAt | null {
  const kern = instance();
  if (kern === null) return null;
  const { rows, taps } = convSizes(info);
  const { at, bytes } = regions([product(x.shape), taps * rows]);
  if (bytes > SCRATCH_MAX_BYTES) return null;
  const [X, P] = at as [number, number];
  ensure(kern, bytes);
  copyIn(backend as WasmInternals, kern, [[x, X]]);
  kern.im2row(X * 4, P * 4, ...geometry(info));
  return { memory: kern.memory, byteOffset: P * 4 };
}

/**
 * Conv2DBackpropInput's second half in the kernel's memory: `fill` writes the
 * column gradients `[rows][taps]` at the offset it is given, then col2im
 * sums them into a new `[n, h, w, cin]` output. `null` when the kernel
 * cannot run here or the scratch would exceed its cap (`fill` not called).
 */
export function gemmCol2im(
  backend: unknown,
  info: backend_util.Conv2DInfo,
  fill: (cols: ScratchAt) => void,
): TensorInfo | null {
  const kern = instance();
  if (kern === null) return null;
  const { rows, taps } = convSizes(info);
  const inSize = info.batchSize * info.inHeight * info.inWidth * info.inChannels;
  const { at, bytes } = regions([rows * taps, inSize]);
  if (bytes > SCRATCH_MAX_BYTES) return null;
  const [COLS, DX] = at as [number, number];
  ensure(kern, bytes);
  fill({ memory: kern.memory, byteOffset: COLS * 4 });
  kern.col2im(COLS * 4, DX * 4, ...geometry(info));
  return copyOut(backend as WasmInternals, kern, DX, [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
  ]);
}
