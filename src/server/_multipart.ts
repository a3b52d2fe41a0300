// Private: a streaming `multipart/form-data` reader (RFC 7578). Each part's
// bytes go to a sink as they arrive, so an upload of files never sits whole
// in memory (`Request.formData()` would buffer it all). Only what a dataset
// upload needs: named parts, their bodies; no nested multiparts, no charset
// handling of field values.

/** A malformed multipart body; the message says what was expected. */
export class MultipartProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MultipartProblem";
  }
}

/** Where one part's bytes go. */
export interface PartSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** One part's headers: its field name and file name. */
export interface PartInfo {
  name: string;
  filename: string | null;
}

const CRLF = new Uint8Array([13, 10]);
const HEADER_END = new Uint8Array([13, 10, 13, 10]);
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_PREAMBLE_BYTES = 64 * 1024;

/** The boundary of a `multipart/form-data` Content-Type; null when it has none. */
export function boundaryOf(contentType: string): string | null {
  if (!/^multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const m = contentType.match(/;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i);
  return m === null ? null : (m[1] ?? m[2]!);
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0]!;
  for (let i = haystack.indexOf(first, from); i !== -1; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function parseHeaders(text: string): PartInfo {
  let disposition: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "content-disposition") {
      disposition = line.slice(colon + 1).trim();
    }
  }
  if (disposition === undefined || !/^form-data\s*(;|$)/i.test(disposition)) {
    throw new MultipartProblem(
      `a part: expected a "Content-Disposition: form-data; name=..." header, received ${
        JSON.stringify(disposition ?? text.slice(0, 80))
      }`,
    );
  }
  const param = (key: string) =>
    disposition!.match(new RegExp(`;\\s*${key}\\s*=\\s*(?:"([^"]*)"|([^\\s;]*))`, "i"));
  const name = param("name");
  if (name === null) {
    throw new MultipartProblem(`a part: expected a name in ${JSON.stringify(disposition)}`);
  }
  const filename = param("filename");
  return {
    name: name[1] ?? name[2]!,
    filename: filename === null ? null : (filename[1] ?? filename[2]!),
  };
}

/**
 * Reads a multipart body from `chunks`, calling `open` at each part (which
 * returns where its bytes go, or throws to refuse the part) and the sink's
 * `write` and `close` for its bytes. Throws a `MultipartProblem` for a body
 * that does not follow the format, including one that ends before the
 * closing boundary.
 */
export async function readMultipart(
  chunks: AsyncIterable<Uint8Array>,
  boundary: string,
  open: (part: PartInfo) => Promise<PartSink>,
): Promise<void> {
  const encoder = new TextEncoder();
  const first = encoder.encode(`--${boundary}`);
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  let state: "preamble" | "delimiter" | "headers" | "body" | "done" = "preamble";
  let buf: Uint8Array = new Uint8Array(0);
  let sink: PartSink | undefined;
  for await (const chunk of chunks) {
    if (state === "done") continue; // the epilogue is ignored
    buf = concat(buf, chunk);
    for (;;) {
      if (state === "preamble") {
        const i = indexOf(buf, first);
        if (i < 0) {
          if (buf.length > MAX_PREAMBLE_BYTES) {
            throw new MultipartProblem(
              `expected the boundary "--${boundary}" within ${MAX_PREAMBLE_BYTES} bytes`,
            );
          }
          break;
        }
        buf = buf.subarray(i + first.length);
        state = "delimiter";
      }
      if (state === "delimiter") {
        // After a boundary: "--" ends the body, CRLF starts a part (spaces may precede it).
        let i = 0;
        while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
        if (buf.length < i + 2) break;
        if (buf[i] === 0x2d && buf[i + 1] === 0x2d) {
          state = "done";
          break;
        }
        if (buf[i] !== CRLF[0] || buf[i + 1] !== CRLF[1]) {
          throw new MultipartProblem(
            `expected CRLF or "--" after the boundary "--${boundary}", received ${
              JSON.stringify(new TextDecoder().decode(buf.subarray(i, i + 2)))
            }`,
          );
        }
        buf = buf.subarray(i + 2);
        state = "headers";
      }
      if (state === "headers") {
        const j = indexOf(buf, HEADER_END);
        if (j < 0) {
          if (buf.length > MAX_HEADER_BYTES) {
            throw new MultipartProblem(
              `a part's headers: expected at most ${MAX_HEADER_BYTES} bytes`,
            );
          }
          break;
        }
        const info = parseHeaders(new TextDecoder().decode(buf.subarray(0, j)));
        buf = buf.subarray(j + HEADER_END.length);
        sink = await open(info);
        state = "body";
      }
      if (state === "body") {
        const k = indexOf(buf, delimiter);
        if (k < 0) {
          // Keep what could be the start of the delimiter.
          const safe = buf.length - (delimiter.length - 1);
          if (safe > 0) {
            await sink!.write(buf.subarray(0, safe));
            buf = buf.subarray(safe);
          }
          break;
        }
        await sink!.write(buf.subarray(0, k));
        await sink!.close();
        sink = undefined;
        buf = buf.subarray(k + delimiter.length);
        state = "delimiter";
        continue;
      }
      break;
    }
  }
  if (state !== "done") {
    throw new MultipartProblem(
      `truncated body: expected the closing boundary "--${boundary}--", received the end of ` +
        `the body ${state === "body" ? "inside a part" : "before it"}`,
    );
  }
}
