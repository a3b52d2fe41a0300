import { DataFormatError } from "../errors.ts";
import { readIdx } from "./idx.ts";
import type { LabeledData, TrainTestData } from "./labeled_data.ts";

/** Where Debian's `dataset-fashion-mnist` package installs the IDX files. */
const DEFAULT_DIR = "/usr/share/datasets/fashion-mnist";

/** Options for {@linkcode loadFashionMnist}. */
export interface LoadFashionMnistOptions {
  /**
   * Folder holding `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
   * `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]`.
   * @default {"/usr/share/datasets/fashion-mnist"}
   */
  dir?: string;
  /**
   * Keep at most this many examples of each split (the first ones in file
   * order). Must be a positive integer.
   * @default {undefined} all 60000 train and 10000 test examples
   */
  limit?: number;
}

const SPLITS = {
  train: {
    images: "train-images-idx3-ubyte",
    labels: "train-labels-idx1-ubyte",
  },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
} as const;

async function findFile(dir: string, name: string): Promise<string> {
  const candidates = [`${dir}/${name}.gz`, `${dir}/${name}`];
  for (const candidate of candidates) {
    try {
      if ((await Deno.stat(candidate)).isFile) return candidate;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  throw new Deno.errors.NotFound(
    `Fashion-MNIST not found: looked for ${candidates.join(" and ")}. ` +
      "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), " +
      "or pass { dir } pointing at a folder with the four IDX files",
  );
}

async function loadSplit(
  dir: string,
  split: keyof typeof SPLITS,
  limit: number | undefined,
): Promise<LabeledData<Uint8Array>> {
  const imagesPath = await findFile(dir, SPLITS[split].images);
  const labelsPath = await findFile(dir, SPLITS[split].labels);
  const images = await readIdx(imagesPath);
  if (
    images.dtype !== "uint8" || images.shape.length !== 3 ||
    images.shape[1] !== 28 || images.shape[2] !== 28
  ) {
    throw new DataFormatError(
      `Unexpected Fashion-MNIST images in ${imagesPath}: expected uint8 [N, 28, 28], ` +
        `received ${images.dtype} [${images.shape.join(", ")}]`,
      { path: imagesPath },
    );
  }
  const labels = await readIdx(labelsPath);
  if (labels.dtype !== "uint8" || labels.shape.length !== 1) {
    throw new DataFormatError(
      `Unexpected Fashion-MNIST labels in ${labelsPath}: expected uint8 [N], ` +
        `received ${labels.dtype} [${labels.shape.join(", ")}]`,
      { path: labelsPath },
    );
  }
  const total = images.shape[0]!;
  if (labels.shape[0] !== total) {
    throw new DataFormatError(
      `Fashion-MNIST ${split} split does not line up: expected ${total} labels in ` +
        `${labelsPath} (one per image in ${imagesPath}), received ${labels.shape[0]}`,
      { path: labelsPath },
    );
  }
  const count = limit === undefined ? total : Math.min(limit, total);
  const pixels = images.data as Uint8Array;
  const x = new Float32Array(count * 784);
  for (let i = 0; i < x.length; i++) x[i] = pixels[i]! / 255;
  const y = (labels.data as Uint8Array).slice(0, count);
  const bad = y.findIndex((label) => label > 9);
  if (bad !== -1) {
    throw new DataFormatError(
      `Bad Fashion-MNIST label in ${labelsPath} at index ${bad}: expected 0..9, received ${y[bad]}`,
      { path: labelsPath },
    );
  }
  return { x, y, count, featureShape: [28, 28] };
}

/**
 * Loads Fashion-MNIST (Zalando's 28x28 grey clothing images, 10 classes) from
 * the IDX files that Debian's `dataset-fashion-mnist` package installs under
 * `/usr/share/datasets/fashion-mnist`. Pixels are scaled to `[0, 1]`; labels
 * are class indices `0..9` (names in {@linkcode fashionMnistClassNames}).
 * Nothing is downloaded.
 *
 * @param options Folder and per-split limit.
 * @returns `{ train, test }`, each `{ x: Float32Array (count * 784), y: Uint8Array, count, featureShape: [28, 28] }`.
 * @throws {RangeError} When `limit` is not a positive integer.
 * @throws {Deno.errors.NotFound} When the files are missing: the message says
 *   where it looked and to run `apt-get install dataset-fashion-mnist`.
 * @throws {DataFormatError} When a file is not the expected IDX content.
 *
 * @example
 * Needs Debian's `dataset-fashion-mnist` (or `dir` holding the files), so the
 * example is not run by `deno test --doc`; `tests/data/fashion_mnist_test.ts`
 * runs it where the package is installed.
 *
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { loadFashionMnist } from "./fashion_mnist.ts";
 * const { train, test } = await loadFashionMnist({ limit: 1000 });
 * assert.ok(train.count === 1000 && test.x.length === 1000 * 784);
 * ```
 */
export async function loadFashionMnist(
  options: LoadFashionMnistOptions = {},
): Promise<TrainTestData<Uint8Array>> {
  const { dir = DEFAULT_DIR, limit } = options;
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(
      `loadFashionMnist() expected dir to be a non-empty string, received ${JSON.stringify(dir)}`,
    );
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new RangeError(
      `loadFashionMnist() expected limit to be a positive integer, received ${limit}`,
    );
  }
  const train = await loadSplit(dir, "train", limit);
  const test = await loadSplit(dir, "test", limit);
  return { train, test };
}

/**
 * Fashion-MNIST class names, indexed by label.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fashionMnistClassNames } from "./fashion_mnist.ts";
 * assert.ok(fashionMnistClassNames[9] === "Ankle boot");
 * ```
 */
export const fashionMnistClassNames: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);
