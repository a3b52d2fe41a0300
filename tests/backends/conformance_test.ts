// One conformance suite, run against every backend available here, checked
// against the CPU backend (the oracle) within a stated tolerance.
import assert from "node:assert/strict";
import * as tf from "../../src/tf.ts";
import { BACKEND_NAMES, type BackendName, selectBackend } from "../../backends/mod.ts";
import { webgpuBackend } from "../../backends/webgpu.ts";
import { gemmCalls, useWasmGemm } from "../../backends/wasm/_gemm.ts";
import { blasCalls, useHostBlas } from "../../backends/wasm/_blas_kernels.ts";
import { openHostBlas, parseBlasRequest } from "../../backends/wasm/_blas_library.ts";

/** |a - b| <= ATOL + RTOL * |b| elementwise. */
const RTOL = 1e-3;
const ATOL = 1e-4;

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= ATOL + RTOL * Math.abs(e))) {
      assert.fail(
        `${what}: element ${i} is ${a}, expected ${e} (rtol ${RTOL}, atol ${ATOL})`,
      );
    }
  }
}

function keep(t: tf.Tensor): tf.Tensor {
  inputs.push(t);
  return t;
}

/** Inputs of the current case; disposed after it so leaks are the backend's. */
const inputs: tf.Tensor[] = [];
function seeded(shape: number[], seed: number): tf.Tensor {
  const t = tf.randomUniform(shape, -1, 1, "float32", seed);
  inputs.push(t);
  return t;
}

type Case = {
  name: string;
  run: () => Promise<Float32Array>;
  /** Backends the case applies to. @default all */
  only?: string[];
};

async function read(t: tf.Tensor): Promise<Float32Array> {
  const d = await t.data() as Float32Array;
  t.dispose();
  return d;
}

