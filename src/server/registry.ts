/**
 * The model registry: trained models as tfjs layers files on disk (written
 * atomically by dtrain's `fileHandler`), their metadata in the KV store, and
 * the models that serve predictions kept loaded in a small LRU cache.
 * Concurrent predict requests for one model that arrive in the same tick run
 * as one batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "../../mod.ts";
 * import { ModelRegistry } from "./registry.ts";
 * import { Store } from "./store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new Store(await Deno.openKv(":memory:"));
 * const registry = new ModelRegistry({ dir, store });
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
 * const record = await registry.save(model, { jobId: null, metrics: {} });
 * const outputs = await registry.predict(record.id, [[1, 2]]);
 * assert.ok(outputs.length === 1 && outputs[0]!.length === 1);
 * registry.close();
 * store.close();
 * model.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { join } from "node:path";
import { fileHandler, tf } from "../../mod.ts";
import { InputError, ModelFilesMissingError, NotFoundError } from "./_domain_errors.ts";
import { isId, newId } from "./_ids.ts";
import type { ModelRecord } from "./types.ts";
import type { Store } from "./store.ts";

/** Options for {@linkcode ModelRegistry}. */
export interface ModelRegistryOptions {
  /** Folder holding one sub-folder per model. Created when missing. */
  dir: string;
  /** Where the metadata lives. */
  store: Store;
  /**
   * Models kept loaded for predict; the least recently used is disposed.
   * @default 8
   */
  cacheSize?: number;
  /**
   * Most rows one batched predict call takes.
   * @default 1024
   */
  maxBatchRows?: number;
}

interface Pending {
  rows: number[][];
  resolve: (out: number[][]) => void;
  reject: (e: unknown) => void;
}

/** A loaded model that batches the predict requests of one tick. */
class LoadedModel {
  readonly model: tf.LayersModel;
  readonly inShape: number[];
  readonly inSize: number;
  #pending: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy = 0;
  #retired = false;
  #maxRows: number;
  #onBatch: (requests: number) => void;

  constructor(model: tf.LayersModel, maxRows: number, onBatch: (requests: number) => void) {
    this.model = model;
    this.#maxRows = maxRows;
    this.#onBatch = onBatch;
    const shape = model.inputs[0]!.shape.slice(1);
    this.inShape = shape.map((d) => d ?? 1);
    this.inSize = this.inShape.reduce((a, b) => a * b, 1);
  }

