import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { fileHandler, registerFileIO } from "../../src/io/file_handler.ts";
import { writeFileAtomic } from "../../src/io/_atomic_write.ts";
import { DataFormatError } from "../../src/errors.ts";
import { assertRejectsWith, assertThrowsWith } from "../data/_assert.ts";
import { batch, smallModel, withTempDir } from "./_models.ts";

Deno.test("registerFileIO() makes file:// URLs save and load with identical predictions when given a relative path", async () => {
  registerFileIO();
  await withTempDir(async (dir) => {
    const cwd = Deno.cwd();
    Deno.chdir(dir);
    const model = smallModel();
    const { xs, ys } = batch();
    try {
      await model.save("file://./out/m");
      assert.deepEqual(
        (await Array.fromAsync(Deno.readDir("out/m"))).map((e) => e.name)
          .sort(),
        [
          "model.json",
          "weights.bin",
        ],
      );
      const loaded = await tf.loadLayersModel("file://./out/m/model.json");
      const expected = model.predict(xs) as tf.Tensor;
      const actual = loaded.predict(xs) as tf.Tensor;
      assert.deepEqual(actual.dataSync(), expected.dataSync());
      tf.dispose([expected, actual]);
      loaded.dispose();
    } finally {
      Deno.chdir(cwd);
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("registerFileIO() routes only file:// URLs and registers once when called twice", () => {
  registerFileIO();
  registerFileIO();
  assert.equal(tf.io.getSaveHandlers("file:///tmp/m").length, 1);
  assert.equal(tf.io.getLoadHandlers("file:///tmp/m/model.json").length, 1);
  assert.equal(tf.io.getLoadHandlers("memory://m").length, 0);
});

Deno.test("fileHandler() writes the tfjs layers format when saving to a folder", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    try {
      const result = await model.save(fileHandler(`${dir}/nested/m`));
      assert.equal(
        result.modelArtifactsInfo.weightDataBytes,
        (4 * 8 + 8 + 8 * 3 + 3) * 4,
      );
      const json = JSON.parse(
        await Deno.readTextFile(`${dir}/nested/m/model.json`),
      );
      assert.equal(json.format, "layers-model");
      assert.equal(json.modelTopology.class_name, "Sequential");
      assert.deepEqual(json.weightsManifest[0].paths, ["weights.bin"]);
      assert.equal(json.weightsManifest[0].weights.length, 4);
      const weights = await Deno.readFile(`${dir}/nested/m/weights.bin`);
      assert.equal(weights.length, result.modelArtifactsInfo.weightDataBytes);
    } finally {
      model.dispose();
    }
  });
});

Deno.test("fileHandler() replaces files and leaves no temp files when saving over an existing model", async () => {
  await withTempDir(async (dir) => {
    const first = smallModel(1);
    const second = smallModel(7);
    const { xs, ys } = batch();
    try {
      await first.save(fileHandler(dir));
      await second.save(fileHandler(new URL(`file://${dir}`)));
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
      assert.deepEqual(names, ["model.json", "weights.bin"]);
      const loaded = await tf.loadLayersModel(fileHandler(dir));
      const expected = second.predict(xs) as tf.Tensor;
      const actual = loaded.predict(xs) as tf.Tensor;
      assert.deepEqual(actual.dataSync(), expected.dataSync());
      tf.dispose([expected, actual]);
      loaded.dispose();
    } finally {
      tf.dispose([xs, ys]);
      first.dispose();
      second.dispose();
    }
  });
});

Deno.test("fileHandler() restores the compiled optimizer when the model is saved with includeOptimizer", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    model.compile({
      optimizer: tf.train.adam(0.01),
      loss: "categoricalCrossentropy",
    });
    const { xs, ys } = batch();
    try {
      await model.trainOnBatch(xs, ys);
      await model.save(fileHandler(dir), { includeOptimizer: true });
      const loaded = await tf.loadLayersModel(fileHandler(`${dir}/model.json`));
      assert.equal(loaded.optimizer.getClassName(), "Adam");
      loaded.dispose();
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("fileHandler() throws NotFound naming model.json when loading from a missing folder", async () => {
  await withTempDir(async (dir) => {
    await assertRejectsWith(
      () => tf.loadLayersModel(fileHandler(`${dir}/nope`)),
      Deno.errors.NotFound,
      `Cannot load a model from ${dir}/nope: expected ${dir}/nope/model.json to exist, received no such file`,
    );
  });
});

Deno.test("fileHandler() throws DataFormatError when model.json is not JSON or has no topology", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.json`;
    await Deno.writeTextFile(path, "{ not json");
    await assertRejectsWith(
      () => tf.loadLayersModel(fileHandler(dir)),
      DataFormatError,
      new RegExp(
        `^Cannot load a model from ${path}: expected JSON, received text that fails to parse \\(.+\\)$`,
      ),
    );
    await Deno.writeTextFile(path, JSON.stringify({ weightsManifest: [] }));
    await assertRejectsWith(
      () => tf.loadLayersModel(fileHandler(dir)),
      DataFormatError,
      `Cannot load a model from ${path}: expected an object with a modelTopology field, received fields weightsManifest`,
    );
  });
});

Deno.test("fileHandler() throws DataFormatError with expected and received bytes when weights.bin is truncated", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    try {
      await model.save(fileHandler(dir));
      const weights = await Deno.readFile(`${dir}/weights.bin`);
      await Deno.writeFile(`${dir}/weights.bin`, weights.slice(0, 100));
      const err = await assertRejectsWith(
        () => tf.loadLayersModel(fileHandler(dir)),
        DataFormatError,
        `Weights of ${dir}/model.json do not match its manifest: expected ${weights.length} bytes in weights.bin, received 100`,
      );
      assert.equal(err.path, `${dir}/weights.bin`);
    } finally {
      model.dispose();
    }
  });
});

Deno.test("fileHandler() throws TypeError when the location is empty or not a file URL", () => {
  assertThrowsWith(
    () => fileHandler(""),
    TypeError,
    'fileHandler() expected a non-empty path, file:// URL string or URL, received ""',
  );
  assertThrowsWith(
    () => fileHandler("file://"),
    TypeError,
    'fileHandler() expected a path after "file://", received "file://"',
  );
  assertThrowsWith(
    () => fileHandler(new URL("https://example.com/m")),
    TypeError,
    "fileHandler() expected a file: URL, received https: URL https://example.com/m",
  );
});

Deno.test("fileHandler() leaves tf.memory().numTensors flat when models are saved, loaded and disposed", async () => {
  await withTempDir(async (dir) => {
    const model = smallModel();
    const { xs, ys } = batch();
    const cycle = async () => {
      await model.save(fileHandler(dir));
      const loaded = await tf.loadLayersModel(fileHandler(dir));
      tf.dispose(loaded.predict(xs) as tf.Tensor);
      loaded.dispose();
    };
    try {
      await cycle(); // warm-up
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await cycle();
      assert.equal(tf.memory().numTensors, before);
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
});

Deno.test("writeFileAtomic() leaves no temp file behind when the write or the rename fails", async () => {
  await withTempDir(async (dir) => {
    await assertRejectsWith(
      () => writeFileAtomic(`${dir}/missing/x.bin`, new Uint8Array([1])),
      Deno.errors.NotFound,
      /No such file or directory/,
    );
    // renaming a file over a directory fails after the temp file was written
    await Deno.mkdir(`${dir}/target/sub`, { recursive: true });
    await assertRejectsWith(
      () => writeFileAtomic(`${dir}/target`, new Uint8Array([1])),
      Error,
      /directory/i,
    );
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name),
      ["target"],
    );
    await writeFileAtomic(`${dir}/x.bin`, new Uint8Array([1, 2, 3]));
    assert.deepEqual(Array.from(await Deno.readFile(`${dir}/x.bin`)), [
      1,
      2,
      3,
    ]);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)
      .sort();
    assert.deepEqual(names, ["target", "x.bin"]);
  });
});

Deno.test("importing dtrain makes file:// save and load work without registerFileIO()", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtrain_fileio_" });
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../fixtures/file_io_on_import.ts", import.meta.url).pathname,
        dir,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), { saved: 8, loaded: 8 });
    assert.ok((await Deno.stat(`${dir}/m/weights.bin`)).size === 8 * 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
