/**
 * Input-pipeline benchmark: does an expensive map still stall training?
 *
 * Trains a 784-256-10 MLP (wasm, 1 thread, in the main thread) on synthetic
 * 28x28 images whose every sample goes through an expensive augmentation
 * (random crop + flip + noise from `examples/augment.ts`, then blur passes to
 * make it costly on purpose), and reports the consumer's time per epoch:
 *
 * - `inline`: the map runs in the main thread before each batch (what a
 *   plain training loop does);
 * - `pipeline`: `ParallelMap` with 1 and 2 Workers and `prefetch: 1`, so the
 *   next epoch is mapped while the current one trains.
 *
 * Usage: `deno run -A bench/pipeline.ts [--quick]`. Prints a table; asserts
 * nothing. Figures vary with machine load: compare rows of one run.
 *
 * This file is also the map module the Workers import (`expensiveAugment`);
 * everything else runs only when it is the main module.
 *
 * @module
 */
import { augment } from "../examples/augment.ts";
import type { MapContext } from "../src/data/pipeline.ts";

/** Blur passes after the augmentation: the knob that makes the map expensive. */
const BLUR_PASSES = 8;

/**
 * `augment` followed by `BLUR_PASSES` 3x3 box blurs: a map that costs about
 * as much as a training step, on purpose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expensiveAugment } from "./pipeline.ts";
 * import { sampleRandom } from "../src/data/pipeline.ts";
 * const ctx = { index: 0, position: 0, epoch: 0, seed: 1, random: sampleRandom(1, 0, 0) };
 * const out = expensiveAugment(new Float32Array(784).fill(0.5), new Uint8Array(1), ctx);
 * assert.equal(out.x.length, 784);
 * ```
 */
export function expensiveAugment(
  x: Float32Array,
  y: Float32Array | Uint8Array,
  ctx: MapContext,
): { x: Float32Array } {
  let a: Float32Array = augment(x, y, ctx).x;
  let b: Float32Array = new Float32Array(a.length);
  const side = 28;
  for (let pass = 0; pass < BLUR_PASSES; pass++) {
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) {
        let sum = 0;
        let n = 0;
        for (let dr = -1; dr <= 1; dr++) {
          const rr = r + dr;
          if (rr < 0 || rr >= side) continue;
          for (let dc = -1; dc <= 1; dc++) {
            const cc = c + dc;
            if (cc < 0 || cc >= side) continue;
            sum += a[rr * side + cc]!;
            n++;
          }
        }
        b[r * side + c] = sum / n;
      }
    }
    [a, b] = [b, a];
  }
  return { x: a };
}

interface Row {
  mode: string;
  workers: number | null;
  epochMs: number;
  mapWaitMs: number;
  trainMs: number;
  checksum: number;
}