const cases: Case[] = [];
for (
  const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]
) {
  cases.push({
    name: `matMul transposeA=${ta} transposeB=${tb}`,
    run: () => {
      const [a, b] = [
        seeded([64, 48], 1),
        seeded([ta === tb ? 64 : 48, 48], 2),
      ];
      const out = ta && !tb
        ? tf.matMul(a, a, true, false)
        : !ta && tb
        ? tf.matMul(a, b, false, true)
        : ta && tb
        ? tf.matMul(a, keep(tf.transpose(a)), true, true)
        : tf.matMul(a, keep(tf.transpose(a)));
      return read(out);
    },
  });
}
// Sizes off every block boundary of dtrain's wasm GEMM (6-row, 8- and
// 4-column blocks, a scalar column tail), and a single row.
for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
  for (const [m, k, n] of [[13, 7, 15], [1, 33, 21]] as [number, number, number][]) {
    cases.push({
      name: `matMul ${m}x${k} by ${k}x${n} transposeA=${ta} transposeB=${tb}`,
      run: () =>
        read(tf.matMul(
          seeded(ta ? [k, m] : [m, k], 20 + m),
          seeded(tb ? [n, k] : [k, n], 21 + n),
          ta,
          tb,
        )),
    });
  }
}
// Bias gradients sum every axis but the last; other axis sets keep the stock path.
for (
  const [axes, keepDims] of [[[0, 1, 2], false], [[2, 0, 1], false], [[0, 1, 2], true], [
    [0, 2],
    false,
  ], [[1, 2, 3], false]] as [number[], boolean][]
) {
  cases.push({
    name: `sum over axes [${axes}] keepDims=${keepDims}`,
    run: () => read(tf.sum(seeded([3, 5, 4, 6], 40), axes, keepDims)),
  });
}
cases.push({
  name: "batched matMul with transposeB and broadcasting",
  run: () => read(tf.matMul(seeded([3, 16, 8], 3), seeded([1, 12, 8], 4), false, true)),
});
cases.push({
  name: "fused matMul with bias, relu and transposeA",
  run: () =>
    read(tf.fused.matMul({
      a: seeded([32, 24], 5),
      b: seeded([32, 16], 6),
      transposeA: true,
      bias: seeded([16], 7),
      activation: "relu",
    })),
});
cases.push({
  name: "conv2d 3x3 same",
  run: () =>
    read(
      tf.conv2d(
        seeded([2, 12, 12, 3], 8) as tf.Tensor4D,
        seeded([3, 3, 3, 5], 9) as tf.Tensor4D,
        1,
        "same",
      ),
    ),
});
for (
  const [strides, pad] of [[1, "same"], [[2, 1], "valid"]] as [
    number | [number, number],
    "same" | "valid",
  ][]
) {
  cases.push({
    name: `Conv2DBackpropFilter strides=${strides} pad=${pad}`,
    run: () => {
      const x = seeded([2, 11, 9, 3], 12);
      const filterShape: [number, number, number, number] = [3, 2, 3, 4];
      const out = tf.conv2d(
        x as tf.Tensor4D,
        keep(tf.zeros(filterShape)) as tf.Tensor4D,
        strides,
        pad,
      );
      inputs.push(out);
      const dy = seeded(out.shape, 13);
      return read(
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
          strides,
          pad,
          dataFormat: "NHWC",
          filterShape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
    },
  });
}
for (
  const [strides, pad] of [[1, "same"], [2, "same"], [[2, 1], "valid"]] as [
    number | [number, number],
    "same" | "valid",
  ][]
) {
  cases.push({
    name: `Conv2DBackpropInput strides=${strides} pad=${pad}`,
    run: () => {
      const inputShape: [number, number, number, number] = [2, 11, 9, 3];
      const filter = seeded([3, 2, 3, 4], 14);
      const out = keep(
        tf.conv2d(keep(tf.zeros(inputShape)) as tf.Tensor4D, filter as tf.Tensor4D, strides, pad),
      );
      const dy = seeded(out.shape, 15);
      return read(
        tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
          strides,
          pad,
          dataFormat: "NHWC",
          inputShape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
    },
  });
}
// Batched products with every transpose, a broadcast batch of 1 on either side.
for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
  for (const [ba, bb] of [[[4], [4]], [[1], [4]], [[2, 3], [1]]] as [number[], number[]][]) {
    cases.push({
      name: `batched matMul [${ba}] by [${bb}] transposeA=${ta} transposeB=${tb}`,
      run: () =>
        read(tf.matMul(
          seeded([...ba, ...(ta ? [5, 7] : [7, 5])], 50),
          seeded([...bb, ...(tb ? [9, 5] : [5, 9])], 51),
          ta,
          tb,
        )),
    });
  }
}
// Fused products: every transpose, each activation the BLAS path applies itself.
for (
  const [ta, tb, activation] of [
    [false, false, "linear"],
    [false, true, "relu6"],
    [true, true, "sigmoid"],
    [false, true, "elu"],
    [true, false, "leakyrelu"],
  ] as [boolean, boolean, tf.fused.Activation][]
) {
  cases.push({
    name: `fused matMul 13x17 by 17x11 with bias, ${activation}, transposeA=${ta} ` +
      `transposeB=${tb}`,
    run: () =>
      read(tf.fused.matMul({
        a: seeded(ta ? [17, 13] : [13, 17], 52),
        b: seeded(tb ? [11, 17] : [17, 11], 53),
        transposeA: ta,
        transposeB: tb,
        bias: seeded([11], 54),
        activation,
        leakyreluAlpha: 0.3,
      })),
  });
}
cases.push({
  name: "fused matMul without bias, relu",
  run: () =>
    read(tf.fused.matMul({ a: seeded([9, 6], 55), b: seeded([6, 4], 56), activation: "relu" })),
});
// Forward convolutions: strides, padding, dilation, a 1x1 pointwise filter, fused bias.
for (
  const [strides, pad, dilations, filter] of [
    [2, "same", 1, [3, 3, 3, 5]],
    [[2, 1], "valid", 1, [3, 2, 3, 4]],
    [1, "valid", 2, [3, 3, 3, 4]],
    [1, "valid", 1, [1, 1, 3, 6]],
    [2, "valid", 1, [1, 1, 3, 6]],
  ] as [number | [number, number], "same" | "valid", number, number[]][]
) {
  cases.push({
    name: `conv2d filter [${filter}] strides=${strides} pad=${pad} dilations=${dilations}`,
    run: () =>
      read(tf.conv2d(
        seeded([2, 11, 9, 3], 57) as tf.Tensor4D,
        seeded(filter, 58) as tf.Tensor4D,
        strides,
        pad,
        "NHWC",
        dilations,
      )),
  });
}
// Wide channels: whole filter rows of 64 bytes or more are bulk copies in the
// BLAS path's im2row, and so are single taps at 16 channels (padding edges).
for (
  const [cin, pad] of [[8, "same"], [16, "same"], [16, "valid"]] as [number, "same" | "valid"][]
) {
  cases.push({
    name: `conv2d and Conv2DBackpropFilter with ${cin} input channels, pad=${pad}`,
    run: async () => {
      const x = seeded([2, 7, 6, cin], 65);
      const y = await read(
        tf.conv2d(x as tf.Tensor4D, seeded([3, 3, cin, 5], 66) as tf.Tensor4D, 1, pad),
      );
      const dy = seeded([2, pad === "same" ? 7 : 5, pad === "same" ? 6 : 4, 5], 67);
      const dw = await read(
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
          strides: 1,
          pad,
          dataFormat: "NHWC",
          filterShape: [3, 3, cin, 5],
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
      return Float32Array.of(...y, ...dw);
    },
  });
}
cases.push({
  name: "fused conv2d 3x3 same with bias and relu",
  run: () =>
    read(tf.fused.conv2d({
      x: seeded([2, 10, 10, 3], 59) as tf.Tensor4D,
      filter: seeded([3, 3, 3, 8], 60) as tf.Tensor4D,
      strides: 1,
      pad: "same",
      bias: seeded([8], 61),
      activation: "relu",
    })),
});
for (const strides of [1, 2]) {
  cases.push({
    name: `Conv2DBackpropFilter and Conv2DBackpropInput of a 1x1 filter, strides=${strides}`,
    run: async () => {
      const x = seeded([2, 7, 6, 3], 62);
      const filter = seeded([1, 1, 3, 5], 63);
      const out = keep(tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, strides, "valid"));
      const dy = seeded(out.shape, 64);
      const attrs = { strides, pad: "valid", dataFormat: "NHWC" };
      const dw = await read(
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
          ...attrs,
          filterShape: [1, 1, 3, 5],
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
      const dx = await read(
        tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
          ...attrs,
          inputShape: [2, 7, 6, 3],
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
      return Float32Array.of(...dw, ...dx);
    },
  });
}
cases.push({
  name: "MaxPoolGrad 3x3 stride 2 same",
  run: () => {
    const input = seeded([2, 9, 7, 3], 18);
    const output = keep(tf.maxPool(input as tf.Tensor4D, 3, 2, "same"));
    const dy = seeded(output.shape, 19);
    return read(
      tf.engine().runKernel("MaxPoolGrad", { dy, input, output }, {
        filterSize: 3,
        strides: 2,
        pad: "same",
      } as unknown as tf.NamedAttrMap) as tf.Tensor,
    );
  },
});
for (
  const [shape, what] of [
    [[2, 8, 6, 5], "even"],
    [[2, 9, 7, 3], "odd (a row and column in no window)"],
    // Channels a multiple of 4 take the SIMD kernel on wasm.
    [[3, 8, 6, 8], "even, 8 channels"],
    [[2, 9, 7, 4], "odd, 4 channels"],
    [[1, 3, 2, 12], "odd rows, 12 channels"],
    [[2, 11, 11, 32], "odd, 32 channels"],
  ] as const
) {
  cases.push({
    name: `MaxPoolGrad 2x2 stride 2 valid, ${what} sizes, with ties`,
    only: ["cpu", "wasm"],
    run: () => {
      // relu zeros make ties: the first maximum in row-major order gets the gradient.
      const input = keep(tf.relu(seeded([...shape], 21)));
      const output = keep(tf.maxPool(input as tf.Tensor4D, 2, 2, "valid"));
      const dy = seeded(output.shape, 22);
      return read(
        tf.engine().runKernel("MaxPoolGrad", { dy, input, output }, {
          filterSize: 2,
          strides: 2,
          pad: "valid",
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
    },
  });
}
cases.push({
  name: "MaxPoolGrad with ties (relu zeros) routes to the first maximum",
  // WebGPU breaks ties differently (tfjs' own choice); dtrain's wasm kernel matches CPU.
  only: ["cpu", "wasm"],
  run: () => {
    const input = keep(tf.relu(seeded([2, 9, 7, 3], 16)));
    const output = keep(tf.maxPool(input as tf.Tensor4D, 3, 2, "same"));
    const dy = seeded(output.shape, 17);
    return read(
      tf.engine().runKernel("MaxPoolGrad", { dy, input, output }, {
        filterSize: 3,
        strides: 2,
        pad: "same",
      } as unknown as tf.NamedAttrMap) as tf.Tensor,
    );
  },
});
cases.push({
  name: "dense training step (SGD)",
  run: async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 16,
          activation: "relu",
          inputShape: [10],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.dense({
          units: 3,
          activation: "softmax",
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    model.compile({
      optimizer: tf.train.sgd(0.1),
      loss: "categoricalCrossentropy",
    });
    const x = seeded([32, 10], 10);
    inputs.pop();
    const y = tf.tidy(() =>
      tf.oneHot(
        tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 3), "int32"),
        3,
      )
    );
    await model.fit(x, y, {
      epochs: 2,
      batchSize: 16,
      shuffle: false,
      verbose: 0,
    });
    const flat = tf.tidy(() => tf.concat(model.getWeights().map((w) => tf.reshape(w, [-1]))));
    const out = await read(flat);
    tf.dispose([x, y]);
    model.optimizer.dispose();
    model.dispose();
    return out;
  },
});

cases.push({
  name: "conv2d training step (SGD): Conv2DBackpropFilter, MaxPoolGrad",
  run: async () => {
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: 4,
          kernelSize: 3,
          padding: "same",
          activation: "relu",
          inputShape: [8, 8, 2],
          kernelInitializer: init(3),
        }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, activation: "softmax", kernelInitializer: init(4) }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.1), loss: "categoricalCrossentropy" });
    const x = seeded([16, 8, 8, 2], 11);
    const y = tf.tidy(() =>
      tf.oneHot(tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 3), "int32"), 3)
    );
    inputs.push(y);
    await model.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
    const flat = tf.tidy(() => tf.concat(model.getWeights().map((w) => tf.reshape(w, [-1]))));
    const out = await read(flat);
    model.optimizer.dispose();
    model.dispose();
    return out;
  },
});

