import assert from "node:assert/strict";
import { fashionMnistClassNames, loadFashionMnist } from "../../src/data/fashion_mnist.ts";
import { DataFormatError } from "../../src/errors.ts";
import { assertRejectsWith } from "./_assert.ts";
import { gzip, idxBytes } from "./_fixtures.ts";

const SYSTEM_DIR = "/usr/share/datasets/fashion-mnist";
const installed = await Deno.stat(`${SYSTEM_DIR}/train-images-idx3-ubyte.gz`)
  .then(() => true, () => false);

/** Writes a tiny Fashion-MNIST look-alike (n train, m test images) into a temp dir. */
async function fakeDataset(
  train: number,
  test: number,
  options: { gz?: boolean; labels?: number[] } = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dtrain_fmnist_" });
  const write = async (name: string, bytes: Uint8Array<ArrayBuffer>) => {
    if (options.gz ?? true) {
      await Deno.writeFile(`${dir}/${name}.gz`, await gzip(bytes));
    } else await Deno.writeFile(`${dir}/${name}`, bytes);
  };
  const pixels = (n: number) => Array.from({ length: n * 784 }, (_, i) => i % 256);
  const labels = (n: number) => options.labels ?? Array.from({ length: n }, (_, i) => i % 10);
  await write(
    "train-images-idx3-ubyte",
    idxBytes("uint8", [train, 28, 28], pixels(train)),
  );
  await write(
    "train-labels-idx1-ubyte",
    idxBytes("uint8", [train], labels(train)),
  );
  await write(
    "t10k-images-idx3-ubyte",
    idxBytes("uint8", [test, 28, 28], pixels(test)),
  );
  await write(
    "t10k-labels-idx1-ubyte",
    idxBytes("uint8", [test], labels(test)),
  );
  return dir;
}

