/**
 * The training products of the tfjs WASM backend on the host's BLAS
 * (`cblas_sgemm` through Deno FFI), with no tensor copied: the library is
 * given pointers into the wasm heap, where tfjs keeps every tensor, and writes
 * its product straight into a new output tensor there.
 *
 * - `BatchMatMul` (every transpose, batched with a broadcast batch of 1) and
 *   `_FusedMatMul` (rank-1 bias added by seeding the output and calling with
 *   `beta = 1`; relu, relu6, leakyrelu, elu or sigmoid applied in place);
 * - `Conv2D` and `FusedConv2D` (NHWC): im2row in dtrain's GEMM module
 *   (`_gemm.ts`: one row of patches per output pixel, copied in contiguous
 *   runs), then `out = patches * W`; a 1x1 stride-1 unpadded conv is one
 *   product of the input itself;
 * - `Conv2DBackpropFilter`: im2row, then `dW = patches^T * dy`, the library
 *   reading the patches transposed in place;
 * - `Conv2DBackpropInput`: `cols = dy * W^T` into the GEMM module's memory,
 *   then col2im there.
 *
 * Each function returns `null` for a call it does not take (library off,
 * non-float32, a prelu activation, a bias of another shape, NCHW): the
 * caller's kernel runs then. One library handle per thread (`useHostBlas`):
 * a replica Worker calls the library from its own thread.
 *
 * @module
 */
import { backend_util, type KernelFunc, type TensorInfo } from "@tensorflow/tfjs-core";
import { CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS, type HostBlas } from "./_blas_library.ts";
import { gemmCol2im, gemmIm2row, type ScratchAt } from "./_gemm.ts";

/** What these kernels read of tfjs' wasm backend (tfjs-backend-wasm 4.22). */
interface WasmInternals {
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
  makeOutput(shape: number[], dtype: "float32"): TensorInfo;
}

let blas: HostBlas | null = null;
let calls = 0;

/**
 * Routes the products through `next` (or back to dtrain's own kernels with
 * `null`). Returns the previous library.
 */
export function useHostBlas(next: HostBlas | null): HostBlas | null {
  const before = blas;
  blas = next;
  return before;
}

/** The library the products run on in this thread, or null. */
export function hostBlasInUse(): HostBlas | null {
  return blas;
}

/** Products the library has computed in this thread (for tests). */
export function blasCalls(): number {
  return calls;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

let heapBuffer: ArrayBufferLike | null = null;
let heapBase: Deno.PointerObject | null = null;

/** A pointer to `t`'s values in the wasm heap. Take it after every allocation of the call. */
function pointer(backend: WasmInternals, t: TensorInfo): Deno.PointerObject {
  const heap = backend.wasm.HEAPU8;
  if (heap.buffer !== heapBuffer || heapBase === null) {
    heapBuffer = heap.buffer;
    heapBase = Deno.UnsafePointer.of(heap);
  }
  const at = backend.dataIdMap.get(t.dataId)?.memoryOffset;
  if (at === undefined || heapBase === null) {
    throw new Error("host BLAS: expected the operands to live in the wasm heap");
  }
  const bytes = product(t.shape) * 4;
  if (at + bytes > heap.byteLength) {
    throw new Error(
      `host BLAS: expected ${bytes} bytes at heap offset ${at}, received a heap of ` +
        `${heap.byteLength} bytes`,
    );
  }
  return Deno.UnsafePointer.offset(heapBase, at)!;
}

function scratchPointer(s: ScratchAt): Deno.PointerObject {
  return Deno.UnsafePointer.offset(
    Deno.UnsafePointer.of(new Uint8Array(s.memory.buffer))!,
    s.byteOffset,
  )!;
}

function view(backend: WasmInternals, t: TensorInfo): Float32Array {
  const at = backend.dataIdMap.get(t.dataId)!.memoryOffset;
  const heap = backend.wasm.HEAPU8;
  return new Float32Array(heap.buffer, heap.byteOffset + at, product(t.shape));
}

/** Activations applied in place after the product; others (prelu) stay with tfjs. */
const ACTIVATIONS = new Set(["linear", "relu", "relu6", "leakyrelu", "elu", "sigmoid"]);

function activate(out: Float32Array, activation: string, alpha: number): void {
  const n = out.length;
  switch (activation) {
    case "relu":
      for (let i = 0; i < n; i++) if (out[i]! < 0) out[i] = 0;
      break;
    case "relu6":
      for (let i = 0; i < n; i++) out[i] = Math.min(Math.max(out[i]!, 0), 6);
      break;
    case "leakyrelu":
      for (let i = 0; i < n; i++) if (out[i]! < 0) out[i] = alpha * out[i]!;
      break;
    case "elu":
      for (let i = 0; i < n; i++) if (out[i]! < 0) out[i] = Math.exp(out[i]!) - 1;
      break;
    case "sigmoid":
      for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-out[i]!));
      break;
  }
}

