/**
 * How `MirroredStrategy.fitPipeline` reads an input pipeline's epochs: which
 * part of each mapped row feeds which model input and output (checked once
 * against the model, before any replica starts), and each epoch's columns in
 * shared memory. Features are read in place (a column per part of the
 * pipeline's rows, no copy); labels that are not float32 (`uint8` class
 * indices or one-hot rows) are widened into one reused float32 buffer, and
 * `classWeight` becomes one reused weight column per weighted output, both
 * per epoch on the main thread (one value per sample and label).
 *
 * @module
 */
import type * as tf from "../tf.ts";
import { type ClassWeightOption, sampleWeightsOf } from "./_class_weights.ts";
import { checkClassIndices, isSparseOutput, type Prepared } from "./_inputs.ts";
import type { SharedColumn, SharedData } from "./protocol.ts";

/** What a pipeline says of its mapped samples (`ParallelMap.start()`). */
export interface PipelineShapeInfo {
  /** Shape of one sample's features (of the whole row when it holds several parts). */
  featureShape: readonly number[];
  /** Shape of one sample's label: `[]` for a single value. */
  labelShape: readonly number[];
  /** Element type of the labels: `"float32"` or `"uint8"`. */
  labelDtype: string;
  /** Sizes of the x parts side by side in a row. @default one part */
  featureParts?: readonly number[];
  /** Sizes of the y parts side by side in a row. @default one part */
  labelParts?: readonly number[];
}

/** One epoch of a pipeline, as its shared buffers. */
export interface PipelineEpoch {
  x: SharedArrayBuffer;
  y: SharedArrayBuffer;
  count: number;
}

/** Where one model input's or output's values sit in the pipeline's rows. */
interface Part {
  shape: number[];
  offset: number;
  size: number;
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const show = (shape: readonly (number | null)[]) => `[${shape.map((d) => d ?? "any")}]`;

/** The per-sample shape `want` (a model's, `null` for any) when `got` fits it. */
function fits(got: readonly number[], want: readonly (number | null)[]): boolean {
  return got.length === want.length && want.every((d, i) => d === null || d === got[i]);
}

/** Splits rows into the model's inputs or outputs by part size, or throws naming the mismatch. */
function splitParts(
  sizes: readonly number[],
  tensors: readonly tf.SymbolicTensor[],
  names: readonly string[],
  side: { what: "x" | "y"; kind: "input" | "output" },
  shapeOf: (i: number, size: number) => number[] | undefined,
): Part[] {
  if (sizes.length !== tensors.length) {
    throw new RangeError(
      `The pipeline's map returns ${sizes.length} ${side.what} part${
        sizes.length === 1 ? "" : "s"
      }, the model has ${tensors.length} ${side.kind}s (${
        names.map((n) => `"${n}"`).join(", ")
      }): return ${side.what} as an array of one Float32Array per ${side.kind}, in model.${side.kind}s order`,
    );
  }
  let offset = 0;
  return sizes.map((size, i) => {
    const shape = shapeOf(i, size);
    if (shape === undefined) {
      throw new RangeError(
        `The pipeline's ${side.what} part ${i} holds ${size} values per sample, the model's ` +
          `${side.kind} "${names[i]}" expects ${show(tensors[i]!.shape.slice(1))}`,
      );
    }
    const part = { shape, offset, size };
    offset += size;
    return part;
  });
}

/** The model's shape for a part of `size` values, when every dimension is known and it fits. */
function fullShape(tensor: tf.SymbolicTensor, size: number): number[] | undefined {
  const per = tensor.shape.slice(1);
  if (!per.every((d): d is number => d !== null)) return undefined;
  return product(per) === size ? per : undefined;
}

/**
 * How an input pipeline's epochs feed a model: checked on construction, then
 * {@linkcode PipelineColumns.epoch} makes each epoch's shared columns.
 */
export class PipelineColumns {
  #model: tf.LayersModel;
  #inputs: Part[];
  #outputs: Part[];
  #xSize: number;
  #ySize: number;
  #floatLabels: boolean;
  /** Whether each output has a sparse categorical loss (its labels are class indices). */
  #sparse: boolean[];
  #classWeight: ClassWeightOption | undefined;
  /** Reused float32 labels (uint8 pipelines) and weight columns, grown as needed. */
  #labels: SharedArrayBuffer | undefined;
  #weights: (SharedArrayBuffer | null)[] = [];