async function runAll(): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const c of cases) {
    if (c.only !== undefined && !c.only.includes(tf.getBackend())) {
      out.push(new Float32Array());
      continue;
    }
    const before = tf.memory().numTensors;
    out.push(await c.run());
    tf.dispose(inputs.splice(0));
    assert.equal(
      tf.memory().numTensors,
      before,
      `${tf.getBackend()}: ${c.name} leaked tensors`,
    );
  }
  return out;
}

const webgpu = await webgpuBackend.probe();

/** Whether the host's BLAS opens here (as DTRAIN_BLAS asks), and why not. */
const hostBlas = (() => {
  const opened = openHostBlas(parseBlasRequest(Deno.env.get("DTRAIN_BLAS")));
  if (!("sgemm" in opened)) return { available: false, reason: opened.reason };
  opened.close();
  return { available: true, reason: "" };
})();

let oracle: Promise<Float32Array[]> | undefined;
/**
 * The CPU backend's results, computed on first use by whichever test needs
 * them (no test depends on another having run); the caller then selects
 * its own backend.
 */
function expectedOnCpu(): Promise<Float32Array[]> {
  oracle ??= selectBackend({ require: "cpu", override: "" }).then(runAll);
  return oracle;
}

/** Runs every case on the active backend and checks each against the CPU's result. */
async function matchesCpu(name: string, label: string): Promise<void> {
  const expected = await expectedOnCpu();
  await selectBackend({ require: name as BackendName, override: "" });
  assert.equal(tf.getBackend(), name);
  const before = tf.memory().numTensors;
  const actual = await runAll();
  cases.forEach((c, i) => {
    if (c.only === undefined || c.only.includes(name)) {
      assertClose(actual[i]!, expected[i]!, `${label}: ${c.name}`);
    }
  });
  assert.equal(tf.memory().numTensors, before, `${label}: tensors leaked`);
}