/** Epilogue of a fused op: what it adds and applies, or null for one these kernels leave. */
interface Epilogue {
  bias?: TensorInfo;
  activation: string;
  alpha: number;
}

function epilogue(
  inputs: { bias?: TensorInfo; preluActivationWeights?: TensorInfo },
  attrs: { activation?: string; leakyreluAlpha?: number },
  columns: number,
): Epilogue | null {
  const activation = attrs.activation ?? "linear";
  if (!ACTIVATIONS.has(activation) || inputs.preluActivationWeights != null) return null;
  const bias = inputs.bias ?? undefined;
  if (bias !== undefined) {
    if (bias.dtype !== "float32" || bias.shape.length !== 1) return null;
    if (bias.shape[0] !== columns && bias.shape[0] !== 1) return null;
  }
  return { bias, activation, alpha: attrs.leakyreluAlpha ?? 0 };
}

/** Seeds `out` (`[rows][columns]`) with the bias; returns the `beta` of the product. */
function seedBias(backend: WasmInternals, out: TensorInfo, e: Epilogue | null, columns: number) {
  if (e?.bias === undefined) return 0;
  const o = view(backend, out);
  const b = view(backend, e.bias);
  if (b.length === 1) o.fill(b[0]!);
  else for (let at = 0; at < o.length; at += columns) o.set(b, at);
  return 1;
}

function finish(backend: WasmInternals, out: TensorInfo, e: Epilogue | null): TensorInfo {
  if (e !== null && e.activation !== "linear") activate(view(backend, out), e.activation, e.alpha);
  return out;
}

function matMul(args: Parameters<KernelFunc>[0], fused: boolean): TensorInfo | null {
  const lib = blas;
  if (lib === null) return null;
  const a = args.inputs.a as TensorInfo | undefined;
  const b = args.inputs.b as TensorInfo | undefined;
  if (a === undefined || b === undefined || a.dtype !== "float32" || b.dtype !== "float32") {
    return null;
  }
  const ra = a.shape.length, rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const attrs = args.attrs as {
    transposeA?: boolean;
    transposeB?: boolean;
    activation?: string;
    leakyreluAlpha?: number;
  };
  const tA = attrs.transposeA === true, tB = attrs.transposeB === true;
  const M = tA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = tA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const N = tB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if ((tB ? b.shape[rb - 1]! : b.shape[rb - 2]!) !== K) return null;
  const batchA = product(a.shape.slice(0, -2)), batchB = product(b.shape.slice(0, -2));
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  const e = fused
    ? epilogue(args.inputs as { bias?: TensorInfo }, attrs, N)
    : { activation: "linear", alpha: 0 };
  if (e === null) return null;
  const backend = args.backend as unknown as WasmInternals;
  const outer = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outer, M, N], "float32");
  const batch = Math.max(batchA, batchB);
  if (M * N * batch === 0) return out;
  if (K === 0) {
    view(backend, out).fill(0);
    return finish(backend, out, e);
  }
  const beta = seedBias(backend, out, e, N);
  // Pointers after the allocation: growing the heap moves it.
  const pa = pointer(backend, a), pb = pointer(backend, b), pc = pointer(backend, out);
  const lda = tA ? M : K, ldb = tB ? K : N;
  const opA = tA ? CBLAS_TRANS : CBLAS_NO_TRANS, opB = tB ? CBLAS_TRANS : CBLAS_NO_TRANS;
  for (let i = 0; i < batch; i++) {
    calls++;
    lib.sgemm(
      CBLAS_ROW_MAJOR,
      opA,
      opB,
      M,
      N,
      K,
      1,
      batchA === 1 ? pa : Deno.UnsafePointer.offset(pa, i * M * K * 4),
      lda,
      batchB === 1 ? pb : Deno.UnsafePointer.offset(pb, i * K * N * 4),
      ldb,
      beta,
      Deno.UnsafePointer.offset(pc, i * M * N * 4),
      N,
    );
  }
  return finish(backend, out, e);
}

/** `BatchMatMul` on the host BLAS, or `null` for a call it leaves to the caller. */
export function blasBatchMatMul(args: Parameters<KernelFunc>[0]): TensorInfo | null {
  return matMul(args, false);
}

/** `_FusedMatMul` on the host BLAS, or `null` for a call it leaves to the caller. */
export function blasFusedMatMul(args: Parameters<KernelFunc>[0]): TensorInfo | null {
  return matMul(args, true);
}

function convSizes(info: backend_util.Conv2DInfo) {
  return {
    rows: info.batchSize * info.outHeight * info.outWidth,
    taps: info.filterHeight * info.filterWidth * info.inChannels,
    cout: info.outChannels,
  };
}

