// Private: turns an upload's body into the stored float32 file
// (`_dataset_format.ts`), one function per format: `f32` is checked as it
// streams straight into place; `csv` and `idx` stream to temporary files in
// the upload's folder first (never held whole in memory while they arrive),
// are parsed by the data package's `readCsv` and `parseIdx`, and their labels
// become one-hot rows. Problems throw `DatasetUploadError`, naming them.
import { join } from "node:path";
import { readCsv } from "../data/csv.ts";
import { parseIdx } from "../data/parse_idx.ts";
import { DataFormatError } from "../errors.ts";
import {
  DatasetFormatProblem,
  encodeHeader,
  F32Checker,
  littleEndianBytes,
} from "./_dataset_format.ts";
import { MultipartProblem, readMultipart } from "./_multipart.ts";
import type { DatasetFormat } from "./types.ts";

/** Most one-hot classes a label column or file may have. */
const MAX_CLASSES = 65536;
/** How much larger than the upload limit the stored float32 file may be (uint8 IDX: 4x). */
const STORED_FACTOR = 4;

/**
 * An upload refused: `invalid_dataset` (the message names the problem: a
 * wrong header, a truncated body, a NaN, a ragged row, ...) or
 * `dataset_too_large` (over `maxBytes`). The HTTP layer answers 400 and 413.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DatasetUploadError } from "./datasets.ts";
 * const err = new DatasetUploadError("invalid_dataset", "csv: line 3: expected 3 columns");
 * assert.ok(err.name === "DatasetUploadError" && err.code === "invalid_dataset");
 * ```
 */
export class DatasetUploadError extends Error {
  /** What is wrong, as the API's error code. */
  readonly code: "invalid_dataset" | "dataset_too_large";
  /** Structured facts (the format; the limit), or undefined. */
  readonly details: unknown;

  /** `message` says what was expected and what was received. */
  constructor(code: DatasetUploadError["code"], message: string, details?: unknown) {
    super(message);
    this.name = "DatasetUploadError";
    this.code = code;
    this.details = details;
  }
}

/** An `invalid_dataset` error: "Invalid <format> dataset: <message>". */
export function invalid(format: DatasetFormat, message: string): DatasetUploadError {
  return new DatasetUploadError("invalid_dataset", `Invalid ${format} dataset: ${message}`, {
    format,
  });
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let o = 0; o < bytes.length;) o += await file.write(bytes.subarray(o));
}

/** A `dataset_too_large` error saying what is too large and the limit. */
export function tooLarge(what: string, max: number): DatasetUploadError {
  return new DatasetUploadError(
    "dataset_too_large",
    `Dataset too large: ${what}; expected at most ${max} bytes (maxDatasetBytes)`,
    { maxDatasetBytes: max },
  );
}

async function toFile(chunks: AsyncIterable<Uint8Array>, path: string): Promise<void> {
  using file = await Deno.open(path, { write: true, createNew: true });
  for await (const chunk of chunks) await writeAll(file, chunk);
}

/** Labels as one-hot rows: over `0..classes-1`, or over the distinct values found. */
function oneHotLabels(
  format: DatasetFormat,
  labels: ArrayLike<number>,
  classes: number | undefined,
  what: string,
  budget: { xValues: number; maxBytes: number },
): { y: Float32Array; classes: number[] } {
  let values: number[];
  if (classes !== undefined) {
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw invalid(
          format,
          `${what} of sample ${i}: expected an integer in [0, ${classes}) (classes=${classes}), ` +
            `received ${v}`,
        );
      }
    }
    values = Array.from({ length: classes }, (_, i) => i);
  } else {
    values = [...new Set(Array.from(labels))].sort((a, b) => a - b);
    if (values.length > MAX_CLASSES) {
      throw invalid(
        format,
        `${what}: expected at most ${MAX_CLASSES} distinct labels (they become one-hot ` +
          `classes), received ${values.length}; send continuous targets in the f32 form`,
      );
    }
  }
  const k = values.length;
  const bytes = 4 * (budget.xValues + labels.length * k);
  if (bytes > budget.maxBytes) {
    throw tooLarge(
      `${labels.length} samples with ${k} one-hot classes take ${bytes} bytes as float32, ` +
        `more than ${STORED_FACTOR} x maxDatasetBytes`,
      budget.maxBytes / STORED_FACTOR,
    );
  }
  const index = new Map(values.map((v, i) => [v, i]));
  const y = new Float32Array(labels.length * k);
  for (let i = 0; i < labels.length; i++) y[i * k + index.get(labels[i]!)!] = 1;
  return { y, classes: values };
}

