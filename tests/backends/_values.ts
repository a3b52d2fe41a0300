// Deterministic test values in [-1, 1) from a seed (a linear congruential
// generator), the same on every backend and in every process.

/** `size` float32 values for `seed`. */
export function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
