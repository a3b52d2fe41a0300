import assert from "node:assert/strict";
import { oneHot, scale01, standardize, trainValidationSplit } from "../../src/data/preprocess.ts";
import { assertThrowsWith } from "./_assert.ts";

Deno.test("oneHot() sets one 1 per row when labels are in range", () => {
  const encoded = oneHot(new Uint8Array([2, 0, 1]), 3);
  assert.ok(encoded instanceof Float32Array);
  assert.deepEqual(Array.from(encoded), [0, 0, 1, 1, 0, 0, 0, 1, 0]);
  assert.equal(oneHot([], 4).length, 0);
});

Deno.test("oneHot() throws RangeError naming the index when a label is out of range", () => {
  assertThrowsWith(
    () => oneHot([0, 1, 10], 10),
    RangeError,
    "oneHot() label at index 2 is out of range: expected an integer in [0, 10), received 10",
  );
  assertThrowsWith(
    () => oneHot([-1], 2),
    RangeError,
    "oneHot() label at index 0 is out of range: expected an integer in [0, 2), received -1",
  );
  assertThrowsWith(
    () => oneHot([0, 0.5], 2),
    RangeError,
    "oneHot() label at index 1 is out of range: expected an integer in [0, 2), received 0.5",
  );
});

Deno.test("oneHot() throws RangeError when numClasses is not a positive integer", () => {
  assertThrowsWith(
    () => oneHot([0], 0),
    RangeError,
    "oneHot() expected numClasses to be a positive integer, received 0",
  );
});

Deno.test("scale01() maps min to 0 and max to 1 when computed from the data", () => {
  assert.deepEqual(Array.from(scale01([2, 4, 6])), [0, 0.5, 1]);
  assert.deepEqual(Array.from(scale01([3, 3])), [0, 0]);
  assert.equal(scale01([]).length, 0);
});

Deno.test("scale01() uses the given bounds when min and max are passed", () => {
  const out = scale01(new Uint8Array([0, 255, 51]), { min: 0, max: 255 });
  assert.deepEqual(Array.from(out), [0, 1, Math.fround(0.2)]);
  assert.deepEqual(Array.from(scale01([5, 10], { min: 0 })), [0.5, 1]);
});

Deno.test("scale01() throws RangeError when min is above max", () => {
  assertThrowsWith(
    () => scale01([1], { min: 2, max: 1 }),
    RangeError,
    "scale01() expected finite min <= max, received min 2 and max 1",
  );
  assertThrowsWith(
    () => scale01([1], { min: NaN, max: 1 }),
    RangeError,
    "scale01() expected finite min <= max, received min NaN and max 1",
  );
});

Deno.test("standardize() gives each column zero mean and unit variance when stats are computed", () => {
  const { data, mean, std } = standardize([1, 10, 5, 3, 30, 5], 3);
  assert.deepEqual(Array.from(mean), [2, 20, 5]);
  assert.deepEqual(Array.from(std), [1, 10, 1]); // constant column: std 0 -> 1
  assert.deepEqual(Array.from(data), [-1, -1, 0, 1, 1, 0]);
});

Deno.test("standardize() applies given stats when mean and std are passed", () => {
  const train = standardize([0, 2, 4], 1);
  const test = standardize([6], 1, { mean: train.mean, std: train.std });
  assert.equal(train.mean[0], 2);
  assert.equal(test.data[0], Math.fround(4 / Math.fround(Math.sqrt(8 / 3))));
});

Deno.test("standardize() throws RangeError when shapes do not fit", () => {
  assertThrowsWith(
    () => standardize([1, 2, 3], 2),
    RangeError,
    "standardize() expected values.length to be a multiple of numFeatures 2, received 3",
  );
  assertThrowsWith(
    () => standardize([1, 2], 0),
    RangeError,
    "standardize() expected numFeatures to be a positive integer, received 0",
  );
  assertThrowsWith(
    () => standardize([1, 2], 2, { std: [1] }),
    RangeError,
    "standardize() expected std to have 2 entries, received 1",
  );
});

function sample(count: number) {
  return {
    x: Float32Array.from({ length: count * 2 }, (_, i) => i),
    y: Uint8Array.from({ length: count }, (_, i) => i),
    count,
    featureShape: [2] as const,
    note: "kept",
  };
}

Deno.test("trainValidationSplit() makes disjoint parts with rows intact when shuffling with a seed", () => {
  const data = sample(10);
  const { train, validation } = trainValidationSplit(data, {
    validationFraction: 0.3,
    seed: 1,
  });
  assert.equal(train.count, 7);
  assert.equal(validation.count, 3);
  assert.equal(train.note, "kept");
  assert.ok(train.y instanceof Uint8Array);
  const ids = [...train.y, ...validation.y].sort((a, b) => a - b);
  assert.deepEqual(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const part of [train, validation]) {
    for (let r = 0; r < part.count; r++) {
      const id = part.y[r]!;
      assert.deepEqual([part.x[2 * r], part.x[2 * r + 1]], [
        2 * id,
        2 * id + 1,
      ]);
    }
  }
  const again = trainValidationSplit(data, {
    validationFraction: 0.3,
    seed: 1,
  });
  assert.deepEqual(again.validation.y, validation.y);
});

Deno.test("trainValidationSplit() holds out the last rows when shuffle is false", () => {
  const { train, validation } = trainValidationSplit(sample(5), {
    shuffle: false,
  });
  assert.deepEqual(Array.from(train.y), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(validation.y), [4]);
  const floats = {
    x: new Float32Array(4),
    y: new Float32Array([0.5, 1.5, 2.5, 3.5]),
    count: 4,
    featureShape: [1],
  };
  const split = trainValidationSplit(floats, {
    validationFraction: 0.5,
    shuffle: false,
  });
  assert.ok(split.validation.y instanceof Float32Array);
  assert.deepEqual(Array.from(split.validation.y), [2.5, 3.5]);
});

Deno.test("trainValidationSplit() throws RangeError when a part would be empty or the fraction is invalid", () => {
  assertThrowsWith(
    () => trainValidationSplit(sample(3), { validationFraction: 0.1 }),
    RangeError,
    "trainValidationSplit() expected at least one example in each part, received 3 train and 0 validation " +
      "from 3 examples at validationFraction 0.1",
  );
  assertThrowsWith(
    () => trainValidationSplit(sample(3), { validationFraction: 1 }),
    RangeError,
    "trainValidationSplit() expected validationFraction in (0, 1), received 1",
  );
  assertThrowsWith(
    () => trainValidationSplit({ ...sample(3), count: 4 }),
    RangeError,
    "trainValidationSplit() expected y.length === count and x.length a multiple of count, " +
      "received count 4, y.length 3, x.length 6",
  );
});
