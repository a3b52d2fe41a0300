/**
 * How a global batch is split across replicas, and the gather of a shard's
 * rows (the epoch permutation itself is `core/random.ts`'s `epochOrder`).
 *
 * Rule: a batch of `n` samples gives replica `r` of `N` either `floor(n/N)` or
 * `floor(n/N) + 1` consecutive samples (the first `n % N` replicas take one
 * more). Each replica scales its mean loss and gradients by its share
 * `n_r / n`, so the summed update equals one replica's update on the whole
 * batch, uneven last batches included.
 *
 * @module
 */

/** `[begin, end)` of replica `r`'s shard within a batch of `n` samples. */
export function shardRange(
  n: number,
  replicas: number,
  r: number,
): [number, number] {
  const base = Math.floor(n / replicas);
  const extra = n % replicas;
  const begin = r * base + Math.min(r, extra);
  return [begin, begin + base + (r < extra ? 1 : 0)];
}

/**
 * Copies the rows `order[from .. from+count)` of a flat `[*, width]` array,
 * into the front of `into` when it is long enough (a view on it is
 * returned), else into a new array. With `stride` and `offset`, row `r` is
 * the `width` values from `r * stride + offset` (a column of wider rows).
 */
export function gatherRows(
  src: Float32Array,
  width: number,
  order: Uint32Array,
  from: number,
  count: number,
  into?: Float32Array,
  stride = width,
  offset = 0,
): Float32Array {
  const out = into !== undefined && into.length >= count * width
    ? into.subarray(0, count * width)
    : new Float32Array(count * width);
  for (let i = 0; i < count; i++) {
    const row = order[from + i]! * stride + offset;
    out.set(src.subarray(row, row + width), i * width);
  }
  return out;
}
