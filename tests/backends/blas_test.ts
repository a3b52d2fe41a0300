// The host's BLAS path of the WASM backend: request parsing, core-type
// decisions, selection reports with and without the library, the path
// without FFI permission, and concurrent calls from several Workers.
import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { selectBackend } from "../../backends/mod.ts";
import { blasCalls } from "../../backends/wasm/_blas_kernels.ts";
import {
  coreTypeFor,
  decideCore,
  flagTier,
  openHostBlas,
  parseBlasRequest,
  userCoreProblem,
} from "../../backends/wasm/_blas_library.ts";

const hostBlas = (() => {
  const opened = openHostBlas(parseBlasRequest(Deno.env.get("DTRAIN_BLAS")));
  if (!("sgemm" in opened)) return { available: false, reason: opened.reason };
  opened.close();
  return { available: true, reason: "" };
})();
const skipped = hostBlas.available ? "" : ` (skipped: ${hostBlas.reason})`;

const AVX512 = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"];

Deno.test("parseBlasRequest() reads auto, off and paths, and refuses anything else", () => {
  assert.deepEqual(parseBlasRequest(undefined), { kind: "auto" });
  assert.deepEqual(parseBlasRequest(""), { kind: "auto" });
  assert.deepEqual(parseBlasRequest("auto"), { kind: "auto" });
  assert.deepEqual(parseBlasRequest("off"), { kind: "off" });
  assert.deepEqual(parseBlasRequest("/opt/lib/libblis.so.4"), {
    kind: "path",
    path: "/opt/lib/libblis.so.4",
  });
  assert.deepEqual(parseBlasRequest("libopenblas.so.0"), {
    kind: "path",
    path: "libopenblas.so.0",
  });
  assert.throws(() => parseBlasRequest("fast"), {
    name: "TypeError",
    message: 'DTRAIN_BLAS must be "auto", "off" or a path to a CBLAS library ' +
      '(e.g. /usr/lib/x86_64-linux-gnu/libopenblas.so.0), received "fast"',
  });
  assert.throws(() => parseBlasRequest(3, "blas"), {
    name: "TypeError",
    message: /^blas must be "auto", "off" or a path .*, received 3$/,
  });
});

Deno.test("decideCore() reloads a misdetected OpenBLAS with a core the CPU has, never one it lacks", () => {
  const amd = { vendor: "AuthenticAMD", flags: new Set(AVX512) };
  const intel = { vendor: "GenuineIntel", flags: new Set(AVX512) };
  const avx2 = { vendor: "GenuineIntel", flags: new Set(["avx", "avx2", "fma"]) };
  const sse = { vendor: "GenuineIntel", flags: new Set(["sse3", "ssse3"]) };
  assert.deepEqual(decideCore("Prescott", intel, undefined), {
    action: "reload",
    coreType: "SKYLAKEX",
  });
  assert.deepEqual(decideCore("Haswell", amd, undefined), {
    action: "reload",
    coreType: "SKYLAKEX",
  });
  assert.deepEqual(decideCore("Cooperlake", amd, undefined), { action: "keep" });
  assert.deepEqual(decideCore("SkylakeX", intel, undefined), { action: "keep" });
  assert.deepEqual(decideCore("Prescott", avx2, undefined), {
    action: "reload",
    coreType: "HASWELL",
  });
  assert.deepEqual(decideCore("Prescott", { ...avx2, vendor: "AuthenticAMD" }, undefined), {
    action: "reload",
    coreType: "ZEN",
  });
  assert.deepEqual(decideCore("Haswell", avx2, undefined), { action: "keep" });
  // Nothing better than SSE: keep whatever the library chose.
  assert.deepEqual(decideCore("Prescott", sse, undefined), { action: "keep" });
  // A user's OPENBLAS_CORETYPE is kept, with the better choice named.
  assert.deepEqual(decideCore("Haswell", amd, "Haswell"), {
    action: "keep-user",
    better: "SKYLAKEX",
  });
  // Flags unreadable, or a library that names no core: keep.
  assert.deepEqual(decideCore("Prescott", null, undefined), { action: "keep" });
  assert.deepEqual(decideCore(undefined, intel, undefined), { action: "keep" });
  // AVX-512 needs all of F, BW, DQ, VL and CD.
  assert.equal(flagTier(new Set(AVX512.filter((f) => f !== "avx512bw"))).tier, 2);
  assert.equal(coreTypeFor(0, "GenuineIntel"), undefined);
});

Deno.test("userCoreProblem() refuses an OPENBLAS_CORETYPE the CPU lacks, naming what it allows", () => {
  const avx2 = { vendor: "GenuineIntel", flags: new Set(["avx", "avx2", "fma"]) };
  assert.equal(
    userCoreProblem("SkylakeX", avx2),
    "OPENBLAS_CORETYPE=SkylakeX needs instructions this CPU lacks (its flags allow HASWELL)",
  );
  assert.equal(userCoreProblem("Haswell", avx2), null);
  assert.equal(userCoreProblem("Prescott", avx2), null);
  assert.equal(userCoreProblem(undefined, avx2), null);
});

Deno.test("selectBackend() refuses a malformed blas option before any work", async () => {
  await assert.rejects(() => selectBackend({ require: "wasm", override: "", blas: "quick" }), {
    name: "TypeError",
    message: /^blas must be "auto", "off" or a path to a CBLAS library .*, received "quick"$/,
  });
});

