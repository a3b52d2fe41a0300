/**
 * One benchmark configuration, run in its own process (kernel patches and
 * wasm threads are per process). Prints one JSON row as its last line.
 *
 * Usage: deno run -A bench/_run.ts '<config json>'
 *
 * @module
 */
import * as tf from "../src/tf.ts";
import { MirroredStrategy, WorkerStrategy } from "../mod.ts";

/** The straggler suite's model module: the bench MLP behind a pass-through layer. */
const SLOW_MODEL = new URL("./_slow_model.ts", import.meta.url).href;

/** A benchmark configuration. */
export interface RunConfig {
  suite: string;
  model: "mlp" | "cnn";
  /**
   * `stock`: tfjs model.fit on unpatched wasm; `fit`: model.fit on dtrain's
   * wasm; `mirrored`: MirroredStrategy; `worker`: WorkerStrategy (parameter
   * server on the main thread's wasm, 1 thread).
   */
  strategy: "stock" | "fit" | "mirrored" | "worker";
  backend: "wasm" | "cpu" | "webgpu";
  /** Replicas (`mirrored`) or workers (`worker`). */
  replicas: number;
  threads: number;
  /**
   * Samples per step: `mirrored` splits it across replicas; `worker` gives
   * each worker `globalBatch / replicas` samples per gradient.
   */
  globalBatch: number;
  /** Steps of `globalBatch` samples in the timed epoch (`worker`: `replicas` gradients each). */
  steps: number;
  /**
   * Straggler suite (MLP only, `mirrored` or `worker`): the model comes from
   * `bench/_slow_model.ts`; `true` makes replica/worker 1 about 3x slower
   * per step, `false` builds the same model without the wait.
   */
  straggler?: boolean;
  /**
   * `true`: dtrain's wasm with its products on the host's BLAS (the row
   * fails where no library is found); otherwise the BLAS is refused
   * (`DTRAIN_BLAS=off`), as every row ran before the BLAS path existed.
   */
  blas?: boolean;
}

/** One result row. */
export interface Row extends RunConfig {
  samplesPerSec: number;
  stepMs: number;
  exchangeMs: number | null;
  /**
   * Once-per-fit cost (starting the run, weight sync, data to shared
   * memory, handing weights back), ms: the time before the first step and
   * after the last. Not in `samplesPerSec`.
   */
  fitOverheadMs?: number;
  /** `mirrored`: mean compute time per step of replica 0, ms. */
  computeMs?: number;
  /** Straggler runs: the wait per training step of the slow replica/worker, ms. */
  slowMs?: number;
  /** `worker`: gradients applied in the timed epoch. */
  applied?: number;
  /** `worker`: mean staleness of the received gradients. */
  meanStaleness?: number;
  /** `worker`: largest staleness seen. */
  maxStaleness?: number;
  /** `worker`: stale gradients dropped. */
  dropped?: number;
  /** `worker`: mean ms per pushed gradient of each worker (worker 0 first). */
  workerStepMs?: number[];
  /** BLAS rows: the library's core (`openblas_get_corename()`) or file. */
  blasCore?: string;
  /** Set when the configuration cannot run (the run's error message). */
  error?: string;
}

export function buildModel(kind: "mlp" | "cnn"): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const layers = kind === "mlp"
    ? [
      tf.layers.dense({
        units: 512,
        activation: "relu",
        inputShape: [784],
        kernelInitializer: init(1),
      }),
      tf.layers.dense({
        units: 512,
        activation: "relu",
        kernelInitializer: init(2),
      }),
      tf.layers.dense({
        units: 10,
        activation: "softmax",
        kernelInitializer: init(3),
      }),
    ]
    : [
      tf.layers.conv2d({
        filters: 16,
        kernelSize: 3,
        activation: "relu",
        inputShape: [28, 28, 1],
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 32,
        kernelSize: 3,
        activation: "relu",
        kernelInitializer: init(2),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: 64,
        activation: "relu",
        kernelInitializer: init(3),
      }),
      tf.layers.dense({
        units: 10,
        activation: "softmax",
        kernelInitializer: init(4),
      }),
    ];
  const model = tf.sequential({ layers });
  model.compile({
    optimizer: tf.train.adam(0.001),
    loss: "categoricalCrossentropy",
  });
  return model;
}