async function writeDataset(
  path: string,
  count: number,
  xShape: number[],
  yShape: number[],
  x: Float32Array,
  y: Float32Array,
): Promise<void> {
  using file = await Deno.open(path, { write: true, createNew: true });
  await writeAll(file, encodeHeader(count, xShape, yShape));
  await writeAll(file, littleEndianBytes(x));
  await writeAll(file, littleEndianBytes(y));
}

/** What an upload turned into, before it has an id. */
export interface Parsed {
  count: number;
  xShape: number[];
  yShape: number[];
  classes: number[] | null;
}

/** The binary form: checked while streaming straight into the stored file `path`. */
export async function convertF32(
  chunks: AsyncIterable<Uint8Array>,
  path: string,
  maxBytes: number,
): Promise<Parsed> {
  const checker = new F32Checker((header) => {
    if (header.totalBytes > maxBytes) {
      throw tooLarge(`the header declares ${header.totalBytes} bytes`, maxBytes);
    }
  });
  try {
    using file = await Deno.open(path, { write: true, createNew: true });
    for await (const chunk of chunks) {
      checker.push(chunk);
      await writeAll(file, chunk);
    }
    const { count, xShape, yShape } = checker.end();
    return { count, xShape, yShape, classes: null };
  } catch (e) {
    throw e instanceof DatasetFormatProblem ? invalid("f32", e.message) : e;
  }
}

/**
 * CSV: streamed to a file in `incoming`, read by `readCsv`, the label
 * column one-hot; the stored file is written to `path`.
 */
export async function convertCsv(
  chunks: AsyncIterable<Uint8Array>,
  incoming: string,
  path: string,
  spec: { label: string; header?: boolean; classes?: number; maxBytes: number },
): Promise<Parsed> {
  const raw = join(incoming, "upload.csv");
  await toFile(chunks, raw);
  const label = /^\d+$/.test(spec.label) ? Number(spec.label) : spec.label;
  let data;
  try {
    data = await readCsv(raw, { labelColumn: label, header: spec.header ?? true, nan: "fail" });
  } catch (e) {
    if (e instanceof DataFormatError || e instanceof RangeError || e instanceof TypeError) {
      throw invalid("csv", csvMessage(e.message, raw));
    }
    throw e;
  }
  const features = data.featureShape[0]!;
  if (features < 1) {
    throw invalid("csv", "expected at least one feature column besides the label, received none");
  }
  const { y, classes } = oneHotLabels(
    "csv",
    data.y,
    spec.classes,
    `label column ${JSON.stringify(data.labelName)}`,
    {
      xValues: data.x.length,
      maxBytes: STORED_FACTOR * spec.maxBytes,
    },
  );
  await writeDataset(path, data.count, [features], [classes.length], data.x, y);
  return { count: data.count, xShape: [features], yShape: [classes.length], classes };
}

/**
 * IDX: the multipart's `images` and `labels` streamed to files in
 * `incoming`, then parsed; the stored file is written to `path`.
 */
