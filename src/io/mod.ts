/**
 * Model persistence on disk: a tfjs `IOHandler` for `file://` locations
 * (`model.json` + `weights.bin`, written atomically) and optimizer state
 * checkpoints so training can resume.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { registerFileIO } from "./mod.ts";
 * registerFileIO();
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * await model.save(`file://${dir}`);
 * const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
 * assert.ok(loaded.layers.length === 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
export { fileHandler, registerFileIO } from "./file_handler.ts";
export { loadOptimizerState, saveOptimizerState } from "./optimizer_state.ts";