export function data(kind: "mlp" | "cnn", n: number): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => ({
    x: tf.randomUniform(
      kind === "mlp" ? [n, 784] : [n, 28, 28, 1],
      0,
      1,
      "float32",
      1,
    ),
    y: tf.cast(
      tf.oneHot(tf.randomUniform([n], 0, 10, "int32", 2), 10),
      "float32",
    ),
  }));
}

/**
 * Sets `DTRAIN_BLAS` for this process and its Workers (replicas select their
 * backend in their own thread and read it there). BLAS rows check that the
 * library opens and name its core; others refuse it.
 */
async function blasFor(c: RunConfig): Promise<Pick<Row, "blasCore">> {
  if (!c.blas) {
    Deno.env.set("DTRAIN_BLAS", "off");
    return {};
  }
  const { openHostBlas, parseBlasRequest } = await import("../backends/wasm/_blas_library.ts");
  if (Deno.env.get("DTRAIN_BLAS") === "off") Deno.env.delete("DTRAIN_BLAS");
  const lib = openHostBlas(parseBlasRequest(Deno.env.get("DTRAIN_BLAS")));
  if (!("sgemm" in lib)) throw new Error(`the host's BLAS is not available: ${lib.reason}`);
  const core = lib.coreName ?? lib.path;
  lib.close();
  return { blasCore: core };
}

async function run(c: RunConfig): Promise<Row> {
  const n = c.globalBatch * c.steps;
  const blas = await blasFor(c);
  if (c.strategy === "stock" || c.strategy === "fit") {
    if (c.strategy === "stock") {
      await import("@tensorflow/tfjs-backend-wasm");
      if (!(await tf.setBackend(c.backend))) {
        throw new Error(`setBackend(${c.backend}) failed`);
      }
    } else {
      const { selectBackend } = await import("../backends/mod.ts");
      await selectBackend({
        require: c.backend,
        threads: c.threads,
        override: "",
      });
    }
    const model = buildModel(c.model);
    const { x, y } = data(c.model, n);
    await model.fit(x, y, { epochs: 1, batchSize: c.globalBatch, verbose: 0 }); // warm-up
    const clock = new EpochClock(c.steps);
    await model.fit(x, y, {
      epochs: EpochClock.epochs,
      batchSize: c.globalBatch,
      verbose: 0,
      callbacks: { onBatchEnd: () => clock.batchEnd() },
    });
    return { ...c, ...blas, ...clock.result(n), exchangeMs: null };
  }
  if (c.strategy === "worker") return { ...await runWorker(c), ...blas };
  await tf.setBackend("cpu");
  const model = await modelFor(c);
  const { x, y } = data(c.model, n);
  await using strategy = new MirroredStrategy({
    replicas: c.replicas,
    backend: c.backend,
    threadsPerReplica: c.threads,
    modelModule: moduleFor(c),
  });
  await strategy.fit(model, x, y, {
    epochs: 1,
    batchSize: c.globalBatch,
    shuffle: false,
  }); // warm-up
  const clock = new EpochClock(c.steps);
  await strategy.fit(model, x, y, {
    epochs: EpochClock.epochs,
    batchSize: c.globalBatch,
    shuffle: false,
    callbacks: { onBatchEnd: () => clock.batchEnd() },
  });
  return {
    ...c,
    ...blas,
    ...clock.result(n),
    exchangeMs: strategy.stats!.exchangeMs,
    computeMs: strategy.stats!.computeMs,
  };
}

/**
 * Times epochs 2-4 of a four-epoch fit, each from the last batch of the
 * epoch before to its own last batch, and keeps the median: steady-state
 * training with its epoch boundary, robust to a noisy neighbour. The
 * once-per-fit cost is reported apart as `fitOverheadMs`: from the start of
 * `fit` to the end of its first batch, less one median step, plus from the
 * last batch to `fit` returning.
 */
