/**
 * How a global batch is split across replicas, and the seeded epoch
 * permutation every replica computes for itself (no per-step messages).
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

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The permutation of `[0, count)` used in `epoch` for `seed`; identical in
 * every replica. `shuffle: false` gives the identity.
 */
export function epochOrder(
  count: number,
  options: { seed: number; epoch: number; shuffle: boolean },
): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  if (!options.shuffle) return order;
  const next = mulberry32(
    (options.seed * 0x9e3779b1) ^ (options.epoch * 0x85ebca77),
  );
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/**
 * Copies the rows `order[from .. from+count)` of a flat `[*, width]` array,
 * into the front of `into` when it is long enough (a view on it is
 * returned), else into a new array.
 */
export function gatherRows(
  src: Float32Array,
  width: number,
  order: Uint32Array,
  from: number,
  count: number,
  into?: Float32Array,
): Float32Array {
  const out = into !== undefined && into.length >= count * width
    ? into.subarray(0, count * width)
    : new Float32Array(count * width);
  for (let i = 0; i < count; i++) {
    const row = order[from + i]! * width;
    out.set(src.subarray(row, row + width), i * width);
  }
  return out;
}
