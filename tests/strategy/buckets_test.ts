// Gradient buckets: the plan, and the hooks that hand each weight's gradient
// over during the backward pass (the cluster oracles run them end to end).
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { type BackendName, selectBackend } from "../../backends/mod.ts";
import { planBuckets, withGradientHooks } from "../../src/strategy/_buckets.ts";
import { lossAndGradients } from "../../src/strategy/_model.ts";
import { classifier, dataset } from "./_models.ts";

Deno.test("planBuckets cuts the weights into buckets from the last one, each at least the size", () => {
  assert.deepEqual(planBuckets([4, 2, 3, 1], 3).map((b) => [b.offset, b.length, b.vars]), [
    [6, 4, [3, 2]],
    [0, 6, [1, 0]],
  ]);
  assert.deepEqual(planBuckets([4, 2, 3, 1], 1).map((b) => b.vars), [[3], [2], [1], [0]]);
  // The last bucket takes what is left, however small.
  assert.deepEqual(planBuckets([1, 5], 5).map((b) => [b.offset, b.length]), [[1, 5], [0, 1]]);
  assert.deepEqual(planBuckets([4, 2, 3, 1], 0).map((b) => [b.offset, b.length]), [[0, 10]]);
  assert.deepEqual(planBuckets([4, 2, 3, 1], 1e9).map((b) => b.vars), [[3, 2, 1, 0]]);
});

function step(model: tf.LayersModel, onGradient?: (i: number, g: tf.Tensor) => void) {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { x, y } = dataset(12);
  const run = () => lossAndGradients(model, vars, [x], [y], null);
  const out = onGradient === undefined ? run() : withGradientHooks(model, onGradient, run);
  const grads = vars.map((v) => out.grads[v.name]!.arraySync());
  tf.dispose([out.value, ...Object.values(out.grads), ...out.metricValues]);
  return grads;
}

for (const backend of ["cpu", "wasm"] as BackendName[]) {
  Deno.test(`withGradientHooks on ${backend}: each weight's full gradient, last layer first, during the backward pass`, async () => {
    await selectBackend({ require: backend, override: "" });
    const model = classifier(() => tf.train.sgd(0.1));
    const plain = step(model);
    const before = tf.memory().numTensors;
    const seen: { i: number; values: unknown }[] = [];
    const hooked = step(model, (i, g) => seen.push({ i, values: g.arraySync() }));
    assert.equal(tf.memory().numTensors, before, "no tensor leaks");
    assert.deepEqual(hooked, plain, "the step's gradients are unchanged");
    assert.deepEqual(seen.map((s) => s.i).sort(), [0, 1, 2, 3], "one call per weight");
    for (const s of seen) assert.deepEqual(s.values, plain[s.i], `weight ${s.i}'s gradient`);
    // The second layer's weights (2, 3) come before the first's (0, 1): the
    // first layer's gradients were still to be computed at those calls.
    const at = (i: number) => seen.findIndex((s) => s.i === i);
    assert.ok(
      Math.max(at(2), at(3)) < Math.min(at(0), at(1)),
      JSON.stringify(seen.map((s) => s.i)),
    );
    // The hooks are gone after the step: reads are plain again.
    assert.ok(model.trainableWeights.every((w) => !Object.hasOwn(w, "read")));
    model.dispose();
    await selectBackend({ require: "cpu", override: "" });
  });
}

Deno.test("withGradientHooks: a weight read twice in the step (a shared layer) gets no call", () => {
  const shared = tf.layers.dense({ units: 8, activation: "tanh", name: "shared" });
  const input = tf.input({ shape: [8] });
  const twice = shared.apply(shared.apply(input)) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: "softmax" }).apply(
    twice,
  ) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: "sgd", loss: "categoricalCrossentropy" });
  const plain = step(model);
  const seen: number[] = [];
  const hooked = step(model, (i) => seen.push(i));
  assert.deepEqual(hooked, plain);
  assert.deepEqual(seen.sort(), [2, 3], "only the head's kernel and bias, read once");
  model.dispose();
});