export class EpochClock {
  static readonly epochs = 4;
  #stamps: number[] = [];
  #start = performance.now();
  constructor(readonly steps: number) {}
  batchEnd(): void {
    this.#stamps.push(performance.now());
  }
  result(samplesPerEpoch: number): Pick<Row, "samplesPerSec" | "stepMs" | "fitOverheadMs"> {
    const end = performance.now();
    const s = this.#stamps, n = this.steps, e = EpochClock.epochs;
    if (s.length !== e * n) {
      throw new Error(`Expected ${e * n} batch ends, received ${s.length}`);
    }
    const epochs = Array.from(
      { length: e - 1 },
      (_, i) => s[(i + 2) * n - 1]! - s[(i + 1) * n - 1]!,
    );
    const epochMs = epochs.sort((a, b) => a - b)[Math.floor(epochs.length / 2)]!;
    const stepMs = epochMs / n;
    return {
      samplesPerSec: samplesPerEpoch / (epochMs / 1000),
      stepMs,
      fitOverheadMs: s[0]! - this.#start - stepMs + (end - s[s.length - 1]!),
    };
  }
}

/** Where replicas/workers build the model: the straggler module, or the model's JSON. */
function moduleFor(c: RunConfig): { url: string; exportName: string } | undefined {
  if (c.straggler === undefined) return undefined;
  return { url: SLOW_MODEL, exportName: c.straggler ? "build" : "buildSteady" };
}

/** The main thread's model (the straggler module's never waits on the main thread). */
async function modelFor(c: RunConfig): Promise<tf.LayersModel> {
  if (c.straggler === undefined) return buildModel(c.model);
  const slow = await import("./_slow_model.ts");
  return c.straggler ? slow.build() : slow.buildSteady();
}

/**
 * WorkerStrategy: `replicas` workers, `globalBatch / replicas` samples per
 * gradient, on as many samples as the mirrored rows (`globalBatch * steps`).
 * Throughput counts applied gradients only (dropped ones are wasted work).
 */
async function runWorker(c: RunConfig): Promise<Row> {
  // The parameter server applies gradients with the main thread's backend.
  const { selectBackend } = await import("../backends/mod.ts");
  await selectBackend({ prefer: "wasm", threads: 1, override: "" });
  const perWorker = c.globalBatch / c.replicas;
  if (!Number.isInteger(perWorker)) {
    throw new RangeError(`globalBatch ${c.globalBatch} is not a multiple of ${c.replicas} workers`);
  }
  const model = await modelFor(c);
  const { x, y } = data(c.model, c.globalBatch * c.steps);
  await using strategy = new WorkerStrategy({
    workers: c.replicas,
    backend: c.backend,
    threadsPerWorker: c.threads,
    modelModule: moduleFor(c),
  });
  const fit = { epochs: 1, batchSize: perWorker, shuffle: false, seed: 1 };
  await strategy.fit(model, x, y, fit); // warm-up
  const start = performance.now();
  await strategy.fit(model, x, y, fit);
  const ms = performance.now() - start;
  const s = strategy.stats!;
  return {
    ...c,
    samplesPerSec: s.applied * perWorker / (ms / 1000),
    // Time per globalBatch samples applied, comparable with a mirrored step.
    stepMs: ms * c.replicas / Math.max(1, s.applied),
    exchangeMs: null,
    applied: s.applied,
    meanStaleness: s.meanStaleness,
    maxStaleness: s.maxStaleness,
    dropped: s.dropped,
    workerStepMs: s.workers.filter((w) => w.status !== "removed").map((w) => w.stepMs),
  };
}

if (import.meta.main) {
  const config = JSON.parse(Deno.args[0] ?? "") as RunConfig;
  const row = await run(config);
  console.log(JSON.stringify(row));
  Deno.exit(0);
}
