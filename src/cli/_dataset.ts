// Private: resolves the CLI's --dataset value into train/test typed arrays.
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { readIdx } from "../data/idx.ts";
import type { LabeledData, TrainTestData } from "../data/labeled_data.ts";
import { loadMnist } from "../data/mnist.ts";
import { readCsv } from "../data/csv.ts";
import { trainValidationSplit } from "../data/preprocess.ts";
import { UsageError } from "./_usage_error.ts";

/** A dataset ready for training: typed arrays plus what the model needs. */
export interface CliDataset {
  name: string;
  data: TrainTestData<Uint8Array | Float32Array>;
  classes: number;
  /** Per-sample feature shape, e.g. [28, 28] or [4]. */
  featureShape: readonly number[];
}

function classCount(labels: ArrayLike<number>): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) max = Math.max(max, labels[i]!);
  return max + 1;
}

async function idxPair(images: string, labels: string): Promise<LabeledData<Uint8Array>> {
  const [x, y] = await Promise.all([readIdx(images), readIdx(labels)]);
  const count = x.shape[0]!;
  if (y.shape[0] !== count) {
    throw new RangeError(
      `${images} holds ${count} images but ${labels} holds ${y.shape[0]} labels`,
    );
  }
  const pixels = Float32Array.from(x.data as ArrayLike<number>, (v) => v / 255);
  return {
    x: pixels,
    y: Uint8Array.from(y.data as ArrayLike<number>),
    count,
    featureShape: x.shape.slice(1),
  };
}

/**
 * `mnist`, `fashion-mnist`, `idx:TRAIN_IMAGES,TRAIN_LABELS[,TEST_IMAGES,TEST_LABELS]`
 * or a `.csv` path (with `labelColumn`; 20% held out as the test set).
 */
export async function loadCliDataset(
  spec: string,
  options: { limit?: number; labelColumn?: string; seed: number },
): Promise<CliDataset> {
  let data: TrainTestData<Uint8Array | Float32Array>;
  if (spec === "mnist") {
    const train = Math.min(options.limit ?? 8000, 8000);
    data = await loadMnist({ trainCount: train, testCount: 2000, seed: options.seed });
  } else if (spec === "fashion-mnist") {
    data = await loadFashionMnist({ limit: options.limit });
  } else if (spec.startsWith("idx:")) {
    const paths = spec.slice(4).split(",");
    if (paths.length !== 2 && paths.length !== 4) {
      throw new UsageError(
        `--dataset idx: expects 2 or 4 comma-separated paths, received ${paths.length}`,
      );
    }
    const train = await idxPair(paths[0]!, paths[1]!);
    if (paths.length === 4) {
      data = { train, test: await idxPair(paths[2]!, paths[3]!) };
    } else {
      const split = trainValidationSplit(train, { validationFraction: 0.2, seed: options.seed });
      data = { train: split.train, test: split.validation };
    }
  } else if (spec.endsWith(".csv")) {
    if (options.labelColumn === undefined) {
      throw new UsageError("A CSV dataset needs --label-column NAME_OR_INDEX");
    }
    const column = /^\d+$/.test(options.labelColumn)
      ? Number(options.labelColumn)
      : options.labelColumn;
    const csv = await readCsv(spec, { labelColumn: column });
    const split = trainValidationSplit(csv, { validationFraction: 0.2, seed: options.seed });
    data = { train: split.train, test: split.validation };
  } else {
    throw new UsageError(
      `--dataset must be mnist, fashion-mnist, idx:IMAGES,LABELS[,...] or a .csv path, ` +
        `received "${spec}"`,
    );
  }
  if (options.limit !== undefined && data.train.count > options.limit) {
    const { featureShape } = data.train;
    const width = featureShape.reduce((a, b) => a * b, 1);
    data = {
      ...data,
      train: {
        x: data.train.x.subarray(0, options.limit * width),
        y: data.train.y.subarray(0, options.limit),
        count: options.limit,
        featureShape,
      } as LabeledData<Uint8Array | Float32Array>,
    };
  }
  return {
    name: spec,
    data,
    classes: Math.max(classCount(data.train.y), classCount(data.test.y)),
    featureShape: data.train.featureShape,
  };
}