/** Runs `fn` with the host's BLAS routed off in this thread, then restores it. */
async function withoutBlas<T>(fn: () => Promise<T>): Promise<T> {
  const before = useHostBlas(null);
  try {
    return await fn();
  } finally {
    useHostBlas(before);
  }
}

Deno.test("cpu oracle runs the conformance cases", async () => {
  await selectBackend({ require: "cpu", override: "" });
  const before = tf.memory().numTensors;
  const out = await runAll();
  assert.equal(out.length, cases.length);
  assert.ok(out.every((o, i) => o.length > 0 || cases[i]!.only !== undefined));
  assert.equal(tf.memory().numTensors, before, "cpu: tensors leaked");
});

for (
  const name of BACKEND_NAMES.filter((n): n is Exclude<BackendName, "cpu"> => n !== "cpu")
) {
  Deno.test({
    name: `${name} backend matches the cpu backend on every conformance case`,
    ignore: name === "webgpu" && !webgpu.available,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      await expectedOnCpu();
      const report = await selectBackend({ require: name, override: "" });
      assert.equal(report.name, name);
      // wasm without the host's BLAS and without dtrain's GEMM: XNNPACK and
      // the JavaScript conv kernels (the GEMM and the BLAS have their own runs below).
      const mode = useWasmGemm("off");
      await withoutBlas(() => matchesCpu(name, name)).finally(() => useWasmGemm(mode));
    },
  });
}

