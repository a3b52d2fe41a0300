/**
 * Model helpers shared by Worker entry points: rebuilding the compiled model
 * a Worker trains, finding its loss function, sizing its weights.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { weightSize } from "../core/weights.ts";
import type { CompileSpec, ModelSource } from "./protocol.ts";
import type { FusedLayout } from "./_layout.ts";

/** Rebuilds the model from JSON or a model module, compiled as `compile` says. */
export async function buildModel(
  source: ModelSource,
  compile: CompileSpec,
): Promise<tf.LayersModel> {
  let model: tf.LayersModel;
  if (source.kind === "module") {
    const mod = await import(source.url) as Record<string, unknown>;
    const build = mod[source.exportName];
    if (typeof build !== "function") {
      throw new TypeError(
        `Model module ${source.url} must export a function "${source.exportName}", ` +
          `received ${typeof build}`,
      );
    }
    model = await build() as tf.LayersModel;
    if (!(model instanceof tf.LayersModel)) {
      throw new TypeError(
        `${source.exportName}() from ${source.url} must return a tf.LayersModel built with ` +
          "dtrain's tf, received " + Object.prototype.toString.call(model),
      );
    }
  } else {
    if (source.moduleUrl !== undefined) await import(source.moduleUrl);
    model = await tf.models.modelFromJSON({
      modelTopology: source.topology as tf.io.ModelJSON["modelTopology"],
    });
  }
  if (model.optimizer === undefined) {
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[
      compile.optimizer.className
    ];
    if (entry === undefined) {
      throw new TypeError(
        `Unknown optimizer class ${compile.optimizer.className}: register it in a model module`,
      );
    }
    const [cls, fromConfig] = entry;
    const optimizer = fromConfig(
      cls,
      compile.optimizer.config as tf.serialization.ConfigDict,
    ) as tf.Optimizer;
    // tfjs types a metrics dict as one metric per output; it takes lists too.
    const metrics = compile.metrics as tf.ModelCompileArgs["metrics"];
    model.compile({ optimizer, loss: compile.loss, metrics });
  }
  return model;
}

/** A compiled loss (or metric) function: per-sample values of a batch. */
type LossFn = (y: tf.Tensor, out: tf.Tensor) => tf.Tensor;

/**
 * The compiled loss functions, one per model output; a Sequential keeps them
 * on its inner functional model.
 */
export function lossFunctionsOf(model: tf.LayersModel): LossFn[] {
  const inner = (model as unknown as { model?: tf.LayersModel }).model;
  const fns = model.lossFunctions ?? inner?.lossFunctions;
  if (fns === undefined || fns.length !== model.outputs.length) {
    throw new TypeError(
      `Expected one compiled loss function per model output (${model.outputs.length}), ` +
        `received ${fns?.length ?? 0}`,
    );
  }
  return fns;
}

/** Output `i` of what `model.apply` returned (one tensor for a one-output model). */
function outputAt(out: tf.Tensor | tf.Tensor[], i: number): tf.Tensor {
  return Array.isArray(out) ? out[i]! : out;
}

/** `model.apply` on a batch's input tensors (one tensor for a one-input model). */
function applyTo(
  model: tf.LayersModel,
  xs: tf.Tensor[],
  training: boolean,
): tf.Tensor | tf.Tensor[] {
  return model.apply(xs.length === 1 ? xs[0]! : xs, { training }) as tf.Tensor | tf.Tensor[];
}

/**
 * One training step's loss and gradients, computed as tfjs' own `fit` does:
 * the sum over outputs of each output's mean loss (times its weight in
 * `lossWeights`, null: 1 each) plus regularisation penalties, with the
 * compiled metrics evaluated in the same forward pass; with several outputs
 * the metrics start with each output's mean loss (class-weighted, not
 * loss-weighted), as `model.metricsNames` lists them. `xs`/`ys` hold one
 * tensor per model input and output; the step takes ownership of them
 * (disposed). With `sampleWeights` (one `[batch]` tensor per output or
 * null, also disposed), an output's per-sample losses are multiplied by
 * them before the mean over the batch, as tfjs' `fit` applies
 * `classWeight`: divided by the sample count, not by the sum of the
 * weights. The caller disposes the returned tensors.
 */
