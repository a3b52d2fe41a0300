// Private: the binary float32 form of a dataset, both what
// `POST /v1/datasets` accepts as `application/octet-stream` (`?format=f32`)
// and how every uploaded dataset is stored on disk, whatever it was sent as.
// All little-endian:
//
//   bytes 0-3      magic "DTDS" (0x44 0x54 0x44 0x53)
//   bytes 4-7      u32 version, 1
//   bytes 8-11     u32 count n, the number of samples, >= 1
//   bytes 12-15    u32 rank a of a sample of x, 1 <= a <= 8
//   bytes 16-19    u32 rank b of a sample of y, 1 <= b <= 8
//   next 4a bytes  u32 dims of a sample of x, each >= 1 (e.g. [784] or [28, 28, 1])
//   next 4b bytes  u32 dims of a sample of y, each >= 1 (e.g. [10])
//   next           n x product(x dims) float32 values of x, sample after sample,
//                  each sample row-major
//   next           n x product(y dims) float32 values of y, the same way
//
// and nothing after: the length is exactly 20 + 4(a + b) + 4n(X + Y) bytes,
// X and Y the products of the dims. The header is a multiple of 4 bytes, so
// the values can be read in place. Every value must be finite (no NaN, no
// Infinity).
//
// `F32Checker` validates a body chunk by chunk as it streams to disk, so a
// bad upload is refused without being held in memory.

/** "DTDS". */
export const MAGIC = [0x44, 0x54, 0x44, 0x53] as const;
/** The only version so far. */
export const VERSION = 1;
/** Largest rank of a sample of x or y. */
export const MAX_RANK = 8;
const FIXED = 20;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** What a header says. */
export interface DatasetHeader {
  count: number;
  xShape: number[];
  yShape: number[];
  /** Bytes of the header. */
  headerBytes: number;
  /** Values of one sample of x, of y. */
  xSize: number;
  ySize: number;
  /** The exact length of the whole file. */
  totalBytes: number;
}

/** A body that does not follow the format; the message names the problem. */
export class DatasetFormatProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatasetFormatProblem";
  }
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function headerOf(count: number, xShape: number[], yShape: number[]): DatasetHeader {
  const headerBytes = FIXED + 4 * (xShape.length + yShape.length);
  const xSize = product(xShape), ySize = product(yShape);
  return {
    count,
    xShape,
    yShape,
    headerBytes,
    xSize,
    ySize,
    totalBytes: headerBytes + 4 * count * (xSize + ySize),
  };
}

/**
 * Reads a header from the start of `bytes`: null while fewer bytes than the
 * header needs are there; a `DatasetFormatProblem` when they are wrong.
 */
export function parseHeader(bytes: Uint8Array): DatasetHeader | null {
  if (bytes.length < 4) return null;
  if (MAGIC.some((b, i) => bytes[i] !== b)) {
    const got = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
    throw new DatasetFormatProblem(
      `header: expected the magic "DTDS" (0x44544453), received 0x${got}`,
    );
  }
  if (bytes.length < FIXED) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== VERSION) {
    throw new DatasetFormatProblem(`header: expected version ${VERSION}, received ${version}`);
  }
  const count = view.getUint32(8, true);
  if (count < 1) throw new DatasetFormatProblem("header: expected a count >= 1, received 0");
  const ranks = [view.getUint32(12, true), view.getUint32(16, true)] as const;
  ranks.forEach((rank, i) => {
    if (rank < 1 || rank > MAX_RANK) {
      throw new DatasetFormatProblem(
        `header: expected the rank of a sample of ${i === 0 ? "x" : "y"} to be 1 to ` +
          `${MAX_RANK}, received ${rank}`,
      );
    }
  });
  const headerBytes = FIXED + 4 * (ranks[0] + ranks[1]);
  if (bytes.length < headerBytes) return null;
  const dims = (at: number, rank: number, which: string) => {
    const out: number[] = [];
    for (let d = 0; d < rank; d++) {
      const size = view.getUint32(at + 4 * d, true);
      if (size < 1) {
        throw new DatasetFormatProblem(
          `header: dimension ${d} of a sample of ${which} must be >= 1, received 0`,
        );
      }
      out.push(size);
    }
    return out;
  };
  const xShape = dims(FIXED, ranks[0], "x");
  const yShape = dims(FIXED + 4 * ranks[0], ranks[1], "y");
  return headerOf(count, xShape, yShape);
}

/** The header bytes of a dataset of `count` samples of these shapes. */
export function encodeHeader(count: number, xShape: number[], yShape: number[]): Uint8Array {
  const header = headerOf(count, xShape, yShape);
  const bytes = new Uint8Array(header.headerBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, count, true);
  view.setUint32(12, xShape.length, true);
  view.setUint32(16, yShape.length, true);
  [...xShape, ...yShape].forEach((d, i) => view.setUint32(FIXED + 4 * i, d, true));
  return bytes;
}

/** The little-endian bytes of `values` (a view of them on little-endian hosts). */
export function littleEndianBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return out;
}

