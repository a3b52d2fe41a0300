/**
 * Uploaded datasets: samples sent once with `POST /v1/datasets` and named in
 * job specs (`"data": {"upload": "ds_..."}`), so large data does not travel
 * as inline JSON with every job.
 *
 * Who owns what: the bytes live on disk, one folder per dataset
 * (`<dir>/<id>/data.dtds`, in the binary float32 form of
 * `_dataset_format.ts`, whatever the upload's format was); the metadata lives
 * in the KV (`Store.putDataset`). An upload streams to `<dir>/.incoming-<id>/`
 * and is checked as it arrives (never held whole in memory), converted, and
 * renamed into place only once complete; a failed upload leaves nothing
 * behind. A job's stored request keeps only the id, and its data is read from
 * the folder when it runs, and again when a restarted server resumes it.
 *
 * The job manager hands its library to the job builder (`buildJob`'s
 * `datasets`), for new jobs and for the ones it resumes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatasetLibrary } from "./datasets.ts";
 * import { Store } from "./store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new Store(await Deno.openKv(":memory:"));
 * const datasets = new DatasetLibrary({ dir, store });
 * const csv = "a,b,label\n0,1,0\n1,0,1\n1,1,1\n";
 * const record = await datasets.upload(new Blob([csv]).stream(), { format: "csv", label: "label" });
 * assert.deepEqual([record.count, record.xShape, record.yShape], [3, [2], [2]]);
 * const { x, y } = await datasets.read(record.id);
 * assert.deepEqual([...x.subarray(0, 2)], [0, 1]);
 * assert.deepEqual([...y.subarray(0, 2)], [1, 0]); // label 0, one-hot
 * assert.ok(await datasets.delete(record.id));
 * store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
import { join } from "node:path";
import { DataFormatError } from "../errors.ts";
import { convertCsv, convertF32, convertIdx, invalid, tooLarge } from "./_dataset_convert.ts";
import { DatasetFormatProblem, decodeDataset } from "./_dataset_format.ts";
import type { Store } from "./store.ts";
import type { DatasetFormat, DatasetRecord } from "./types.ts";

/** The stored file of a dataset, in its folder. */
const DATA_FILE = "data.dtds";
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const ID_PATTERN = /^ds_[0-9a-z]{17}$/;

export { DatasetUploadError } from "./_dataset_convert.ts";

/** A new dataset id such as `ds_0lx2k3m9a4f8c1d2e`: 9 chars of time, 8 random (as `_ids.ts`). */
function newDatasetId(): string {
  const time = Date.now().toString(36).padStart(9, "0");
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `ds_${time}${Array.from(bytes, (b) => ALPHABET[b % 36]).join("")}`;
}

/** Options for {@linkcode DatasetLibrary}. */
export interface DatasetLibraryOptions {
  /** Folder of the datasets' files (created when missing). */
  dir: string;
  /** Where the metadata persists. */
  store: Store;
  /**
   * Largest upload, in bytes (request body; for gzipped IDX files, also each
   * file decompressed). The stored float32 file may be up to 4 times larger
   * (uint8 images become float32).
   * @default 536870912 (512 MiB)
   */
  maxBytes?: number;
}

/** How one upload is to be read. */
export interface DatasetUpload {
  /** `f32` (the binary form), `csv`, or `idx` (multipart IDX files). */
  format: DatasetFormat;
  /** A label for the dataset. */
  name?: string;
  /** csv: the label column, by header name or zero-based index. */
  label?: string;
  /**
   * csv: whether the first line holds column names.
   * @default true
   */
  header?: boolean;
  /**
   * csv, idx: one-hot over `0..classes-1` (labels must be such integers).
   * @default undefined (over the distinct label values, ascending)
   */
  classes?: number;
  /** idx: the multipart boundary of the body. */
  boundary?: string;
}