Deno.test({
  name: "wasm backend with dtrain's GEMM matches the cpu backend on every conformance case",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await expectedOnCpu();
    await selectBackend({ require: "wasm", override: "" });
    const before = useWasmGemm("always");
    try {
      const calls = gemmCalls();
      await withoutBlas(() => matchesCpu("wasm", "wasm + GEMM"));
      assert.ok(gemmCalls() - calls >= 10, "the GEMM ran the matMul cases");
    } finally {
      useWasmGemm(before);
    }
  },
});

Deno.test({
  name: "wasm backend on the host's BLAS matches the cpu backend on every conformance case" +
    (hostBlas.available ? "" : ` (skipped: ${hostBlas.reason})`),
  ignore: !hostBlas.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await expectedOnCpu();
    const report = await selectBackend({ require: "wasm", override: "" });
    assert.equal(report.blas?.used, true, `the BLAS path is in use: ${report.blas?.reason}`);
    const calls = blasCalls(), gemm = gemmCalls();
    await matchesCpu("wasm", "wasm + host BLAS");
    assert.ok(blasCalls() - calls >= 60, `the BLAS ran the product cases (${blasCalls() - calls})`);
    assert.equal(gemmCalls(), gemm, "dtrain's GEMM took no product while the BLAS was on");
  },
});

Deno.test({
  name: "wasm GEMM in fresh mode multiplies a right operand once, then leaves it to XNNPACK",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await selectBackend({ require: "wasm", override: "" });
    const before = useWasmGemm("fresh");
    const blas = useHostBlas(null);
    try {
      const [a, b] = [seeded([8, 16], 30), seeded([16, 12], 31)];
      const calls = gemmCalls();
      const first = await read(tf.matMul(a, b));
      assert.equal(gemmCalls() - calls, 1, "the first product runs in the GEMM");
      const second = await read(tf.matMul(a, b));
      assert.equal(gemmCalls() - calls, 1, "the second goes to XNNPACK");
      assertClose(second, first, "XNNPACK and the GEMM agree");
      tf.dispose(inputs.splice(0));
    } finally {
      useWasmGemm(before);
      useHostBlas(blas);
    }
  },
});

Deno.test({
  name: "wasm GEMM leaves products over its 64 MiB memory cap to XNNPACK",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await selectBackend({ require: "wasm", override: "" });
    const before = useWasmGemm("always");
    const blas = useHostBlas(null);
    try {
      const [a, b] = [seeded([4100, 4096], 32), seeded([4096, 4], 33)];
      const calls = gemmCalls();
      const out = await read(tf.matMul(a, b));
      assert.equal(gemmCalls(), calls, "the kernel did not take it");
      assert.equal(out.length, 4100 * 4);
      tf.dispose(inputs.splice(0));
    } finally {
      useWasmGemm(before);
      useHostBlas(blas);
    }
  },
});
