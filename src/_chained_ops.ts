/**
 * Installs tfjs' chained tensor methods (`x.slice()`, `x.cast()`,
 * `x.matMul()`, ...). The browser bundle of tfjs registers them; the Node
 * build that Deno loads from npm does not, so code written against the usual
 * tfjs API would fail with "x.slice is not a function". Each method calls the
 * tfjs op of the same name with the tensor as first argument, exactly as
 * tfjs' own `public/chained_ops` do. Existing methods are left alone.
 *
 * @module
 */
import * as core from "@tensorflow/tfjs-core";
import type { Tensor } from "@tensorflow/tfjs-core";

/** Methods that are `op(this, ...args)` with the op of the same name. */
const GENERIC = (
  "abs acos acosh add all any argMax argMin asin asinh atan atan2 atanh avgPool batchNorm " +
  "batchToSpaceND broadcastTo cast ceil clipByValue conv1d conv2d conv2dTranspose cos cosh " +
  "cumprod cumsum depthToSpace depthwiseConv2d dilation2d div divNoNan dot elu equal erf " +
  "euclideanNorm exp expandDims expm1 fft floor floorDiv gather greater greaterEqual ifft irfft " +
  "isFinite isInf isNaN leakyRelu less lessEqual localResponseNormalization log log1p " +
  "logSigmoid logSoftmax logSumExp logicalAnd logicalNot logicalOr logicalXor matMul max " +
  "maxPool maximum mean min minimum mirrorPad mod mul neg norm notEqual oneHot onesLike pad " +
  "pool pow prelu prod reciprocal relu relu6 reshape resizeBilinear resizeNearestNeighbor " +
  "reverse rfft round rsqrt selu separableConv2d sigmoid sign sin sinh slice softmax softplus " +
  "spaceToBatchND split sqrt square squaredDifference squeeze step stridedSlice sub sum tan " +
  "tanh tile topk transpose unique unsortedSegmentSum unstack zerosLike"
).split(" ");

type Method = (this: Tensor, ...args: never[]) => unknown;
const op = core as unknown as Record<string, (...args: unknown[]) => Tensor>;
const list = (t: Tensor, x: Tensor | Tensor[]) => (x instanceof core.Tensor ? [t, x] : [t, ...x]);

const SPECIAL: Record<string, Method> = {
  as1D() {
    return core.reshape(this, [this.size]);
  },
  as2D(rows: number, columns: number) {
    return core.reshape(this, [rows, columns]);
  },
  as3D(rows: number, columns: number, depth: number) {
    return core.reshape(this, [rows, columns, depth]);
  },
  as4D(rows: number, columns: number, depth: number, depth2: number) {
    return core.reshape(this, [rows, columns, depth, depth2]);
  },
  as5D(rows: number, columns: number, depth: number, depth2: number, depth3: number) {
    return core.reshape(this, [rows, columns, depth, depth2, depth3]);
  },
  asScalar() {
    return core.reshape(this, []);
  },
  asType(dtype: core.DataType) {
    return core.cast(this, dtype);
  },
  toBool() {
    return core.cast(this, "bool");
  },
  toFloat() {
    return core.cast(this, "float32");
  },
  toInt() {
    return core.cast(this, "int32");
  },
  flatten() {
    return core.reshape(this, [this.size]);
  },
  reshapeAs(x: Tensor) {
    return core.reshape(this, x.shape);
  },
  concat(x: Tensor | Tensor[], axis?: number) {
    return core.concat(list(this, x), axis);
  },
  stack(x: Tensor | Tensor[], axis?: number) {
    return core.stack(list(this, x), axis);
  },
  where(condition: Tensor, x: Tensor) {
    return core.where(condition, this, x);
  },
};

const proto = core.Tensor.prototype as unknown as Record<string, Method>;
for (const name of GENERIC) {
  if (proto[name] !== undefined || typeof op[name] !== "function") continue;
  proto[name] = function (this: Tensor, ...args: unknown[]) {
    return op[name]!(this, ...args);
  } as Method;
}
for (const [name, fn] of Object.entries(SPECIAL)) proto[name] ??= fn;
