/**
 * One benchmark configuration, run in its own process (kernel patches and
 * wasm threads are per process). Prints one JSON row as its last line.
 *
 * Usage: deno run -A bench/_run.ts '<config json>'
 *
 * @module
 */
import * as tf from "../src/tf.ts";
import { MirroredStrategy } from "../mod.ts";

/** A benchmark configuration. */
export interface RunConfig {
  suite: string;
  model: "mlp" | "cnn";
  /** `stock`: tfjs model.fit on unpatched wasm; `fit`: model.fit on dtrain's wasm; `mirrored`. */
  strategy: "stock" | "fit" | "mirrored";
  backend: "wasm" | "cpu" | "webgpu";
  replicas: number;
  threads: number;
  globalBatch: number;
  steps: number;
}

/** One result row. */
export interface Row extends RunConfig {
  samplesPerSec: number;
  stepMs: number;
  exchangeMs: number | null;
  /** Set when the configuration cannot run (the run's error message). */
  error?: string;
}

function buildModel(kind: "mlp" | "cnn"): tf.LayersModel {
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

function data(kind: "mlp" | "cnn", n: number): { x: tf.Tensor; y: tf.Tensor } {
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

async function run(c: RunConfig): Promise<Row> {
  const n = c.globalBatch * c.steps;
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
    const start = performance.now();
    await model.fit(x, y, { epochs: 1, batchSize: c.globalBatch, verbose: 0 });
    const ms = performance.now() - start;
    return {
      ...c,
      samplesPerSec: n / (ms / 1000),
      stepMs: ms / c.steps,
      exchangeMs: null,
    };
  }
  await tf.setBackend("cpu");
  const model = buildModel(c.model);
  const { x, y } = data(c.model, n);
  await using strategy = new MirroredStrategy({
    replicas: c.replicas,
    backend: c.backend,
    threadsPerReplica: c.threads,
  });
  await strategy.fit(model, x, y, {
    epochs: 1,
    batchSize: c.globalBatch,
    shuffle: false,
  }); // warm-up
  const start = performance.now();
  await strategy.fit(model, x, y, {
    epochs: 1,
    batchSize: c.globalBatch,
    shuffle: false,
  });
  const ms = performance.now() - start;
  return {
    ...c,
    samplesPerSec: n / (ms / 1000),
    stepMs: ms / c.steps,
    exchangeMs: strategy.stats!.exchangeMs,
  };
}

if (import.meta.main) {
  const config = JSON.parse(Deno.args[0] ?? "") as RunConfig;
  const row = await run(config);
  console.log(JSON.stringify(row));
  Deno.exit(0);
}