  run(rows: number[][]): Promise<number[][]> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ rows, resolve, reject });
      this.#timer ??= setTimeout(() => this.#flush(), 0);
    });
  }

  async #flush(): Promise<void> {
    this.#timer = undefined;
    const batch: Pending[] = [];
    let n = 0;
    while (this.#pending.length > 0) {
      const next = this.#pending[0]!;
      if (batch.length > 0 && n + next.rows.length > this.#maxRows) break;
      batch.push(this.#pending.shift()!);
      n += next.rows.length;
    }
    if (this.#pending.length > 0) this.#timer = setTimeout(() => this.#flush(), 0);
    this.#busy++;
    this.#onBatch(batch.length);
    try {
      const flat = new Float32Array(n * this.inSize);
      let offset = 0;
      for (const p of batch) {
        for (const row of p.rows) {
          flat.set(row, offset);
          offset += this.inSize;
        }
      }
      const y = tf.tidy(() => {
        const out = this.model.predict(tf.tensor(flat, [n, ...this.inShape]));
        return Array.isArray(out) ? out[0]! : out;
      });
      let data: Float32Array;
      try {
        data = await y.data() as Float32Array;
      } finally {
        y.dispose();
      }
      const width = data.length / n;
      let row = 0;
      for (const p of batch) {
        const out: number[][] = [];
        for (let i = 0; i < p.rows.length; i++, row++) {
          out.push(Array.from(data.subarray(row * width, (row + 1) * width)));
        }
        p.resolve(out);
      }
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.#busy--;
      if (this.#retired) this.retire();
    }
  }

  /** Disposes the model once no batch is running. */
  retire(): void {
    this.#retired = true;
    if (this.#busy > 0 || this.#pending.length > 0) return;
    clearTimeout(this.#timer);
    this.model.dispose();
  }
}

/**
 * Trained models: files on disk, metadata in the store, an LRU of loaded
 * models for predict. Methods throw `NotFoundError` for unknown ids.
 */
export class ModelRegistry {
  #dir: string;
  #store: Store;
  #cacheSize: number;
  #maxRows: number;
  #cache = new Map<string, Promise<LoadedModel>>();
  #stats = { batches: 0, requests: 0 };

  /** Validates the options; nothing is read until a method is called. */
  constructor(options: ModelRegistryOptions) {
    this.#dir = options.dir;
    this.#store = options.store;
    this.#cacheSize = options.cacheSize ?? 8;
    this.#maxRows = options.maxBatchRows ?? 1024;
    for (const [name, v] of [["cacheSize", this.#cacheSize], ["maxBatchRows", this.#maxRows]]) {
      if (!Number.isInteger(v) || (v as number) < 1) {
        throw new RangeError(`${name} must be an integer >= 1, received ${v}`);
      }
    }
  }

  /** Saves `model` under a new id and records its metadata. */
  async save(
    model: tf.LayersModel,
    meta: { jobId: string | null; metrics: Record<string, number> },
  ): Promise<ModelRecord> {
    const id = newId("mdl");
    await Deno.mkdir(this.#dir, { recursive: true });
    const result = await model.save(fileHandler(join(this.#dir, id)));
    const loss = model.loss;
    const record: ModelRecord = {
      id,
      jobId: meta.jobId,
      createdAt: new Date().toISOString(),
      inputShape: model.inputs[0]!.shape,
      outputShape: model.outputs[0]!.shape,
      params: model.countParams(),
      loss: typeof loss === "string" ? loss : Array.isArray(loss) ? loss.join(",") : "custom",
      metrics: meta.metrics,
      bytes: result.modelArtifactsInfo.weightDataBytes ?? 0,
      modelUrl: `/v1/models/${id}/model.json`,
    };
    await this.#store.putModel(record);
    return record;
  }

  /** The metadata of model `id`; `NotFoundError` when unknown. */
  async get(id: string): Promise<ModelRecord> {
    const record = isId("mdl", id) ? await this.#store.getModel(id) : null;
    if (record === null) throw new NotFoundError("model", id);
    return record;
  }

  /** Every model, newest first. */
  list(): Promise<ModelRecord[]> {
    return this.#store.listModels();
  }

  /** Removes model `id` (metadata, files, loaded copy); `NotFoundError` when unknown. */
  async delete(id: string): Promise<void> {
    if (!isId("mdl", id) || !(await this.#store.deleteModel(id))) {
      throw new NotFoundError("model", id);
    }
    this.#evict(id);
    await Deno.remove(join(this.#dir, id), { recursive: true }).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  /** The bytes of `model.json`, or of a weight file it lists; `NotFoundError` otherwise. */
  async file(id: string, name: string): Promise<Uint8Array<ArrayBuffer>> {
    await this.get(id);
    const folder = join(this.#dir, id);
    const json = await this.#read(folder, "model.json", id);
    if (name === "model.json") return json;
    const manifest = (JSON.parse(new TextDecoder().decode(json)) as tf.io.ModelJSON)
      .weightsManifest ?? [];
    if (!manifest.some((group) => group.paths.includes(name))) {
      throw new NotFoundError("file", name);
    }
    return await this.#read(folder, name, id);
  }

  async #read(folder: string, name: string, id: string): Promise<Uint8Array<ArrayBuffer>> {
    try {
      return await Deno.readFile(join(folder, name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ModelFilesMissingError(
          `Model ${id} is registered but its file ${name} is missing from ${folder}`,
        );
      }
      throw e;
    }
  }

  /**
   * Runs model `id` on `rows` (one flattened sample each). `NotFoundError`
   * for an unknown model, `InputError` when a row does not have the model's
   * input size.
   */
  async predict(id: string, rows: number[][]): Promise<number[][]> {
    await this.get(id);
    const loaded = await this.#load(id);
    rows.forEach((row, i) => {
      if (row.length !== loaded.inSize) {
        throw new InputError(
          "shape_mismatch",
          `inputs[${i}] has ${row.length} values, expected ${loaded.inSize} ` +
            `(the model's input shape [${loaded.inShape.join(", ")}])`,
          { field: `inputs[${i}]`, expected: loaded.inSize, received: row.length },
        );
      }
    });
    return await loaded.run(rows);
  }

  #load(id: string): Promise<LoadedModel> {
    let entry = this.#cache.get(id);
    if (entry !== undefined) {
      this.#cache.delete(id); // re-insert: most recently used last
      this.#cache.set(id, entry);
      return entry;
    }
    entry = tf.loadLayersModel(fileHandler(join(this.#dir, id, "model.json")))
      .then((model) =>
        new LoadedModel(model, this.#maxRows, (requests) => {
          this.#stats.batches++;
          this.#stats.requests += requests;
        })
      );
    this.#cache.set(id, entry);
    entry.catch(() => {
      if (this.#cache.get(id) === entry) this.#cache.delete(id);
    });
    while (this.#cache.size > this.#cacheSize) this.#evict(this.#cache.keys().next().value!);
    return entry.catch((e) => {
      throw e instanceof Deno.errors.NotFound
        ? new ModelFilesMissingError(`Model ${id} is registered but ${e.message}`, { cause: e })
        : e;
    });
  }

  #evict(id: string): void {
    const entry = this.#cache.get(id);
    if (entry === undefined) return;
    this.#cache.delete(id);
    entry.then((m) => m.retire(), () => {});
  }

  /**
   * Models loaded now, and predict calls run so far (`batches`) for how many
   * requests (`requests`): more requests than batches means batching worked.
   */
  get stats(): { loaded: number; batches: number; requests: number } {
    return { loaded: this.#cache.size, ...this.#stats };
  }

  /** Disposes every loaded model. */
  close(): void {
    for (const id of [...this.#cache.keys()]) this.#evict(id);
  }
}
