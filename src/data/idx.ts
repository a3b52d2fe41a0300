import { DataFormatError } from "../errors.ts";
import { type IdxData, parseIdx } from "./parse_idx.ts";

export type { IdxData, IdxDtype } from "./parse_idx.ts";

/** True when `bytes` starts with the gzip magic number `1f 8b`. */
function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

async function gunzip(
  bytes: Uint8Array<ArrayBuffer>,
  source: string,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (cause) {
    throw new DataFormatError(
      `Corrupt gzip data in ${source}: expected a complete gzip stream, received ` +
        `${bytes.length} bytes that failed to decompress (${
          cause instanceof Error ? cause.message : String(cause)
        })`,
      { path: source, cause },
    );
  }
}

/**
 * Reads an IDX file (the MNIST / Fashion-MNIST format), gzipped or raw: a file
 * that starts with `1f 8b` is gunzipped first, whatever its name.
 *
 * @param path File path or `file:` URL.
 * @returns The element type, the shape and the values as a typed array.
 * @throws {Deno.errors.NotFound} When the file does not exist.
 * @throws {DataFormatError} On a wrong magic number, a truncated or oversized
 *   file ("expected N bytes, received M") or corrupt gzip data; the message
 *   names the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readIdx } from "./idx.ts";
 * const path = await Deno.makeTempFile({ suffix: ".idx" });
 * // three uint8 labels
 * await Deno.writeFile(path, new Uint8Array([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]));
 * const idx = await readIdx(path);
 * assert.ok(idx.shape[0] === 3 && idx.data[0] === 7);
 * await Deno.remove(path);
 * ```
 */
export async function readIdx(path: string | URL): Promise<IdxData> {
  if (typeof path !== "string" && !(path instanceof URL)) {
    throw new TypeError(
      `readIdx() expected path to be a string or URL, received ${typeof path}`,
    );
  }
  const source = String(path);
  let bytes: Uint8Array<ArrayBuffer> = await Deno.readFile(path);
  if (isGzip(bytes)) bytes = await gunzip(bytes, source);
  return parseIdx(bytes, source);
}
