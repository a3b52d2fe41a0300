// Private test helpers: build IDX and gzip fixtures in memory.

const CODES = {
  uint8: 0x08,
  int8: 0x09,
  int16: 0x0b,
  int32: 0x0c,
  float32: 0x0d,
  float64: 0x0e,
} as const;

const SIZES = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  float32: 4,
  float64: 8,
} as const;

/** Encodes `values` as an IDX file of `dtype` and `shape` (big-endian). */
export function idxBytes(
  dtype: keyof typeof CODES,
  shape: number[],
  values: ArrayLike<number>,
): Uint8Array<ArrayBuffer> {
  const header = 4 + 4 * shape.length;
  const bytes = new Uint8Array(header + values.length * SIZES[dtype]);
  const view = new DataView(bytes.buffer);
  bytes[2] = CODES[dtype];
  bytes[3] = shape.length;
  shape.forEach((size, d) => view.setUint32(4 + 4 * d, size, false));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const at = header + i * SIZES[dtype];
    if (dtype === "uint8") view.setUint8(at, v);
    else if (dtype === "int8") view.setInt8(at, v);
    else if (dtype === "int16") view.setInt16(at, v, false);
    else if (dtype === "int32") view.setInt32(at, v, false);
    else if (dtype === "float32") view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  }
  return bytes;
}

/** Gzips `bytes` with the platform's CompressionStream. */
export async function gzip(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
