/**
 * The fit checks every strategy shares, written once: the common options
 * (epochs, initial epoch, validation split, verbosity, callbacks), the split
 * of the samples into training and validation parts, the "one run at a time"
 * guard, and training on a tfjs-data `Dataset` by materialising it first.
 *
 * @module
 */
import * as tf from "../tf.ts";
import type { History, TrainingCallbacks } from "../training/callbacks.ts";
import { type DatasetLike, materializeDataset } from "./_dataset.ts";
import { isSingleIO, type Prepared, prepareSamples, type Samples } from "./_inputs.ts";
import { type ClassWeightOption, sampleWeightsOf } from "./_class_weights.ts";
import { positiveInt } from "../core/checks.ts";

/** The fit options every strategy reads the same way. */
export interface CommonFitOptions {
  epochs?: number;
  initialEpoch?: number;
  validationSplit?: number;
  validationData?: [Samples, Samples];
  verbose?: 0 | 1 | 2;
  callbacks?: TrainingCallbacks | TrainingCallbacks[];
}

/** {@linkcode CommonFitOptions}, validated, with defaults applied. */
export interface CheckedCommon {
  epochs: number;
  initialEpoch: number;
  split: number;
  verbose: 0 | 1 | 2;
  callbacks: TrainingCallbacks[];
}

/**
 * Options of tfjs' `model.fit` that no strategy honours yet, with what they
 * would have done: refused by name, never silently dropped.
 */
const NOT_YET: Readonly<Record<string, string>> = {
  stepsPerEpoch: "end epochs after a number of steps",
  validationSteps: "limit validation to a number of steps",
  validationBatchSize: "set the validation batch size",
  validationFreq: "validate every n epochs only",
  yieldEvery: "yield to the event loop on a schedule",
};

/**
 * Refuses option names a fit does not read: tfjs `model.fit` options dtrain
 * does not honour yet (named, with what they would do) and unknown names.
 */
export function refuseFitOptions(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    if (key === "sampleWeight") {
      throw new TypeError(
        `${what} does not support "sampleWeight": tfjs' model.fit does not support it either ` +
          '(tfjs-layers 4.22 throws "sample weight is not supported yet"); remove it, or weigh ' +
          "samples by the class of their label with classWeight",
      );
    }
    const would = NOT_YET[key];
    if (would !== undefined) {
      throw new TypeError(
        `${what} does not support "${key}" yet (model.fit would ${would}): remove it; ` +
          "dtrain refuses an option rather than train without it",
      );
    }
    throw new TypeError(`${what} has no option "${key}": expected one of ${known.join(", ")}`);
  }
}

/** The fit option names every strategy reads ({@linkcode FitOptions}). */
export const FIT_OPTIONS = [
  "epochs",
  "batchSize",
  "shuffle",
  "seed",
  "validationSplit",
  "validationData",
  "callbacks",
  "verbose",
  "initialEpoch",
  "terminateOnNaN",
  "checkpoint",
  "trace",
  "lossWeights",
  "classWeight",
] as const;

/** Validates the options every fit shares and applies their defaults. */
export function checkCommonFit(options: CommonFitOptions): CheckedCommon {
  const epochs = positiveInt(options.epochs ?? 1, "epochs");
  const initialEpoch = options.initialEpoch ?? 0;
  if (!Number.isInteger(initialEpoch) || initialEpoch < 0) {
    throw new RangeError(`initialEpoch must be an integer >= 0, received ${initialEpoch}`);
  }
  const split = options.validationSplit ?? 0;
  if (!(split >= 0 && split < 1)) {
    throw new RangeError(`validationSplit must be in [0, 1), received ${split}`);
  }
  return {
    epochs,
    initialEpoch,
    split,
    verbose: options.verbose ?? 0,
    callbacks: options.callbacks === undefined ? [] : [options.callbacks].flat(),
  };
}

/** Training samples and the validation part (explicit, or the split's tail). */
export interface SplitSamples {
  /** Every sample given as x/y. */
  samples: Prepared;
  /** How many of them train (the first ones). */
  trainCount: number;
  /** Validation samples, if any. */
  validation: Prepared | undefined;
  /**
   * Per-sample loss weights of every sample (one array per output, null: not
   * weighted) from `classWeight`, or null without it. Validation is never
   * weighted, as in `model.fit`.
   */
  sampleWeights: (Float32Array | null)[] | null;
}

/**
 * Prepares x/y and the validation data: `validationData` wins over
 * `split`, which takes the last `split` fraction of the samples (before
 * shuffling), as `model.fit` does; and the per-sample weights of
 * `classWeight`, from the labels of every sample (as `model.fit` reads them).
 */
export function splitSamples(
  model: tf.LayersModel,
  x: Samples,
  y: Samples,
  options: { validationData?: [Samples, Samples]; split: number; classWeight?: ClassWeightOption },
): SplitSamples {
  const samples = prepareSamples(model, x, y);
  const sampleWeights = sampleWeightsOf(model, options.classWeight, samples);
  let trainCount = samples.count;
  let validation: Prepared | undefined;
  if (options.validationData !== undefined) {
    const [vx, vy] = options.validationData;
    validation = prepareSamples(model, vx, vy);
  } else if (options.split > 0) {
    trainCount = Math.floor(samples.count * (1 - options.split));
    validation = slicePrepared(samples, trainCount, samples.count);
  }
  if (trainCount < 1) {
    throw new RangeError(`No training samples left: received ${samples.count} samples`);
  }
  return { samples, trainCount, validation, sampleWeights };
}

/** Samples `[from, to)` of prepared data, every column copied. */
export function slicePrepared(p: Prepared, from: number, to: number): Prepared {
  const part = (f: Prepared["inputs"][number]) => {
    const width = f.shape.slice(1).reduce((a, b) => a * b, 1);
    return {
      data: f.data.slice(from * width, to * width),
      shape: [to - from, ...f.shape.slice(1)],
    };
  };
  return { inputs: p.inputs.map(part), outputs: p.outputs.map(part), count: to - from };
}

/**
 * Refuses a model with several inputs or outputs on a path that trains one
 * input and one output only (`what`), naming what does take it.
 */
export function refuseMultiIO(model: tf.LayersModel, what: string): void {
  if (isSingleIO(model)) return;
  throw new TypeError(
    `${what} trains models with one input and one output, received a model with ` +
      `${model.inputs.length} inputs and ${model.outputs.length} outputs: pass its data to ` +
      "fit(model, x, y) instead, with x and y as arrays (or dicts by layer name) of tensors",
  );
}

/** Lets one fit or evaluate run at a time on a strategy. */
export class Exclusive {
  #busy = false;

  /** Whether a run is in progress. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Runs `work` unless another fit or evaluate is running. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#busy) throw new Error("This strategy is already running fit or evaluate");
    this.#busy = true;
    try {
      return await work();
    } finally {
      this.#busy = false;
    }
  }
}

/**
 * Reads a tfjs-data `Dataset` of `{ xs, ys }` elements into memory once and
 * trains on it with `fit` (a model with several inputs or outputs gets `x`
 * and `y` as arrays in model order); the tensors it made are freed afterwards.
 */
export async function fitOnDataset(
  model: tf.LayersModel,
  dataset: DatasetLike,
  fit: (x: Samples, y: Samples) => Promise<History>,
): Promise<History> {
  const { xs, ys } = await materializeDataset(dataset, model);
  try {
    return await fit(xs.length === 1 ? xs[0]! : xs, ys.length === 1 ? ys[0]! : ys);
  } finally {
    tf.dispose([...xs, ...ys]);
  }
}
