/**
 * One gradient worker's model: built from the parameter server's model
 * source, on the backend it selects, and used to compute a batch's loss,
 * metrics and gradients on given weights. The in-process workers
 * (`ps_worker.ts`) and the remote edge workers (`src/edge/`) share it, so a
 * gradient means the same thing wherever it was computed.
 *
 * @module
 */
import * as tf from "../../tf.ts";
import type { BackendReport } from "../../../backends/select.ts";
import type { BackendName } from "../../../backends/types.ts";
import { unpackWeights } from "../../core/weights.ts";
import type { FusedLayout } from "../_layout.ts";
import { lossAndGradients, writeStep } from "../_model.ts";
import { prepareWorkerModel } from "../_worker_model.ts";
import type { CompileSpec, ModelSource } from "../protocol.ts";

/** How to build a {@linkcode GradientComputer}. */
export interface GradientComputerSpec {
  /** Backend to select (`"auto"`: the best available). */
  backend: BackendName | "auto";
  /** WASM threads. */
  threads: number;
  /** The parameter server's model. */
  model: ModelSource;
  /** Loss and metrics (the optimizer stays on the server). */
  compile: CompileSpec;
  /** Floats of the fused gradient layout the server expects. */
  slotLength: number;
  /** Who is speaking in error messages, e.g. "Worker 2". */
  who: string;
}

/**
 * One batch as rows of plain floats (what an edge worker receives), and how
 * to read them: every input's and output's rows with their per-sample
 * shapes, the per-sample loss weights, and the weight of each output's loss.
 */
export interface RowBatch {
  /** Samples in the batch. */
  samples: number;
  /** `samples` rows of every input, flattened, in `model.inputs` order. */
  inputs: readonly Float32Array[];
  /** `samples` rows of every output's targets, flattened, in `model.outputs` order. */
  outputs: readonly Float32Array[];
  /** Per-sample shape of every input. */
  inputShapes: readonly (readonly number[])[];
  /** Per-sample shape of every output's targets. */
  outputShapes: readonly (readonly number[])[];
  /** `samples` loss weights per output (null: that one unweighted), or null: none weighted. */
  sampleWeights: readonly (Float32Array | null)[] | null;
  /** Weight of each output's loss in the total loss (null: 1 each). */
  lossWeights: readonly number[] | null;
}

/**
 * A model copy that turns (weights, batch) into a fused gradient vector:
 * `[trainable gradients | non-trainable values | loss | metrics | unused]`.
 *
 * @example
 * ```ts ignore
 * const computer = await GradientComputer.create(spec);
 * computer.setWeights(weights); // layout.loss floats: trainable then non-trainable
 * await computer.compute(x, y, samples, xShape, yShape, payload); // one input, one output
 * await computer.computeRows(rows, payload); // a RowBatch: any inputs, outputs and weights
 * await computer.computeBatch(xs, ys, payload, lossWeights); // tensors, one per input and output
 * computer.dispose();
 * ```
 */
export class GradientComputer {
  /** The compiled model copy. */
  readonly model: tf.LayersModel;
  /** Its fused gradient layout. */
  readonly layout: FusedLayout;
  /** The backend selected, and why. */
  readonly report: BackendReport;
  /** Trainable then non-trainable weights: the order of the published vector. */
  #weights: tf.LayerVariable[];
  #trainVars: tf.Variable[];

  private constructor(model: tf.LayersModel, layout: FusedLayout, report: BackendReport) {
    this.model = model;
    this.layout = layout;
    this.report = report;
    this.#weights = [...model.trainableWeights, ...model.nonTrainableWeights];
    this.#trainVars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Selects the backend and builds the model; rejects when the layout differs. */
  static async create(spec: GradientComputerSpec): Promise<GradientComputer> {
    const { model, layout, report } = await prepareWorkerModel({
      backend: spec.backend,
      threads: spec.threads,
      model: spec.model,
      compile: spec.compile,
      expectedLength: spec.slotLength,
      who: spec.who,
    });
    return new GradientComputer(model, layout, report);
  }

  /** Floats of a published weight vector (trainable then non-trainable). */
  get weightCount(): number {
    return this.layout.loss;
  }

  /** Writes a published weight vector into the model (copies: `flat` may be reused). */
  setWeights(flat: Float32Array): void {
    tf.tidy(() => {
      unpackWeights(flat, this.#weights).forEach((t, i) => this.#weights[i]!.write(t));
    });
  }

  /**
   * Loss, metrics and gradients of one batch of `samples` rows of a
   * one-input, one-output model on the current weights, written into `into`
   * (`layout.length` floats).
   */
  async compute(
    x: Float32Array,
    y: Float32Array,
    samples: number,
    xShape: readonly number[],
    yShape: readonly number[],
    into: Float32Array,
  ): Promise<void> {
    await this.computeBatch(
      [tf.tensor(x, [samples, ...xShape])],
      [tf.tensor(y, [samples, ...yShape])],
      into,
      null,
    );
  }

  /**
   * Loss, metrics and gradients of one {@linkcode RowBatch} on the current
   * weights, written into `into` (`layout.length` floats): the tensors are
   * made from the rows and freed here, then as {@linkcode computeBatch}.
   */
  async computeRows(batch: RowBatch, into: Float32Array): Promise<void> {
    const n = batch.samples;
    await this.computeBatch(
      batch.inputs.map((rows, i) => tf.tensor(rows, [n, ...batch.inputShapes[i]!])),
      batch.outputs.map((rows, i) => tf.tensor(rows, [n, ...batch.outputShapes[i]!])),
      into,
      batch.lossWeights,
      batch.sampleWeights?.map((w) => w === null ? null : tf.tensor(w, [n])) ?? null,
    );
  }

  /**
   * Loss, metrics and gradients of one batch on the current weights, written
   * into `into` (`layout.length` floats): `xs`/`ys` hold one tensor per model
   * input and output (disposed here), `lossWeights` one weight per output
   * (null: 1 each), `sampleWeights` one `[batch]` tensor of per-sample loss
   * weights per output (null: unweighted; disposed here).
   */
  async computeBatch(
    xs: tf.Tensor[],
    ys: tf.Tensor[],
    into: Float32Array,
    lossWeights: readonly number[] | null,
    sampleWeights: readonly (tf.Tensor | null)[] | null = null,
  ): Promise<void> {
    const step = lossAndGradients(this.model, this.#trainVars, xs, ys, lossWeights, sampleWeights);
    await writeStep(into, this.layout, this.model, this.#trainVars, step);
  }

  /** Frees the model and its placeholder optimizer. */
  dispose(): void {
    const optimizer = this.model.optimizer;
    this.model.dispose();
    optimizer?.dispose();
  }
}
