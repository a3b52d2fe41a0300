/**
 * Tests for the multi-threaded wasm backend. Thread pools are per process, so
 * each case runs this same file as a child (`deno run`, where `Deno.test` is a
 * no-op and `import.meta.main` is true), which prints one JSON report.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import {
  enableWasmThreads,
  shutdownWasmThreads,
  wasmThreadsRunning,
} from "../../backends/wasm/_threads.ts";
import { values } from "./_values.ts";

/** Results must match the CPU backend within this absolute tolerance. */
const TOLERANCE = 1e-3;
/** A child that has not exited by itself by then is hung. */
const CHILD_TIMEOUT_MS = 60_000;

interface ChildReport {
  planned: number;
  threads: number;
  matMulMaxDiff: number;
  conv2dMaxDiff: number;
  afterShutdown: number | null;
  lateEnableError: string | null;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i]! - b[i]!));
  }
  return max;
}

function compute(): { matMul: Float32Array; conv2d: Float32Array } {
  return tf.tidy(() => {
    const a = tf.tensor2d(values(256 * 256, 1), [256, 256]);
    const b = tf.tensor2d(values(256 * 256, 2), [256, 256]);
    const x = tf.tensor4d(values(2 * 16 * 16 * 8, 3), [2, 16, 16, 8]);
    const filter = tf.tensor4d(values(3 * 3 * 8 * 16, 4), [3, 3, 8, 16]);
    return {
      matMul: tf.matMul(a, b).dataSync() as Float32Array,
      conv2d: tf.conv2d(x, filter, 1, "same").dataSync() as Float32Array,
    };
  });
}

/** The child: `deno run -A <this file> <threads> <shutdown|keep>`. */
async function child(threads: number, shutdown: boolean): Promise<void> {
  const planned = await enableWasmThreads(threads);
  assert.ok(await tf.setBackend("cpu"));
  const expected = compute();
  assert.ok(
    await tf.setBackend("wasm"),
    'tf.setBackend("wasm") returned false',
  );
  const actual = compute();
  let lateEnableError: string | null = null;
  try {
    await enableWasmThreads(threads);
  } catch (error: unknown) {
    lateEnableError = error instanceof Error ? error.message : String(error);
  }
  const report: ChildReport = {
    planned,
    threads: wasmThreadsRunning(),
    matMulMaxDiff: maxDiff(actual.matMul, expected.matMul),
    conv2dMaxDiff: maxDiff(actual.conv2d, expected.conv2d),
    afterShutdown: null,
    lateEnableError,
  };
  if (shutdown) {
    shutdownWasmThreads();
    shutdownWasmThreads();
    report.afterShutdown = wasmThreadsRunning();
  }
  console.log(JSON.stringify(report));
}

const reports = new Map<string, Promise<ChildReport>>();

/** Runs (once per argument pair) the child and parses its report. */
function childReport(
  threads: number,
  mode: "shutdown" | "keep",
): Promise<ChildReport> {
  const key = `${threads} ${mode}`;
  let report = reports.get(key);
  if (report === undefined) {
    report = runChild(threads, mode);
    reports.set(key, report);
  }
  return report;
}

async function runChild(
  threads: number,
  mode: "shutdown" | "keep",
): Promise<ChildReport> {
  const script = new URL(import.meta.url).pathname;
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, String(threads), mode],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), CHILD_TIMEOUT_MS);
  });
  const output = process.output();
  const result = await Promise.race([output, timeout]);
  clearTimeout(timer);
  if (result === "timeout") {
    process.kill("SIGKILL");
    await output;
    assert.fail(
      `child did not exit by itself within ${CHILD_TIMEOUT_MS} ms (threads=${threads}, ${mode})`,
    );
  }
  const stdout = new TextDecoder().decode(result.stdout);
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, `child failed:\n${stdout}\n${stderr}`);
  const line = stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as ChildReport;
}

if (import.meta.main) {
  const [threads, mode] = Deno.args;
  await child(Number(threads), mode === "shutdown");
}

Deno.test("enableWasmThreads() runs 2 threads when asked for 2", async () => {
  const report = await childReport(2, "shutdown");
  assert.equal(report.planned, 2);
  assert.equal(report.threads, 2);
  assert.ok(
    report.matMulMaxDiff <= TOLERANCE,
    `matMul differs from cpu by ${report.matMulMaxDiff}`,
  );
  assert.ok(
    report.conv2dMaxDiff <= TOLERANCE,
    `conv2d differs from cpu by ${report.conv2dMaxDiff}`,
  );
});

Deno.test(
  "shutdownWasmThreads() stops the pool when called twice",
  async () => {
    const report = await childReport(2, "shutdown");
    assert.equal(report.threads, 2);
    assert.equal(report.afterShutdown, 0);
  },
);

Deno.test(
  "enableWasmThreads() leaves a pool that does not keep the process alive",
  async () => {
    const report = await childReport(2, "keep");
    assert.equal(report.threads, 2);
    assert.equal(report.afterShutdown, null);
  },
);

Deno.test(
  "enableWasmThreads() throws when the wasm backend is already initialised",
  async () => {
    const report = await childReport(2, "keep");
    assert.match(
      report.lateEnableError ?? "",
      /^Cannot enable wasm threads: expected the wasm backend not to be initialised yet, received one already running 2 thread\(s\)/,
    );
  },
);

Deno.test(
  "enableWasmThreads() keeps the single-threaded build when asked for 1",
  async () => {
    const report = await childReport(1, "keep");
    assert.equal(report.planned, 1);
    assert.equal(report.threads, 1);
    assert.ok(report.matMulMaxDiff <= TOLERANCE);
    assert.ok(report.conv2dMaxDiff <= TOLERANCE);
  },
);

Deno.test(
  "enableWasmThreads() throws a RangeError when threads is not an integer >= 1",
  async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(() => enableWasmThreads(bad), {
        name: "RangeError",
        message:
          `Cannot enable wasm threads: expected threads to be an integer >= 1, received ${bad}`,
      });
    }
  },
);

Deno.test(
  "enableWasmThreads() throws a TypeError when threads is not a number",
  async () => {
    await assert.rejects(() => enableWasmThreads("2" as unknown as number), {
      name: "TypeError",
      message: "Cannot enable wasm threads: expected threads to be a number, received string",
    });
  },
);