Deno.test({
  name: "selectBackend() reports the library, its core and speed when the BLAS path is used" +
    skipped,
  ignore: !hostBlas.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const report = await selectBackend({ require: "wasm", override: "", blas: "auto" });
    const blas = report.blas!;
    assert.equal(blas.used, true, blas.reason);
    assert.match(blas.library!, /blas|mkl|Accelerate/i);
    assert.ok(blas.gflops! > 0, `measured ${blas.gflops} GFLOP/s`);
    assert.ok(blas.probeMaxError! < 1e-3);
    assert.match(
      blas.reason,
      /^matches dtrain's GEMM \(max error .*\), .* GFLOP\/s on 128x784x512/,
    );
    if (blas.library!.includes("openblas")) {
      assert.match(blas.version!, /^OpenBLAS \d+\.\d+/);
      assert.ok(blas.coreName !== undefined && blas.coreName.length > 0);
    }
    const calls = blasCalls();
    const a = tf.randomUniform([20, 30], -1, 1, "float32", 1);
    const b = tf.randomUniform([30, 10], -1, 1, "float32", 2);
    const c = tf.matMul(a, b);
    const viaBlas = await c.data();
    assert.equal(blasCalls() - calls, 1, "the product ran on the library");
    // The same product with the library refused: dtrain's own kernels.
    const off = await selectBackend({ require: "wasm", override: "", blas: "off" });
    assert.deepEqual(off.blas, { used: false, reason: "refused by DTRAIN_BLAS=off" });
    const d = tf.matMul(a, b);
    const viaWasm = await d.data();
    assert.equal(blasCalls() - calls, 1, "the library took no product once refused");
    for (let i = 0; i < viaWasm.length; i++) {
      assert.ok(Math.abs(viaBlas[i]! - viaWasm[i]!) < 1e-4, `element ${i}`);
    }
    tf.dispose([a, b, c, d]);
    assert.equal((await selectBackend({ require: "wasm", override: "" })).blas?.used, true);
  },
});

Deno.test({
  name: "selectBackend() reports a library path that cannot be opened and runs without it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    try {
      const report = await selectBackend({
        require: "wasm",
        override: "",
        blas: "/nonexistent/libnoblas.so",
      });
      assert.equal(report.name, "wasm");
      assert.equal(report.blas?.used, false);
      assert.match(
        report.blas!.reason,
        /^DTRAIN_BLAS=\/nonexistent\/libnoblas\.so could not be opened: /,
      );
      const calls = blasCalls();
      const x = tf.ones([4, 4]);
      const y = tf.matMul(x, x);
      assert.deepEqual(Array.from(await y.data()), new Array(16).fill(4));
      assert.equal(blasCalls(), calls);
      tf.dispose([x, y]);
    } finally {
      await selectBackend({ require: "wasm", override: "" });
    }
  },
});

Deno.test("wasm backend without FFI permission runs on dtrain's kernels and says why", async () => {
  const root = new URL("../../", import.meta.url);
  const script = `
    import * as tf from "${new URL("src/tf.ts", root).href}";
    import { selectBackend } from "${new URL("backends/mod.ts", root).href}";
    const report = await selectBackend({ require: "wasm", override: "" });
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const product = Array.from(await tf.matMul(a, a).data());
    console.log(JSON.stringify({ blas: report.blas, product }));
    Deno.exit(0);
  `;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  // Every permission but FFI (`deno eval` would grant them all).
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      new URL("deno.json", root).pathname,
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      "--allow-net",
      file,
    ],
    env: { DTRAIN_BLAS: "" },
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(file));
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop()!;
  const result = JSON.parse(line);
  assert.deepEqual(result.blas, {
    used: false,
    reason: "FFI is not permitted (run with --allow-ffi to use the host's BLAS)",
  });
  assert.deepEqual(result.product, [7, 10, 15, 22]);
});

/** Four Workers call the library at once, each checking every product against dtrain's GEMM. */
async function hammer(threads: number): Promise<void> {
  const workers = 4, rounds = 400;
  const gate = new SharedArrayBuffer(4);
  const spawned = Array.from(
    { length: workers },
    () => new Worker(new URL("./_blas_hammer_worker.ts", import.meta.url), { type: "module" }),
  );
  try {
    const results = await Promise.all(
      spawned.map((w, id) =>
        new Promise<{ type: string; products: number; mismatches: number; message?: string }>(
          (resolve, reject) => {
            w.onmessage = (e) => resolve(e.data);
            w.onerror = (e) => {
              e.preventDefault();
              reject(new Error(`Worker ${id}: ${e.message}`));
            };
            w.postMessage({ id, gate, workers, rounds, threads });
          },
        )
      ),
    );
    for (const [id, r] of results.entries()) {
      assert.equal(r.type, "done", `Worker ${id}: ${r.message}`);
      assert.equal(r.products, rounds, `Worker ${id} ran every product`);
      assert.equal(r.mismatches, 0, `Worker ${id}: elements that differ from dtrain's GEMM`);
    }
  } finally {
    for (const w of spawned) w.terminate();
  }
}

Deno.test({
  name: "the host's BLAS gives the same products when four Workers call it at once" + skipped,
  ignore: !hostBlas.available,
  fn: () => hammer(1),
});

// Last in this file: the library's thread count is process-wide.
Deno.test({
  name: "the host's BLAS gives the same products when four Workers call it at once with " +
    "2 library threads each (threadsPerReplica: 2)" + skipped,
  ignore: !hostBlas.available,
  fn: () => hammer(2),
});
