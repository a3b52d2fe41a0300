/**
 * Turns the inputs users pass to `fit`/`evaluate` into flat Float32 samples,
 * one column per model input and per model output, and copies them into
 * shared memory, with clear errors for shapes and sample counts that do not
 * fit the model. Each input's or output's values are a tensor, a typed array
 * or a nested number array; a model with several inputs (outputs) takes an
 * array of them in `model.inputs` (`model.outputs`) order or a dict keyed by
 * input (output) layer name, as `model.fit` does. As there, one value per
 * sample (shape `[n]`) is read as `[n, 1]`.
 *
 * @module
 */
import * as tf from "../tf.ts";
import type { SharedColumn, SharedData } from "./protocol.ts";

/** One input's values (or one output's targets), as `fit`/`evaluate` accept them. */
export type SampleValues =
  | tf.Tensor
  | Float32Array
  | number[]
  | number[][]
  | number[][][]
  | number[][][][];

/**
 * What `fit`/`evaluate` accept for `x` and `y`: the values of the model's
 * input (output) or, for a model with several, an array of them in
 * `model.inputs` (`model.outputs`) order, or a dict keyed by layer name.
 */
export type Samples = SampleValues | SampleValues[] | { [name: string]: SampleValues };

interface Flat {
  data: Float32Array;
  shape: number[];
}

function flatten(
  value: SampleValues,
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
  flat: { shape: number[] },
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

/**
 * One value per sample (shape `[n]`) for a model side whose samples have one
 * dimension: read as `[n, 1]`, as tfjs' `model.fit` widens every rank-1
 * tensor (`ensureTensorsRank2OrHigher`); a Dense(1) output takes `[n]`
 * targets. Refused by name when that dimension is not 1.
 */
function widenRank1<T extends { shape: number[] }>(
  flat: T,
  expected: (number | null)[],
  what: string,
): T {
  if (flat.shape.length !== 1 || expected.length !== 1) return flat;
  const n = flat.shape[0]!;
  if (expected[0] !== null && expected[0] !== 1) {
    throw new RangeError(
      `${what} has shape [${n}]: one value per sample, which model.fit reads as [${n}, 1], ` +
        `but the model expects per-sample shape [${expected[0]}]`,
    );
  }
  return { ...flat, shape: [n, 1] };
}

const SPARSE_LOSSES = new Set(["sparseCategoricalCrossentropy", "sparse_categorical_crossentropy"]);

/** The loss the model was compiled with for output `i` (a name, a function or undefined). */
function lossFor(model: tf.LayersModel, i: number): unknown {
  const loss = model.loss as unknown;
  if (Array.isArray(loss)) return loss[i];
  if (loss !== null && typeof loss === "object") {
    return (loss as Record<string, unknown>)[model.outputNames[i]!];
  }
  return loss;
}

/** Whether output `i` was compiled with a sparse categorical loss (its targets are class indices). */
export function isSparseOutput(model: tf.LayersModel, i: number): boolean {
  const loss = lossFor(model, i);
  return typeof loss === "string" && SPARSE_LOSSES.has(loss);
}

/**
 * Checks that every value of `labels` is a class index: an integer in
 * `[0, classes)` (any integer >= 0 when `classes` is unknown).
 */
export function checkClassIndices(
  labels: Float32Array,
  classes: number | null | undefined,
  what: string,
  single: boolean,
): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (!Number.isInteger(v) || v < 0 || (typeof classes === "number" && v >= classes)) {
      throw new RangeError(
        `${single ? `${what}[${i}]` : `${what}: sample ${i}`} is ${v}: a sparse categorical ` +
          `label must be an integer in [0, ${classes ?? "classes"})`,
      );
    }
  }
}

/**
 * Sparse labels as `[n, 1]` class indices, checked: integers in
 * `[0, classes)` where `classes` is the output's last dimension.
 */
function sparseLabels(
  y: SampleValues,
  outShape: (number | null)[],
  what: string,
  single: boolean,
): Flat {
  const fy = flatten(y, what, [1]);
  const per = fy.shape.slice(1);
  if (!(per.length === 0 || (per.length === 1 && per[0] === 1))) {
    throw new RangeError(
      `${what} holds class indices for the sparse loss: expected shape [n] or [n, 1], ` +
        `received [${fy.shape.join(", ")}]`,
    );
  }
  checkClassIndices(fy.data, outShape.at(-1), what, single);
  return { data: fy.data, shape: [fy.shape[0]!, 1] };
}

