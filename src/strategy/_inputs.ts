/**
 * Turns the inputs users pass to `fit`/`evaluate` (tensors, typed arrays,
 * nested arrays) into flat Float32 samples in shared memory, with clear
 * errors for shapes that do not fit the model.
 *
 * @module
 */
import * as tf from "../tf.ts";
import type { SharedData } from "./protocol.ts";

/** What `fit`/`evaluate` accept for `x` and `y`. */
export type Samples =
  | tf.Tensor
  | Float32Array
  | number[]
  | number[][]
  | number[][][]
  | number[][][][];

interface Flat {
  data: Float32Array;
  shape: number[];
}

function flatten(
  value: Samples,
  what: string,
  perSample: (number | null)[],
): Flat {
  if (value instanceof tf.Tensor) {
    // Read-only from here on (toShared copies), so a float32 tensor's own
    // values need no copy; other dtypes convert in one typed-array pass.
    const values = value.dataSync();
    return {
      data: values instanceof Float32Array ? values : new Float32Array(values as ArrayLike<number>),
      shape: value.shape,
    };
  }
  if (ArrayBuffer.isView(value)) {
    const width = perSample.every((d) => typeof d === "number")
      ? (perSample as number[]).reduce((a, b) => a * b, 1)
      : NaN;
    if (!Number.isFinite(width) || value.length % width !== 0) {
      throw new RangeError(
        `${what}: a flat typed array needs a model shape [batch, ${perSample.join(", ")}] ` +
          `whose sample size divides its length ${value.length}`,
      );
    }
    return {
      data: value instanceof Float32Array ? value : new Float32Array(value as ArrayLike<number>),
      shape: [value.length / width, ...(perSample as number[])],
    };
  }
  if (!Array.isArray(value)) {
    throw new TypeError(
      `${what} must be a tf.Tensor, a Float32Array or a nested number array`,
    );
  }
  const shape: number[] = [];
  let probe: unknown = value;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0];
  }
  const flat = (value as unknown[]).flat(Infinity) as unknown[];
  if (flat.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new RangeError(
      `${what} is a ragged array: expected shape [${shape.join(", ")}]`,
    );
  }
  const data = new Float32Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== "number") {
      throw new TypeError(
        `${what}: expected numbers, received ${typeof v} at flat index ${i}`,
      );
    }
    data[i] = v;
  }
  return { data, shape };
}

function checkShape(
  flat: Flat,
  expected: (number | null)[],
  what: string,
): void {
  const got = flat.shape.slice(1);
  const ok = got.length === expected.length &&
    expected.every((d, i) => d === null || d === got[i]);
  if (!ok) {
    throw new RangeError(
      `${what} has per-sample shape [${got.join(", ")}], expected ` +
        `[${expected.map((d) => d ?? "any").join(", ")}] to match the model`,
    );
  }
}

const SPARSE_LOSSES = new Set(["sparseCategoricalCrossentropy", "sparse_categorical_crossentropy"]);

/** Whether the model's (single) loss takes class indices rather than one-hot labels. */
function sparseLoss(model: tf.LayersModel): boolean {
  const loss = Array.isArray(model.loss) ? model.loss[0] : model.loss;
  return typeof loss === "string" && SPARSE_LOSSES.has(loss);
}

/**
 * Sparse labels as `[n, 1]` class indices, checked: integers in
 * `[0, classes)` where `classes` is the model's last output dimension.
 */
function sparseLabels(y: Samples, outShape: (number | null)[]): Flat {
  const fy = flatten(y, "y", [1]);
  const per = fy.shape.slice(1);
  if (!(per.length === 0 || (per.length === 1 && per[0] === 1))) {
    throw new RangeError(
      `y holds class indices for the sparse loss: expected shape [n] or [n, 1], ` +
        `received [${fy.shape.join(", ")}]`,
    );
  }
  const classes = outShape.at(-1);
  for (let i = 0; i < fy.data.length; i++) {
    const v = fy.data[i]!;
    if (!Number.isInteger(v) || v < 0 || (typeof classes === "number" && v >= classes)) {
      throw new RangeError(
        `y[${i}] is ${v}: a sparse categorical label must be an integer in ` +
          `[0, ${classes ?? "classes"})`,
      );
    }
  }
  return { data: fy.data, shape: [fy.shape[0]!, 1] };
}

/** Flat, shape-checked x and y. */
export interface Prepared {
  x: Flat;
  y: Flat;
  count: number;
}

/** Converts and checks x and y against the model's input and output shapes. */
export function prepareSamples(
  model: tf.LayersModel,
  x: Samples,
  y: Samples,
): Prepared {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new RangeError(
      `dtrain strategies train models with one input and one output, received ` +
        `${model.inputs.length} inputs and ${model.outputs.length} outputs`,
    );
  }
  const inShape = model.inputs[0]!.shape.slice(1);
  const outShape = model.outputs[0]!.shape.slice(1);
  const fx = flatten(x, "x", inShape);
  const sparse = sparseLoss(model);
  // Sparse categorical labels are class indices, [n] or [n, 1], as model.fit takes them.
  const fy = sparse ? sparseLabels(y, outShape) : flatten(y, "y", outShape);
  checkShape(fx, inShape, "x");
  if (!sparse) checkShape(fy, outShape, "y");
  if (fx.shape[0] !== fy.shape[0]) {
    throw new RangeError(
      `x and y must have the same number of samples, received ${fx.shape[0]} and ${fy.shape[0]}`,
    );
  }
  return { x: fx, y: fy, count: fx.shape[0]! };
}

/** Copies samples `[from, to)` into new shared buffers. */
export function toShared(p: Prepared, from = 0, to = p.count): SharedData {
  const share = (f: Flat) => {
    const width = f.shape.slice(1).reduce((a, b) => a * b, 1);
    const buf = new SharedArrayBuffer(Math.max(4, (to - from) * width * 4));
    new Float32Array(buf).set(f.data.subarray(from * width, to * width));
    return buf;
  };
  return {
    x: share(p.x),
    y: share(p.y),
    xShape: p.x.shape.slice(1),
    yShape: p.y.shape.slice(1),
    count: to - from,
  };
}
