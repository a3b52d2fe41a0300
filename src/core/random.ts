/**
 * Seeded randomness every room shares: the generator behind data splits,
 * shuffles and augmentation, and the epoch permutation every replica (and
 * every host) computes for itself, so no order ever crosses a message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { epochOrder, seededPermutation } from "./random.ts";
 * assert.deepEqual([...epochOrder(4, { seed: 1, epoch: 0, shuffle: false })], [0, 1, 2, 3]);
 * assert.equal(seededPermutation(10, 7).length, 10);
 * ```
 * @module
 */

/** mulberry32: a fast 32-bit seeded generator returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Fisher-Yates permutation of 0..n-1 drawn from `seed`. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, seededRandom(seed));
  return order;
}

/** Fisher-Yates shuffle of `order` drawn from `random`. */
function shuffleInPlace(order: Uint32Array, random: () => number): void {
  const n = order.length;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
}

/**
 * The permutation of `[0, count)` used in `epoch` for `seed`; identical in
 * every replica and on every host. `shuffle: false` gives the identity.
 */
export function epochOrder(
  count: number,
  options: { seed: number; epoch: number; shuffle: boolean },
): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  if (!options.shuffle) return order;
  shuffleInPlace(order, seededRandom((options.seed * 0x9e3779b1) ^ (options.epoch * 0x85ebca77)));
  return order;
}