/** Flat, shape-checked samples: one column per model input and per model output. */
export interface Prepared {
  /** One per input, in `model.inputs` order. */
  inputs: Flat[];
  /** One per output, in `model.outputs` order. */
  outputs: Flat[];
  /** Samples in every column. */
  count: number;
}

/** Whether the model has exactly one input and one output. */
export function isSingleIO(model: tf.LayersModel): boolean {
  return model.inputs.length === 1 && model.outputs.length === 1;
}

/** The model's inputs or outputs, as errors name them. */
interface Side {
  /** `"x"` or `"y"`. */
  arg: string;
  /** `"input"` or `"output"`. */
  kind: string;
  /** Layer names, in model order. */
  names: string[];
}

/** How errors name column `i` of a side: `x`, or `x[1] (input "b")` when there are several. */
function label(side: Side, i: number): string {
  return side.names.length === 1 ? side.arg : `${side.arg}[${i}] (${side.kind} "${side.names[i]}")`;
}

function isValues(value: unknown): boolean {
  return value instanceof tf.Tensor || ArrayBuffer.isView(value);
}

function isDict(value: unknown): value is Record<string, SampleValues> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !isValues(value);
}

/** `value` split into one entry per input (output) of `side`, checked against their count and names. */
function perColumn(value: Samples, side: Side): SampleValues[] {
  const { arg, kind, names } = side;
  const list = names.map((n) => `"${n}"`).join(", ");
  if (isDict(value)) {
    for (const key of Object.keys(value)) {
      if (!names.includes(key)) {
        throw new RangeError(
          `${arg} has an entry "${key}", which is not an ${kind} of the model: expected the ` +
            `${kind} names ${list}`,
        );
      }
    }
    return names.map((name) => {
      const v = value[name];
      if (v === undefined) {
        throw new RangeError(
          `${arg} has no entry for ${kind} "${name}": expected one per ${kind} name (${list})`,
        );
      }
      return v;
    });
  }
  // One input: an array is its samples, unless it holds exactly one tensor or typed array.
  if (Array.isArray(value) && (names.length > 1 || (value.length === 1 && isValues(value[0])))) {
    if (value.length !== names.length) {
      throw new RangeError(
        `${arg} holds ${value.length} arrays, expected ${names.length}: one per model ${kind} ` +
          `(${list}), in model.${kind}s order`,
      );
    }
    return value as SampleValues[];
  }
  if (names.length > 1) {
    throw new RangeError(
      `The model has ${names.length} ${kind}s (${list}): pass ${arg} as an array of ` +
        `${names.length} tensors in model.${kind}s order or as a dict by ${kind} name, ` +
        "received one " + (value instanceof tf.Tensor ? "tensor" : "array"),
    );
  }
  return [value as SampleValues];
}

/**
 * `value` split into one entry per model input (`which` is `"input"`) or
 * output, as `fit` reads `x` (`y`): the values of a one-input model, an
 * array in model order or a dict by layer name. Errors call it `arg`; each
 * entry comes with how errors name it (`arg`, or `arg[1] (input "b")`).
 */
export function splitColumns(
  model: tf.LayersModel,
  value: unknown,
  which: "input" | "output",
  arg: string,
): { values: unknown[]; labels: string[] } {
  const side: Side = {
    arg,
    kind: which,
    names: which === "input" ? model.inputNames : model.outputNames,
  };
  const values = perColumn(value as Samples, side);
  return { values, labels: values.map((_, i) => label(side, i)) };
}

function inputSide(model: tf.LayersModel): Side {
  return { arg: "x", kind: "input", names: model.inputNames };
}

/** Refuses columns (with how errors name them) whose sample counts differ from the first's. */
function checkCounts(columns: [{ shape: number[] }, string][]): number {
  const [first, firstName] = columns[0]!;
  const count = first.shape[0]!;
  for (const [f, what] of columns) {
    if (f.shape[0] !== count) {
      throw new RangeError(
        `${firstName} and ${what} must have the same number of samples, received ` +
          `${count} and ${f.shape[0]}`,
      );
    }
  }
  return count;
}

