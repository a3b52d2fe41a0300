// Sparse categorical labels, as Keras tutorials use them: class indices of
// shape [n] or [n, 1] (float or int32) with sparseCategoricalCrossentropy.
import assert from "node:assert/strict";
import { MirroredStrategy, tf, WorkerStrategy } from "../../mod.ts";
import { assertHistory, classifier, dataset, maxWeightDiff } from "./_models.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** Oracle tolerance: max |weight difference| after training, and History values. */
const TOL = 1e-4;
const FIT = { epochs: 2, batchSize: 24, shuffle: false, validationSplit: 0.2 };

function sparseClassifier(
  optimizer: () => tf.Optimizer = () => tf.train.adam(0.01),
): tf.LayersModel {
  return classifier(optimizer, ["accuracy"], "sparseCategoricalCrossentropy");
}

Deno.test(
  "MirroredStrategy.fit() with sparse labels of shape [n] and [n, 1] and 2 or 4 replicas (cpu) or 2 (wasm) matches model.fit, SGD and Adam",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(120);
    const labels = tf.tidy(() => tf.argMax(y, 1)); // int32 [n]
    // tfjs' own validationSplit cannot slice int32 labels: the oracle gets float ones.
    const floatLabels = tf.cast(labels, "float32");
    const column = tf.reshape(floatLabels, [-1, 1]);
    const forms: [string, tf.Tensor | number[]][] = [
      ["int32 [n]", labels],
      ["float [n, 1]", column],
      ["number[]", Array.from(labels.dataSync())],
    ];
    const optimizers: [string, () => tf.Optimizer][] = [
      ["sgd", () => tf.train.sgd(0.3)],
      ["adam", () => tf.train.adam(0.01)],
    ];
    for (const [name, optimizer] of optimizers) {
      const expected = sparseClassifier(optimizer);
      const want = await expected.fit(x, floatLabels, { ...FIT, verbose: 0 });
      const runs = [[2, "cpu"], [4, "cpu"], [2, "wasm"]] as const;
      for (const [replicas, backend] of runs) {
        // One strategy (its Workers started once) trains a fresh model per label form.
        await using strategy = new MirroredStrategy({ replicas, backend });
        for (const [form, labelled] of forms) {
          const what = `${name}, ${replicas} replicas on ${backend}, ${form}`;
          const model = sparseClassifier(optimizer);
          const history = await strategy.fit(model, x, labelled, FIT);
          const diff = maxWeightDiff(model, expected);
          assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
          const gap = assertHistory(
            history.history,
            want.history,
            ["loss", "acc", "val_loss", "val_acc"],
            what,
            { tol: TOL },
          );
          console.log(
            `${what}: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`,
          );
          assert.equal(new Set(strategy.stats!.weightsDigests).size, 1, "replica weights differ");
          const scores = await strategy.evaluate(model, x, labelled);
          const [loss, acc] = model.evaluate(x, floatLabels, { batchSize: 32 }) as tf.Scalar[];
          assert.ok(Math.abs(scores.loss! - loss!.dataSync()[0]!) <= 1e-5, `${what}: loss`);
          assert.ok(Math.abs(scores.acc! - acc!.dataSync()[0]!) <= 1e-6, `${what}: accuracy`);
          tf.dispose([loss!, acc!]);
          model.dispose();
        }
      }
      expected.dispose();
    }
    tf.dispose([x, y, labels, floatLabels, column]);
  },
);

Deno.test(
  "WorkerStrategy.fit() with sparse labels, one worker and staleness 0 matches model.fit",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(120);
    const labels = tf.tidy(() => tf.argMax(y, 1)); // int32 [n]
    const floatLabels = tf.cast(labels, "float32");
    const expected = sparseClassifier();
    const want = await expected.fit(x, floatLabels, { ...FIT, verbose: 0 });
    await using strategy = new WorkerStrategy({ workers: 1, staleness: 0, backend: "cpu" });
    for (const [form, labelled] of [["int32 [n]", labels], ["number[]", [...labels.dataSync()]]]) {
      const what = `WorkerStrategy, ${form}`;
      const model = sparseClassifier();
      const history = await strategy.fit(model, x, labelled as tf.Tensor | number[], FIT);
      const diff = maxWeightDiff(model, expected);
      assert.ok(diff <= TOL, `${what}: max |weight difference| ${diff} > ${TOL}`);
      const keys = ["loss", "acc", "val_loss", "val_acc"];
      const gap = assertHistory(history.history, want.history, keys, what, { tol: TOL });
      console.log(`${what}: max |dw| ${diff.toExponential(2)}, max |dlog| ${gap.toExponential(2)}`);
      model.dispose();
    }
    tf.dispose([x, y, labels, floatLabels]);
    expected.dispose();
  },
);

Deno.test(
  "fit() with sparse labels leaks no tensors in the main thread or the Workers",
  opts,
  async () => {
    await tf.setBackend("cpu");
    const { x, y } = dataset(64);
    const labels = tf.tidy(() => tf.argMax(y, 1));
    const options = {
      epochs: 1,
      batchSize: 16,
      validationData: [x, labels] as [tf.Tensor, tf.Tensor],
    };
    const model = sparseClassifier();
    await using mirrored = new MirroredStrategy({ replicas: 2, backend: "cpu" });
    await using worker = new WorkerStrategy({ workers: 2, backend: "cpu" });
    // Warm-up: the optimizer makes its state on the first fit.
    await mirrored.fit(model, x, labels, options);
    await worker.fit(model, x, labels, options);
    const main = tf.memory().numTensors;
    const replicas = mirrored.stats!.replicaTensors;
    const workers = worker.stats!.workers.map((w) => w.tensors);
    for (let i = 0; i < 2; i++) {
      await mirrored.fit(model, x, labels, options);
      await mirrored.evaluate(model, x, labels);
      await worker.fit(model, x, labels, options);
      await worker.evaluate(model, x, labels);
    }
    await mirrored.fit(model, x, labels, options);
    await worker.fit(model, x, labels, options);
    assert.equal(tf.memory().numTensors, main, "main-thread tensors leaked");
    assert.deepEqual(mirrored.stats!.replicaTensors, replicas, "replica tensors leaked");
    assert.deepEqual(worker.stats!.workers.map((w) => w.tensors), workers, "worker tensors leaked");
    tf.dispose([x, y, labels]);
    model.dispose();
  },
);

Deno.test("fit() refuses sparse labels out of range or of the wrong shape, naming them", async () => {
  const { x, y } = dataset(8);
  const model = sparseClassifier();
  await using strategy = new MirroredStrategy({ replicas: 2, backend: "cpu" });
  await assert.rejects(
    () => strategy.fit(model, x, [0, 1, 2, 3, 0, 1, 2, 0]),
    new RangeError("y[3] is 3: a sparse categorical label must be an integer in [0, 3)"),
  );
  await assert.rejects(
    () => strategy.fit(model, x, [0, 1, 2, 1.5, 0, 1, 2, 0]),
    /y\[3\] is 1\.5: a sparse categorical label must be an integer/,
  );
  await assert.rejects(
    () => strategy.fit(model, x, y),
    new RangeError(
      "y holds class indices for the sparse loss: expected shape [n] or [n, 1], received [8, 3]",
    ),
  );
  assert.equal(strategy.stats, undefined, "no Worker started");
  tf.dispose([x, y]);
  model.dispose();
});
