/**
 * Save and restore a compiled model's optimizer state (iteration count and
 * slot variables such as Adam's moments) next to its weights, so training can
 * stop and continue where it left off.
 *
 * @example
 * ```ts
 * import * as tf from "../tf.ts";
 * import { loadOptimizerState, saveOptimizerState } from "./optimizer_state.ts";
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * model.compile({ optimizer: tf.train.adam(0.1), loss: "meanSquaredError" });
 * await saveOptimizerState(model, dir);
 * await loadOptimizerState(model, dir);
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { join } from "node:path";
import * as tf from "../tf.ts";
import { DataFormatError } from "../errors.ts";
import { writeFileAtomic } from "./_atomic_write.ts";
import { toFilePath } from "./_paths.ts";
import { expectedBytes, ownBuffer } from "./_weight_bytes.ts";

const STATE_FILE = "optimizer.json";
const DATA_FILE = "optimizer.bin";
const FORMAT = "dtrain-optimizer-state";

/** What `optimizer.json` holds. */
interface OptimizerStateJSON {
  format: typeof FORMAT;
  version: 1;
  className: string;
  config: unknown;
  weightsFile: string;
  weightSpecs: tf.io.WeightsManifestEntry[];
}

function compiledOptimizer(
  model: tf.LayersModel,
  caller: string,
): tf.Optimizer {
  if (!(model instanceof tf.LayersModel)) {
    throw new TypeError(
      `${caller} expected a tf.LayersModel, received ${model === null ? "null" : typeof model}`,
    );
  }
  if (model.optimizer === undefined || model.optimizer === null) {
    throw new TypeError(
      `${caller} expected a compiled model with an optimizer, received model "${model.name}" ` +
        "without one (call model.compile({ optimizer, loss }) first)",
    );
  }
  return model.optimizer;
}

