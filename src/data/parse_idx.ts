import { DataFormatError } from "../errors.ts";

/** Element types an IDX file can hold, named after their typed arrays. */
export type IdxDtype =
  | "uint8"
  | "int8"
  | "int16"
  | "int32"
  | "float32"
  | "float64";

/** A decoded IDX file: element type, shape and the values in row-major order. */
export interface IdxData {
  /** Element type from the magic number's third byte. */
  dtype: IdxDtype;
  /** One entry per dimension, e.g. `[60000, 28, 28]`. */
  shape: number[];
  /** The values in native byte order, `product(shape)` of them. */
  data:
    | Uint8Array
    | Int8Array
    | Int16Array
    | Int32Array
    | Float32Array
    | Float64Array;
}

const TYPES: Record<number, { dtype: IdxDtype; size: number }> = {
  0x08: { dtype: "uint8", size: 1 },
  0x09: { dtype: "int8", size: 1 },
  0x0b: { dtype: "int16", size: 2 },
  0x0c: { dtype: "int32", size: 4 },
  0x0d: { dtype: "float32", size: 4 },
  0x0e: { dtype: "float64", size: 8 },
};

function hex(bytes: Uint8Array): string {
  return "0x" +
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Decodes the bytes of an uncompressed IDX file (the MNIST format: magic
 * `0x0000` + type code + dimension count, big-endian `uint32` dimensions, then
 * big-endian values). Pure: no file access, so it also works in a browser.
 *
 * @param bytes The whole file, already gunzipped.
 * @param source Name used in error messages (a path or URL).
 * @default source "<bytes>"
 * @returns The element type, the shape and a fresh typed array of the values.
 * @throws {DataFormatError} When the magic number is wrong or the byte count
 *   does not match the header ("expected N bytes, received M").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIdx } from "./parse_idx.ts";
 * // 2 x 2 uint8 matrix
 * const bytes = new Uint8Array([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]);
 * const idx = parseIdx(bytes);
 * assert.ok(idx.dtype === "uint8" && idx.shape.join() === "2,2");
 * assert.ok(idx.data[3] === 4);
 * ```
 */
export function parseIdx(bytes: Uint8Array, source = "<bytes>"): IdxData {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `parseIdx() expected bytes to be a Uint8Array, received ${typeof bytes}`,
    );
  }
  if (bytes.length < 4) {
    throw new DataFormatError(
      `Truncated IDX file ${source}: expected at least 4 bytes of header, received ${bytes.length}`,
      { path: source },
    );
  }
  const type = TYPES[bytes[2]!];
  if (bytes[0] !== 0 || bytes[1] !== 0 || type === undefined) {
    throw new DataFormatError(
      `Not an IDX file ${source}: expected magic 0x0000 followed by a type code ` +
        `08, 09, 0b, 0c, 0d or 0e, received ${hex(bytes.subarray(0, 4))}`,
      { path: source },
    );
  }
  const rank = bytes[3]!;
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) {
    throw new DataFormatError(
      `Truncated IDX file ${source}: expected at least ${headerBytes} bytes of header ` +
        `for ${rank} dimensions, received ${bytes.length}`,
      { path: source },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < rank; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    shape.push(size);
    count *= size;
  }
  const expected = headerBytes + count * type.size;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? "Truncated" : "Oversized";
    throw new DataFormatError(
      `${what} IDX file ${source}: expected ${expected} bytes ` +
        `(${headerBytes}-byte header + ${count} ${type.dtype} values for shape [${
          shape.join(", ")
        }]), received ${bytes.length}`,
      { path: source },
    );
  }
  return { dtype: type.dtype, shape, data: decode(view, headerBytes, count) };

  function decode(view: DataView, at: number, n: number): IdxData["data"] {
    switch (type!.dtype) {
      case "uint8":
        return bytes.slice(at, at + n);
      case "int8":
        return new Int8Array(bytes.slice(at, at + n).buffer);
      case "int16": {
        const out = new Int16Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getInt16(at + 2 * i, false);
        return out;
      }
      case "int32": {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getInt32(at + 4 * i, false);
        return out;
      }
      case "float32": {
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getFloat32(at + 4 * i, false);
        return out;
      }
      case "float64": {
        const out = new Float64Array(n);
        for (let i = 0; i < n; i++) out[i] = view.getFloat64(at + 8 * i, false);
        return out;
      }
    }
  }
}
