// Private: byte accounting for tfjs weight manifests, so that a truncated
// weights file is reported as such instead of failing deep inside tfjs.
import type * as tf from "../tf.ts";

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** Bytes the specs need, or undefined when a dtype has no fixed size (string). */
export function expectedBytes(
  specs: readonly tf.io.WeightsManifestEntry[],
): number | undefined {
  let total = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const size = BYTES_PER_ELEMENT[dtype];
    if (size === undefined) return undefined;
    total += size * spec.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

/** The bytes of `view` as an ArrayBuffer of exactly that length. */
export function ownBuffer(view: Uint8Array<ArrayBuffer>): ArrayBuffer {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength
    ? view.buffer
    : view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}