/** A 1x1 filter at stride 1 without padding: the input is the patch matrix `[rows][cin]`. */
function pointwise(info: backend_util.Conv2DInfo): boolean {
  return info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 &&
    info.strideWidth === 1 && info.padInfo.top === 0 && info.padInfo.left === 0 &&
    info.padInfo.bottom === 0 && info.padInfo.right === 0;
}

/**
 * `Conv2D`/`FusedConv2D` (NHWC, float32) on the host BLAS, or `null` for a
 * call it leaves to the caller. `fusedInputs`/`fusedAttrs` carry the bias
 * and activation of `FusedConv2D`.
 */
export function blasConv2D(
  backendArg: unknown,
  x: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  fused?: {
    inputs: { bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    attrs: { activation?: string; leakyreluAlpha?: number };
  },
): TensorInfo | null {
  const lib = blas;
  if (lib === null || x.dtype !== "float32" || filter.dtype !== "float32") return null;
  const { rows, taps, cout } = convSizes(info);
  const e = fused === undefined
    ? { activation: "linear", alpha: 0 }
    : epilogue(fused.inputs, fused.attrs, cout);
  if (e === null) return null;
  const backend = backendArg as WasmInternals;
  const direct = pointwise(info);
  const patches = direct || rows * taps === 0 ? null : gemmIm2row(backend, x, info);
  if (!direct && patches === null && rows * taps !== 0) return null;
  const out = backend.makeOutput(
    [info.batchSize, info.outHeight, info.outWidth, cout],
    "float32",
  );
  if (rows * cout === 0) return out;
  if (taps === 0) {
    view(backend, out).fill(0);
    return finish(backend, out, e);
  }
  const beta = seedBias(backend, out, e, cout);
  calls++;
  // out[rows, cout] = P[rows, taps] * W[taps, cout]; pointwise: P is x itself.
  lib.sgemm(
    CBLAS_ROW_MAJOR,
    CBLAS_NO_TRANS,
    CBLAS_NO_TRANS,
    rows,
    cout,
    taps,
    1,
    patches === null ? pointer(backend, x) : scratchPointer(patches),
    taps,
    pointer(backend, filter),
    cout,
    beta,
    pointer(backend, out),
    cout,
  );
  return finish(backend, out, e);
}

/** `Conv2DBackpropFilter` (NHWC, float32) on the host BLAS, or `null`. */
export function blasConv2DBackpropFilter(
  backendArg: unknown,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | null {
  const lib = blas;
  if (lib === null || x.dtype !== "float32" || dy.dtype !== "float32") return null;
  const { rows, taps, cout } = convSizes(info);
  const backend = backendArg as WasmInternals;
  const shape = [info.filterHeight, info.filterWidth, info.inChannels, cout];
  if (rows === 0 || taps * cout === 0) {
    const out = backend.makeOutput(shape, "float32");
    view(backend, out).fill(0);
    return out;
  }
  const direct = pointwise(info);
  const patches = direct ? null : gemmIm2row(backend, x, info);
  if (!direct && patches === null) return null;
  const out = backend.makeOutput(shape, "float32");
  calls++;
  // dW[taps, cout] = P^T * dy[rows, cout], P = patches [rows][taps] (pointwise: x) read
  // transposed in place
  lib.sgemm(
    CBLAS_ROW_MAJOR,
    CBLAS_TRANS,
    CBLAS_NO_TRANS,
    taps,
    cout,
    rows,
    1,
    patches === null ? pointer(backend, x) : scratchPointer(patches),
    taps,
    pointer(backend, dy),
    cout,
    0,
    pointer(backend, out),
    cout,
  );
  return out;
}

/** `Conv2DBackpropInput` (NHWC, float32) on the host BLAS, or `null`. */
export function blasConv2DBackpropInput(
  backendArg: unknown,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | null {
  const lib = blas;
  if (lib === null || dy.dtype !== "float32" || filter.dtype !== "float32") return null;
  const { rows, taps, cout } = convSizes(info);
  const backend = backendArg as WasmInternals;
  const shape = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const gemm = (c: Deno.PointerObject, ldc: number) => {
    calls++;
    // cols[rows, taps] = dy[rows, cout] * W^T, W stored [taps][cout]
    lib.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_NO_TRANS,
      CBLAS_TRANS,
      rows,
      taps,
      cout,
      1,
      pointer(backend, dy),
      cout,
      pointer(backend, filter),
      cout,
      0,
      c,
      ldc,
    );
  };
  if (rows * taps * cout === 0) {
    const out = backend.makeOutput(shape, "float32");
    view(backend, out).fill(0);
    return out;
  }
  if (pointwise(info)) {
    // Every output pixel is an input pixel: dx = dy * W^T directly.
    const out = backend.makeOutput(shape, "float32");
    gemm(pointer(backend, out), taps);
    return out;
  }
  return gemmCol2im(backend, info, (cols) => gemm(scratchPointer(cols), taps));
}