/** The samples of a whole stored file, `x` and `y` read in place where the host allows. */
export function decodeDataset(
  bytes: Uint8Array,
): { header: DatasetHeader; x: Float32Array; y: Float32Array } {
  const header = parseHeader(bytes);
  if (header === null || bytes.length !== header.totalBytes) {
    throw new DatasetFormatProblem(
      `expected ${header?.totalBytes ?? "a header and"} bytes, received ${bytes.length}`,
    );
  }
  const xCount = header.count * header.xSize, yCount = header.count * header.ySize;
  const at = bytes.byteOffset + header.headerBytes;
  if (LITTLE_ENDIAN && at % 4 === 0) {
    return {
      header,
      x: new Float32Array(bytes.buffer, at, xCount),
      y: new Float32Array(bytes.buffer, at + 4 * xCount, yCount),
    };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = (from: number, n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(from + 4 * i, true);
    return out;
  };
  return {
    header,
    x: read(header.headerBytes, xCount),
    y: read(header.headerBytes + 4 * xCount, yCount),
  };
}

/**
 * Checks a binary body as it streams: `push` each chunk, `end` once the body
 * ended. Either throws a `DatasetFormatProblem` naming the problem (a wrong
 * header, a non-finite value with its sample, bytes missing or in excess);
 * `onHeader` sees the header as soon as it is complete (to refuse a body
 * that will be too large before reading it).
 */
export class F32Checker {
  #head: Uint8Array = new Uint8Array(0);
  #header: DatasetHeader | null = null;
  #onHeader: (header: DatasetHeader) => void;
  /** Bytes seen so far. */
  #seen = 0;
  /** A value split across two chunks: its first bytes. */
  #carry = new Uint8Array(4);
  #carried = 0;
  #carryView = new DataView(this.#carry.buffer);

  constructor(onHeader: (header: DatasetHeader) => void = () => {}) {
    this.#onHeader = onHeader;
  }

  /** The header, once complete. */
  get header(): DatasetHeader | null {
    return this.#header;
  }

  /** Checks the next chunk of the body. */
  push(chunk: Uint8Array): void {
    let data = chunk;
    if (this.#header === null) {
      const head = new Uint8Array(this.#head.length + chunk.length);
      head.set(this.#head);
      head.set(chunk, this.#head.length);
      const header = parseHeader(head);
      if (header === null) {
        this.#head = head;
        this.#seen += chunk.length;
        return;
      }
      this.#header = header;
      this.#onHeader(header);
      data = head.subarray(header.headerBytes);
      this.#seen = header.headerBytes;
    }
    const header = this.#header;
    if (this.#seen + data.length > header.totalBytes) {
      throw new DatasetFormatProblem(
        `expected exactly ${this.#expected()}, received more`,
      );
    }
    let i = 0;
    // Finish a value split across chunks.
    if (this.#carried > 0) {
      while (this.#carried < 4 && i < data.length) this.#carry[this.#carried++] = data[i++]!;
      if (this.#carried < 4) {
        this.#seen += data.length;
        return;
      }
      this.#check(this.#carryView.getFloat32(0, true), this.#seen - this.#carried + i);
      this.#carried = 0;
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const whole = i + Math.floor((data.length - i) / 4) * 4;
    for (; i < whole; i += 4) {
      const v = view.getFloat32(i, true);
      // `v - v` is 0 for every finite number, NaN for NaN and +-Infinity.
      if (v - v !== 0) this.#check(v, this.#seen + i);
    }
    while (i < data.length) this.#carry[this.#carried++] = data[i++]!;
    this.#seen += data.length;
  }

  /** The body ended: throws unless it was complete. */
  end(): DatasetHeader {
    const header = this.#header;
    if (header === null) {
      throw new DatasetFormatProblem(
        this.#seen < FIXED
          ? `truncated header: expected at least ${FIXED} bytes, received ${this.#seen}`
          : `truncated header: received ${this.#seen} bytes, fewer than its ranks call for`,
      );
    }
    if (this.#seen !== header.totalBytes) {
      throw new DatasetFormatProblem(
        `truncated body: expected ${this.#expected()}, received ${this.#seen} bytes`,
      );
    }
    return header;
  }

  #expected(): string {
    const h = this.#header!;
    return `${h.totalBytes} bytes (a ${h.headerBytes}-byte header + ${h.count} samples of ` +
      `${h.xSize} x and ${h.ySize} y float32 values)`;
  }

  /** Throws for a non-finite value at byte `at` of the body, naming its sample. */
  #check(v: number, at: number): void {
    if (v - v === 0) return;
    const h = this.#header!;
    const index = (at - h.headerBytes) / 4;
    const xValues = h.count * h.xSize;
    const [which, size, k] = index < xValues
      ? ["x", h.xSize, index]
      : ["y", h.ySize, index - xValues];
    throw new DatasetFormatProblem(
      `${which} of sample ${Math.floor(k / size)}, value ${k % size}: expected a finite ` +
        `number, received ${v}`,
    );
  }
}
