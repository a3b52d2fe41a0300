import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { BackendUnavailableError, selectBackend } from "../../backends/mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "selectBackend() picks wasm over a software webgpu adapter in auto mode",
  opts,
  async () => {
    const report = await selectBackend({ override: "" });
    const gpu = report.candidates.find((c) => c.name === "webgpu")!;
    if (gpu.available && !gpu.software) {
      assert.equal(report.name, "webgpu");
    } else {
      assert.equal(report.name, "wasm");
      assert.match(report.reason, /first available in auto order/);
      if (gpu.available) assert.match(gpu.reason, /skipped by auto/);
    }
    assert.equal(tf.getBackend(), report.name);
    assert.deepEqual(report.candidates.map((c) => c.name), [
      "webgpu",
      "wasm",
      "cpu",
    ]);
    assert.equal(report.candidates.filter((c) => c.selected).length, 1);
  },
);

Deno.test("selectBackend() honours prefer", opts, async () => {
  const report = await selectBackend({ prefer: "cpu", override: "" });
  assert.equal(report.name, "cpu");
  assert.equal(report.reason, "preferred by options");
  assert.equal(tf.getBackend(), "cpu");
});

Deno.test("selectBackend() honours require", opts, async () => {
  const report = await selectBackend({ require: "wasm", override: "" });
  assert.equal(report.name, "wasm");
  assert.equal(report.reason, "required by options");
  assert.ok(report.threads >= 1);
});

Deno.test(
  "selectBackend() lets DTRAIN_BACKEND override require",
  opts,
  async () => {
    Deno.env.set("DTRAIN_BACKEND", "cpu");
    try {
      const report = await selectBackend({ require: "wasm" });
      assert.equal(report.name, "cpu");
      assert.equal(
        report.reason,
        "required by DTRAIN_BACKEND=cpu (overrides require: wasm)",
      );
    } finally {
      Deno.env.delete("DTRAIN_BACKEND");
    }
  },
);

Deno.test(
  "selectBackend() treats DTRAIN_BACKEND=auto as no override",
  opts,
  async () => {
    const report = await selectBackend({ prefer: "cpu", override: "auto" });
    assert.equal(report.name, "cpu");
  },
);

Deno.test("selectBackend() rejects an unknown backend name with a TypeError", async () => {
  await assert.rejects(
    () => selectBackend({ require: "tpu" as "cpu", override: "" }),
    {
      name: "TypeError",
      message: 'require must be one of webgpu, wasm, cpu, received "tpu"',
    },
  );
  await assert.rejects(
    () => selectBackend({ override: "gpu" }),
    {
      name: "TypeError",
      message: 'DTRAIN_BACKEND must be one of webgpu, wasm, cpu, received "gpu"',
    },
  );
});

Deno.test("selectBackend() rejects bad thread counts with a RangeError", async () => {
  await assert.rejects(
    () => selectBackend({ threads: 0, override: "" }),
    {
      name: "RangeError",
      message: "threads must be an integer >= 1, received 0",
    },
  );
});

Deno.test(
  "selectBackend() throws BackendUnavailableError listing what it tried",
  opts,
  async () => {
    const gpu = (navigator as { gpu?: unknown }).gpu;
    Object.defineProperty(navigator, "gpu", {
      value: undefined,
      configurable: true,
    });
    try {
      const err = await selectBackend({ require: "webgpu", override: "" }).then(
        () => assert.fail("expected a rejection"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BackendUnavailableError);
      assert.equal(err.name, "BackendUnavailableError");
      assert.match(
        err.message,
        /^No backend could be activated \(required by options\); tried webgpu: navigator\.gpu is not defined/,
      );
      assert.deepEqual(err.tried.map((t) => [t.name, t.available]), [[
        "webgpu",
        false,
      ]]);
    } finally {
      Object.defineProperty(navigator, "gpu", {
        value: gpu,
        configurable: true,
      });
    }
  },
);
