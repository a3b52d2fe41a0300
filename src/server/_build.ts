// Private: turns a validated job request into what the public API takes: a
// compiled tf.LayersModel and flat Float32 samples. Everything that can be
// checked before training (model JSON, shapes, batch vs replicas) is checked
// here and refused with an `InputError` (the HTTP layer answers it with a 400).
import { loadFashionMnist, loadMnist, oneHot, tf } from "../../mod.ts";
import { buildPreset } from "../models/presets.ts";
import { InputError, type InputErrorCode } from "./_domain_errors.ts";
import type { DatasetLibrary } from "./datasets.ts";
import type { DatasetRecord, JobRequest, ModelTopology } from "./types.ts";

const DATASET_SIZES = { "mnist": 10000, "fashion-mnist": 60000 } as const;
const IMAGE = 784;
const CLASSES = 10;

/** Samples ready for `strategy.fit`. */
export interface JobData {
  x: Float32Array;
  y: Float32Array;
  count: number;
}

/** A checked job: the compiled model and how to get its data. */
export interface BuiltJob {
  model: tf.LayersModel;
  /** Number of samples `loadData` yields. */
  count: number;
  /** Training steps per epoch. */
  steps: number;
  /** Inline samples are ready; datasets and uploads are read when the job starts. */
  loadData(): Promise<JobData>;
  /** Human-readable summary of the model and the data. */
  summary: { model: string; data: string };
}

function bad(code: InputErrorCode, message: string, details?: unknown): InputError {
  return new InputError(code, message, details);
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function defaultOutputActivation(loss: string): "softmax" | "sigmoid" | "linear" {
  if (loss === "categoricalCrossentropy" || loss === "sparseCategoricalCrossentropy") {
    return "softmax";
  }
  return loss === "binaryCrossentropy" ? "sigmoid" : "linear";
}

type MlpSpec = Extract<JobRequest["model"], { preset: "mlp" }>;
type CnnSpec = Extract<JobRequest["model"], { preset: "cnn" }>;

function presetOf(model: JobRequest["model"]): MlpSpec | CnnSpec | undefined {
  const preset = (model as { preset?: unknown }).preset;
  return preset === "mlp" || preset === "cnn" ? model as MlpSpec | CnnSpec : undefined;
}

function buildMlp(
  spec: MlpSpec,
  inputs: number,
  outputs: number,
  loss: string,
): tf.LayersModel {
  const init = (i: number) =>
    spec.seed === undefined ? undefined : tf.initializers.glorotUniform({ seed: spec.seed + i });
  const model = tf.sequential();
  spec.hidden.forEach((units, i) => {
    model.add(tf.layers.dense({
      units,
      activation: spec.activation,
      kernelInitializer: init(i),
      ...(i === 0 ? { inputShape: [inputs] } : {}),
    }));
  });
  model.add(tf.layers.dense({
    units: outputs,
    activation: spec.outputActivation ?? defaultOutputActivation(loss),
    kernelInitializer: init(spec.hidden.length),
    ...(spec.hidden.length === 0 ? { inputShape: [inputs] } : {}),
  }));
  return model;
}

async function buildTopology(topology: Record<string, unknown>): Promise<tf.LayersModel> {
  try {
    return await tf.models.modelFromJSON(topology as tf.io.ModelJSON["modelTopology"] as never);
  } catch (cause) {
    throw bad(
      "invalid_model",
      `model: expected a tfjs layers topology (model.toJSON(null, false)) of built-in layers, ` +
        `received one that fails to build: ${cause instanceof Error ? cause.message : cause}`,
    );
  }
}

function compile(model: tf.LayersModel, spec: JobRequest["compile"]): void {
  const optimizer = typeof spec.optimizer === "string"
    ? spec.optimizer
    : tf.train[spec.optimizer.name](spec.optimizer.learningRate);
  try {
    model.compile({ optimizer, loss: spec.loss, metrics: [...spec.metrics] });
  } catch (cause) {
    throw bad(
      "invalid_compile",
      `compile: the model does not compile with loss ${spec.loss} and metrics ` +
        `[${spec.metrics.join(", ")}]: ${cause instanceof Error ? cause.message : cause}`,
    );
  }
}

/** Per-sample shape of the model's single input or output, all dims known. */
function sampleShape(model: tf.LayersModel, which: "input" | "output"): number[] {
  const tensors = which === "input" ? model.inputs : model.outputs;
  if (tensors.length !== 1) {
    throw bad(
      "invalid_model",
      `model: expected one ${which}, received ${tensors.length} ${which}s ` +
        "(dtrain strategies train single-input, single-output models)",
    );
  }
  const dims = tensors[0]!.shape.slice(1);
  if (dims.some((d) => d === null)) {
    throw bad(
      "invalid_model",
      `model: expected a fully defined ${which} shape, received [${
        dims.map((d) => d ?? "null").join(", ")
      }] (rows are reshaped to it)`,
    );
  }
  return dims as number[];
}

/** Flattens rows of `width` values into one Float32Array; an InputError names the bad row. */
function flattenRows(
  rows: number[][],
  width: number,
  field: string,
  shape: number[],
): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row.length !== width) {
      throw bad(
        "shape_mismatch",
        `${field}[${i}] has ${row.length} values, expected ${width} ` +
          `(the model's per-sample shape [${shape.join(", ")}])`,
        { field: `${field}[${i}]`, expected: width, received: row.length },
      );
    }
    out.set(row, i * width);
  }
  return out;
}

