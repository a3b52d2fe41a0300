/**
 * Map functions for `ParallelMap`, to copy and adapt: each maps ONE sample
 * (plain typed arrays, no tfjs) and takes every random choice from
 * `ctx.random`, so the result is the same for any number of Workers.
 *
 * Run it to see the pipeline augment the embedded MNIST digits:
 * `deno run -A examples/augment.ts`. Use it in your own pipeline:
 *
 * ```ts ignore
 * const pipeline = new ParallelMap(train, {
 *   map: { url: new URL("./augment.ts", import.meta.url), exportName: "augment" },
 *   workers: 2,
 *   seed: 42,
 * });
 * ```
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { augment } from "./augment.ts";
 * import { sampleRandom } from "../src/data/pipeline.ts";
 * const x = new Float32Array(28 * 28).fill(0.5);
 * const ctx = { index: 0, position: 0, epoch: 0, seed: 1, random: sampleRandom(1, 0, 0) };
 * const out = augment(x, new Uint8Array([3]), ctx);
 * assert.ok(out.x.length === 784 && out.x.every((v) => v >= 0 && v <= 1));
 * ```
 * @module
 */
import type { MapContext } from "../src/data/pipeline.ts";

/** Largest shift of the random crop, in pixels. */
const SHIFT = 2;
/** Standard deviation of the Gaussian noise. */
const NOISE = 0.05;

/**
 * Augments a square grayscale image with pixels in `[0, 1]` (what
 * `loadMnist` and `loadFashionMnist` return): a random crop (shift by up to
 * 2 pixels, zero-padded), a horizontal flip with probability 1/2 and Gaussian
 * noise (sigma 0.05), clipped to `[0, 1]`. The label is passed through.
 *
 * @param x One image, `side * side` pixels, row-major (not modified).
 * @param _y The label (unchanged).
 * @param ctx The sample's context; only `ctx.random` is used.
 * @returns The augmented image (a new array) and no `y` (the label is kept).
 * @throws {RangeError} When `x` is not a square image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { augment } from "./augment.ts";
 * import { sampleRandom } from "../src/data/pipeline.ts";
 * const ctx = (epoch: number) => ({ index: 5, position: 0, epoch, seed: 9, random: sampleRandom(9, epoch, 5) });
 * const x = Float32Array.from({ length: 16 }, (_, i) => i / 16);
 * const a = augment(x, new Uint8Array(1), ctx(0)).x;
 * const b = augment(x, new Uint8Array(1), ctx(0)).x;
 * assert.equal(a.join(), b.join()); // same (seed, epoch, index), same result
 * ```
 */
export function augment(
  x: Float32Array,
  _y: Float32Array | Uint8Array,
  ctx: MapContext,
): { x: Float32Array } {
  const side = Math.round(Math.sqrt(x.length));
  if (side * side !== x.length) {
    throw new RangeError(
      `augment() expected a square image, received ${x.length} pixels (not a square number)`,
    );
  }
  const r = ctx.random;
  const dx = Math.floor(r() * (2 * SHIFT + 1)) - SHIFT;
  const dy = Math.floor(r() * (2 * SHIFT + 1)) - SHIFT;
  const flip = r() < 0.5;
  const out = new Float32Array(x.length);
  for (let row = 0; row < side; row++) {
    const sy = row + dy;
    for (let col = 0; col < side; col++) {
      const sx0 = col + dx;
      const sx = flip ? side - 1 - sx0 : sx0;
      let v = sy >= 0 && sy < side && sx >= 0 && sx < side ? x[sy * side + sx]! : 0;
      // Box-Muller: one standard normal from two uniforms.
      v += NOISE * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      out[row * side + col] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return { x: out };
}

/**
 * Scales raw pixel bytes from `[0, 255]` to `[0, 1]` in place (e.g. after
 * `readIdx`): the cheapest useful map. The label is passed through.
 *
 * @param x One sample's features (modified in place and returned).
 * @returns `{ x }`, the same array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scale } from "./augment.ts";
 * assert.equal(scale(new Float32Array([0, 51, 255])).x.join(), "0,0.20000000298023224,1");
 * ```
 */
export function scale(x: Float32Array): { x: Float32Array } {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! / 255;
  return { x };
}

// `deno run -A examples/augment.ts [--count N]`: augments N embedded MNIST
// digits for 3 epochs in 2 Workers. (Only when run as a script: the Workers
// import this module for `augment` and skip this part.)
if (import.meta.main) {
  const { loadMnist, ParallelMap } = await import("../src/data/mod.ts");
  const at = Deno.args.indexOf("--count");
  const count = at >= 0 ? Number(Deno.args[at + 1]) : 2048;
  const { train } = await loadMnist({ trainCount: count, testCount: 0 });
  await using pipeline = new ParallelMap(train, {
    map: { url: new URL(import.meta.url), exportName: "augment" },
    workers: 2,
    seed: 42,
  });
  for await (const epoch of pipeline.epochs(3)) {
    let changed = 0;
    for (let row = 0; row < epoch.count; row++) {
      const i = epoch.order[row]!;
      const a = epoch.x.subarray(row * 784, row * 784 + 784);
      const b = train.x.subarray(i * 784, i * 784 + 784);
      for (let p = 0; p < 784; p++) changed += Math.abs(a[p]! - b[p]!);
    }
    console.log(
      `epoch ${epoch.epoch + 1}: ${epoch.count} digits ${epoch.featureShape.join("x")}, ` +
        `mean |augmented - original| ${(changed / epoch.x.length).toFixed(3)}, ` +
        `waited ${epoch.waitMs.toFixed(0)} ms, labels ${epoch.y.subarray(0, 8).join(",")}...`,
    );
  }
}
