/**
 * Per-kernel profile of one training step (gradients of the loss, as a
 * replica computes them; no optimizer) of the benchmark MLP or CNN on
 * dtrain's wasm with 1 thread. Prints a table of kernels by total time and,
 * as its last line, one JSON object. Not a test: it asserts nothing.
 *
 * Usage: deno run -A bench/_profile.ts mlp|cnn [batch] [blas|off]
 *
 * @module
 */
import * as tf from "../src/tf.ts";
import { selectBackend } from "../backends/mod.ts";

const kind = Deno.args[0] === "cnn" ? "cnn" : "mlp";
const batch = Number(Deno.args[1] ?? 128);
const blas = Deno.args[2] === "off" ? "off" : "auto";
const report = await selectBackend({ require: "wasm", threads: 1, override: "", blas });
const layers = kind === "mlp"
  ? [
    tf.layers.dense({ units: 512, activation: "relu", inputShape: [784] }),
    tf.layers.dense({ units: 512, activation: "relu" }),
    tf.layers.dense({ units: 10, activation: "softmax" }),
  ]
  : [
    tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: "relu", inputShape: [28, 28, 1] }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: "relu" }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 64, activation: "relu" }),
    tf.layers.dense({ units: 10, activation: "softmax" }),
  ];
const model = tf.sequential({ layers });
const x = tf.randomUniform(kind === "mlp" ? [batch, 784] : [batch, 28, 28, 1]);
const y = tf.oneHot(tf.randomUniform([batch], 0, 10, "int32"), 10).toFloat();
const step = () =>
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() =>
      tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar
    );
    value.dataSync();
    Object.values(grads).forEach((g) => g.dataSync());
  });
for (let i = 0; i < 5; i++) step();
const start = performance.now();
const reps = 10;
for (let i = 0; i < reps; i++) step();
const stepMs = (performance.now() - start) / reps;
const info = await tf.profile(step);
const byKernel = new Map<string, { ms: number; calls: number }>();
for (const k of info.kernels) {
  const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
  e.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
  e.calls++;
  byKernel.set(k.name, e);
}
const sorted = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
const total = sorted.reduce((a, [, e]) => a + e.ms, 0);
console.log(
  `${kind} @${batch}, BLAS ${report.blas?.used ? `on (${report.blas.coreName})` : "off"}: ` +
    `step ${stepMs.toFixed(2)} ms, kernels ${total.toFixed(2)} ms (profiled)`,
);
console.log("| kernel | calls | ms | share |");
console.log("|---|---:|---:|---:|");
for (const [name, e] of sorted) {
  console.log(
    `| ${name} | ${e.calls} | ${e.ms.toFixed(2)} | ${(100 * e.ms / total).toFixed(0)}% |`,
  );
}
console.log(
  JSON.stringify({
    kind,
    batch,
    blas: report.blas?.used ?? false,
    stepMs,
    kernels: Object.fromEntries(sorted),
  }),
);
Deno.exit(0);
