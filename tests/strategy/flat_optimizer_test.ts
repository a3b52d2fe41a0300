import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { FlatOptimizer, flatStateBytes } from "../../src/strategy/_flat_optimizer.ts";
import { groupKernels, groupMemory } from "../../src/collective/kernels.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

const CASES: [string, () => tf.Optimizer][] = [
  ["SGD", () => tf.train.sgd(0.1)],
  ["Momentum", () => tf.train.momentum(0.05, 0.9)],
  ["Nesterov momentum", () => tf.train.momentum(0.05, 0.9, true)],
  ["Adam", () => tf.train.adam(0.01, 0.8, 0.95, 1e-6)],
];

function vars(tag: string): tf.Variable[] {
  return tf.tidy(() => [
    tf.variable(tf.randomNormal([7, 5], 0, 1, "float32", 1), true, `${tag}/kernel`),
    tf.variable(tf.randomNormal([5], 0, 1, "float32", 2), true, `${tag}/bias`),
  ]);
}

function grads(step: number): tf.Tensor[] {
  return [
    tf.randomNormal([7, 5], 0, 1, "float32", 10 + step),
    tf.randomNormal([5], 0, 1, "float32", 20 + step),
  ];
}

function maxDiff(a: tf.Tensor[], b: tf.Tensor[]): number {
  return Math.max(...a.map((t, i) => {
    const x = t.dataSync(), y = b[i]!.dataSync();
    return Math.max(...Array.from(x, (v, j) => Math.abs(v - y[j]!)));
  }));
}

let run = 0;
for (const simd of [false, true]) {
  for (const [name, make] of CASES) {
    Deno.test(
      `FlatOptimizer applies ${name} like the tfjs optimizer and hands its state back (${
        simd ? "SIMD" : "JavaScript"
      })`,
      opts,
      async () => {
        await tf.setBackend("cpu");
        const tag = `flat${run++}`;
        // The tfjs optimizer on one set of variables...
        const ref = vars(`${tag}a`);
        const refOpt = make();
        // ...and the flat one on an identical set, updated in two uneven chunks
        // as two replicas would.
        const mine = vars(`${tag}b`);
        const opt = make();
        const total = mine.reduce((s, v) => s + v.size, 0);
        // The gradient sits in front of the state, as the all-reduce result does.
        const bytes = total * 4 + flatStateBytes(opt, total);
        const memory = simd ? groupMemory(bytes)! : null;
        const shared = memory?.buffer as SharedArrayBuffer ?? new SharedArrayBuffer(bytes);
        const kernels = memory === null ? null : groupKernels(memory);
        const flat = FlatOptimizer.create(opt, shared, mine, { byteOffset: total * 4, kernels });
        assert.ok(flat !== null, `${name} is applied flat`);
        await flat.load(mine);
        let count = tf.memory().numTensors;
        const flatGrad = new Float32Array(shared, 0, total);
        for (let step = 0; step < 5; step++) {
          const g = grads(step);
          refOpt.applyGradients({ [ref[0]!.name]: g[0]!, [ref[1]!.name]: g[1]! });
          flatGrad.set(g[0]!.dataSync(), 0);
          flatGrad.set(g[1]!.dataSync(), g[0]!.size);
          flat.update(flatGrad, 0, 13);
          flat.update(flatGrad, 13, total);
          flat.advance();
          flat.assignTo(mine);
          tf.dispose(g);
          if (step === 0) count = tf.memory().numTensors; // the reference made its slots
        }
        assert.equal(tf.memory().numTensors, count, "update() and assignTo() leak no tensors");
        assert.ok(maxDiff(ref, mine) < 1e-5, `weights differ by ${maxDiff(ref, mine)}`);

        // store(): the tfjs optimizer continues exactly where the flat one stopped.
        await flat.store(mine);
        count = tf.memory().numTensors;
        await flat.store(mine);
        assert.equal(tf.memory().numTensors, count, "store() frees the slots it replaces");
        assert.equal(opt.iterations, refOpt.iterations);
        const [ours, theirs] = [await opt.getWeights(), await refOpt.getWeights()];
        assert.deepEqual(
          ours.map((w) => w.name.replace(`${tag}b`, "")),
          theirs.map((w) => w.name.replace(`${tag}a`, "")),
        );
        const slotDiff = maxDiff(
          ours.slice(1).map((w) => w.tensor),
          theirs.slice(1).map((w) => w.tensor),
        );
        assert.ok(slotDiff < 1e-5, `optimizer slots differ by ${slotDiff}`);
        tf.dispose([ours[0]!.tensor, theirs[0]!.tensor]);
        const g = grads(99);
        refOpt.applyGradients({ [ref[0]!.name]: g[0]!, [ref[1]!.name]: g[1]! });
        opt.applyGradients({ [mine[0]!.name]: g[0]!, [mine[1]!.name]: g[1]! });
        assert.ok(
          maxDiff(ref, mine) < 1e-5,
          `after store(): weights differ by ${maxDiff(ref, mine)}`,
        );

        tf.dispose(g);
        count = tf.memory().numTensors;
        // load() reads the state back (e.g. from a checkpoint) into shared memory.
        const again = FlatOptimizer.create(opt, new SharedArrayBuffer(bytes), mine, {
          byteOffset: total * 4,
        })!;
        await again.load(mine);
        assert.equal(tf.memory().numTensors, count, "load() leaks no tensors");
        assert.deepEqual(
          Array.from(again.params),
          Array.from(mine.flatMap((v) => Array.from(v.dataSync()))),
        );

        tf.dispose([...ref, ...mine]);
        refOpt.dispose();
        opt.dispose();
      },
    );
  }
}

Deno.test("flatStateBytes() is 0 for optimizers that keep their own step", () => {
  assert.equal(flatStateBytes(tf.train.rmsprop(0.1), 100), 0);
  assert.equal(flatStateBytes(tf.train.adagrad(0.1), 100), 0);
  assert.equal(flatStateBytes(undefined, 100), 0);
  assert.equal(flatStateBytes(tf.train.sgd(0.1), 100), 400);
  assert.equal(flatStateBytes(tf.train.momentum(0.1, 0.9), 100), 800);
  assert.equal(flatStateBytes(tf.train.adam(), 100), 1200);
  class Custom extends tf.AdamOptimizer {}
  assert.equal(flatStateBytes(new Custom(0.1, 0.9, 0.999), 100), 0, "subclasses keep their step");
});