export function lossAndGradients(
  model: tf.LayersModel,
  trainVars: tf.Variable[],
  xs: tf.Tensor[],
  ys: tf.Tensor[],
  lossWeights: readonly number[] | null,
  sampleWeights: readonly (tf.Tensor | null)[] | null = null,
): { value: tf.Scalar; grads: tf.NamedTensorMap; metricValues: tf.Scalar[] } {
  const metricValues: tf.Scalar[] = [];
  const losses = lossFunctionsOf(model);
  const metrics = model.metricsTensors;
  // With several outputs, metricsTensors starts with the outputs' losses.
  const first = losses.length > 1 ? losses.length : 0;
  try {
    const { value, grads } = tf.tidy(() =>
      tf.variableGrads(() => {
        const out = applyTo(model, xs, true);
        let total: tf.Scalar | undefined;
        for (let i = 0; i < losses.length; i++) {
          const perSample = losses[i]!(ys[i]!, outputAt(out, i));
          const sw = sampleWeights?.[i];
          const mean = tf.mean(
            sw === null || sw === undefined ? perSample : tf.mul(perSample, sw),
          ) as tf.Scalar;
          if (first > 0) metricValues.push(tf.keep(mean));
          const w = lossWeights?.[i] ?? 1;
          const term = w === 1 ? mean : tf.mul(mean, w) as tf.Scalar;
          total = total === undefined ? term : tf.add(total, term);
        }
        for (let m = first; m < metrics.length; m++) {
          const [metric, o] = metrics[m]!;
          metricValues.push(tf.keep(tf.mean(metric(ys[o]!, outputAt(out, o))) as tf.Scalar));
        }
        for (const reg of model.calculateLosses()) total = tf.add(total!, reg);
        return total!;
      }, trainVars)
    );
    return { value, grads, metricValues };
  } finally {
    tf.dispose(xs);
    tf.dispose(ys);
    if (sampleWeights !== null) {
      for (const w of sampleWeights) w?.dispose();
    }
  }
}

/**
 * Sums over one batch, in inference mode, of the total loss (each output's
 * loss times its weight in `lossWeights`, null: 1 each) and of every metric
 * in `model.metricsNames` order after `loss` (with several outputs, each
 * output's unweighted loss first). Divided by the sample count they are the
 * logs `model.evaluate` reports. `xs`/`ys` (one tensor per model input and
 * output) stay the caller's; the caller disposes the returned scalars.
 */
export function evaluationSums(
  model: tf.LayersModel,
  xs: tf.Tensor[],
  ys: tf.Tensor[],
  lossWeights: readonly number[] | null,
): tf.Scalar[] {
  const losses = lossFunctionsOf(model);
  const metrics = model.metricsTensors;
  const first = losses.length > 1 ? losses.length : 0;
  return tf.tidy(() => {
    const out = applyTo(model, xs, false);
    const sums: tf.Scalar[] = [];
    let total: tf.Scalar | undefined;
    for (let i = 0; i < losses.length; i++) {
      const sum = tf.sum(losses[i]!(ys[i]!, outputAt(out, i))) as tf.Scalar;
      if (first > 0) sums.push(sum);
      const w = lossWeights?.[i] ?? 1;
      const term = w === 1 ? sum : tf.mul(sum, w) as tf.Scalar;
      total = total === undefined ? term : tf.add(total, term);
    }
    for (let m = first; m < metrics.length; m++) {
      const [metric, o] = metrics[m]!;
      sums.push(tf.sum(metric(ys[o]!, outputAt(out, o))) as tf.Scalar);
    }
    return [total!, ...sums];
  });
}

