/**
 * Fast training kernels for the tfjs WASM backend: `Conv2DBackpropFilter`
 * (stock wasm has none), `Conv2DBackpropInput` and `MaxPoolGrad` (stock wasm
 * runs them as slow scalar loops). Together they make a CNN training step
 * several times faster than stock plus CPU fallbacks.
 *
 * The filter gradient of an NHWC convolution is one matrix product:
 *
 *   dW = P · dy        P: [KH·KW·Cin, N·OH·OW],  dy: [N·OH·OW, Cout]
 *
 * where column `(n, oh, ow)` of `P` holds the input values filter tap
 * `(kh, kw, ci)` saw at that output position (zero in the padding). `P` is
 * written straight into wasm memory by a tight loop (wasm's own slice and
 * transpose kernels are several times slower here), and the product runs on
 * XNNPACK. The input gradient is the mirror image: `cols = dy · W^T`
 * (XNNPACK), then each column is added back to the input positions it came
 * from (col2im). `MaxPoolGrad` routes each output gradient to the first
 * maximum of its window, as the CPU backend does. NCHW inputs are delegated
 * to the kernels these replace.
 *
 * @module
 */
import {
  backend_util,
  type Conv2DAttrs,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropInputAttrs,
  type DataType,
  getKernel,
  type KernelBackend,
  type KernelFunc,
  type MaxPoolAttrs,
  type MaxPoolGradAttrs,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from "@tensorflow/tfjs-core";
import { gemmConv2DBackpropFilter, gemmConv2DBackpropInput } from "./_gemm.ts";
import { heapAddRow, heapMaxPool2x2, heapMaxPool2x2Grad, heapSumLeading } from "./_heap.ts";
import {
  blasConv2D,
  blasConv2DBackpropFilter,
  blasConv2DBackpropInput,
  hostBlasInUse,
} from "./_blas_kernels.ts";

type WasmBackend = KernelBackend & {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
};

function kernel(name: string): KernelFunc {
  const k = getKernel(name, "wasm");
  if (k === undefined) throw new Error(`wasm kernel ${name} is not registered`);
  return k.kernelFunc;
}

function convBackpropFilter(fallback: KernelFunc | undefined): KernelFunc {
  const reshape = kernel("Reshape");
  const matMul = kernel("BatchMatMul");
  return (args) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    if ((attrs.dataFormat === "NCHW" || x.dtype !== "float32") && fallback !== undefined) {
      return fallback(args);
    }
    const wasm = args.backend as unknown as WasmBackend;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      "channelsLast",
    );
    const fast = blasConv2DBackpropFilter(wasm, x, dy, info) ??
      gemmConv2DBackpropFilter(wasm, x, dy, info);
    if (fast !== null) return fast;
    const [n, h, w, cin] = x.shape as [number, number, number, number];
    const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
    const rows = n * oh * ow;
    const k = kh * kw * cin;
    const patches = wasm.makeOutput([k, rows], "float32");
    let dy2: TensorInfo | undefined;
    try {
      // Views are taken after the allocation: growing wasm memory detaches them.
      const p = wasm.typedArrayFromHeap(patches);
      const xs = wasm.typedArrayFromHeap(x);
      const { top, left } = info.padInfo;
      const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
      let at = 0;
      for (let fh = 0; fh < kh; fh++) {
        for (let fw = 0; fw < kw; fw++) {
          for (let c = 0; c < cin; c++) {
            for (let b = 0; b < n; b++) {
              for (let y = 0; y < oh; y++) {
                const iy = y * sh + fh * dh - top;
                if (iy < 0 || iy >= h) {
                  p.fill(0, at, at + ow);
                  at += ow;
                  continue;
                }
                const rowBase = (b * h + iy) * w;
                for (let xo = 0; xo < ow; xo++) {
                  const ix = xo * sw + fw * dw - left;
                  p[at++] = ix < 0 || ix >= w ? 0 : xs[(rowBase + ix) * cin + c]!;
                }
              }
            }
          }
        }
      }
      dy2 = reshape({
        inputs: { x: dy },
        backend: args.backend,
        attrs: { shape: [rows, info.outChannels] },
      }) as TensorInfo;
      const product = matMul({
        inputs: { a: patches, b: dy2 },
        backend: args.backend,
        attrs: { transposeA: false, transposeB: false },
      }) as TensorInfo;
      const out = reshape({
        inputs: { x: product },
        backend: args.backend,
        attrs: { shape: attrs.filterShape },
      }) as TensorInfo;
      wasm.disposeData(product.dataId);
      return out;
    } finally {
      wasm.disposeData(patches.dataId);
      if (dy2 !== undefined) wasm.disposeData(dy2.dataId);
    }
  };
}

