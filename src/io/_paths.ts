// Private: turn the path forms the io functions accept into a file path.
import { fileURLToPath } from "node:url";

const SCHEME = "file://";

/**
 * Accepts `"file://./rel"`, `"file:///abs"`, a `file:` URL object or a plain
 * path and returns a file-system path. `"file://./out/m"` is not a valid URL
 * (its host would be "."), so the prefix is stripped as text, like tfjs-node.
 */
export function toFilePath(where: string | URL, caller: string): string {
  if (where instanceof URL) {
    if (where.protocol !== "file:") {
      throw new TypeError(
        `${caller} expected a file: URL, received ${where.protocol} URL ${where.href}`,
      );
    }
    return fileURLToPath(where);
  }
  if (typeof where !== "string" || where === "") {
    throw new TypeError(
      `${caller} expected a non-empty path, file:// URL string or URL, received ${
        typeof where === "string" ? '""' : typeof where
      }`,
    );
  }
  const path = where.startsWith(SCHEME) ? where.slice(SCHEME.length) : where;
  if (path === "") {
    throw new TypeError(
      `${caller} expected a path after "file://", received ${JSON.stringify(where)}`,
    );
  }
  return path;
}