/**
 * The input tensors `model.predict` takes for `x` (given as `fit` takes it:
 * one input's values, or an array in `model.inputs` order or a dict by input
 * name), checked against the model's input shapes and sample counts, rank-1
 * values read as `[n, 1]`. Tensors pass through as they are (reshaped when
 * rank 1); `created` lists the tensors made here, for the caller to dispose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../../mod.ts";
 * import { inputTensors } from "./_inputs.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const { tensors, created } = inputTensors(model, [[1, 2], [3, 4], [5, 6]]);
 * assert.deepEqual(tensors.map((t) => t.shape), [[3, 2]]);
 * tf.dispose(created);
 * model.dispose();
 * ```
 */
export function inputTensors(
  model: tf.LayersModel,
  x: Samples,
): { tensors: tf.Tensor[]; created: tf.Tensor[] } {
  const ins = inputSide(model);
  const created: tf.Tensor[] = [];
  try {
    const tensors = perColumn(x, ins).map((v, i) => {
      const shape = model.inputs[i]!.shape.slice(1);
      const what = label(ins, i);
      if (v instanceof tf.Tensor) {
        const wide = widenRank1({ shape: v.shape }, shape, what);
        checkShape(wide, shape, what);
        if (wide.shape.length === v.shape.length) return v;
        const t = tf.reshape(v, wide.shape);
        created.push(t);
        return t;
      }
      const f = widenRank1(flatten(v, what, shape), shape, what);
      checkShape(f, shape, what);
      const t = tf.tensor(f.data, f.shape);
      created.push(t);
      return t;
    });
    checkCounts(tensors.map((t, i): [tf.Tensor, string] => [t, label(ins, i)]));
    return { tensors, created };
  } catch (e) {
    tf.dispose(created);
    throw e;
  }
}

/**
 * Converts and checks x and y against the model's input and output shapes:
 * one column per input and output, all with the same number of samples.
 */
export function prepareSamples(
  model: tf.LayersModel,
  x: Samples,
  y: Samples,
): Prepared {
  const ins = inputSide(model);
  const outs: Side = { arg: "y", kind: "output", names: model.outputNames };
  const inputs = perColumn(x, ins).map((v, i) => {
    const shape = model.inputs[i]!.shape.slice(1);
    const f = widenRank1(flatten(v, label(ins, i), shape), shape, label(ins, i));
    checkShape(f, shape, label(ins, i));
    return f;
  });
  const outputs = perColumn(y, outs).map((v, i) => {
    const shape = model.outputs[i]!.shape.slice(1);
    const what = label(outs, i);
    // Sparse categorical labels are class indices, [n] or [n, 1], as model.fit takes them.
    if (isSparseOutput(model, i)) {
      return sparseLabels(v, shape, what, outs.names.length === 1);
    }
    const f = widenRank1(flatten(v, what, shape), shape, what);
    checkShape(f, shape, what);
    return f;
  });
  const count = checkCounts([
    ...inputs.map((f, i): [Flat, string] => [f, label(ins, i)]),
    ...outputs.map((f, i): [Flat, string] => [f, label(outs, i)]),
  ]);
  return { inputs, outputs, count };
}

/**
 * Copies samples `[from, to)` of every column into new shared buffers, and
 * of every output's per-sample weights when `weights` has them.
 */
export function toShared(
  p: Prepared,
  from = 0,
  to = p.count,
  weights: readonly (Float32Array | null)[] | null = null,
): SharedData {
  const share = (f: Flat): SharedColumn => {
    const width = f.shape.slice(1).reduce((a, b) => a * b, 1);
    const buffer = new SharedArrayBuffer(Math.max(4, (to - from) * width * 4));
    new Float32Array(buffer).set(f.data.subarray(from * width, to * width));
    return { buffer, shape: f.shape.slice(1) };
  };
  const inputs = p.inputs.map(share), outputs = p.outputs.map(share);
  const data: SharedData = {
    x: inputs[0]!.buffer,
    y: outputs[0]!.buffer,
    xShape: inputs[0]!.shape,
    yShape: outputs[0]!.shape,
    count: to - from,
    inputs,
    outputs,
  };
  if (weights !== null) {
    data.sampleWeights = weights.map((w) =>
      w === null ? null : share({ data: w, shape: [w.length] }).buffer
    );
  }
  return data;
}
