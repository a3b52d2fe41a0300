/**
 * The model registry: trained models as tfjs layers files on disk (written
 * atomically by dtrain's `fileHandler`), their metadata in the KV store, and
 * the models that serve predictions: kept loaded in a small LRU cache, either
 * in the inference Workers of a `PredictPool` (what `createApp` sets up; the
 * pool batches the requests that arrive while its Workers are busy) or, with
 * no pool, on this thread's tfjs, where concurrent predict requests for one
 * model that arrive in the same event-loop turn run as one batch. A model
 * with several inputs or outputs runs the same way, one array of rows per
 * input in and one per output back (`predictColumns`).
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
import { setImmediate } from "node:timers";
import { fileHandler, tf } from "../../mod.ts";
import {
  describePorts,
  InputError,
  ModelFilesMissingError,
  NotFoundError,
} from "./_domain_errors.ts";
import { isId, newId } from "./_ids.ts";
import type { PredictPool } from "./_predict_pool.ts";
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
   * Most rows one batched predict call takes (on this thread; a pool has its own).
   * @default 1024
   */
  maxBatchRows?: number;
  /**
   * The inference Workers that run predict (`createApp` makes them); none:
   * predict runs on this thread's tfjs.
   * @default undefined
   * @internal
   */
  pool?: PredictPool;
}

/**
 * One input or output of a model as predict sees it: its layer name, the
 * shape of one sample (unknown dimensions as 1, e.g. `[28, 28, 1]`) and its
 * size (the product).
 */
export interface PredictPort {
  /** The layer name (`model.inputNames` / `model.outputNames`). */
  name: string;
  /** The shape of one sample, unknown dimensions as 1. */
  shape: number[];
  /** Values of one sample (the product of `shape`). */
  size: number;
}

/** The inputs and outputs of a model, in `model.inputs` / `model.outputs` order. */
export interface ModelSignature {
  /** One entry per model input. */
  inputs: PredictPort[];
  /** One entry per model output. */
  outputs: PredictPort[];
}

function port(name: string, shape: readonly (number | null)[]): PredictPort {
  const dims = shape.slice(1).map((d) => d ?? 1);
  return { name, shape: dims, size: dims.reduce((a, b) => a * b, 1) };
}

/** The signature of a record (one written before records listed their ports: from its shapes). */
function recordSignature(record: ModelRecord): ModelSignature {
  return {
    inputs: (record.inputs ?? [{ name: "input", shape: record.inputShape }])
      .map((p) => port(p.name, p.shape)),
    outputs: (record.outputs ?? [{ name: "output", shape: record.outputShape }])
      .map((p) => port(p.name, p.shape)),
  };
}

