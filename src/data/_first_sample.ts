/**
 * Private: what `ParallelMap.start()` does in the main thread before any
 * Worker starts: import the map module, run the map on sample 0 and decide
 * from its output the size and label type every mapped sample must have, and
 * the shapes the pipeline reports. A bad module, a throwing map or a wrong
 * output fails here, with the main thread's stack.
 *
 * @module
 */
import { PipelineError } from "../errors.ts";
import { checkMapResult, describe, dtypeOf, type OutputSpec, sampleRandom } from "./_map_sample.ts";
import type { PipelineConfig, Source } from "./_pipeline_options.ts";
import type { MapFunction, PipelineShapes } from "./pipeline_types.ts";

/** What sample 0 decided. */
export interface FirstSample {
  /** Size and label type of every mapped sample. */
  spec: OutputSpec;
  /** The shapes `ParallelMap.start()` reports. */
  shapes: PipelineShapes;
}

/** Imports the map module and checks the map on sample 0 of epoch 0. */
export async function checkFirstSample(src: Source, config: PipelineConfig): Promise<FirstSample> {
  const { url, exportName, outputShape, seed } = config;
  // 1. The map module, checked in the main thread before any Worker starts.
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new TypeError(
      `ParallelMap could not import the map module ${url}: ${
        e instanceof Error ? e.message : String(e)
      }`,
      { cause: e },
    );
  }
  const fn = mod[exportName];
  if (typeof fn !== "function") {
    throw new TypeError(
      `ParallelMap map module ${url} has no function export "${exportName}": expected a ` +
        `function (x, y, ctx) => { x, y? }, received ${describe(fn)} (the module exports: ${
          Object.keys(mod).join(", ") || "nothing"
        })`,
    );
  }
  // 2. Sample 0 decides the output size and label type.
  const x0 = src.x.slice(0, src.xSize);
  const y0 = src.y.slice(0, src.ySize);
  let result: unknown;
  try {
    result = await (fn as MapFunction)(x0, y0, {
      index: 0,
      position: 0,
      epoch: 0,
      seed,
      random: sampleRandom(seed, 0, 0),
    });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    throw new PipelineError(
      `map() threw on sample 0 of epoch 0 (checked in the main thread before starting ` +
        `the Workers): ${err.name}: ${err.message}`,
      { epoch: 0, index: 0, cause: err },
    );
  }
  const first = checkMapResult(result, y0, undefined, 0, 0);
  const sum = (parts: ArrayLike<unknown>[]) => parts.reduce((a, p) => a + p.length, 0);
  const spec: OutputSpec = {
    xSize: sum(first.xs),
    ySize: sum(first.ys),
    yDtype: dtypeOf(first.ys[0])!,
    xParts: first.xs.map((p) => p.length),
    yParts: first.ys.map((p) => p.length),
  };
  if (spec.xParts.includes(0)) {
    throw new RangeError(
      "map() returned an empty x for sample 0 of epoch 0, expected >= 1 value" +
        (spec.xParts.length > 1 ? " in every part" : ""),
    );
  }
  let featureShape: number[];
  if (outputShape !== undefined) {
    if (spec.xParts.length > 1) {
      throw new RangeError(
        `ParallelMap outputShape describes one x, but map() returned ${spec.xParts.length} x ` +
          "parts for sample 0 of epoch 0 (a model with several inputs gives their shapes)",
      );
    }
    const size = outputShape.reduce((a, b) => a * b, 1);
    if (size !== spec.xSize) {
      throw new RangeError(
        `ParallelMap outputShape [${outputShape}] holds ${size} values, but map() returned x ` +
          `with ${spec.xSize} values for sample 0 of epoch 0`,
      );
    }
    featureShape = outputShape;
  } else {
    featureShape = spec.xSize === src.xSize && spec.xParts.length === 1
      ? [...src.featureShape]
      : [spec.xSize];
  }
  const shapes: PipelineShapes = {
    featureShape,
    labelShape: spec.ySize === 1 ? [] : [spec.ySize],
    labelDtype: spec.yDtype,
    featureParts: [...spec.xParts],
    labelParts: [...spec.yParts],
  };
  return { spec, shapes };
}