  /**
   * Checks `shapes` against the model: one x part per input and one y part
   * per output, each the size of its per-sample shape (a single part may
   * leave dimensions to the pipeline's shapes), class-index labels of one
   * value for sparse losses; and the classWeight maps, before any epoch.
   */
  constructor(
    model: tf.LayersModel,
    shapes: PipelineShapeInfo,
    classWeight: ClassWeightOption | undefined,
  ) {
    this.#model = model;
    const xParts = shapes.featureParts ?? [product(shapes.featureShape)];
    const yParts = shapes.labelParts ?? [product(shapes.labelShape)];
    this.#xSize = xParts.reduce((a, b) => a + b, 0);
    this.#ySize = yParts.reduce((a, b) => a + b, 0);
    if (shapes.labelDtype !== "float32" && shapes.labelDtype !== "uint8") {
      throw new TypeError(
        `The pipeline's labels are ${shapes.labelDtype}, expected float32 or uint8`,
      );
    }
    this.#floatLabels = shapes.labelDtype === "float32";
    this.#sparse = model.outputs.map((_, i) => isSparseOutput(model, i));
    const single = model.inputs.length === 1 && model.outputs.length === 1 &&
      xParts.length === 1 && yParts.length === 1;
    const sparseShape = (i: number, size: number) =>
      this.#sparse[i] && size === 1 ? [1] : undefined;
    if (single) {
      const inShape = model.inputs[0]!.shape.slice(1), outShape = model.outputs[0]!.shape.slice(1);
      const labelShape = fits(shapes.labelShape, outShape)
        ? [...shapes.labelShape]
        : sparseShape(0, yParts[0]!);
      if (!fits(shapes.featureShape, inShape) || labelShape === undefined) {
        throw new RangeError(
          `The pipeline produces samples [${shapes.featureShape}] with labels ` +
            `[${shapes.labelShape}], the model expects ${show(inShape)} and ${show(outShape)}` +
            (this.#sparse[0] ? " (or one class index for its sparse loss)" : ""),
        );
      }
      this.#inputs = [{ shape: [...shapes.featureShape], offset: 0, size: xParts[0]! }];
      this.#outputs = [{ shape: labelShape, offset: 0, size: yParts[0]! }];
    } else {
      this.#inputs = splitParts(
        xParts,
        model.inputs,
        model.inputNames,
        { what: "x", kind: "input" },
        (i, size) => fullShape(model.inputs[i]!, size),
      );
      this.#outputs = splitParts(
        yParts,
        model.outputs,
        model.outputNames,
        { what: "y", kind: "output" },
        (i, size) => fullShape(model.outputs[i]!, size) ?? sparseShape(i, size),
      );
    }
    this.#classWeight = classWeight;
    // The maps themselves (names, class indices, weights), before any epoch.
    if (classWeight !== undefined) sampleWeightsOf(model, classWeight, this.#labelColumns(null, 0));
  }

  /**
   * The columns of one mapped epoch: the features in place, the labels in
   * place or widened to float32, and the classWeight columns; checks sparse
   * labels are class indices of their output.
   */
  epoch(shared: PipelineEpoch): SharedData {
    const { count } = shared;
    let y = shared.y;
    if (!this.#floatLabels) {
      const floats = count * this.#ySize;
      if (this.#labels === undefined || this.#labels.byteLength < floats * 4) {
        this.#labels = new SharedArrayBuffer(Math.max(4, floats * 4));
      }
      new Float32Array(this.#labels, 0, floats).set(new Uint8Array(shared.y, 0, floats));
      y = this.#labels;
    }
    const column = (buffer: SharedArrayBuffer, stride: number) => (p: Part): SharedColumn => ({
      buffer,
      shape: p.shape,
      stride,
      offset: p.offset,
    });
    const inputs = this.#inputs.map(column(shared.x, this.#xSize));
    const outputs = this.#outputs.map(column(y, this.#ySize));
    const needed = this.#sparse.includes(true) || this.#classWeight !== undefined;
    const labels = needed ? this.#labelColumns(y, count) : undefined;
    if (labels !== undefined) this.#checkSparse(labels);
    const data: SharedData = {
      x: shared.x,
      y,
      xShape: inputs[0]!.shape,
      yShape: outputs[0]!.shape,
      count,
      inputs,
      outputs,
    };
    if (labels !== undefined && this.#classWeight !== undefined) {
      const weights = sampleWeightsOf(this.#model, this.#classWeight, labels);
      if (weights !== null) data.sampleWeights = this.#share(weights);
    }
    return data;
  }

  /**
   * Each output's labels as its own contiguous column: a view when the
   * output is the whole row, else a copy (one value per label).
   */
  #labelColumns(y: SharedArrayBuffer | null, count: number): Prepared {
    const rows = y === null ? new Float32Array(0) : new Float32Array(y, 0, count * this.#ySize);
    const outputs = this.#outputs.map((p) => {
      if (p.size === this.#ySize) return { data: rows, shape: [count, ...p.shape] };
      const data = new Float32Array(count * p.size);
      for (let s = 0; s < count; s++) {
        const at = s * this.#ySize + p.offset;
        data.set(rows.subarray(at, at + p.size), s * p.size);
      }
      return { data, shape: [count, ...p.shape] };
    });
    return { inputs: [], outputs, count };
  }

  #checkSparse(labels: Prepared): void {
    const names = this.#model.outputNames;
    labels.outputs.forEach((column, i) => {
      if (!this.#sparse[i]) return;
      const what = names.length === 1 ? "The pipeline's labels" : `The pipeline's y part ${i}`;
      checkClassIndices(column.data, this.#model.outputs[i]!.shape.at(-1), what, false);
    });
  }

  /** Copies each output's weights into its reused shared column. */
  #share(weights: (Float32Array | null)[]): (SharedArrayBuffer | null)[] {
    return weights.map((w, i) => {
      if (w === null) return null;
      let buffer = this.#weights[i] ?? null;
      if (buffer === null || buffer.byteLength < w.byteLength) {
        buffer = new SharedArrayBuffer(Math.max(4, w.byteLength));
        this.#weights[i] = buffer;
      }
      new Float32Array(buffer, 0, w.length).set(w);
      return buffer;
    });
  }
}