interface Pending {
  xs: Float32Array[];
  rows: number;
  resolve: (outputs: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

/**
 * How a model record names its loss: the name, one per output in model order
 * (`a:name,b:name` for a dict by output name), or "custom".
 */
function lossName(loss: unknown, outputNames: readonly string[]): string {
  if (typeof loss === "string") return loss;
  if (Array.isArray(loss) && loss.every((l) => typeof l === "string")) return loss.join(",");
  if (loss !== null && typeof loss === "object" && !Array.isArray(loss)) {
    const dict = loss as Record<string, unknown>;
    if (outputNames.every((n) => typeof dict[n] === "string")) {
      return outputNames.map((n) => `${n}:${dict[n]}`).join(",");
    }
  }
  return "custom";
}

/**
 * Refuses a model with several inputs or outputs where one of each is
 * taken (`what` says by which method, `instead` what to call).
 */
function checkSingle(id: string, signature: ModelSignature, what: string, instead: string): void {
  const { inputs, outputs } = signature;
  if (inputs.length === 1 && outputs.length === 1) return;
  throw new InputError(
    "invalid_model",
    `Model ${id} has ${describePorts(inputs, "input")} and ${describePorts(outputs, "output")}: ` +
      `${what} takes models with one input and one output; use ${instead}`,
    { inputs: inputs.map((p) => p.name), outputs: outputs.map((p) => p.name) },
  );
}

/** A model loaded on this thread that batches the predict requests of one event-loop turn. */
class LoadedModel {
  readonly model: tf.LayersModel;
  readonly signature: ModelSignature;
  #pending: Pending[] = [];
  #scheduled = false;
  #busy = 0;
  #retired = false;
  #maxRows: number;
  #onBatch: (requests: number) => void;

  constructor(model: tf.LayersModel, maxRows: number, onBatch: (requests: number) => void) {
    this.model = model;
    this.#maxRows = maxRows;
    this.#onBatch = onBatch;
    this.signature = {
      inputs: model.inputs.map((t, i) => port(model.inputNames[i]!, t.shape)),
      outputs: model.outputs.map((t, i) => port(model.outputNames[i]!, t.shape)),
    };
  }

  run(xs: Float32Array[], rows: number): Promise<Float32Array[]> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ xs, rows, resolve, reject });
      this.#schedule();
    });
  }

  // setImmediate: after the I/O that is ready now, so the requests of this
  // turn join; setTimeout(0) would add 1-4 ms (Deno clamps timers).
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const batch: Pending[] = [];
    let n = 0;
    while (this.#pending.length > 0) {
      const next = this.#pending[0]!;
      if (batch.length > 0 && n + next.rows > this.#maxRows) break;
      batch.push(this.#pending.shift()!);
      n += next.rows;
    }
    if (this.#pending.length > 0) this.#schedule();
    this.#busy++;
    this.#onBatch(batch.length);
    try {
      const inputs = this.signature.inputs;
      const flat = inputs.map(({ size }, k) => {
        if (batch.length === 1) return batch[0]!.xs[k]!;
        const x = new Float32Array(n * size);
        let offset = 0;
        for (const p of batch) {
          x.set(p.xs[k]!, offset);
          offset += p.xs[k]!.length;
        }
        return x;
      });
      const ys = tf.tidy(() => {
        const xs = flat.map((x, k) => tf.tensor(x, [n, ...inputs[k]!.shape]));
        const out = this.model.predict(xs.length === 1 ? xs[0]! : xs);
        return Array.isArray(out) ? out : [out];
      });
      let data: Float32Array[];
      try {
        data = await Promise.all(ys.map((y) => y.data() as Promise<Float32Array>));
      } finally {
        tf.dispose(ys);
      }
      const widths = data.map((d) => d.length / n);
      let row = 0;
      for (const p of batch) {
        p.resolve(data.map((d, k) => d.subarray(row * widths[k]!, (row + p.rows) * widths[k]!)));
        row += p.rows;
      }
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.#busy--;
      if (this.#retired) this.retire();
    }
  }

  /** Disposes the model once no batch is running or waiting. */
  retire(): void {
    this.#retired = true;
    if (this.#busy > 0 || this.#pending.length > 0) return;
    this.model.dispose();
  }
}

/** A model in the predict cache: its signature, and its loaded copy when predict runs here. */
interface Entry {
  signature: ModelSignature;
  local: LoadedModel | undefined;
}

/**
 * Trained models: files on disk, metadata in the store, an LRU of models
 * loaded for predict (in the pool's Workers, or on this thread without a
 * pool). Methods throw `NotFoundError` for unknown ids.
 */
export class ModelRegistry {
  #dir: string;
  #store: Store;
  #cacheSize: number;
  #maxRows: number;
  #pool: PredictPool | undefined;
  #cache = new Map<string, Promise<Entry>>();
  #stats = { batches: 0, requests: 0 };

  /** Validates the options; nothing is read until a method is called. */
  constructor(options: ModelRegistryOptions) {
    this.#dir = options.dir;
    this.#store = options.store;
    this.#cacheSize = options.cacheSize ?? 8;
    this.#maxRows = options.maxBatchRows ?? 1024;
    this.#pool = options.pool;
    for (const [name, v] of [["cacheSize", this.#cacheSize], ["maxBatchRows", this.#maxRows]]) {
      if (!Number.isInteger(v) || (v as number) < 1) {
        throw new RangeError(`${name} must be an integer >= 1, received ${v}`);
      }
    }
  }

  /**
   * The inference Workers predict runs in, if any (tests inject faults there).
   * @internal
   */
  get pool(): PredictPool | undefined {
    return this.#pool;
  }

  /** Saves `model` under a new id and records its metadata. */
  async save(
    model: tf.LayersModel,
    meta: { jobId: string | null; metrics: Record<string, number> },
  ): Promise<ModelRecord> {
    const id = newId("mdl");
    await Deno.mkdir(this.#dir, { recursive: true });
    const result = await model.save(fileHandler(join(this.#dir, id)));
    const loss = model.loss as unknown;
    const record: ModelRecord = {
      id,
      jobId: meta.jobId,
      createdAt: new Date().toISOString(),
      inputShape: model.inputs[0]!.shape,
      outputShape: model.outputs[0]!.shape,
      inputs: model.inputs.map((t, i) => ({ name: model.inputNames[i]!, shape: t.shape })),
      outputs: model.outputs.map((t, i) => ({ name: model.outputNames[i]!, shape: t.shape })),
      params: model.countParams(),
      loss: lossName(loss, model.outputNames),
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
   * The inputs and outputs of model `id` (layer names, per-sample shapes
   * and sizes), for decoding a predict request. `NotFoundError` for an
   * unknown model. The model joins the predict cache (on this thread, it is
   * loaded).
   */
  async signature(id: string): Promise<ModelSignature> {
    return (await this.#entry(id)).signature;
  }

  /**
   * The input model `id` takes (the shape of one sample and its size), for
   * decoding a predict request. `NotFoundError` for an unknown model,
   * `InputError` for one with several inputs or outputs (see
   * {@linkcode ModelRegistry.signature}). The model joins the predict cache
   * (on this thread, it is loaded).
   */
  async input(id: string): Promise<{ shape: number[]; size: number }> {
    const signature = await this.signature(id);
    checkSingle(id, signature, "input()", "signature()");
    const { shape, size } = signature.inputs[0]!;
    return { shape, size };
  }

  /**
   * Runs model `id` on `rows` samples of `x` (`rows * input.size` values,
   * row-major) and resolves with `rows x width` outputs. `NotFoundError` for
   * an unknown model, `InputError` for one with several inputs or outputs
   * (see {@linkcode ModelRegistry.predictColumns}), `RangeError` when `x`
   * has the wrong length; with a pool, `PredictWorkerCrashedError` when its
   * Worker died meanwhile.
   */
  async predictRows(
    id: string,
    x: Float32Array,
    rows: number,
  ): Promise<{ data: Float32Array; width: number }> {
    checkSingle(id, await this.signature(id), "predictRows()", "predictColumns()");
    return (await this.predictColumns(id, [x], rows))[0]!;
  }

  /**
   * Runs model `id` on `rows` samples, `xs[k]` holding those of input k
   * (`rows * inputs[k].size` values, row-major; one entry per model input,
   * in `model.inputs` order), and resolves with one `rows x width` array per
   * model output, in `model.outputs` order. Concurrent calls for one model
   * run as one batch, as `predictRows` does. `NotFoundError` for an unknown
   * model, `RangeError` when `xs` does not fit its inputs; with a pool,
   * `PredictWorkerCrashedError` when its Worker died meanwhile.
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
   * const a = tf.input({ shape: [2], name: "a" }), b = tf.input({ shape: [1], name: "b" });
   * const joined = tf.layers.concatenate().apply([a, b]) as tf.SymbolicTensor;
   * const out = tf.layers.dense({ units: 1, name: "out" }).apply(joined) as tf.SymbolicTensor;
   * const model = tf.model({ inputs: [a, b], outputs: out });
   * model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
   * const record = await registry.save(model, { jobId: null, metrics: {} });
   * const signature = await registry.signature(record.id);
   * assert.deepEqual(signature.inputs.map((p) => [p.name, p.size]), [["a", 2], ["b", 1]]);
   * const [y] = await registry.predictColumns(record.id, [new Float32Array([1, 2]), new Float32Array([3])], 1);
   * assert.equal(y!.data.length, 1);
   * registry.close();
   * store.close();
   * model.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async predictColumns(
    id: string,
    xs: Float32Array[],
    rows: number,
  ): Promise<{ data: Float32Array; width: number }[]> {
    const entry = await this.#entry(id);
    const { inputs } = entry.signature;
    if (
      !Number.isInteger(rows) || rows < 1 || xs.length !== inputs.length ||
      xs.some((x, k) => x.length !== rows * inputs[k]!.size)
    ) {
      throw new RangeError(
        inputs.length === 1 && xs.length === 1
          ? `Cannot run model ${id} on ${xs[0]!.length} values as ${rows} rows: ` +
            `expected rows >= 1 of ${inputs[0]!.size} values each`
          : `Cannot run model ${id} on [${xs.map((x) => x.length).join(", ")}] values ` +
            `as ${rows} rows: expected rows >= 1 of [${
              inputs.map((p) => p.size).join(", ")
            }] values, one array per input (${inputs.map((p) => p.name).join(", ")})`,
      );
    }
    let outputs: Float32Array[];
    if (entry.local !== undefined) {
      outputs = await entry.local.run(xs, rows);
    } else {
      try {
        outputs = await this.#pool!.predict(
          { id, path: join(this.#dir, id), inSizes: inputs.map((p) => p.size) },
          xs,
          rows,
        );
      } catch (e) {
        if (e instanceof ModelFilesMissingError) this.#evict(id);
        throw e;
      }
    }
    return outputs.map((data) => ({ data, width: data.length / rows }));
  }

  /**
   * Runs model `id` on `rows` (one flattened sample each). `NotFoundError`
   * for an unknown model, `InputError` when a row does not have the model's
   * input size or the model has several inputs or outputs.
   */
  async predict(id: string, rows: number[][]): Promise<number[][]> {
    const { shape, size } = await this.input(id);
    const x = new Float32Array(rows.length * size);
    rows.forEach((row, i) => {
      if (row.length !== size) {
        throw new InputError(
          "shape_mismatch",
          `inputs[${i}] has ${row.length} values, expected ${size} ` +
            `(the model's input shape [${shape.join(", ")}])`,
          { field: `inputs[${i}]`, expected: size, received: row.length },
        );
      }
      x.set(row, i * size);
    });
    const { data, width } = await this.predictRows(id, x, rows.length);
    return rows.map((_, i) => Array.from(data.subarray(i * width, (i + 1) * width)));
  }

  /**
   * The cache entry of model `id`: its record's signature with a pool (the
   * Workers load the files), the loaded model without. Records never change,
   * so a cached one is not read again (a model deleted through this
   * registry leaves the cache at once).
   */
  #entry(id: string): Promise<Entry> {
    let entry = this.#cache.get(id);
    if (entry !== undefined) {
      this.#cache.delete(id); // re-insert: most recently used last
      this.#cache.set(id, entry);
      return entry;
    }
    entry = this.#makeEntry(id);
    this.#cache.set(id, entry);
    entry.catch(() => {
      if (this.#cache.get(id) === entry) this.#cache.delete(id);
    });
    while (this.#cache.size > this.#cacheSize) this.#evict(this.#cache.keys().next().value!);
    return entry;
  }

  async #makeEntry(id: string): Promise<Entry> {
    const record = await this.get(id);
    if (this.#pool !== undefined) return { signature: recordSignature(record), local: undefined };
    let model: tf.LayersModel;
    try {
      model = await tf.loadLayersModel(fileHandler(join(this.#dir, id, "model.json")));
    } catch (e) {
      throw e instanceof Deno.errors.NotFound
        ? new ModelFilesMissingError(`Model ${id} is registered but ${e.message}`, { cause: e })
        : e;
    }
    const local = new LoadedModel(model, this.#maxRows, (requests) => {
      this.#stats.batches++;
      this.#stats.requests += requests;
    });
    return { signature: local.signature, local };
  }

  #evict(id: string, tellPool = true): void {
    const entry = this.#cache.get(id);
    if (entry === undefined) return;
    this.#cache.delete(id);
    entry.then((e) => e.local?.retire(), () => {});
    if (tellPool) this.#pool?.evict(id);
  }

  /**
   * Models in the predict cache now (loaded here, or in the pool's Workers),
   * and predict calls run so far (`batches`) for how many requests
   * (`requests`): more requests than batches means batching worked.
   */
  get stats(): { loaded: number; batches: number; requests: number } {
    const { batches, requests } = this.#pool?.stats ?? this.#stats;
    return { loaded: this.#cache.size, batches, requests };
  }

  /** Disposes every model loaded on this thread (the pool is closed by its owner). */
  close(): void {
    for (const id of [...this.#cache.keys()]) this.#evict(id, false);
  }
}
