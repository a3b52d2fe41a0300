import * as tf from "../tf.ts";
import type { LabeledData } from "./labeled_data.ts";
import { oneHot } from "./preprocess.ts";

/** Options for {@linkcode toTensors}. */
export interface ToTensorsOptions {
  /**
   * Shape of `xs`: `"flat"` gives `[count, product(featureShape)]` (for dense
   * layers); `"image"` gives `[count, ...featureShape, 1]` (channels-last, for
   * `conv2d`).
   * @default {"flat"}
   */
  layout?: "flat" | "image";
  /**
   * When set, `ys` is the one-hot `[count, numClasses]` matrix (for
   * `categoricalCrossentropy`); when omitted, `ys` is the raw labels as a
   * float32 `[count, 1]` column (for regression or sparse losses).
   * @default {undefined}
   */
  numClasses?: number;
}

/**
 * The tensors {@linkcode toTensors} creates; the caller owns and disposes
 * them (`tf.dispose(result)` works: it is a plain tensor container).
 */
export type LabeledTensors = {
  /** Features, float32. */
  xs: tf.Tensor;
  /** Labels, float32: one-hot `[count, numClasses]` or a `[count, 1]` column. */
  ys: tf.Tensor;
};

/**
 * Turns a data source's plain arrays into a pair of float32 tensors for
 * `model.fit` / `model.evaluate`. It creates exactly two tensors and nothing
 * else; dispose both (or call `tf.dispose(result)`) when done.
 *
 * @param data Examples from a loader (`loadFashionMnist`, `loadMnist`, `readCsv`, ...).
 * @param options Feature layout and one-hot encoding.
 * @returns `{ xs, ys }`, owned by the caller.
 * @throws {RangeError} When `layout` is unknown, a label is outside
 *   `[0, numClasses)`, or `x` does not match `count * product(featureShape)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { toTensors } from "./to_tensors.ts";
 * const data = { x: new Float32Array(8), y: new Uint8Array([0, 1]), count: 2, featureShape: [2, 2] };
 * const { xs, ys } = toTensors(data, { layout: "image", numClasses: 2 });
 * assert.ok(xs.shape.join() === "2,2,2,1" && ys.shape.join() === "2,2");
 * tf.dispose([xs, ys]);
 * ```
 */
export function toTensors(
  data: LabeledData,
  options: ToTensorsOptions = {},
): LabeledTensors {
  const { layout = "flat", numClasses } = options;
  if (layout !== "flat" && layout !== "image") {
    throw new RangeError(
      `toTensors() expected layout "flat" or "image", received ${JSON.stringify(layout)}`,
    );
  }
  const width = data.featureShape.reduce((a, b) => a * b, 1);
  if (data.x.length !== data.count * width || data.y.length !== data.count) {
    throw new RangeError(
      `toTensors() expected x.length ${
        data.count * width
      } (count ${data.count} * ${width} features) and y.length ${data.count}, ` +
        `received x.length ${data.x.length} and y.length ${data.y.length}`,
    );
  }
  // Validate (and encode) labels before any tensor exists, so a bad label
  // leaks nothing.
  const labels = numClasses === undefined ? Float32Array.from(data.y) : oneHot(data.y, numClasses);
  const xShape = layout === "flat" ? [data.count, width] : [data.count, ...data.featureShape, 1];
  const xs = tf.tensor(data.x, xShape, "float32");
  const ys = tf.tensor2d(
    labels,
    [data.count, numClasses ?? 1],
    "float32",
  );
  return { xs, ys };
}
