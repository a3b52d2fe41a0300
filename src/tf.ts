/**
 * The single tfjs instance dtrain uses: tfjs-core, tfjs-layers and the CPU
 * backend. Build models with this namespace (re-exported as `tf` from the
 * package root) so that dtrain and your code share one engine and one kernel
 * registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "./tf.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * assert.ok(model.outputs[0]!.shape[1] === 1);
 * ```
 * @module
 */
import "../backends/cpu.ts";
// Chained tensor methods (`x.slice()`, `x.cast()`, ...): the Node build of
// tfjs-core has neither their code nor their type declarations; add both.
import "./_chained_ops.ts";
import type {} from "@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops";
export * from "@tensorflow/tfjs-core";
export * from "@tensorflow/tfjs-layers";