function convBackpropInput(fallback: KernelFunc | undefined): KernelFunc {
  const reshape = kernel("Reshape");
  const matMul = kernel("BatchMatMul");
  return (args) => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    if ((attrs.dataFormat === "NCHW" || dy.dtype !== "float32") && fallback !== undefined) {
      return fallback(args);
    }
    const wasm = args.backend as unknown as WasmBackend;
    const [n, h, w, cin] = attrs.inputShape;
    const info = backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      "channelsLast",
    );
    const fast = blasConv2DBackpropInput(wasm, dy, filter, info) ??
      gemmConv2DBackpropInput(wasm, dy, filter, info);
    if (fast !== null) return fast;
    const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
    const rows = n * oh * ow;
    const k = kh * kw * cin;
    const temps: TensorInfo[] = [];
    try {
      const dy2 = reshape({
        inputs: { x: dy },
        backend: args.backend,
        attrs: { shape: [rows, info.outChannels] },
      }) as TensorInfo;
      temps.push(dy2);
      const w2 = reshape({
        inputs: { x: filter },
        backend: args.backend,
        attrs: { shape: [k, info.outChannels] },
      }) as TensorInfo;
      temps.push(w2);
      // cols[r, (fh, fw, c)] = sum_o dy[r, o] * W[fh, fw, c, o]
      const cols = matMul({
        inputs: { a: dy2, b: w2 },
        backend: args.backend,
        attrs: { transposeA: false, transposeB: true },
      }) as TensorInfo;
      temps.push(cols);
      const dx = wasm.makeOutput([n, h, w, cin], "float32");
      const out = wasm.typedArrayFromHeap(dx);
      const c2 = wasm.typedArrayFromHeap(cols);
      out.fill(0);
      const { top, left } = info.padInfo;
      const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
      let r = 0;
      for (let b = 0; b < n; b++) {
        for (let y = 0; y < oh; y++) {
          for (let xo = 0; xo < ow; xo++, r++) {
            const colBase = r * k;
            for (let fh = 0; fh < kh; fh++) {
              const iy = y * sh + fh * dh - top;
              if (iy < 0 || iy >= h) continue;
              for (let fw = 0; fw < kw; fw++) {
                const ix = xo * sw + fw * dw - left;
                if (ix < 0 || ix >= w) continue;
                const src = colBase + (fh * kw + fw) * cin;
                const dst = ((b * h + iy) * w + ix) * cin;
                for (let c = 0; c < cin; c++) out[dst + c]! += c2[src + c]!;
              }
            }
          }
        }
      }
      return dx;
    } finally {
      for (const t of temps) wasm.disposeData(t.dataId);
    }
  };
}

/**
 * `Conv2D` and `FusedConv2D` (NHWC, float32) on the host's BLAS where it is
 * in use (im2col, then one product; see `_blas_kernels.ts`); XNNPACK's
 * kernel otherwise, and for what the BLAS path leaves (NCHW, prelu).
 */
function convForward(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel Conv2D is not registered");
    const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
    const attrs = args.attrs as unknown as Conv2DAttrs & {
      activation?: string;
      leakyreluAlpha?: number;
    };
    if (hostBlasInUse() === null || attrs.dataFormat === "NCHW" || x.shape.length !== 4) {
      return fallback(args);
    }
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      "channelsLast",
    );
    const fused = "bias" in args.inputs || attrs.activation !== undefined
      ? { inputs: args.inputs as { bias?: TensorInfo }, attrs }
      : undefined;
    return blasConv2D(args.backend, x, filter, info, fused) ?? fallback(args);
  };
}

/** The geometry of a max pool (or its gradient) over the NHWC `x`. */
function poolInfo(x: TensorInfo, attrs: MaxPoolAttrs | MaxPoolGradAttrs): backend_util.Conv2DInfo {
  return backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
}

/**
 * Whether a pool's windows are 2x2 with stride 2 and no padding, so they do
 * not overlap and cover every cell but an odd last row or column.
 */
function isPool2x2(info: backend_util.Conv2DInfo): boolean {
  return info.effectiveFilterHeight === 2 && info.effectiveFilterWidth === 2 &&
    info.strideHeight === 2 && info.strideWidth === 2 && info.dilationHeight === 1 &&
    info.dilationWidth === 1 && info.padInfo.top === 0 && info.padInfo.left === 0 &&
    info.outHeight === Math.floor(info.inHeight / 2) &&
    info.outWidth === Math.floor(info.inWidth / 2);
}

/**
 * `MaxPool` of a 2x2 window with stride 2 and no padding (the common CNN
 * pool) in one pass over the tensor in the heap where the channels are a
 * multiple of 4; every other pool is tfjs' own.
 */
