/**
 * What a Worker needs to compile its copy of the model: the optimizer (class
 * and config), loss and metrics by name; and the `lossWeights` option, one
 * weight per model output. Shared by the strategies.
 *
 * @module
 */
import type * as tf from "../tf.ts";
import type { CompileSpec } from "./protocol.ts";

/** A name, or a list of names. */
function isNames(value: unknown): value is string | string[] {
  return typeof value === "string" ||
    (Array.isArray(value) && value.every((v) => typeof v === "string"));
}

/** A dict (by output name) whose every value passes `ok`. */
function isDictOf(value: unknown, ok: (v: unknown) => boolean): boolean {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.values(value).every(ok);
}

/**
 * Checks that `model` is compiled and describes its compile arguments:
 * losses as one name, one per output or a dict by output name; metrics as
 * names or a dict by output name. Losses or metrics given as functions cannot
 * cross to a Worker: they need a model module (`hasModule`).
 * `optimizer: "placeholder"` sends a no-op SGD instead of the model's
 * optimizer (workers that only compute gradients).
 */
export function compileSpec(
  model: tf.LayersModel,
  options: { hasModule: boolean; who: "replica" | "worker"; optimizer: "model" | "placeholder" },
): CompileSpec {
  if (model.optimizer === undefined || model.optimizer === null) {
    throw new TypeError(
      "The model must be compiled before training: call model.compile({ optimizer, loss })",
    );
  }
  const loss = model.loss as unknown;
  const metrics = (model.metrics ?? []) as unknown;
  const serializable = (isNames(loss) || isDictOf(loss, (l) => typeof l === "string")) &&
    (isNames(metrics) || isDictOf(metrics, isNames));
  if (!serializable && !options.hasModule) {
    throw new TypeError(
      `The model's loss or metrics are functions, which cannot be sent to ${options.who} ` +
        "Workers: pass modelModule: { url, exportName } to build the compiled model in each " +
        options.who,
    );
  }
  return {
    optimizer: options.optimizer === "placeholder"
      ? { className: "SGD", config: { learningRate: 0 } }
      : {
        className: model.optimizer.getClassName(),
        config: model.optimizer.getConfig() as Record<string, unknown>,
      },
    loss: serializable ? loss as CompileSpec["loss"] : "meanSquaredError",
    metrics: !serializable
      ? []
      : typeof metrics === "string"
      ? [metrics]
      : metrics as CompileSpec["metrics"],
  };
}

/**
 * The `lossWeights` option as one weight per model output, in
 * `model.outputs` order, checked: an array of one finite number per output,
 * or a dict by output name (an output it leaves out weighs 1). Undefined
 * gives null: every output weighs 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../../mod.ts";
 * import { lossWeightsOf } from "./_compile.ts";
 * const input = tf.input({ shape: [2] });
 * const a = tf.layers.dense({ units: 1, name: "a" }).apply(input) as tf.SymbolicTensor;
 * const b = tf.layers.dense({ units: 1, name: "b" }).apply(input) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: [a, b] });
 * assert.deepEqual(lossWeightsOf(model, { b: 0.5 }), [1, 0.5]);
 * assert.equal(lossWeightsOf(model, undefined), null);
 * ```
 */
export function lossWeightsOf(
  model: tf.LayersModel,
  option: readonly number[] | Readonly<Record<string, number>> | undefined,
): number[] | null {
  if (option === undefined) return null;
  const names = model.outputNames;
  const list = names.map((n) => `"${n}"`).join(", ");
  let weights: unknown[];
  if (Array.isArray(option)) {
    if (option.length !== names.length) {
      throw new RangeError(
        `lossWeights has ${option.length} entries, expected ${names.length}: one per model ` +
          `output (${list})`,
      );
    }
    weights = option;
  } else if (option !== null && typeof option === "object") {
    const dict = option as Readonly<Record<string, number>>;
    for (const key of Object.keys(dict)) {
      if (!names.includes(key)) {
        throw new RangeError(
          `lossWeights names "${key}", which is not an output of the model: expected the ` +
            `output names ${list}`,
        );
      }
    }
    weights = names.map((n) => dict[n] ?? 1);
  } else {
    throw new TypeError(
      "lossWeights must be an array (one number per model output) or a dict by output name, " +
        `received ${JSON.stringify(option)}`,
    );
  }
  weights.forEach((w, i) => {
    if (typeof w !== "number" || !Number.isFinite(w)) {
      throw new RangeError(
        `lossWeights of output "${names[i]}" must be a finite number, received ${
          typeof w === "number" ? w : JSON.stringify(w)
        }`,
      );
    }
  });
  return weights as number[];
}
