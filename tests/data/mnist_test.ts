import assert from "node:assert/strict";
import { loadMnist, MNIST_EMBEDDED_COUNT } from "../../src/data/mnist.ts";
import { assertRejectsWith } from "./_assert.ts";

Deno.test("loadMnist() returns disjoint 28x28 train and test sets with labels 0..9 when given counts", async () => {
  const { train, test } = await loadMnist({ trainCount: 500, testCount: 100 });
  assert.equal(train.count, 500);
  assert.equal(test.count, 100);
  assert.deepEqual(train.featureShape, [28, 28]);
  assert.equal(train.x.length, 500 * 784);
  assert.equal(test.x.length, 100 * 784);
  assert.ok(train.x instanceof Float32Array && train.y instanceof Uint8Array);
  const classes = new Set(train.y);
  assert.equal(classes.size, 10, "a 500-example shuffle holds every digit");
  assert.ok(Array.from(train.y).every((label) => label <= 9));
  for (const v of train.x) assert.ok(v >= 0 && v <= 1);
  // no test image appears in the training set
  const key = (x: Float32Array, row: number) => x.subarray(row * 784, (row + 1) * 784).join();
  const seen = new Set(
    Array.from({ length: train.count }, (_, r) => key(train.x, r)),
  );
  let shared = 0;
  for (let r = 0; r < test.count; r++) if (seen.has(key(test.x, r))) shared++;
  assert.equal(shared, 0);
});

Deno.test("loadMnist() gives identical results when called twice with the same seed", async () => {
  const a = await loadMnist({ trainCount: 50, testCount: 10, seed: 7 });
  const b = await loadMnist({ trainCount: 50, testCount: 10, seed: 7 });
  assert.deepEqual(a.train.y, b.train.y);
  assert.deepEqual(a.train.x, b.train.x);
  assert.deepEqual(a.test.x, b.test.x);
  const c = await loadMnist({ trainCount: 50, testCount: 10, seed: 8 });
  assert.notDeepEqual(a.train.y, c.train.y);
});

Deno.test("loadMnist() defaults to 8000 train and 2000 test examples", async () => {
  const { train, test } = await loadMnist();
  assert.equal(train.count, 8000);
  assert.equal(test.count, 2000);
  assert.equal(train.count + test.count, MNIST_EMBEDDED_COUNT);
});

Deno.test("loadMnist() throws RangeError when the counts exceed the embedded digits", async () => {
  await assertRejectsWith(
    () => loadMnist({ trainCount: 9000, testCount: 1001 }),
    RangeError,
    "loadMnist() expected trainCount + testCount <= 10000 (the digits the mnist package embeds), " +
      "received 9000 + 1001 = 10001",
  );
});

Deno.test("loadMnist() throws RangeError when a count is not an integer in range", async () => {
  await assertRejectsWith(
    () => loadMnist({ trainCount: 0 }),
    RangeError,
    "loadMnist() expected trainCount to be an integer >= 1, received 0",
  );
  await assertRejectsWith(
    () => loadMnist({ testCount: 2.5 }),
    RangeError,
    "loadMnist() expected testCount to be an integer >= 0, received 2.5",
  );
  await assertRejectsWith(
    () => loadMnist({ seed: 0.5 }),
    RangeError,
    "loadMnist() expected seed to be an integer, received 0.5",
  );
});