function maxPool(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel MaxPool is not registered");
    const { x } = args.inputs as { x: TensorInfo };
    if (x.shape.length !== 4) return fallback(args);
    const info = poolInfo(x, args.attrs as unknown as MaxPoolAttrs);
    return (isPool2x2(info) ? heapMaxPool2x2(args.backend, x) : null) ?? fallback(args);
  };
}

function maxPoolGrad(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const attrs = args.attrs as unknown as MaxPoolGradAttrs;
    if (input.dtype !== "float32" && fallback !== undefined) return fallback(args);
    const wasm = args.backend as unknown as WasmBackend;
    const info = poolInfo(input, attrs);
    const [n, h, w, ch] = input.shape as [number, number, number, number];
    const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
    const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
    const { top, left } = info.padInfo;
    const pool2x2 = isPool2x2(info);
    if (pool2x2 && n * oh * ow * ch > 0) {
      // SIMD on the tensors in the heap where the channels allow (a multiple of 4).
      const simd = heapMaxPool2x2Grad(args.backend, input, dy);
      if (simd !== null) return simd;
    }
    const dx = wasm.makeOutput([n, h, w, ch], "float32");
    const out = wasm.typedArrayFromHeap(dx);
    const xs = wasm.typedArrayFromHeap(input);
    const g = wasm.typedArrayFromHeap(dy);
    if (pool2x2) {
      pool2x2Grad(out, xs, g, n, h, w, ch, oh, ow);
      return dx;
    }
    out.fill(0);
    // Per window, channels run innermost over contiguous memory: the best
    // value and its index per channel live in two scratch rows.
    const best = new Float32Array(ch);
    const arg = new Int32Array(ch);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < oh; y++) {
        const y0 = Math.max(0, y * sh - top), y1 = Math.min(h, y * sh - top + fh);
        for (let xo = 0; xo < ow; xo++) {
          const x0 = Math.max(0, xo * sw - left), x1 = Math.min(w, xo * sw - left + fw);
          best.fill(Number.NEGATIVE_INFINITY);
          arg.fill(-1);
          // Row-major over the window with a strict ">": the first maximum
          // wins, as the CPU backend picks.
          for (let iy = y0; iy < y1; iy++) {
            for (let ix = x0; ix < x1; ix++) {
              const base = ((b * h + iy) * w + ix) * ch;
              for (let c = 0; c < ch; c++) {
                const v = xs[base + c]!;
                if (v > best[c]!) {
                  best[c] = v;
                  arg[c] = base + c;
                }
              }
            }
          }
          const dyBase = ((b * oh + y) * ow + xo) * ch;
          for (let c = 0; c < ch; c++) {
            const at = arg[c]!;
            if (at >= 0) out[at]! += g[dyBase + c]!;
          }
        }
      }
    }
    return dx;
  };
}

/**
 * `MaxPoolGrad` of a 2x2 pool with stride 2 and no padding, the common
 * case: windows do not overlap, so every input cell gets its value once (its
 * window's gradient if it is the first maximum, else 0) and no scratch or
 * accumulation is needed. Cells of an odd last row or column belong to no
 * window and get 0.
 */
function pool2x2Grad(
  out: Float32Array,
  xs: Float32Array,
  g: Float32Array,
  n: number,
  h: number,
  w: number,
  ch: number,
  oh: number,
  ow: number,
): void {
  if (h !== 2 * oh || w !== 2 * ow) out.fill(0);
  const row = w * ch;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      let d = ((b * oh + y) * ow) * ch;
      let a = ((b * h + 2 * y) * w) * ch; // top-left cell of the first window in this row
      for (let xo = 0; xo < ow; xo++) {
        const bTop = a + ch, cBottom = a + row, dBottom = a + row + ch;
        for (let c = 0; c < ch; c++) {
          const v0 = xs[a + c]!, v1 = xs[bTop + c]!, v2 = xs[cBottom + c]!, v3 = xs[dBottom + c]!;
          // Row-major order with a strict ">": the first maximum wins, as on CPU.
          let k = 0, m = v0;
          if (v1 > m) (k = 1), (m = v1);
          if (v2 > m) (k = 2), (m = v2);
          if (v3 > m) k = 3;
          const grad = g[d + c]!;
          out[a + c] = k === 0 ? grad : 0;
          out[bTop + c] = k === 1 ? grad : 0;
          out[cBottom + c] = k === 2 ? grad : 0;
          out[dBottom + c] = k === 3 ? grad : 0;
        }
        a += 2 * ch;
        d += ch;
      }
    }
  }
}

/**
 * `Sum` over every axis but the last (a bias gradient: `[n, h, w, c]` to
 * `[c]`): in one pass over the tensor in the heap where `c` is a multiple of
 * 4 (the same sums, to the bit, as tfjs' kernel), else as a sum over the
 * first axis of the `[n*h*w, c]` view (the stock kernel transposes the 4-D
 * tensor first, which costs 3x more).
 */
