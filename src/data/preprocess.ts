/**
 * Small, pure preprocessing helpers over plain typed arrays: one-hot labels,
 * min-max scaling, per-feature standardisation and a seeded train/validation
 * split. No tensors and no `Deno` APIs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneHot, scale01 } from "./preprocess.ts";
 * assert.ok(oneHot([2], 3).join() === "0,0,1");
 * assert.ok(scale01([0, 5, 10])[1] === 0.5);
 * ```
 * @module
 */
import { seededPermutation } from "../core/random.ts";
import type { LabeledData } from "./labeled_data.ts";

/**
 * One-hot encodes class labels into a row-major `labels.length * numClasses`
 * matrix.
 *
 * @param labels Class indices, each an integer in `[0, numClasses)`.
 * @param numClasses Number of classes, a positive integer.
 * @returns A `Float32Array` with one `1` per row.
 * @throws {RangeError} When `numClasses` is not a positive integer, or a label
 *   is out of range or not an integer (the message names its index).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneHot } from "./preprocess.ts";
 * const encoded = oneHot(new Uint8Array([1, 0]), 2);
 * assert.ok(encoded.join() === "0,1,1,0");
 * ```
 */
export function oneHot(
  labels: ArrayLike<number>,
  numClasses: number,
): Float32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new RangeError(
      `oneHot() expected numClasses to be a positive integer, received ${numClasses}`,
    );
  }
  const out = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new RangeError(
        `oneHot() label at index ${i} is out of range: expected an integer in [0, ${numClasses}), received ${label}`,
      );
    }
    out[i * numClasses + label] = 1;
  }
  return out;
}

/** Options for {@linkcode scale01}. */
export interface Scale01Options {
  /**
   * Value mapped to 0. Pass it (e.g. `0` for pixels) to scale different
   * arrays the same way.
   * @default {undefined} the smallest value in the array
   */
  min?: number;
  /**
   * Value mapped to 1 (e.g. `255` for pixels).
   * @default {undefined} the largest value in the array
   */
  max?: number;
}

/**
 * Min-max scales values into `[0, 1]`: `(v - min) / (max - min)`. When
 * `max === min` every value maps to 0.
 *
 * @param values The values to scale (not modified).
 * @param options Fixed `min` / `max`; computed from the data when omitted.
 * @returns A new `Float32Array`.
 * @throws {RangeError} When `min` or `max` is not finite or `min > max`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scale01 } from "./preprocess.ts";
 * const pixels = new Uint8Array([0, 51, 255]);
 * assert.ok(Math.abs(scale01(pixels, { min: 0, max: 255 })[1]! - 0.2) < 1e-6);
 * ```
 */
export function scale01(
  values: ArrayLike<number>,
  options: Scale01Options = {},
): Float32Array {
  let { min, max } = options;
  if (min === undefined || max === undefined) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    min ??= values.length === 0 ? 0 : lo;
    max ??= values.length === 0 ? 1 : hi;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(
      `scale01() expected finite min <= max, received min ${min} and max ${max}`,
    );
  }
  const range = max - min;
  const out = new Float32Array(values.length);
  if (range === 0) return out;
  for (let i = 0; i < values.length; i++) out[i] = (values[i]! - min) / range;
  return out;
}

/** Options for {@linkcode standardize}. */
export interface StandardizeOptions {
  /**
   * Per-feature means to subtract (e.g. the training set's, to transform the
   * test set the same way).
   * @default {undefined} computed from the data
   */
  mean?: ArrayLike<number>;
  /**
   * Per-feature standard deviations to divide by; a 0 is treated as 1.
   * @default {undefined} computed from the data (population standard deviation)
   */
  std?: ArrayLike<number>;
}

/** What {@linkcode standardize} returns. */
export interface Standardized {
  /** The standardised values, same layout as the input. */
  data: Float32Array;
  /** The per-feature means used. */
  mean: Float32Array;
  /** The per-feature standard deviations used (zeros replaced by 1). */
  std: Float32Array;
}

/**
 * Standardises each feature (column) of a row-major matrix to zero mean and
 * unit variance, and returns the statistics so that other data can be
 * transformed the same way.
 *
 * @param values Row-major matrix, `rows * numFeatures` values (not modified).
 * @param numFeatures Number of columns, a positive integer.
 * @param options Fixed statistics; computed from `values` when omitted.
 * @returns `{ data, mean, std }`.
 * @throws {RangeError} When `numFeatures` is not a positive integer, does not
 *   divide `values.length`, or `mean` / `std` have the wrong length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { standardize } from "./preprocess.ts";
 * const { data, mean } = standardize([1, 10, 3, 30], 2);
 * assert.ok(mean[0] === 2 && mean[1] === 20);
 * assert.ok(data[0] === -1 && data[3] === 1);
 * ```
 */