/** The uploaded dataset `id` names, from `datasets`; an InputError naming `data.upload` if none. */
async function findUpload(
  id: string,
  datasets: DatasetLibrary | undefined,
): Promise<{ record: DatasetRecord; datasets: DatasetLibrary }> {
  if (datasets === undefined) {
    throw bad(
      "invalid_request",
      `data.upload: this server keeps no uploaded datasets, received ${JSON.stringify(id)}`,
      { field: "data.upload", received: id },
    );
  }
  const record = await datasets.find(id);
  if (record === null) {
    throw bad(
      "invalid_request",
      `data.upload: no uploaded dataset ${JSON.stringify(id)} ` +
        "(POST /v1/datasets uploads one, GET /v1/datasets lists them)",
      { field: "data.upload", received: id },
    );
  }
  return { record, datasets };
}

/**
 * Builds and compiles the model of `request`, checks the data against it and
 * the batch against the replicas. Throws an `InputError` for anything that
 * would make training fail up front. The caller owns (and must dispose) the
 * returned model. An uploaded dataset (`data.upload`) is looked up in
 * `options.datasets` (none: such a request is refused).
 */
export async function buildJob(
  request: JobRequest,
  options: { replicas: number; globalBatch: boolean; datasets?: DatasetLibrary },
): Promise<BuiltJob> {
  const { data, fit } = request;
  const inline = "x" in data ? data : undefined;
  const dataset = "dataset" in data ? data : undefined;
  const upload = "upload" in data ? await findUpload(data.upload, options.datasets) : undefined;
  let count: number;
  if (upload !== undefined) {
    count = upload.record.count;
  } else if (inline !== undefined) {
    if (inline.x.length !== inline.y.length) {
      throw bad(
        "shape_mismatch",
        `data: x and y must have the same number of samples, received ${inline.x.length} and ` +
          `${inline.y.length}`,
        { x: inline.x.length, y: inline.y.length },
      );
    }
    count = inline.x.length;
  } else {
    const max = DATASET_SIZES[dataset!.dataset];
    if (dataset!.limit !== undefined && dataset!.limit > max) {
      throw bad(
        "invalid_request",
        `data.limit: ${dataset!.dataset} has ${max} training examples, received limit ${
          dataset!.limit
        }`,
      );
    }
    count = dataset!.limit ?? max;
  }

  const trainCount = fit.validationSplit > 0
    ? Math.floor(count * (1 - fit.validationSplit))
    : count;
  if (trainCount < 1) {
    throw bad(
      "invalid_request",
      `fit.validationSplit: ${fit.validationSplit} of ${count} samples leaves no training sample`,
    );
  }
  if (options.globalBatch && fit.batchSize < options.replicas) {
    throw bad(
      "invalid_request",
      `fit.batchSize: cannot shard a batch of ${fit.batchSize} across ${options.replicas} ` +
        "replicas: batchSize must be >= strategy.replicas",
    );
  }

  let model: tf.LayersModel;
  let modelSummary: string;
  const preset = presetOf(request.model);
  if (preset !== undefined) {
    const inputs = inline?.x[0]?.length ??
      (upload === undefined ? IMAGE : product(upload.record.xShape));
    const outputs = inline?.y[0]?.length ??
      (upload === undefined ? CLASSES : product(upload.record.yShape));
    if (inputs < 1 || outputs < 1) {
      throw bad("shape_mismatch", "data: rows of x and y must not be empty");
    }
    if (preset.preset === "mlp") {
      model = buildMlp(preset, inputs, outputs, request.compile.loss);
      modelSummary = `mlp [${preset.hidden.join(", ")}]`;
    } else {
      const [f1, f2] = preset.filters as [number, number];
      model = buildPreset(
        { preset: "cnn", filters: [f1, f2], dense: preset.dense, classes: outputs },
        { seed: preset.seed },
      );
      modelSummary = `cnn [${f1}, ${f2}] dense ${preset.dense}`;
    }
  } else {
    const topology = request.model as ModelTopology;
    model = await buildTopology(topology);
    modelSummary = `${topology.class_name} (${model.layers.length} layers)`;
  }
  try {
    const inShape = sampleShape(model, "input");
    const outShape = sampleShape(model, "output");
    compile(model, request.compile);
    const inSize = product(inShape), outSize = product(outShape);
    const steps = Math.ceil(trainCount / fit.batchSize);
    if (inline !== undefined) {
      const x = flattenRows(inline.x, inSize, "data.x", inShape);
      const y = flattenRows(inline.y, outSize, "data.y", outShape);
      return {
        model,
        count,
        steps,
        loadData: () => Promise.resolve({ x, y, count }),
        summary: { model: modelSummary, data: `inline: ${count} samples` },
      };
    }
    if (upload !== undefined) {
      const { record, datasets } = upload;
      if (inSize !== product(record.xShape) || outSize !== product(record.yShape)) {
        throw bad(
          "shape_mismatch",
          `data.upload: the dataset ${record.id} has samples of shape [${
            record.xShape.join(", ")
          }] and targets of shape [${record.yShape.join(", ")}], the model takes [${
            inShape.join(", ")
          }] and gives [${outShape.join(", ")}]`,
          {
            field: "data.upload",
            expected: { x: inSize, y: outSize },
            received: { x: product(record.xShape), y: product(record.yShape) },
          },
        );
      }
      return {
        model,
        count,
        steps,
        loadData: () => datasets.read(record.id),
        summary: { model: modelSummary, data: `upload ${record.id}: ${count} samples` },
      };
    }
    const name = dataset!.dataset;
    if (inSize !== IMAGE || outSize !== CLASSES) {
      throw bad(
        "shape_mismatch",
        `data: ${name} has ${IMAGE} inputs and ${CLASSES} one-hot outputs per sample, ` +
          `the model takes [${inShape.join(", ")}] and gives [${outShape.join(", ")}]`,
      );
    }
    return {
      model,
      count,
      steps,
      loadData: async () => {
        const train = name === "mnist"
          ? (await loadMnist({ trainCount: count, testCount: 0 })).train
          : (await loadFashionMnist({ limit: count })).train;
        return { x: train.x, y: oneHot(train.y, CLASSES), count: train.count };
      },
      summary: { model: modelSummary, data: `${name}: ${count} samples` },
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