/**
 * Writes the optimizer state of a compiled model into `dir` as
 * `optimizer.json` (class, config, weight manifest) and `optimizer.bin` (the
 * values), each replaced atomically (`optimizer.bin` first). Creates `dir` if
 * needed. Pair it with `model.save()` into the same folder to checkpoint
 * training; tensors it creates are disposed before it returns.
 *
 * @param model A compiled `tf.LayersModel`.
 * @param dir Folder path, `file://` URL string or `file:` URL.
 * @returns Resolves once both files are on disk.
 * @throws {TypeError} When `model` is not a compiled LayersModel or `dir` is
 *   not a file location.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { saveOptimizerState } from "./optimizer_state.ts";
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * await saveOptimizerState(model, dir);
 * assert.ok((await Deno.stat(`${dir}/optimizer.json`)).isFile);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveOptimizerState(
  model: tf.LayersModel,
  dir: string | URL,
): Promise<void> {
  const optimizer = compiledOptimizer(model, "saveOptimizerState()");
  const folder = toFilePath(dir, "saveOptimizerState()");
  const weights = await optimizer.getWeights();
  let encoded: { data: ArrayBuffer; specs: tf.io.WeightsManifestEntry[] };
  try {
    encoded = await tf.io.encodeWeights(weights);
  } finally {
    // getWeights() returns the optimizer's own variables plus a fresh scalar
    // for the iteration count: free only what is not a variable.
    for (const { tensor } of weights) {
      if (!(tensor instanceof tf.Variable)) tensor.dispose();
    }
  }
  const state: OptimizerStateJSON = {
    format: FORMAT,
    version: 1,
    className: optimizer.getClassName(),
    config: optimizer.getConfig(),
    weightsFile: DATA_FILE,
    weightSpecs: encoded.specs,
  };
  await Deno.mkdir(folder, { recursive: true });
  await writeFileAtomic(join(folder, DATA_FILE), new Uint8Array(encoded.data));
  await writeFileAtomic(
    join(folder, STATE_FILE),
    new TextEncoder().encode(JSON.stringify(state)),
  );
}

async function readState(folder: string): Promise<OptimizerStateJSON> {
  const path = join(folder, STATE_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load optimizer state from ${folder}: expected ${path} to exist ` +
          "(written by saveOptimizerState()), received no such file",
        { cause },
      );
    }
    throw cause;
  }
  let state: Partial<OptimizerStateJSON> | null;
  try {
    state = JSON.parse(text);
  } catch (cause) {
    throw new DataFormatError(
      `Cannot load optimizer state from ${path}: expected JSON, received text that fails to parse (${
        (cause as Error).message
      })`,
      { path, cause },
    );
  }
  if (
    state === null || typeof state !== "object" || state.format !== FORMAT ||
    state.version !== 1 || typeof state.className !== "string" ||
    typeof state.weightsFile !== "string" || !Array.isArray(state.weightSpecs)
  ) {
    throw new DataFormatError(
      `Cannot load optimizer state from ${path}: expected format "${FORMAT}" version 1, received ${
        state === null || typeof state !== "object"
          ? JSON.stringify(state)
          : `format ${JSON.stringify(state.format)} version ${JSON.stringify(state.version)}`
      }`,
      { path },
    );
  }
  return state as OptimizerStateJSON;
}

/**
 * Restores optimizer state written by {@linkcode saveOptimizerState} into a
 * compiled model whose optimizer is of the same class and whose trainable
 * weights have the same shapes, so that the next training step continues
 * exactly where the saved run stopped. The optimizer's previous slot
 * variables are disposed; the new ones are owned by the optimizer.
 *
 * @param model A compiled `tf.LayersModel` (e.g. from `tf.loadLayersModel`).
 * @param dir Folder holding `optimizer.json` and `optimizer.bin`.
 * @returns Resolves once the optimizer holds the saved state.
 * @throws {TypeError} When `model` is not compiled, or its optimizer class or
 *   weight shapes do not match the saved state.
 * @throws {Deno.errors.NotFound} When `optimizer.json` is missing.
 * @throws {DataFormatError} When the files are not valid optimizer state or
 *   `optimizer.bin` is truncated ("expected N bytes, received M").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { loadOptimizerState, saveOptimizerState } from "./optimizer_state.ts";
 * const dir = await Deno.makeTempDir();
 * const make = () => {
 *   const m = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
 *   m.compile({ optimizer: tf.train.adam(0.1), loss: "meanSquaredError" });
 *   return m;
 * };
 * const a = make();
 * await a.trainOnBatch(tf.ones([2, 1]), tf.ones([2, 1]));
 * await saveOptimizerState(a, dir);
 * const b = make();
 * await loadOptimizerState(b, dir);
 * assert.ok((await b.optimizer.getWeights()).length === 5); // iter + 2 moments x 2 weights
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadOptimizerState(
  model: tf.LayersModel,
  dir: string | URL,
): Promise<void> {
  const optimizer = compiledOptimizer(model, "loadOptimizerState()");
  const folder = toFilePath(dir, "loadOptimizerState()");
  const state = await readState(folder);
  const className = optimizer.getClassName();
  if (state.className !== className) {
    throw new TypeError(
      `Cannot load optimizer state from ${folder} into model "${model.name}": ` +
        `saved for a ${state.className} optimizer, received a model compiled with ${className}`,
    );
  }
  // Slots come grouped (all first moments, then all second moments, ...),
  // each group in trainable-weight order, after one iteration scalar.
  const slots = state.weightSpecs.slice(1);
  const trainable = model.trainableWeights;
  const fits = trainable.length === 0
    ? slots.length === 0
    : slots.length % trainable.length === 0 &&
      slots.every((spec, i) => spec.shape.join() === trainable[i % trainable.length]!.shape.join());
  if (!fits) {
    throw new TypeError(
      `Cannot load optimizer state from ${folder} into model "${model.name}": ` +
        `expected slot shapes matching its trainable weights [${
          trainable.map((w) => `[${w.shape.join(", ")}]`).join(", ")
        }], received [${slots.map((s) => `[${s.shape.join(", ")}]`).join(", ")}]`,
    );
  }
  const dataPath = join(folder, state.weightsFile);
  const data = ownBuffer(await Deno.readFile(dataPath));
  const expected = expectedBytes(state.weightSpecs);
  if (expected !== undefined && expected !== data.byteLength) {
    throw new DataFormatError(
      `Truncated optimizer state ${dataPath}: expected ${expected} bytes, received ${data.byteLength}`,
      { path: dataPath },
    );
  }
  const decoded = tf.io.decodeWeights(data, state.weightSpecs);
  const named = state.weightSpecs.map((spec) => ({
    name: spec.name,
    tensor: decoded[spec.name]!,
  }));
  try {
    await replaceOptimizerWeights(optimizer, named);
  } finally {
    tf.dispose(Object.values(decoded));
  }
}

/**
 * `optimizer.setWeights(named)` without leaking: tfjs' `setWeights` makes new
 * slot variables (from `named`, which the caller still owns and may dispose)
 * and drops the old ones, which this frees.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { replaceOptimizerWeights } from "./optimizer_state.ts";
 * const sgd = tf.train.sgd(0.1);
 * const iter = tf.scalar(7, "int32");
 * await replaceOptimizerWeights(sgd, [{ name: "iter", tensor: iter }]);
 * iter.dispose();
 * assert.ok(sgd.iterations === 7);
 * ```
 */
export async function replaceOptimizerWeights(
  optimizer: tf.Optimizer,
  named: { name: string; tensor: tf.Tensor }[],
): Promise<void> {
  const previous = await optimizer.getWeights();
  try {
    await optimizer.setWeights(named);
  } catch (err) {
    for (const { tensor } of previous) {
      if (!(tensor instanceof tf.Variable)) tensor.dispose();
    }
    throw err;
  }
  // setWeights() made new slot variables; the old ones are now unreachable.
  tf.dispose(previous.map(({ tensor }) => tensor));
}