/**
 * Copies one step's results into a fused vector (gradients in trainable
 * order, non-trainable weights, loss, metrics; see `fusedLayout`) and
 * disposes the step's tensors. A variable without a gradient gets zeros;
 * one marked 1 in `written` is left as it is (its gradient is already there).
 */
export async function writeStep(
  target: Float32Array,
  layout: FusedLayout,
  model: tf.LayersModel,
  trainVars: tf.Variable[],
  step: { value: tf.Scalar; grads: tf.NamedTensorMap; metricValues: tf.Scalar[] },
  written: Uint8Array | null = null,
): Promise<void> {
  try {
    let offset = 0;
    for (let i = 0; i < trainVars.length; i++) {
      const v = trainVars[i]!;
      const g = step.grads[v.name];
      if (written?.[i] !== 1) {
        if (g === undefined) target.fill(0, offset, offset + v.size);
        else await readInto(g, target, offset);
      }
      offset += v.size;
    }
    for (const w of model.nonTrainableWeights) {
      const t = w.read();
      await readInto(t, target, offset);
      offset += t.size;
    }
    target[layout.loss] = (await step.value.data())[0]!;
    for (let m = 0; m < step.metricValues.length; m++) {
      target[layout.metrics + m] = (await step.metricValues[m]!.data())[0]!;
    }
  } finally {
    tf.dispose([step.value, ...Object.values(step.grads), ...step.metricValues]);
  }
}

/**
 * A tensor with the values of a shared-memory view. The wasm backend copies
 * into its heap on creation; other backends may keep the array, so they get a
 * private copy (the shared buffer is overwritten by the next step).
 */
export function fromShared(view: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === "wasm" ? view : view.slice(), shape);
}

/**
 * Writes the model's non-trainable weights (batch-norm statistics), in
 * `model.nonTrainableWeights` order, from `values` starting at `offset`.
 */
export function writeNonTrainable(
  model: tf.LayersModel,
  values: Float32Array,
  offset: number,
): void {
  tf.tidy(() => {
    for (const w of model.nonTrainableWeights) {
      const size = weightSize(w);
      w.write(fromShared(values.subarray(offset, offset + size), w.shape as number[]));
      offset += size;
    }
  });
}

/** What `readInto` reads of tfjs' wasm backend (tfjs-backend-wasm 4.22). */
interface WasmHeap {
  dataIdMap?: { get(dataId: unknown): { memoryOffset?: number } | undefined };
  wasm?: { HEAPU8?: Uint8Array };
}

/**
 * Copies a float32 tensor's values into `target` at `offset`. On the wasm
 * backend it copies straight out of the wasm heap (one copy, no garbage);
 * elsewhere through `data()`.
 */
export async function readInto(t: tf.Tensor, target: Float32Array, offset: number): Promise<void> {
  if (!readIntoSync(t, target, offset)) target.set(await t.data() as Float32Array, offset);
}

/**
 * {@linkcode readInto} without waiting, where the backend allows it: out of
 * the wasm heap, or `dataSync()` on the cpu backend. Returns false (nothing
 * copied) on other backends, where a synchronous read would stall them.
 */
export function readIntoSync(t: tf.Tensor, target: Float32Array, offset: number): boolean {
  const name = tf.getBackend();
  if (t.dtype === "float32" && name === "wasm") {
    const backend = tf.backend() as unknown as WasmHeap;
    const at = backend.dataIdMap?.get(t.dataId)?.memoryOffset;
    const heap = backend.wasm?.HEAPU8;
    if (at !== undefined && heap !== undefined && at + t.size * 4 <= heap.byteLength) {
      target.set(new Float32Array(heap.buffer, heap.byteOffset + at, t.size), offset);
      return true;
    }
  }
  if (name === "cpu" || name === "wasm") {
    target.set(t.dataSync() as Float32Array, offset);
    return true;
  }
  return false;
}