export async function convertIdx(
  chunks: AsyncIterable<Uint8Array>,
  incoming: string,
  path: string,
  spec: { boundary: string; classes?: number; maxBytes: number },
): Promise<Parsed> {
  const parts = new Map<string, string>();
  const open = new Set<Deno.FsFile>();
  try {
    await readMultipart(chunks, spec.boundary, async ({ name }) => {
      if (name !== "images" && name !== "labels") {
        throw invalid(
          "idx",
          `unexpected field ${JSON.stringify(name)}: expected the fields "images" and "labels"`,
        );
      }
      if (parts.has(name)) throw invalid("idx", `the field "${name}" appears twice`);
      const file = join(incoming, `${name}.part`);
      parts.set(name, file);
      const handle = await Deno.open(file, { write: true, createNew: true });
      open.add(handle);
      return {
        write: (bytes) => writeAll(handle, bytes),
        close: () => {
          open.delete(handle);
          handle.close();
          return Promise.resolve();
        },
      };
    });
  } catch (e) {
    throw e instanceof MultipartProblem ? invalid("idx", `multipart: ${e.message}`) : e;
  } finally {
    for (const handle of open) handle.close();
  }
  const missing = ["images", "labels"].filter((name) => !parts.has(name));
  if (missing.length > 0) {
    throw invalid(
      "idx",
      `expected the fields "images" and "labels", received ${
        parts.size === 0 ? "none" : [...parts.keys()].map((n) => `"${n}"`).join(", ")
      } (missing ${missing.map((n) => `"${n}"`).join(", ")})`,
    );
  }
  const images = await readIdxPart(parts.get("images")!, "images", spec.maxBytes);
  const labels = await readIdxPart(parts.get("labels")!, "labels", spec.maxBytes);
  const count = images.shape[0] ?? 0;
  const xShape = images.shape.length === 1 ? [1] : images.shape.slice(1);
  if (count < 1 || xShape.some((d) => d < 1)) {
    throw invalid(
      "idx",
      `images: expected a shape [count, ...sample] of sizes >= 1, received [${
        images.shape.join(", ")
      }]`,
    );
  }
  if (labels.shape.length !== 1) {
    throw invalid(
      "idx",
      `labels: expected one class label per sample (an IDX file of rank 1), received shape [${
        labels.shape.join(", ")
      }]`,
    );
  }
  if (labels.shape[0] !== count) {
    throw invalid(
      "idx",
      `images has ${count} samples and labels has ${labels.shape[0]}: expected as many`,
    );
  }
  const size = images.data.length / count;
  const x = new Float32Array(images.data.length);
  if (images.dtype === "uint8") {
    // Pixels, scaled to [0, 1] like the built-in datasets.
    for (let i = 0; i < x.length; i++) x[i] = images.data[i]! / 255;
  } else {
    x.set(images.data);
    const bad = x.findIndex((v) => v - v !== 0);
    if (bad >= 0) {
      throw invalid(
        "idx",
        `images of sample ${Math.floor(bad / size)}, value ${bad % size}: expected a finite ` +
          `number, received ${x[bad]}`,
      );
    }
  }
  const { y, classes } = oneHotLabels("idx", labels.data, spec.classes, "labels", {
    xValues: x.length,
    maxBytes: STORED_FACTOR * spec.maxBytes,
  });
  await writeDataset(path, count, xShape, [classes.length], x, y);
  return { count, xShape, yShape: [classes.length], classes };
}

/** Parses an uploaded IDX file, gunzipping it first (to a file, size-limited) when gzipped. */
async function readIdxPart(
  path: string,
  name: string,
  maxBytes: number,
): Promise<ReturnType<typeof parseIdx>> {
  const head = new Uint8Array(2);
  {
    using file = await Deno.open(path);
    await file.read(head);
  }
  let source = path;
  if (head[0] === 0x1f && head[1] === 0x8b) {
    source = `${path}.raw`;
    const src = await Deno.open(path);
    try {
      using out = await Deno.open(source, { write: true, createNew: true });
      let total = 0;
      for await (const chunk of src.readable.pipeThrough(new DecompressionStream("gzip"))) {
        total += chunk.length;
        if (total > maxBytes) {
          throw tooLarge(`${name} decompressed exceeds ${maxBytes} bytes`, maxBytes);
        }
        await writeAll(out, chunk);
      }
    } catch (e) {
      if (e instanceof DatasetUploadError) throw e;
      throw invalid(
        "idx",
        `${name}: corrupt gzip data (${e instanceof Error ? e.message : String(e)})`,
      );
    }
  }
  try {
    return parseIdx(await Deno.readFile(source), name);
  } catch (e) {
    throw e instanceof DataFormatError ? invalid("idx", e.message) : e;
  }
}

/** `readCsv`'s message about the temporary file, worded about the upload. */
function csvMessage(message: string, path: string): string {
  const p = path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return message
    .replace(new RegExp(`${p}:(\\d+)`, "g"), "line $1")
    .replace(new RegExp(` (of|for) ${p}`, "g"), "")
    .replace(new RegExp(`^${p}: `), "")
    .replace(/labelColumn/g, "label")
    .replace(/ \(pass nan: "drop" to skip such rows\)/, "")
    .replace(/^readCsv\(\) /, "");
}