function sumLeadingAxes(fallback: KernelFunc | undefined): KernelFunc {
  const reshape = kernel("Reshape");
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel Sum is not registered");
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = args.attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = (Array.isArray(attrs.axis) ? attrs.axis : [attrs.axis])
      .map((a) => (a < 0 ? a + rank : a))
      .sort((a, b) => a - b);
    const leading = rank >= 2 && axes.length === rank - 1 && axes.every((a, i) => a === i);
    if (!leading) return fallback(args);
    const last = x.shape[rank - 1]!;
    const outShape = attrs.keepDims ? [...Array<number>(rank - 1).fill(1), last] : [last];
    const inHeap = heapSumLeading(args.backend, x, outShape);
    if (inHeap !== null) return inHeap;
    if (rank === 2 || attrs.keepDims) return fallback(args);
    const wasm = args.backend as unknown as WasmBackend;
    const flat = reshape({
      inputs: { x },
      backend: args.backend,
      attrs: { shape: [x.shape.slice(0, -1).reduce((a, b) => a * b, 1), last] },
    }) as TensorInfo;
    try {
      return fallback({ ...args, inputs: { x: flat }, attrs: { axis: [0], keepDims: false } });
    } finally {
      wasm.disposeData(flat.dataId);
    }
  };
}

/**
 * `Add` of a tensor and a vector along its last axis (a layer's bias) in
 * one pass over the tensor in the heap where the vector's length is a
 * multiple of 4; every other `Add` (and broadcast) is tfjs' own.
 */
function addBias(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel Add is not registered");
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    // IEEE addition commutes exactly, so a bias on either side is the same sum.
    const out = b.shape.length === 1
      ? heapAddRow(args.backend, a, b)
      : a.shape.length === 1
      ? heapAddRow(args.backend, b, a)
      : null;
    return out ?? fallback(args);
  };
}

/**
 * `Identity` without a copy: the output shares the input's data, counted
 * (as tfjs' wasm `Reshape` and the CPU backend's `Identity` do), where the
 * stock kernel copies every value. Safe because no wasm kernel writes into
 * an input: tensors are immutable and a variable's `assign` takes the new
 * tensor's data. Strings keep the stock path.
 */
function identityAlias(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel Identity is not registered");
    const { x } = args.inputs as { x: TensorInfo };
    return x.dtype === "string" ? fallback(args) : alias(args.backend, x);
  };
}

/** `Cast` to the dtype a tensor already has (relu's gradient does it) without a copy. */
function castAlias(fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    if (fallback === undefined) throw new Error("wasm kernel Cast is not registered");
    const { x } = args.inputs as { x: TensorInfo };
    const { dtype } = args.attrs as { dtype: DataType };
    return x.dtype === dtype && dtype !== "string" ? alias(args.backend, x) : fallback(args);
  };
}

/** A new output sharing `x`'s data (its count raised, as tfjs' `Reshape` does). */
function alias(backend: unknown, x: TensorInfo): TensorInfo {
  (backend as { incRef(dataId: unknown): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

const NATIVE: Record<string, (fallback: KernelFunc | undefined) => KernelFunc> = {
  Conv2D: convForward,
  FusedConv2D: convForward,
  Conv2DBackpropFilter: convBackpropFilter,
  Conv2DBackpropInput: convBackpropInput,
  MaxPool: maxPool,
  MaxPoolGrad: maxPoolGrad,
  Sum: sumLeadingAxes,
  Add: addBias,
  Identity: identityAlias,
  Cast: castAlias,
};

/**
 * Registers the fast wasm training kernels, replacing the registered ones
 * (stock or CPU fallbacks), which stay in use for inputs these do not cover.
 * Idempotent. Returns the kernel names it registered.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-wasm";
 * import { registerWasmTrainingKernels } from "./_training_kernels.ts";
 * registerWasmTrainingKernels();
 * ```
 */
export function registerWasmTrainingKernels(): string[] {
  const names: string[] = [];
  for (const [name, make] of Object.entries(NATIVE)) {
    const previous = getKernel(name, "wasm");
    names.push(name);
    if ((previous as { dtrainNative?: boolean } | undefined)?.dtrainNative) continue;
    if (previous !== undefined) unregisterKernel(name, "wasm");
    // Keep the previous config's setupFunc: the stock kernel this one falls
    // back to binds its wasm function there when the backend initialises.
    registerKernel(
      Object.assign(
        {
          ...previous,
          kernelName: name,
          backendName: "wasm",
          kernelFunc: make(previous?.kernelFunc),
        },
        { dtrainNative: true },
      ),
    );
  }
  return names;
}
