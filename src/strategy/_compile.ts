/**
 * What a Worker needs to compile its copy of the model: the optimizer (class
 * and config), loss and metrics by name. Shared by the strategies.
 *
 * @module
 */
import type * as tf from "../tf.ts";
import type { CompileSpec } from "./protocol.ts";

/**
 * Checks that `model` is compiled and describes its compile arguments.
 * Losses or metrics given as functions cannot cross to a Worker: they need a
 * model module (`hasModule`). `optimizer: "placeholder"` sends a no-op SGD
 * instead of the model's optimizer (workers that only compute gradients).
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
  const loss = model.loss;
  const metrics = (model.metrics ?? []) as unknown;
  const names = (Array.isArray(metrics) ? metrics : [metrics]) as unknown[];
  const serializable = (typeof loss === "string" ||
    (Array.isArray(loss) && loss.every((l) => typeof l === "string"))) &&
    names.every((m) => typeof m === "string");
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
    loss: serializable ? loss as string | string[] : "meanSquaredError",
    metrics: serializable ? names as string[] : [],
  };
}