Deno.test("loadFashionMnist() scales pixels to [0, 1] and keeps labels when reading gzipped IDX files", async () => {
  const dir = await fakeDataset(3, 2);
  try {
    const { train, test } = await loadFashionMnist({ dir });
    assert.equal(train.count, 3);
    assert.equal(test.count, 2);
    assert.deepEqual(train.featureShape, [28, 28]);
    assert.equal(train.x.length, 3 * 784);
    assert.equal(test.x.length, 2 * 784);
    assert.ok(train.x instanceof Float32Array);
    assert.ok(train.y instanceof Uint8Array);
    assert.deepEqual(Array.from(train.y), [0, 1, 2]);
    assert.equal(train.x[0], 0);
    assert.equal(train.x[255], 1);
    assert.equal(train.x[51], Math.fround(51 / 255));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() reads uncompressed files when no .gz exists", async () => {
  const dir = await fakeDataset(2, 1, { gz: false });
  try {
    const { train, test } = await loadFashionMnist({ dir });
    assert.equal(train.count, 2);
    assert.equal(test.count, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() keeps the first examples when limit is set", async () => {
  const dir = await fakeDataset(5, 4);
  try {
    const { train, test } = await loadFashionMnist({ dir, limit: 3 });
    assert.equal(train.count, 3);
    assert.equal(train.x.length, 3 * 784);
    assert.deepEqual(Array.from(train.y), [0, 1, 2]);
    assert.equal(test.count, 3);
    const few = await loadFashionMnist({ dir, limit: 100 });
    assert.equal(few.train.count, 5);
    assert.equal(few.test.count, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() throws NotFound saying what to install when the files are missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtrain_fmnist_empty_" });
  try {
    await assertRejectsWith(
      () => loadFashionMnist({ dir }),
      Deno.errors.NotFound,
      `Fashion-MNIST not found: looked for ${dir}/train-images-idx3-ubyte.gz and ` +
        `${dir}/train-images-idx3-ubyte. Install it with \`apt-get install dataset-fashion-mnist\` ` +
        "(Debian/Ubuntu), or pass { dir } pointing at a folder with the four IDX files",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() throws DataFormatError when the images are not 28x28 uint8", async () => {
  const dir = await fakeDataset(1, 1);
  try {
    const path = `${dir}/train-images-idx3-ubyte.gz`;
    await Deno.writeFile(
      path,
      await gzip(idxBytes("uint8", [1, 4, 4], new Array(16).fill(0))),
    );
    await assertRejectsWith(
      () => loadFashionMnist({ dir }),
      DataFormatError,
      `Unexpected Fashion-MNIST images in ${path}: expected uint8 [N, 28, 28], received uint8 [1, 4, 4]`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() throws DataFormatError when labels do not line up with images", async () => {
  const dir = await fakeDataset(2, 1);
  try {
    const path = `${dir}/train-labels-idx1-ubyte.gz`;
    await Deno.writeFile(path, await gzip(idxBytes("uint8", [3], [1, 2, 3])));
    await assertRejectsWith(
      () => loadFashionMnist({ dir }),
      DataFormatError,
      `Fashion-MNIST train split does not line up: expected 2 labels in ${path} ` +
        `(one per image in ${dir}/train-images-idx3-ubyte.gz), received 3`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() throws DataFormatError naming the index when a label is above 9", async () => {
  const dir = await fakeDataset(3, 3, { labels: [4, 12, 0] });
  try {
    await assertRejectsWith(
      () => loadFashionMnist({ dir }),
      DataFormatError,
      `Bad Fashion-MNIST label in ${dir}/train-labels-idx1-ubyte.gz at index 1: expected 0..9, received 12`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadFashionMnist() throws RangeError when limit is not a positive integer", async () => {
  for (const limit of [0, -1, 1.5, NaN]) {
    await assertRejectsWith(
      () => loadFashionMnist({ dir: "/nonexistent", limit }),
      RangeError,
      `loadFashionMnist() expected limit to be a positive integer, received ${limit}`,
    );
  }
});

Deno.test("loadFashionMnist() throws TypeError when dir is empty", async () => {
  await assertRejectsWith(
    () => loadFashionMnist({ dir: "" }),
    TypeError,
    'loadFashionMnist() expected dir to be a non-empty string, received ""',
  );
});

Deno.test("fashionMnistClassNames lists the 10 classes in label order", () => {
  assert.equal(fashionMnistClassNames.length, 10);
  assert.equal(fashionMnistClassNames[0], "T-shirt/top");
  assert.equal(fashionMnistClassNames[9], "Ankle boot");
  assert.ok(Object.isFrozen(fashionMnistClassNames));
});

Deno.test({
  name:
    "loadFashionMnist() returns 60000/10000 28x28 examples with labels 0..9 when dataset-fashion-mnist is installed (skipped without it: apt-get install dataset-fashion-mnist)",
  ignore: !installed,
  async fn() {
    const { train, test } = await loadFashionMnist();
    assert.equal(train.count, 60000);
    assert.equal(test.count, 10000);
    assert.equal(train.x.length, 60000 * 784);
    assert.equal(test.x.length, 10000 * 784);
    assert.deepEqual(train.featureShape, [28, 28]);
    for (const split of [train, test]) {
      const perClass = new Array(10).fill(0);
      for (const label of split.y) perClass[label]++;
      // Fashion-MNIST is balanced: 6000 / 1000 of each class
      assert.deepEqual(perClass, new Array(10).fill(split.count / 10));
      let min = Infinity;
      let max = -Infinity;
      for (const v of split.x) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      assert.equal(min, 0);
      assert.equal(max, 1);
    }
    // first training label of the official files is 9 (ankle boot)
    assert.equal(train.y[0], 9);
    // The module's doc example.
    const small = await loadFashionMnist({ limit: 1000 });
    assert.ok(small.train.count === 1000 && small.test.x.length === 1000 * 784);
  },
});
