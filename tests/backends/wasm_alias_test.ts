// dtrain's wasm Identity and same-dtype Cast share their input's data (no
// copy): the values are the input's, either tensor may be disposed first,
// nothing leaks, and a variable assigned later leaves its clones as they were.
import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { selectBackend } from "../../backends/mod.ts";

Deno.test("wasm Identity and same-dtype Cast share data without a copy, counted", async () => {
  await selectBackend({ require: "wasm", threads: 1, override: "", blas: "off" });
  const before = tf.memory();
  const x = tf.tensor2d([[1, 2], [3, -4]]);
  const buffers = () => tf.engine().backend.numDataIds();
  const one = buffers();
  const clone = tf.clone(x);
  const cast = tf.cast(x, "float32");
  const ints = tf.cast(x, "int32"); // another dtype: a real conversion
  assert.equal(buffers(), one + 1, "the clone and the cast add no buffer; the int32 cast does");
  x.dispose();
  assert.deepEqual(Array.from(clone.dataSync()), [1, 2, 3, -4], "alive after its source");
  assert.deepEqual(Array.from(cast.dataSync()), [1, 2, 3, -4]);
  assert.deepEqual(Array.from(ints.dataSync()), [1, 2, 3, -4]);
  clone.dispose();
  assert.deepEqual(Array.from(cast.dataSync()), [1, 2, 3, -4], "alive after the other alias");
  tf.dispose([cast, ints]);

  const [init, next] = [tf.tensor1d([5, 6]), tf.tensor1d([7, 8])];
  const v = tf.variable(init);
  const kept = tf.clone(v);
  v.assign(next);
  assert.deepEqual(Array.from(kept.dataSync()), [5, 6], "assign does not write into a clone");
  assert.deepEqual(Array.from(v.dataSync()), [7, 8]);
  tf.dispose([v, kept, init, next]);
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors, "no tensor leaks");
  assert.equal(after.numBytes, before.numBytes, "no bytes leak");
  assert.equal(buffers(), one - 1, "every buffer freed");
});
