import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { fileHandler } from "../../src/io/file_handler.ts";
import { loadOptimizerState, saveOptimizerState } from "../../src/io/optimizer_state.ts";
import { DataFormatError } from "../../src/errors.ts";
import { assertRejectsWith } from "../data/_assert.ts";
import { batch, smallModel, withTempDir } from "./_models.ts";

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

Deno.test("loadOptimizerState() continues Adam training exactly when restored into a reloaded model", async () => {
  await withTempDir(async (dir) => {
    const { xs, ys } = batch();
    const original = smallModel();
    original.compile({
      optimizer: tf.train.adam(0.05),
      loss: "categoricalCrossentropy",
    });
    try {
      for (let i = 0; i < 3; i++) await original.trainOnBatch(xs, ys);
      await original.save(fileHandler(dir));
      await saveOptimizerState(original, `file://${dir}`);

      const resumed = await tf.loadLayersModel(fileHandler(dir));
      resumed.compile({
        optimizer: tf.train.adam(0.05),
        loss: "categoricalCrossentropy",
      });
      await loadOptimizerState(resumed, dir);
      const fresh = await tf.loadLayersModel(fileHandler(dir));
      fresh.compile({
        optimizer: tf.train.adam(0.05),
        loss: "categoricalCrossentropy",
      });

      for (let i = 0; i < 2; i++) {
        await original.trainOnBatch(xs, ys);
        await resumed.trainOnBatch(xs, ys);
        await fresh.trainOnBatch(xs, ys);
      }
      assert.deepEqual(weightsOf(resumed), weightsOf(original));
      // without the saved moments the next steps differ
      assert.notDeepEqual(weightsOf(fresh), weightsOf(original));
      resumed.dispose();
      fresh.dispose();
    } finally {
      tf.dispose([xs, ys]);
      original.dispose();
    }
  });
});

