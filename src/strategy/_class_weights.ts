/**
 * The `classWeight` fit option, as tfjs' `model.fit` reads it (tfjs-layers
 * 4.22 `standardizeClassWeights` / `standardizeWeights`): one map from class
 * index to weight per output, turned once, on the main thread, into one
 * weight per sample from the class of its label (the label itself for `[n]`
 * or `[n, 1]` targets, the index of the largest entry for one-hot ones). The
 * strategies keep these weights as one more shared column per weighted
 * output and multiply each sample's loss by its weight; the batch loss stays
 * the mean over the batch's samples (tfjs divides by the sample count, not
 * by the sum of the weights).
 *
 * @module
 */
import * as tf from "../tf.ts";
import { isSparseOutput, type Prepared } from "./_inputs.ts";

/** Weight of each class index of one output's labels, as `model.fit` takes it. */
export type ClassWeight = Record<number, number>;

/**
 * What `classWeight` accepts: one {@linkcode ClassWeight} (a one-output
 * model), an array with one per output in `model.outputs` order (null: that
 * output is not weighted), or a dict by output name (a missing name is not
 * weighted).
 */
export type ClassWeightOption =
  | ClassWeight
  | (ClassWeight | null)[]
  | Record<string, ClassWeight>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !ArrayBuffer.isView(value) && !(value instanceof tf.Tensor);
}

/** The option as one class-weight map (or null) per output, as tfjs standardises it. */
function perOutput(model: tf.LayersModel, option: unknown): unknown[] {
  const names = model.outputNames;
  const list = names.map((n) => `"${n}"`).join(", ");
  if (Array.isArray(option)) {
    if (option.length !== names.length) {
      throw new RangeError(
        `classWeight has ${option.length} entries, expected ${names.length}: one class-weight ` +
          `map per model output (${list}), in model.outputs order (null: not weighted)`,
      );
    }
    return option.map((c) => c ?? null);
  }
  if (!isPlainObject(option)) {
    throw new TypeError(
      "classWeight must map class indices to weights (one output), or be an array or a dict " +
        `by output name of such maps, received ${JSON.stringify(option)}`,
    );
  }
  const keys = Object.keys(option);
  const byName = keys.length > 0 && isPlainObject(option[keys[0]!]);
  if (names.length === 1 && !byName) return [option];
  if (!byName) {
    throw new TypeError(
      `The model has ${names.length} outputs (${list}): pass classWeight as an array of ` +
        `${names.length} class-weight maps or as a dict by output name, received ` +
        JSON.stringify(option),
    );
  }
  for (const key of keys) {
    if (!names.includes(key)) {
      throw new RangeError(
        `classWeight names "${key}", which is not an output of the model: expected the ` +
          `output names ${list}`,
      );
    }
  }
  return names.map((n) => option[n] ?? null);
}

/**
 * One map's weights by class index, checked: keys are class indices
 * (integers >= 0, below the output's class count when it has one), values
 * finite numbers >= 0.
 */
function checkMap(map: unknown, what: string, classes: number | undefined): Map<number, number> {
  if (!isPlainObject(map)) {
    throw new TypeError(
      `${what} must map class indices to weights, received ${JSON.stringify(map)}`,
    );
  }
  const weights = new Map<number, number>();
  for (const [key, w] of Object.entries(map)) {
    const index = Number(key);
    if (!Number.isInteger(index) || index < 0 || (classes !== undefined && index >= classes)) {
      throw new RangeError(
        `${what} has a weight for class "${key}", which is not a class of the output: ` +
          `expected integer class indices in [0, ${classes ?? "classes"})`,
      );
    }
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
      throw new RangeError(
        `${what} weighs class ${index} by ${
          typeof w === "number" ? w : JSON.stringify(w)
        }: expected a finite number >= 0`,
      );
    }
    weights.set(index, w);
  }
  return weights;
}

/**
 * One weight per sample and per output (null: the output is not weighted)
 * from `option` and the outputs' labels in `samples` (all of them, the
 * validation tail of `validationSplit` included, as `model.fit` reads them);
 * undefined gives null (no weights at all). Refuses a map that is not one
 * per output, a class index that is not a class of the output, a weight that
 * is negative or not finite, and a label whose class has no weight (as
 * `model.fit` does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../../mod.ts";
 * import { prepareSamples } from "./_inputs.ts";
 * import { sampleWeightsOf } from "./_class_weights.ts";
 * const model = tf.sequential({
 *   layers: [tf.layers.dense({ units: 2, inputShape: [1], activation: "softmax" })],
 * });
 * model.compile({ optimizer: "sgd", loss: "categoricalCrossentropy" });
 * const samples = prepareSamples(model, [[0], [1], [2]], [[1, 0], [0, 1], [0, 1]]);
 * const weights = sampleWeightsOf(model, { 0: 1, 1: 3 }, samples);
 * assert.deepEqual(Array.from(weights![0]!), [1, 3, 3]);
 * assert.equal(sampleWeightsOf(model, undefined, samples), null);
 * model.dispose();
 * ```
 */
export function sampleWeightsOf(
  model: tf.LayersModel,
  option: ClassWeightOption | undefined,
  samples: Prepared,
): (Float32Array | null)[] | null {
  if (option === undefined) return null;
  const maps = perOutput(model, option);
  const names = model.outputNames;
  const weighted = maps.map((map, i) => {
    if (map === null) return null;
    const what = names.length === 1 ? "classWeight" : `classWeight of output "${names[i]}"`;
    const y = samples.outputs[i]!;
    const per = y.shape.slice(1);
    const width = per.reduce((a, b) => a * b, 1);
    if (per.length > 1) {
      throw new RangeError(
        `${what}: the output's targets have shape [${y.shape.join(", ")}], expected [n], ` +
          "[n, 1] (class indices) or [n, classes] (one-hot), as model.fit reads them",
      );
    }
    const sparse = isSparseOutput(model, i);
    const units = model.outputs[i]!.shape.at(-1);
    const classes = width > 1 ? width : sparse && typeof units === "number" ? units : undefined;
    const byClass = checkMap(map, what, classes);
    const out = new Float32Array(samples.count);
    for (let s = 0; s < samples.count; s++) {
      let c = 0;
      if (width === 1) c = y.data[s]!;
      else {
        // The first largest entry, as tf.argMax picks it.
        const row = s * width;
        for (let k = 1; k < width; k++) if (y.data[row + k]! > y.data[row + c]!) c = k;
      }
      const w = byClass.get(c);
      if (w === undefined) {
        throw new RangeError(
          `${what} has no weight for class ${c} (sample ${s}): classWeight must contain all ` +
            "classes in the training data, as model.fit requires",
        );
      }
      out[s] = w;
    }
    return out;
  });
  return weighted.every((w) => w === null) ? null : weighted;
}
