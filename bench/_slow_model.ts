/**
 * The bench MLP (784-512-512-10, Adam) behind a pass-through layer that
 * makes one replica a straggler, for the straggler suite of `bench/main.ts`.
 * Every replica (MirroredStrategy) or worker (WorkerStrategy) builds the
 * model from this module (`modelModule: { url, exportName }`).
 *
 * `build()`: in training calls only, the layer busy-waits when it runs in the
 * Worker named `dtrain-replica-1` or `dtrain-ps-worker-1`, so that this
 * Worker's step takes about `DTRAIN_BENCH_SLOW_FACTOR` (default 3) times its
 * normal one. The normal step is measured inside the Worker: the median
 * interval between its training calls, after `SKIP_CALLS` warm-up calls and
 * over `CALIBRATION_CALLS` calls, all without waiting; each later call then
 * waits `(factor - 1)` times that. `DTRAIN_BENCH_SLOW_MS`, when set to a
 * positive number, is the wait in ms instead (Workers inherit the
 * environment): `bench/main.ts` sets it to twice a replica's compute time per
 * step, so that both strategies get the same straggler. `buildSteady()`: the
 * same model, never waiting.
 *
 * @module
 */
import { tf } from "../mod.ts";

/** Training calls ignored before measuring (warm-up: kernel compilation, first copies). */
const SKIP_CALLS = 2;
/** Intervals between training calls measured for the normal step time. */
const CALIBRATION_CALLS = 4;
/** Worker names that straggle under `build()`. */
const SLOW_NAMES = ["dtrain-replica-1", "dtrain-ps-worker-1"];

let straggle = false;
let calls = 0;
let lastCall = 0;
const intervals: number[] = [];
let delayMs: number | undefined;

function envNumber(name: string): number | undefined {
  try {
    const v = Number(Deno.env.get(name));
    return Number.isFinite(v) && v > 0 ? v : undefined;
  } catch {
    return undefined; // no env permission
  }
}

/** Milliseconds to wait in this training call (0 while measuring). */
function waitFor(now: number): number {
  if (delayMs !== undefined) return delayMs;
  const fixed = envNumber("DTRAIN_BENCH_SLOW_MS");
  if (fixed !== undefined) return (delayMs = fixed);
  calls++;
  if (calls > SKIP_CALLS + 1) intervals.push(now - lastCall);
  lastCall = now;
  if (intervals.length < CALIBRATION_CALLS) return 0;
  const sorted = [...intervals].sort((a, b) => a - b);
  const normal = sorted[Math.floor(sorted.length / 2)]!;
  delayMs = ((envNumber("DTRAIN_BENCH_SLOW_FACTOR") ?? 3) - 1) * normal;
  return delayMs;
}

/** Passes its input through; in a straggling Worker, busy-waits in training calls. */
export class Straggler extends tf.layers.Layer {
  static className = "BenchStraggler";
  override call(
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    const name = (globalThis as { name?: string }).name;
    if (kwargs.training === true && straggle && name !== undefined && SLOW_NAMES.includes(name)) {
      const now = performance.now();
      const until = now + waitFor(now);
      while (performance.now() < until) {
        // busy-wait: a slow replica keeps its core busy, like slow hardware would
      }
    }
    return tf.clone(x);
  }
  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }
}
tf.serialization.registerClass(Straggler);

function mlp(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      new Straggler({ inputShape: [784] }),
      tf.layers.dense({ units: 512, activation: "relu", kernelInitializer: init(1) }),
      tf.layers.dense({ units: 512, activation: "relu", kernelInitializer: init(2) }),
      tf.layers.dense({ units: 10, activation: "softmax", kernelInitializer: init(3) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" });
  return model;
}

/** The bench MLP whose replica/worker 1 is about 3x slower per training step. */
export function build(): tf.LayersModel {
  straggle = true;
  return mlp();
}

/** The same model with no straggler. */
export function buildSteady(): tf.LayersModel {
  straggle = false;
  return mlp();
}