/** The body's chunks, refusing more than `max` bytes in all. */
async function* limited(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): AsyncGenerator<Uint8Array> {
  if (body === null) return;
  const reader = body.getReader();
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.length;
      if (total > max) throw tooLarge(`the body exceeds ${max} bytes`, max);
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * The uploaded datasets of one server: upload (streamed to disk, checked,
 * converted), list, read, delete.
 */
export class DatasetLibrary {
  #dir: string;
  #store: Store;
  #maxBytes: number;

  /** Validates the options; the folder is created on the first upload. */
  constructor(options: DatasetLibraryOptions) {
    if (typeof options.dir !== "string" || options.dir === "") {
      throw new TypeError(`dir must be a non-empty string, received ${String(options.dir)}`);
    }
    const maxBytes = options.maxBytes ?? 512 * 1024 * 1024;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`maxDatasetBytes must be an integer >= 1, received ${maxBytes}`);
    }
    this.#dir = options.dir;
    this.#store = options.store;
    this.#maxBytes = maxBytes;
  }

  /**
   * Removes the folders of uploads a crash interrupted (`.incoming-*`): an
   * upload in progress is never finished by another process. Call once at
   * start, before taking uploads.
   */
  async sweepIncoming(): Promise<number> {
    let removed = 0;
    try {
      for await (const entry of Deno.readDir(this.#dir)) {
        if (entry.isDirectory && entry.name.startsWith(".incoming-")) {
          await Deno.remove(join(this.#dir, entry.name), { recursive: true });
          removed++;
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return removed;
  }

  /** Largest upload, in bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** Whether `id` is a well-formed dataset id (anything else names nothing). */
  static isId(id: string): boolean {
    return ID_PATTERN.test(id);
  }

  /**
   * Streams `body` to disk, checking it as it arrives, converts it to the
   * stored float32 form and records it. Throws `DatasetUploadError`
   * (`invalid_dataset`, `dataset_too_large`); nothing is left behind then.
   */
  async upload(
    body: ReadableStream<Uint8Array> | null,
    spec: DatasetUpload,
  ): Promise<DatasetRecord> {
    this.#checkSpec(spec);
    const id = newDatasetId();
    const incoming = join(this.#dir, `.incoming-${id}`);
    await Deno.mkdir(incoming, { recursive: true });
    try {
      const chunks = limited(body, this.#maxBytes);
      const file = join(incoming, DATA_FILE);
      const maxBytes = this.#maxBytes;
      const parsed = spec.format === "f32"
        ? await convertF32(chunks, file, maxBytes)
        : spec.format === "csv"
        ? await convertCsv(chunks, incoming, file, {
          label: spec.label!,
          header: spec.header,
          classes: spec.classes,
          maxBytes,
        })
        : await convertIdx(chunks, incoming, file, {
          boundary: spec.boundary!,
          classes: spec.classes,
          maxBytes,
        });
      const bytes = (await Deno.stat(file)).size;
      for await (const entry of Deno.readDir(incoming)) {
        if (entry.name !== DATA_FILE) await Deno.remove(join(incoming, entry.name));
      }
      const record: DatasetRecord = {
        id,
        name: spec.name ?? null,
        format: spec.format,
        ...parsed,
        bytes,
        createdAt: new Date().toISOString(),
      };
      const final = join(this.#dir, id);
      await Deno.rename(incoming, final);
      try {
        await this.#store.putDataset(record);
      } catch (e) {
        await Deno.remove(final, { recursive: true }).catch(() => {});
        throw e;
      }
      return record;
    } catch (e) {
      await Deno.remove(incoming, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  #checkSpec(spec: DatasetUpload): void {
    const { format } = spec;
    if (format !== "f32" && format !== "csv" && format !== "idx") {
      throw new TypeError(`format must be "f32", "csv" or "idx", received ${String(format)}`);
    }
    const misplaced = ([
      ["label", format === "csv"],
      ["header", format === "csv"],
      ["classes", format !== "f32"],
    ] as const).find(([key, ok]) => !ok && spec[key] !== undefined);
    if (misplaced !== undefined) {
      throw invalid(
        format,
        `the parameter ${misplaced[0]} does not apply to format ${format} ` +
          `(label and header: csv; classes: csv and idx)`,
      );
    }
    if (format === "csv" && spec.label === undefined) {
      throw invalid(
        format,
        "expected the parameter label (the label column's header name or zero-based index)",
      );
    }
    if (format === "idx" && spec.boundary === undefined) {
      throw invalid(
        format,
        'expected a multipart/form-data body (with a boundary) of the fields "images" and ' +
          '"labels"',
      );
    }
  }

  /** The metadata of dataset `id`; null when unknown. */
  async find(id: string): Promise<DatasetRecord | null> {
    return DatasetLibrary.isId(id) ? await this.#store.getDataset<DatasetRecord>(id) : null;
  }

  /** Every dataset, newest first. */
  list(): Promise<DatasetRecord[]> {
    return this.#store.listDatasets<DatasetRecord>();
  }

  /**
   * The samples of dataset `id`, read from its file. `Deno.errors.NotFound`
   * when it was deleted, `DataFormatError` when its file is damaged.
   */
  async read(id: string): Promise<{ x: Float32Array; y: Float32Array; count: number }> {
    const path = join(this.#dir, id, DATA_FILE);
    let bytes: Uint8Array;
    try {
      if (!DatasetLibrary.isId(id)) throw new Deno.errors.NotFound(id);
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Deno.errors.NotFound(
        `data.upload: the dataset ${id} is gone (deleted after the job was submitted?)`,
      );
    }
    try {
      const { header, x, y } = decodeDataset(bytes);
      return { x, y, count: header.count };
    } catch (e) {
      if (!(e instanceof DatasetFormatProblem)) throw e;
      throw new DataFormatError(`Damaged dataset file ${path}: ${e.message}`, { path });
    }
  }

  /** Removes dataset `id`: its metadata, then its folder. False when unknown. */
  async delete(id: string): Promise<boolean> {
    if (!DatasetLibrary.isId(id) || !(await this.#store.deleteDataset(id))) return false;
    await Deno.remove(join(this.#dir, id), { recursive: true }).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    return true;
  }
}
