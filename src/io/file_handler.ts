import { dirname, join } from "node:path";
import * as tf from "../tf.ts";
import { DataFormatError } from "../errors.ts";
import { writeFileAtomic } from "./_atomic_write.ts";
import { toFilePath } from "./_paths.ts";
import { expectedBytes, ownBuffer } from "./_weight_bytes.ts";

const MODEL_FILE = "model.json";
const WEIGHTS_FILE = "weights.bin";

function jsonPathFor(path: string): string {
  return path.endsWith(".json") ? path : join(path, MODEL_FILE);
}

/**
 * A tfjs `IOHandler` that stores a model as `model.json` (topology, training
 * config and weights manifest, the tfjs layers format) plus `weights.bin` in a
 * folder on disk, using Deno's file APIs.
 *
 * `save` creates the folder if needed and replaces each file atomically
 * (written to a temporary file in the same folder, flushed, then renamed):
 * `weights.bin` first, `model.json` last. `load` accepts the folder or the
 * path of its `model.json`, and checks that the weight files hold as many
 * bytes as the manifest says.
 *
 * Usually reached through `registerFileIO()` and a `file://` URL; call it
 * directly to pass a handler to `model.save()` / `tf.loadLayersModel()`.
 *
 * @param path Folder (save or load), `model.json` path (load), `file://` URL
 *   string (`"file://./out/m"`, `"file:///abs/m"`) or `file:` URL object.
 * @returns An `IOHandler` with `save` and `load`.
 * @throws {TypeError} When `path` is empty or not a `file:` location.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { fileHandler } from "./file_handler.ts";
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * await model.save(fileHandler(dir));
 * const loaded = await tf.loadLayersModel(fileHandler(`${dir}/model.json`));
 * assert.ok(loaded.countParams() === 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function fileHandler(path: string | URL): tf.io.IOHandler {
  const target = toFilePath(path, "fileHandler()");
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (
        artifacts.modelTopology === undefined ||
        artifacts.modelTopology instanceof ArrayBuffer
      ) {
        throw new TypeError(
          `Cannot save to ${target}: expected a JSON model topology (a tfjs layers model), ` +
            `received ${
              artifacts.modelTopology === undefined ? "no topology" : "a binary topology"
            }`,
        );
      }
      await Deno.mkdir(target, { recursive: true });
      const weights = new Uint8Array(
        tf.io.CompositeArrayBuffer.join(artifacts.weightData),
      );
      const modelJSON: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{
          paths: [WEIGHTS_FILE],
          weights: artifacts.weightSpecs ?? [],
        }],
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        signature: artifacts.signature,
        userDefinedMetadata: artifacts.userDefinedMetadata,
        modelInitializer: artifacts.modelInitializer,
        initializerSignature: artifacts.initializerSignature,
        trainingConfig: artifacts.trainingConfig,
      };
      await writeFileAtomic(join(target, WEIGHTS_FILE), weights);
      await writeFileAtomic(
        join(target, MODEL_FILE),
        new TextEncoder().encode(JSON.stringify(modelJSON)),
      );
      return {
        modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts),
      };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const jsonPath = jsonPathFor(target);
      let text: string;
      try {
        text = await Deno.readTextFile(jsonPath);
      } catch (cause) {
        if (cause instanceof Deno.errors.NotFound) {
          throw new Deno.errors.NotFound(
            `Cannot load a model from ${target}: expected ${jsonPath} to exist, received no such file`,
            { cause },
          );
        }
        throw cause;
      }
      let modelJSON: tf.io.ModelJSON;
      try {
        modelJSON = JSON.parse(text);
      } catch (cause) {
        throw new DataFormatError(
          `Cannot load a model from ${jsonPath}: expected JSON, received text that fails to parse (${
            (cause as Error).message
          })`,
          { path: jsonPath, cause },
        );
      }
      if (
        modelJSON === null || typeof modelJSON !== "object" ||
        typeof modelJSON.modelTopology !== "object" ||
        modelJSON.modelTopology === null
      ) {
        throw new DataFormatError(
          `Cannot load a model from ${jsonPath}: expected an object with a modelTopology field, received ${
            modelJSON === null || typeof modelJSON !== "object"
              ? JSON.stringify(modelJSON)
              : `fields ${Object.keys(modelJSON).join(", ") || "(none)"}`
          }`,
          { path: jsonPath },
        );
      }
      const folder = dirname(jsonPath);
      return await tf.io.getModelArtifactsForJSON(
        modelJSON,
        async (manifest) => {
          const specs: tf.io.WeightsManifestEntry[] = [];
          const buffers: ArrayBuffer[] = [];
          for (const group of manifest) {
            specs.push(...group.weights);
            for (const file of group.paths) {
              const bytes = await Deno.readFile(join(folder, file));
              buffers.push(ownBuffer(bytes));
            }
          }
          const data = tf.io.CompositeArrayBuffer.join(buffers);
          const expected = expectedBytes(specs);
          if (expected !== undefined && expected !== data.byteLength) {
            const files = manifest.flatMap((group) => group.paths).join(", ");
            throw new DataFormatError(
              `Weights of ${jsonPath} do not match its manifest: expected ${expected} bytes ` +
                `in ${files}, received ${data.byteLength}`,
              { path: join(folder, manifest[0]?.paths[0] ?? WEIGHTS_FILE) },
            );
          }
          return [specs, data];
        },
      );
    },
  };
}

let registered = false;

/** Routes `file://` URLs to {@linkcode fileHandler}; null for anything else. */
function fileRouter(url: string | string[]): tf.io.IOHandler {
  if (typeof url === "string" && url.startsWith("file://")) {
    return fileHandler(url);
  }
  // tfjs' router registry skips routers that return null.
  return null as unknown as tf.io.IOHandler;
}

/**
 * Registers {@linkcode fileHandler} with tfjs' save and load routers so that
 * `file://` URLs work with the tf from `src/tf.ts`:
 * `await model.save("file://./out/m")` writes `./out/m/model.json` and
 * `./out/m/weights.bin`; `tf.loadLayersModel("file://./out/m/model.json")`
 * reads them back. Calling it again does nothing. Importing dtrain (or this
 * module) already calls it.
 *
 * @returns Nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { registerFileIO } from "./file_handler.ts";
 * registerFileIO();
 * registerFileIO(); // idempotent
 * const dir = await Deno.makeTempDir();
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
 * await model.save(`file://${dir}/m`);
 * const loaded = await tf.loadLayersModel(`file://${dir}/m/model.json`);
 * assert.ok(loaded.countParams() === model.countParams());
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function registerFileIO(): void {
  if (registered) return;
  tf.io.registerSaveRouter(fileRouter);
  tf.io.registerLoadRouter(fileRouter);
  registered = true;
}

// Importing dtrain (mod.ts re-exports this module) makes `file://` work in
// Deno at once, as tfjs-node does in Node; registerFileIO() stays for code
// that imports tfjs another way, and is idempotent.
registerFileIO();