export function standardize(
  values: ArrayLike<number>,
  numFeatures: number,
  options: StandardizeOptions = {},
): Standardized {
  if (!Number.isInteger(numFeatures) || numFeatures < 1) {
    throw new RangeError(
      `standardize() expected numFeatures to be a positive integer, received ${numFeatures}`,
    );
  }
  if (values.length % numFeatures !== 0) {
    throw new RangeError(
      `standardize() expected values.length to be a multiple of numFeatures ${numFeatures}, received ${values.length}`,
    );
  }
  for (const [name, stat] of Object.entries(options)) {
    if (stat !== undefined && stat.length !== numFeatures) {
      throw new RangeError(
        `standardize() expected ${name} to have ${numFeatures} entries, received ${stat.length}`,
      );
    }
  }
  const rows = values.length / numFeatures;
  const mean = new Float32Array(numFeatures);
  if (options.mean !== undefined) {
    mean.set(options.mean);
  } else if (rows > 0) {
    const sum = new Float64Array(numFeatures);
    for (let i = 0; i < values.length; i++) sum[i % numFeatures]! += values[i]!;
    for (let f = 0; f < numFeatures; f++) mean[f] = sum[f]! / rows;
  }
  const std = new Float32Array(numFeatures).fill(1);
  if (options.std !== undefined) {
    std.set(options.std);
  } else if (rows > 0) {
    const sq = new Float64Array(numFeatures);
    for (let i = 0; i < values.length; i++) {
      const d = values[i]! - mean[i % numFeatures]!;
      sq[i % numFeatures]! += d * d;
    }
    for (let f = 0; f < numFeatures; f++) std[f] = Math.sqrt(sq[f]! / rows);
  }
  for (let f = 0; f < numFeatures; f++) if (std[f] === 0) std[f] = 1;
  const data = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const f = i % numFeatures;
    data[i] = (values[i]! - mean[f]!) / std[f]!;
  }
  return { data, mean, std };
}

/** Options for {@linkcode trainValidationSplit}. */
export interface TrainValidationSplitOptions {
  /**
   * Share of the examples held out for validation, in `(0, 1)`; rounded to a
   * whole number of examples, at least 1 in each part.
   * @default {0.2}
   */
  validationFraction?: number;
  /**
   * Shuffle before splitting (seeded). When false the last examples are
   * held out, like Keras' `validationSplit`.
   * @default {true}
   */
  shuffle?: boolean;
  /**
   * Seed for the shuffle: the same seed gives the same split.
   * @default {0}
   */
  seed?: number;
}

/**
 * Splits labelled examples into disjoint train and validation parts. Extra
 * fields of `data` (e.g. a CSV's `featureNames`) are copied to both parts.
 *
 * @param data Examples with row-major `x` and one label per example in `y`.
 * @param options Validation share, shuffling and seed.
 * @returns `{ train, validation }`, each the same kind of object as `data`.
 * @throws {RangeError} When the fraction is outside `(0, 1)`, leaves an empty
 *   part, or `x` / `y` do not match `count`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainValidationSplit } from "./preprocess.ts";
 * const data = {
 *   x: new Float32Array(10), y: new Uint8Array(10), count: 10, featureShape: [1],
 * };
 * const { train, validation } = trainValidationSplit(data, { validationFraction: 0.3 });
 * assert.ok(train.count === 7 && validation.count === 3);
 * ```
 */
export function trainValidationSplit<T extends LabeledData>(
  data: T,
  options: TrainValidationSplitOptions = {},
): { train: T; validation: T } {
  const { validationFraction = 0.2, shuffle = true, seed = 0 } = options;
  if (
    typeof validationFraction !== "number" || !(validationFraction > 0) ||
    !(validationFraction < 1)
  ) {
    throw new RangeError(
      `trainValidationSplit() expected validationFraction in (0, 1), received ${validationFraction}`,
    );
  }
  if (!Number.isInteger(seed)) {
    throw new RangeError(
      `trainValidationSplit() expected seed to be an integer, received ${seed}`,
    );
  }
  const { count } = data;
  if (
    !Number.isInteger(count) || count < 0 || data.y.length !== count ||
    (count > 0 && data.x.length % count !== 0)
  ) {
    throw new RangeError(
      `trainValidationSplit() expected y.length === count and x.length a multiple of count, ` +
        `received count ${count}, y.length ${data.y.length}, x.length ${data.x.length}`,
    );
  }
  const held = Math.round(count * validationFraction);
  if (held < 1 || held > count - 1) {
    throw new RangeError(
      `trainValidationSplit() expected at least one example in each part, received ` +
        `${
          count - held
        } train and ${held} validation from ${count} examples at validationFraction ${validationFraction}`,
    );
  }
  const width = data.x.length / count;
  let order: Uint32Array;
  if (shuffle) {
    order = seededPermutation(count, seed);
  } else {
    order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
  }
  const take = (from: number, n: number): T => {
    const x = new Float32Array(n * width);
    const y = data.y instanceof Uint8Array ? new Uint8Array(n) : new Float32Array(n);
    for (let r = 0; r < n; r++) {
      const src = order[from + r]!;
      x.set(data.x.subarray(src * width, (src + 1) * width), r * width);
      y[r] = data.y[src]!;
    }
    return { ...data, x, y, count: n };
  };
  return { train: take(0, count - held), validation: take(count - held, held) };
}
