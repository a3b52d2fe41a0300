// Private: crash-safe file replacement for the io module. The bytes go to a
// temporary file in the destination's folder, are flushed to disk, and only
// then renamed over the destination, so a reader sees the old file or the
// new one, never half of one.
import { basename, dirname, join } from "node:path";

/** Writes `bytes` to `path` atomically (temp file in the same folder + rename). */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${crypto.randomUUID()}.tmp`,
  );
  try {
    const file = await Deno.open(tmp, {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      let written = 0;
      while (written < bytes.length) {
        written += await file.write(bytes.subarray(written));
      }
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