async function main(): Promise<void> {
  const quick = Deno.args.includes("--quick");
  const count = quick ? 1024 : 4096;
  const epochs = quick ? 3 : 4;
  const batchSize = 128;
  const seed = 42;

  const tf = await import("../src/tf.ts");
  const { selectBackend } = await import("../backends/mod.ts");
  const { ParallelMap, sampleRandom } = await import("../src/data/pipeline.ts");
  const { epochOrder } = await import("../src/core/random.ts");
  const report = await selectBackend({ require: "wasm", threads: 1, override: "" });

  const random = sampleRandom(seed, 1000, 0);
  const source = {
    x: Float32Array.from({ length: count * 784 }, () => random()),
    y: Uint8Array.from({ length: count }, () => Math.floor(random() * 10)),
    count,
    featureShape: [28, 28],
  };

  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 256, activation: "relu", inputShape: [784] }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  model.compile({ optimizer: "adam", loss: "sparseCategoricalCrossentropy" });

  const trainEpoch = async (x: Float32Array, y: Uint8Array | Float32Array) => {
    const t0 = performance.now();
    for (let from = 0; from < count; from += batchSize) {
      const n = Math.min(batchSize, count - from);
      const xs = tf.tensor2d(x.subarray(from * 784, (from + n) * 784), [n, 784]);
      const ys = tf.tensor2d(Float32Array.from(y.subarray(from, from + n)), [n, 1]);
      await model.trainOnBatch(xs, ys);
      tf.dispose([xs, ys]);
    }
    return performance.now() - t0;
  };
  const checksum = (x: Float32Array) => {
    let s = 0;
    for (let i = 0; i < x.length; i += 7) s += x[i]!;
    return s;
  };

  // Warm-up: compile kernels once.
  await trainEpoch(source.x.slice(0, 784 * count), source.y);

  const rows: Row[] = [];
  // Inline: map every sample of the epoch in the main thread, then train.
  {
    const measured: Row[] = [];
    const x = new Float32Array(count * 784);
    const y = new Uint8Array(count);
    for (let epoch = 0; epoch < epochs; epoch++) {
      const t0 = performance.now();
      const order = epochOrder(count, { seed, epoch, shuffle: true });
      for (let row = 0; row < count; row++) {
        const index = order[row]!;
        const out = expensiveAugment(
          source.x.slice(index * 784, (index + 1) * 784),
          source.y.slice(index, index + 1),
          { index, position: row, epoch, seed, random: sampleRandom(seed, epoch, index) },
        );
        x.set(out.x, row * 784);
        y[row] = source.y[index]!;
      }
      const mapMs = performance.now() - t0;
      const trainMs = await trainEpoch(x, y);
      measured.push({
        mode: "inline",
        workers: null,
        epochMs: performance.now() - t0,
        mapWaitMs: mapMs,
        trainMs,
        checksum: checksum(x),
      });
    }
    rows.push(average(measured));
  }
  // Pipeline with 1 and 2 Workers.
  for (const workers of [1, 2]) {
    await using pipeline = new ParallelMap(source, {
      map: { url: new URL(import.meta.url), exportName: "expensiveAugment" },
      workers,
      seed,
      prefetch: 1,
    });
    await pipeline.start();
    const measured: Row[] = [];
    let t0 = performance.now();
    for await (const e of pipeline.epochs(epochs)) {
      const trainMs = await trainEpoch(e.x, e.y);
      const now = performance.now();
      measured.push({
        mode: "pipeline",
        workers,
        epochMs: now - t0,
        mapWaitMs: e.waitMs,
        trainMs,
        checksum: checksum(e.x),
      });
      t0 = now;
    }
    rows.push(average(measured));
  }

  console.log(
    `ParallelMap benchmark: ${count} 28x28 samples/epoch, batch ${batchSize}, ${epochs} epochs ` +
      `(mean of epochs 2..${epochs}), MLP 784-256-10 on ${report.name} (1 thread), ` +
      `${navigator.hardwareConcurrency} cores`,
  );
  const header = [
    "mode",
    "workers",
    "ms/epoch",
    "waiting for map",
    "training",
    "samples/s",
    "same output",
  ];
  const table = rows.map((r) => [
    r.mode,
    r.workers === null ? "-" : String(r.workers),
    r.epochMs.toFixed(0),
    r.mapWaitMs.toFixed(0),
    r.trainMs.toFixed(0),
    (count / (r.epochMs / 1000)).toFixed(0),
    r.checksum === rows[0]!.checksum ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  for (const line of [header, ...table]) {
    console.log(line.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  }
  console.log(
    "waiting for map: inline = time spent mapping in the main thread; pipeline = time the loop " +
      "waited for the epoch's samples. Figures vary with machine load.",
  );
  model.dispose();
}

/** Mean of every epoch but the first (which includes the first map). */
function average(rows: Row[]): Row {
  const rest = rows.length > 1 ? rows.slice(1) : rows;
  const mean = (f: (r: Row) => number) => rest.reduce((a, r) => a + f(r), 0) / rest.length;
  return {
    ...rows[0]!,
    epochMs: mean((r) => r.epochMs),
    mapWaitMs: mean((r) => r.mapWaitMs),
    trainMs: mean((r) => r.trainMs),
    checksum: rows[rows.length - 1]!.checksum,
  };
}

if (import.meta.main) await main();
