/**
 * Ready-made models for the CLI, the HTTP service and the examples: an MLP
 * and a small CNN for 28x28 greyscale images (MNIST, Fashion-MNIST), or any
 * flat feature vector (MLP).
 *
 * @module
 */
import * as tf from "../tf.ts";

/** A preset model description. */
export type PresetSpec =
  | {
    preset: "mlp";
    /** Hidden layer sizes. @default [256, 128] */
    hidden?: number[];
    /** Features per sample. @default 784 */
    inputSize?: number;
    /** Output classes (softmax). @default 10 */
    classes?: number;
    /** Dropout after each hidden layer. @default 0 */
    dropout?: number;
  }
  | {
    preset: "cnn";
    /** Filters of the two conv layers. @default [32, 64] */
    filters?: [number, number];
    /** Units of the dense layer. @default 128 */
    dense?: number;
    /** Output classes (softmax). @default 10 */
    classes?: number;
    /** Image shape. @default [28, 28, 1] */
    inputShape?: [number, number, number];
  };

/** Names of the presets. */
export const PRESETS = ["mlp", "cnn"] as const;

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, received ${value}`);
  }
  return value;
}

/**
 * Builds (but does not compile) a preset model. Seeded initialisers make two
 * calls with the same spec and `seed` give identical weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildPreset } from "./presets.ts";
 * const model = buildPreset({ preset: "mlp", hidden: [32], inputSize: 4, classes: 3 });
 * assert.ok(model.outputs[0]!.shape[1] === 3);
 * ```
 */
export function buildPreset(spec: PresetSpec, options: { seed?: number } = {}): tf.Sequential {
  let seed = options.seed ?? 1;
  const init = () => tf.initializers.glorotUniform({ seed: seed++ });
  if (spec.preset === "mlp") {
    const hidden = (spec.hidden ?? [256, 128]).map((h, i) => positive(h, `hidden[${i}]`));
    const dropout = spec.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) {
      throw new RangeError(`dropout must be in [0, 1), received ${dropout}`);
    }
    const layers: tf.layers.Layer[] = [];
    hidden.forEach((units, i) => {
      layers.push(tf.layers.dense({
        units,
        activation: "relu",
        kernelInitializer: init(),
        ...(i === 0 ? { inputShape: [positive(spec.inputSize ?? 784, "inputSize")] } : {}),
      }));
      if (dropout > 0) layers.push(tf.layers.dropout({ rate: dropout, seed: seed++ }));
    });
    layers.push(tf.layers.dense({
      units: positive(spec.classes ?? 10, "classes"),
      activation: "softmax",
      kernelInitializer: init(),
      ...(hidden.length === 0 ? { inputShape: [spec.inputSize ?? 784] } : {}),
    }));
    return tf.sequential({ layers });
  }
  if (spec.preset === "cnn") {
    const [f1, f2] = spec.filters ?? [32, 64];
    return tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: positive(f1, "filters[0]"),
          kernelSize: 3,
          activation: "relu",
          inputShape: spec.inputShape ?? [28, 28, 1],
          kernelInitializer: init(),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({
          filters: positive(f2, "filters[1]"),
          kernelSize: 3,
          activation: "relu",
          kernelInitializer: init(),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({
          units: positive(spec.dense ?? 128, "dense"),
          activation: "relu",
          kernelInitializer: init(),
        }),
        tf.layers.dense({
          units: positive(spec.classes ?? 10, "classes"),
          activation: "softmax",
          kernelInitializer: init(),
        }),
      ],
    });
  }
  throw new TypeError(
    `preset must be one of ${PRESETS.join(", ")}, received ${
      JSON.stringify((spec as { preset?: unknown }).preset)
    }`,
  );
}
