/**
 * dtrain's in-heap wasm kernels (bias sums, bias adds, 2x2 MaxPool and its gradient) on
 * the tfjs heap, with one thread (the backend's own memory) and with two (a
 * shared memory): each result equals a plain float32 reference to the bit,
 * and the kernels really ran. Thread pools are per process, so each case runs
 * this file as a child (`deno run`, where `Deno.test` is a no-op and
 * `import.meta.main` is true), which prints one JSON report.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { selectBackend } from "../../backends/mod.ts";
import { heapCalls, heapKernelsMemory } from "../../backends/wasm/_heap.ts";
import { values } from "./_values.ts";

const CHILD_TIMEOUT_MS = 60_000;

interface Report {
  memory: string | null;
  calls: number;
  /** Per check: the number of values that differ from the reference. */
  mismatches: Record<string, number>;
  leaked: number;
}

/** Column sums of `[rows, cols]` in row order from +0, in float32. */
function colsum(x: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(cols);
  for (let i = 0; i < x.length; i++) out[i % cols] = Math.fround(out[i % cols]! + x[i]!);
  return out;
}

function addRow(x: Float32Array, b: Float32Array): Float32Array {
  return x.map((v, i) => Math.fround(v + b[i % b.length]!));
}

/** 2x2 stride-2 MaxPoolGrad: the first maximum of each window (strict >) gets the gradient. */
function poolGrad(
  x: Float32Array,
  g: Float32Array,
  [n, h, w, c]: [number, number, number, number],
): Float32Array {
  const out = new Float32Array(x.length);
  const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      for (let xo = 0; xo < ow; xo++) {
        for (let ch = 0; ch < c; ch++) {
          let best = -1, m = -Infinity;
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const at = ((b * h + 2 * y + dy!) * w + 2 * xo + dx!) * c + ch;
            if (best < 0 || x[at]! > m) (best = at), (m = x[at]!);
          }
          out[best] = g[((b * oh + y) * ow + xo) * c + ch]!;
        }
      }
    }
  }
  return out;
}

/** 2x2 stride-2 MaxPool: each window's first maximum in row-major order. */
function pool(x: Float32Array, [n, h, w, c]: [number, number, number, number]): Float32Array {
  const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
  const out = new Float32Array(n * oh * ow * c);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < oh; y++) {
      for (let xo = 0; xo < ow; xo++) {
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const v = x[((b * h + 2 * y + dy!) * w + 2 * xo + dx!) * c + ch]!;
            if (v > m) m = v;
          }
          out[((b * oh + y) * ow + xo) * c + ch] = m;
        }
      }
    }
  }
  return out;
}

function mismatches(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

/** The child: `deno run -A <this file> <threads>`. */
async function child(threads: number): Promise<void> {
  await selectBackend({ require: "wasm", threads, override: "", blas: "off" });
  const before = tf.memory().numTensors;
  const calls = heapCalls();
  const out: Record<string, number> = {};
  const x4 = values(3 * 9 * 7 * 16, 1), bias = values(16, 2);
  tf.tidy(() => {
    const x = tf.tensor4d(x4, [3, 9, 7, 16]);
    const b = tf.tensor1d(bias);
    out["sum [3,9,7,16] over axes 0-2"] = mismatches(
      tf.sum(x, [0, 1, 2]).dataSync() as Float32Array,
      colsum(x4, 16),
    );
    out["sum keepDims"] = mismatches(
      tf.sum(x, [0, 1, 2], true).dataSync() as Float32Array,
      colsum(x4, 16),
    );
    const x2 = values(100 * 8, 3);
    out["sum [100,8] over axis 0"] = mismatches(
      tf.sum(tf.tensor2d(x2, [100, 8]), 0).dataSync() as Float32Array,
      colsum(x2, 8),
    );
    out["x + bias"] = mismatches(tf.add(x, b).dataSync() as Float32Array, addRow(x4, bias));
    out["bias + x"] = mismatches(tf.add(b, x).dataSync() as Float32Array, addRow(x4, bias));
    const input = tf.relu(x); // relu zeros make ties
    const pooled = tf.maxPool(input as tf.Tensor4D, 2, 2, "valid");
    out["MaxPool 2x2 of [3,9,7,16], odd sizes, ties"] = mismatches(
      pooled.dataSync() as Float32Array,
      pool(input.dataSync() as Float32Array, [3, 9, 7, 16]),
    );
    const g = values(3 * 4 * 3 * 16, 4);
    const dx = tf.engine().runKernel("MaxPoolGrad", {
      dy: tf.tensor4d(g, [3, 4, 3, 16]),
      input,
      output: pooled,
    }, { filterSize: 2, strides: 2, pad: "valid" }) as tf.Tensor;
    out["MaxPoolGrad 2x2 of [3,9,7,16], odd sizes, ties"] = mismatches(
      dx.dataSync() as Float32Array,
      poolGrad(input.dataSync() as Float32Array, g, [3, 9, 7, 16]),
    );
  });
  const backend = tf.backend();
  const report: Report = {
    memory: heapKernelsMemory(backend),
    calls: heapCalls() - calls,
    mismatches: out,
    leaked: tf.memory().numTensors - before,
  };
  console.log(JSON.stringify(report));
}

if (import.meta.main) {
  await child(Number(Deno.args[0]));
  Deno.exit(0);
}

for (const [threads, memory] of [[1, "own"], [2, "shared"]] as const) {
  Deno.test(
    `in-heap wasm kernels on ${threads} thread(s) (${memory} memory) equal float32 references ` +
      "to the bit",
    async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, String(threads)],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
      });
      const { code, stdout, stderr } = await child.output();
      const text = new TextDecoder().decode(stdout).trim();
      assert.equal(code, 0, `child exited ${code}: ${new TextDecoder().decode(stderr)}`);
      const report = JSON.parse(text.split("\n").at(-1)!) as Report;
      assert.equal(report.memory, memory);
      for (const [what, n] of Object.entries(report.mismatches)) {
        assert.equal(n, 0, `${what}: ${n} values differ from the reference`);
      }
      // 3 sums, 2 adds, 1 MaxPool, 1 MaxPoolGrad (the relu adds none).
      assert.equal(report.calls, 7, "every checked op ran in the heap");
      assert.equal(report.leaked, 0, "no tensor leaks");
    },
  );
}
