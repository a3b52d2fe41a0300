import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { toTensors } from "../../src/data/to_tensors.ts";
import { loadMnist } from "../../src/data/mnist.ts";
import { assertThrowsWith } from "./_assert.ts";

const data = {
  x: Float32Array.from({ length: 3 * 4 }, (_, i) => i / 12),
  y: new Uint8Array([2, 0, 1]),
  count: 3,
  featureShape: [2, 2],
};

Deno.test("toTensors() gives [count, features] and one-hot labels when layout is flat", () => {
  const { xs, ys } = toTensors(data, { numClasses: 3 });
  try {
    assert.deepEqual(xs.shape, [3, 4]);
    assert.equal(xs.dtype, "float32");
    assert.deepEqual(ys.shape, [3, 3]);
    assert.deepEqual(Array.from(ys.dataSync()), [0, 0, 1, 1, 0, 0, 0, 1, 0]);
    assert.deepEqual(xs.dataSync(), data.x);
  } finally {
    tf.dispose([xs, ys]);
  }
});

Deno.test("toTensors() gives channels-last images and a label column when layout is image without numClasses", () => {
  const { xs, ys } = toTensors(data, { layout: "image" });
  try {
    assert.deepEqual(xs.shape, [3, 2, 2, 1]);
    assert.deepEqual(ys.shape, [3, 1]);
    assert.deepEqual(Array.from(ys.dataSync()), [2, 0, 1]);
  } finally {
    tf.dispose([xs, ys]);
  }
});

Deno.test("toTensors() throws RangeError and creates no tensor when a label is out of range", () => {
  const before = tf.memory().numTensors;
  assertThrowsWith(
    () => toTensors(data, { numClasses: 2 }),
    RangeError,
    "oneHot() label at index 0 is out of range: expected an integer in [0, 2), received 2",
  );
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("toTensors() throws RangeError when x does not match count and featureShape", () => {
  assertThrowsWith(
    () => toTensors({ ...data, featureShape: [3] }),
    RangeError,
    "toTensors() expected x.length 9 (count 3 * 3 features) and y.length 3, received x.length 12 and y.length 3",
  );
  assertThrowsWith(
    () => toTensors(data, { layout: "nchw" as "flat" }),
    RangeError,
    'toTensors() expected layout "flat" or "image", received "nchw"',
  );
});

Deno.test("toTensors() leaves tf.memory().numTensors flat when loader tensors are disposed", async () => {
  const { train } = await loadMnist({ trainCount: 64, testCount: 0 });
  // warm-up: first use may register kernels or allocate backend state
  tf.dispose(toTensors(train, { numClasses: 10 }));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    const tensors = toTensors(train, { layout: "image", numClasses: 10 });
    tf.tidy(() => tf.add(tf.mean(tensors.xs), tf.sum(tensors.ys))).dispose();
    tf.dispose(tensors);
  }
  assert.equal(tf.memory().numTensors, before);
});