Deno.test("saveOptimizerState() writes optimizer.json and optimizer.bin when the model is compiled", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({
      optimizer: tf.train.momentum(0.1, 0.9),
      loss: "meanSquaredError",
    });
    const { xs, ys } = batch();
    try {
      await model.trainOnBatch(xs, ys);
      await saveOptimizerState(model, `${dir}/ckpt`);
      const names = (await Array.fromAsync(Deno.readDir(`${dir}/ckpt`))).map((
        e,
      ) => e.name).sort();
      assert.deepEqual(names, ["optimizer.bin", "optimizer.json"]);
      const state = JSON.parse(
        await Deno.readTextFile(`${dir}/ckpt/optimizer.json`),
      );
      assert.equal(state.format, "dtrain-optimizer-state");
      assert.equal(state.className, "Momentum");
      assert.equal(state.config.momentum, 0.9);
      assert.equal(state.weightSpecs.length, 1 + 4); // iteration + one slot per weight
      const bin = await Deno.readFile(`${dir}/ckpt/optimizer.bin`);
      assert.equal(bin.length, 4 + (4 * 8 + 8 + 8 * 3 + 3) * 4);
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("loadOptimizerState() restores the iteration count when the optimizer is SGD", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: "meanSquaredError" });
    const { xs, ys } = batch();
    try {
      await model.trainOnBatch(xs, ys);
      await model.trainOnBatch(xs, ys);
      await saveOptimizerState(model, dir);
      const other = smallModel();
      other.compile({ optimizer: tf.train.sgd(0.1), loss: "meanSquaredError" });
      await loadOptimizerState(other, dir);
      assert.equal(other.optimizer.iterations, 2);
      other.dispose();
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("saveOptimizerState() and loadOptimizerState() leave tf.memory().numTensors flat when repeated", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({
      optimizer: tf.train.rmsprop(0.01, 0.9, 0.5, 1e-7, true),
      loss: "meanSquaredError",
    });
    const { xs, ys } = batch();
    try {
      await model.trainOnBatch(xs, ys);
      await saveOptimizerState(model, dir);
      await loadOptimizerState(model, dir); // warm-up
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        await saveOptimizerState(model, dir);
        await loadOptimizerState(model, dir);
      }
      assert.equal(tf.memory().numTensors, before);
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("saveOptimizerState() throws TypeError when the model is not compiled", async () => {
  const model = smallModel();
  try {
    await assertRejectsWith(
      () => saveOptimizerState(model, "/tmp/unused"),
      TypeError,
      `saveOptimizerState() expected a compiled model with an optimizer, received model "${model.name}" ` +
        "without one (call model.compile({ optimizer, loss }) first)",
    );
    await assertRejectsWith(
      () => loadOptimizerState({} as tf.LayersModel, "/tmp/unused"),
      TypeError,
      "loadOptimizerState() expected a tf.LayersModel, received object",
    );
  } finally {
    model.dispose();
  }
});

Deno.test("loadOptimizerState() throws TypeError when the optimizer class differs from the saved one", async () => {
  await withTempDir(async (dir) => {
    const a = smallModel();
    a.compile({ optimizer: tf.train.adam(), loss: "meanSquaredError" });
    const b = smallModel();
    b.compile({ optimizer: tf.train.sgd(0.1), loss: "meanSquaredError" });
    try {
      await saveOptimizerState(a, dir);
      await assertRejectsWith(
        () => loadOptimizerState(b, dir),
        TypeError,
        `Cannot load optimizer state from ${dir} into model "${b.name}": saved for a Adam optimizer, ` +
          "received a model compiled with SGD",
      );
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

Deno.test("loadOptimizerState() throws TypeError when slot shapes do not match the model's weights", async () => {
  await withTempDir(async (dir) => {
    const a = smallModel();
    a.compile({ optimizer: tf.train.adagrad(0.1), loss: "meanSquaredError" });
    const b = tf.sequential({
      layers: [tf.layers.dense({ units: 2, inputShape: [4] })],
    });
    b.compile({ optimizer: tf.train.adagrad(0.1), loss: "meanSquaredError" });
    const { xs, ys } = batch();
    try {
      await a.trainOnBatch(xs, ys);
      await saveOptimizerState(a, dir);
      await assertRejectsWith(
        () => loadOptimizerState(b, dir),
        TypeError,
        `Cannot load optimizer state from ${dir} into model "${b.name}": expected slot shapes matching ` +
          "its trainable weights [[4, 2], [2]], received [[4, 8], [8], [8, 3], [3]]",
      );
    } finally {
      tf.dispose([xs, ys]);
      a.dispose();
      b.dispose();
    }
  });
});

Deno.test("loadOptimizerState() throws NotFound when no state was saved in the folder", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({ optimizer: "adam", loss: "meanSquaredError" });
    try {
      await assertRejectsWith(
        () => loadOptimizerState(model, dir),
        Deno.errors.NotFound,
        `Cannot load optimizer state from ${dir}: expected ${dir}/optimizer.json to exist ` +
          "(written by saveOptimizerState()), received no such file",
      );
    } finally {
      model.dispose();
    }
  });
});

Deno.test("loadOptimizerState() throws DataFormatError when the files are corrupt or truncated", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({ optimizer: tf.train.adam(0.01), loss: "meanSquaredError" });
    const { xs, ys } = batch();
    try {
      await model.trainOnBatch(xs, ys);
      await saveOptimizerState(model, dir);
      const bin = await Deno.readFile(`${dir}/optimizer.bin`);
      await Deno.writeFile(`${dir}/optimizer.bin`, bin.slice(0, 10));
      await assertRejectsWith(
        () => loadOptimizerState(model, dir),
        DataFormatError,
        `Truncated optimizer state ${dir}/optimizer.bin: expected ${bin.length} bytes, received 10`,
      );
      await Deno.writeTextFile(
        `${dir}/optimizer.json`,
        JSON.stringify({ format: "other", version: 3 }),
      );
      await assertRejectsWith(
        () => loadOptimizerState(model, dir),
        DataFormatError,
        `Cannot load optimizer state from ${dir}/optimizer.json: expected format "dtrain-optimizer-state" ` +
          'version 1, received format "other" version 3',
      );
      await Deno.writeTextFile(`${dir}/optimizer.json`, "[");
      await assertRejectsWith(
        () => loadOptimizerState(model, dir),
        DataFormatError,
        new RegExp(
          `^Cannot load optimizer state from ${dir}/optimizer\\.json: expected JSON, received text that fails to parse`,
        ),
      );
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});
