// Predict in the HTTP service: the JSON, binary ("DTR1") and .npy forms
// against model.predict, their 400s, models with several inputs and outputs
// (the dict and list forms, their 400s and 406s), the inference Workers
// (batching, tensor and cache bookkeeping, a running job beside them, crashes
// and hangs).
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { createApp, type DtrainApp } from "../../src/server/mod.ts";
import { parseServeArgs } from "../../src/server/serve.ts";
import { PredictPool, PredictWorkerCrashedError } from "../../src/server/_predict_pool.ts";
import { ShuttingDownError } from "../../src/server/_domain_errors.ts";
import { ModelRegistry } from "../../src/server/registry.ts";
import { Store } from "../../src/server/store.ts";
import {
  assertError,
  call,
  jobBody,
  submit,
  tempApp,
  twoByTwoTopology,
  waitForJob,
} from "./_helpers.ts";

/** A 2x2-input model (flattened rows of 4 values) with 3 outputs. */
function smallModel(seed = 1): tf.Sequential {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: s });
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [2, 2] }),
      tf.layers.dense({ units: 8, activation: "relu", kernelInitializer: init(seed) }),
      tf.layers.dense({ units: 3, kernelInitializer: init(seed + 1) }),
    ],
  });
  model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
  return model;
}

const INPUTS = [
  [0, 1, 0.5, -1],
  [1, 1, 1, 1],
  [-0.25, 2, 3.5, 0.125],
  [0.3, -0.7, 0.11, 4],
  [10, -3, 0, 0.5],
];

/** Saves `model` in the app's registry; its id. */
async function saved(app: DtrainApp, model: tf.LayersModel): Promise<string> {
  return (await app.models.save(model, { jobId: null, metrics: {} })).id;
}

function local(model: tf.LayersModel, rows: number[][]): number[][] {
  return tf.tidy(() =>
    (model.predict(tf.tensor(rows.flat(), [rows.length, 2, 2])) as tf.Tensor).arraySync()
  ) as number[][];
}

function assertClose(got: number[][], want: number[][], what: string, tol = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: rows`);
  got.forEach((row, i) => {
    assert.equal(row.length, want[i]!.length, `${what}: width of row ${i}`);
    row.forEach((v, j) => {
      assert.ok(
        Math.abs(v - want[i]![j]!) <= tol,
        `${what}: [${i}][${j}] is ${v}, expected ${want[i]![j]} (within ${tol})`,
      );
    });
  });
}

/** The binary form: "DTR1", rank, dims, float32 little-endian. */
function dtr(dims: number[], values: number[], rank = dims.length): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(8 + 4 * dims.length + 4 * values.length);
  out.set([0x44, 0x54, 0x52, 0x31]);
  const view = new DataView(out.buffer);
  view.setUint32(4, rank, true);
  dims.forEach((d, i) => view.setUint32(8 + 4 * i, d, true));
  values.forEach((v, i) => view.setFloat32(8 + 4 * dims.length + 4 * i, v, true));
  return out;
}

/** A .npy file (format 1.0) of `values` with `dims`. */
function npy(
  dims: number[],
  values: number[],
  { descr = "<f4", fortran = "False" } = {},
): Uint8Array<ArrayBuffer> {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': (${
    dims.join(", ")
  },), }`;
  header = header.padEnd(Math.ceil((11 + header.length) / 64) * 64 - 11, " ") + "\n";
  const out = new Uint8Array(10 + header.length + 4 * values.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  values.forEach((v, i) => view.setFloat32(10 + header.length + 4 * i, v, true));
  return out;
}

/** Rows of a binary ("DTR1") answer, checking its header. */
function fromDtr(bytes: Uint8Array, rows: number, width: number): number[][] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x44, 0x54, 0x52, 0x31], "magic");
  assert.deepEqual([view.getUint32(4, true), view.getUint32(8, true), view.getUint32(12, true)], [
    2,
    rows,
    width,
  ]);
  assert.equal(bytes.byteLength, 16 + 4 * rows * width);
  return Array.from(
    { length: rows },
    (_, i) =>
      Array.from({ length: width }, (_, j) => view.getFloat32(16 + 4 * (i * width + j), true)),
  );
}

/** Rows of a .npy answer, checking its header. */
function fromNpy(bytes: Uint8Array, rows: number, width: number): number[][] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint16(8, true);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + length));
  assert.match(header, /'descr': '<f4'/);
  assert.match(header, /'fortran_order': False/);
  assert.match(header, new RegExp(`'shape': \\(${rows}, ${width}\\)`));
  assert.equal((10 + length) % 64, 0, "the data starts on a multiple of 64");
  const at = 10 + length;
  return Array.from(
    { length: rows },
    (_, i) =>
      Array.from({ length: width }, (_, j) => view.getFloat32(at + 4 * (i * width + j), true)),
  );
}

function post(
  app: DtrainApp,
  id: string,
  body: BodyInit,
  headers: Record<string, string>,
): Promise<Response> {
  return Promise.resolve(
    app.request(`/v1/models/${id}/predict`, { method: "POST", body, headers }),
  );
}

async function okBytes(res: Response, type: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, new TextDecoder().decode(bytes));
  assert.equal(res.headers.get("content-type"), type);
  return bytes;
}

async function okJson(res: Response): Promise<number[][]> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text).outputs;
}

const MODES: { predictWorkers: number; predictBackend?: "cpu" | "wasm" }[] = [
  { predictWorkers: 0 },
  { predictWorkers: 1 },
  { predictWorkers: 1, predictBackend: "wasm" },
];

for (const mode of MODES) {
  Deno.test(
    `POST /v1/models/:id/predict answers the JSON, binary and .npy forms like model.predict (${
      JSON.stringify(mode)
    })`,
    async () => {
      const app = await tempApp(mode);
      const model = smallModel();
      try {
        const id = await saved(app, model);
        const want = local(model, INPUTS);
        const flat = INPUTS.flat();
        const json = { "content-type": "application/json" };
        const bin = { "content-type": "application/octet-stream" };
        const BIN = "application/octet-stream";
        const NPY = "application/x-npy";

        const fromJson = await okJson(
          await post(app, id, JSON.stringify({ inputs: INPUTS }), json),
        );
        assertClose(fromJson, want, "JSON in, JSON out");
        assertClose(
          await okJson(await post(app, id, dtr([5, 4], flat), bin)),
          want,
          "binary [5, 4] in, JSON out",
        );
        assertClose(
          fromDtr(
            await okBytes(await post(app, id, dtr([5, 2, 2], flat), { ...bin, accept: BIN }), BIN),
            5,
            3,
          ),
          want,
          "binary [5, 2, 2] in, binary out",
        );
        assertClose(
          fromDtr(
            await okBytes(
              await post(app, id, JSON.stringify({ inputs: INPUTS }), {
                ...json,
                accept: `application/json;q=0.5, ${BIN}`,
              }),
              BIN,
            ),
            5,
            3,
          ),
          want,
          "JSON in, binary out (Accept ranks it first)",
        );
        assertClose(
          fromNpy(
            await okBytes(
              await post(app, id, npy([5, 4], flat), { "content-type": NPY, accept: NPY }),
              NPY,
            ),
            5,
            3,
          ),
          want,
          ".npy in, .npy out",
        );
        const one = await okJson(await post(app, id, dtr([1, 4], flat.slice(0, 4)), bin));
        assertClose(one, want.slice(0, 1), "one binary row");
        // The Workers run the backend they were told.
        const ran = app.models.pool?.stats.backend?.name ?? null;
        assert.equal(ran, mode.predictWorkers === 0 ? null : mode.predictBackend ?? "wasm");
      } finally {
        model.dispose();
        await app.dispose();
      }
    },
  );
}

Deno.test("POST /v1/models/:id/predict answers 400 naming the problem for bad binary, .npy and JSON bodies", async () => {
  const app = await tempApp({ maxBodyBytes: 4096 });
  const model = smallModel();
  try {
    const id = await saved(app, model);
    const bin = { "content-type": "application/octet-stream" };
    const npyType = { "content-type": "application/x-npy" };
    const json = { "content-type": "application/json" };
    const eight = [1, 2, 3, 4, 5, 6, 7, 8];
    const nan = [...eight];
    nan[7] = NaN;
    const cases: [string, BodyInit, Record<string, string>, number, string, string][] = [
      [
        "3 bytes",
        new Uint8Array([1, 2, 3]),
        bin,
        400,
        "invalid_request",
        'expected the magic "DTR1" and a u32 rank (8 bytes) first, received 3 bytes',
      ],
      ["no magic", new Uint8Array(24), bin, 400, "invalid_request", 'magic "DTR1"'],
      [
        "rank 1",
        dtr([4], [1, 2, 3, 4]),
        bin,
        400,
        "invalid_request",
        "binary: expected 2 to 8 dimensions [rows, ...sample], received 1",
      ],
      [
        "rank 9",
        dtr([1, 1, 1, 1, 1, 1, 1, 1, 4], [1, 2, 3, 4]),
        bin,
        400,
        "invalid_request",
        "received 9",
      ],
      [
        "cut header",
        dtr([2], [], 2),
        bin,
        400,
        "invalid_request",
        "binary: a header of rank 2 takes 16 bytes, received 12",
      ],
      [
        "zero rows",
        dtr([0, 4], []),
        bin,
        400,
        "invalid_request",
        "binary: dimension 0 must be an integer >= 1, received 0",
      ],
      [
        "3 per sample",
        dtr([2, 3], [1, 2, 3, 4, 5, 6]),
        bin,
        400,
        "shape_mismatch",
        "binary shape [2, 3] holds samples of 3 values, expected 4 (the model's input shape [2, 2])",
      ],
      [
        "7 values",
        dtr([2, 4], eight.slice(0, 7)),
        bin,
        400,
        "invalid_request",
        "binary: expected 32 bytes of float32 data after the 16-byte header (8 values), received 28",
      ],
      ["9 values", dtr([2, 4], [...eight, 9]), bin, 400, "invalid_request", "received 36"],
      [
        "NaN",
        dtr([2, 4], nan),
        bin,
        400,
        "invalid_request",
        "Invalid request body: inputs[1][3]: Invalid input: expected number, received NaN",
      ],
      [
        "npy magic",
        dtr([2, 4], eight),
        npyType,
        400,
        "invalid_request",
        'npy: expected a .npy file (magic "\\x93NUMPY")',
      ],
      [
        "npy big-endian",
        npy([2, 4], eight, { descr: ">f4" }),
        npyType,
        400,
        "invalid_request",
        "npy: expected descr '<f4' (little-endian float32), received '>f4'",
      ],
      [
        "npy float64",
        npy([2, 4], eight, { descr: "<f8" }),
        npyType,
        400,
        "invalid_request",
        "received '<f8'",
      ],
      [
        "npy fortran",
        npy([2, 4], eight, { fortran: "True" }),
        npyType,
        400,
        "invalid_request",
        "npy: expected 'fortran_order': False (C order), received True",
      ],
      [
        "npy shape",
        npy([4, 2], eight),
        npyType,
        400,
        "shape_mismatch",
        "npy shape [4, 2] holds samples of 2 values",
      ],
      [
        "npy short",
        npy([3, 4], eight),
        npyType,
        400,
        "invalid_request",
        "npy: expected 48 bytes of float32 data",
      ],
      [
        "string",
        '{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, "x", 4]]}',
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs[3][2]: Invalid input: expected number, received string",
      ],
      [
        "Infinity",
        '{"inputs": [[1, 2, 3, 4], [1, 1e999, 3, 4]]}',
        json,
        400,
        "invalid_request",
        "inputs[1][1]: Invalid input: expected number, received Infinity",
      ],
      [
        "a row",
        '{"inputs": [[1, 2, 3, 4], 5]}',
        json,
        400,
        "invalid_request",
        "inputs[1]: Invalid input: expected array, received number",
      ],
      [
        "short row",
        '{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}',
        json,
        400,
        "shape_mismatch",
        "inputs[1] has 3 values, expected 4 (the model's input shape [2, 2])",
      ],
      [
        "extra key",
        '{"inputs": [[1, 2, 3, 4]], "x": 1}',
        json,
        400,
        "invalid_request",
        'Invalid request body: (root): Unrecognized key: "x"',
      ],
      [
        "an array",
        "[[1, 2, 3, 4]]",
        json,
        400,
        "invalid_request",
        "(root): Invalid input: expected object, received array",
      ],
      ["not JSON", "{inputs", json, 400, "bad_request", "Malformed JSON in request body"],
      [
        "text",
        "1,2,3,4",
        { "content-type": "text/plain" },
        415,
        "unsupported_media_type",
        'expected "Content-Type: application/json", "application/octet-stream" or "application/x-npy", received "text/plain"',
      ],
      [
        "too big",
        dtr([300, 4], new Array(1200).fill(0)),
        bin,
        413,
        "payload_too_large",
        "expected at most 4096 bytes",
      ],
    ];
    for (const [what, body, headers, status, code, message] of cases) {
      const res = await post(app, id, body, headers);
      const text = await res.clone().text();
      assert.equal(res.status, status, `${what}: ${text}`);
      await assertError(res, status, code, message);
    }
    const detail = await assertError(
      await post(app, id, dtr([2, 3], [1, 2, 3, 4, 5, 6]), bin),
      400,
      "shape_mismatch",
      "binary shape",
    );
    assert.deepEqual(detail.error.details, { field: "shape", expected: 4, received: 3 });
    // Nothing was half-done: the model still answers.
    assertClose(
      await okJson(await post(app, id, dtr([1, 4], INPUTS[0]!), bin)),
      local(model, INPUTS.slice(0, 1)),
      "after the 400s",
    );
  } finally {
    model.dispose();
    await app.dispose();
  }
});

for (const predictWorkers of [0, 1]) {
  Deno.test(`POST /v1/models/:id/predict batches concurrent requests (predictWorkers: ${predictWorkers})`, async () => {
    const app = await tempApp({ predictWorkers });
    const model = smallModel();
    try {
      const id = await saved(app, model);
      const one = (row: number[]) =>
        call(app, "POST", `/v1/models/${id}/predict`, { inputs: [row] }).then(okJson);
      await one(INPUTS[0]!); // loads the model
      const before = app.models.stats;
      const rows = [...INPUTS, ...INPUTS, ...INPUTS];
      const together = await Promise.all(rows.map(one));
      const after = app.models.stats;
      assert.equal(after.requests - before.requests, rows.length);
      assert.ok(
        after.batches - before.batches < rows.length,
        `${after.batches - before.batches} batches for ${rows.length} requests`,
      );
      assertClose(together.map((t) => t[0]!), local(model, rows), "batched rows");
    } finally {
      model.dispose();
      await app.dispose();
    }
  });
}

// A model with two inputs and two outputs (`twoByTwoTopology`: in_a [3], in_b [2] -> out_a [1],
// out_b [3]), and a model with one input and two outputs.
const IN_A = [[0, 1, 0.5], [1, 1, 1], [-0.25, 2, 3.5], [0.3, -0.7, 0.11], [10, -3, 0]];
const IN_B = [[1, 0], [0, 1], [0.5, -2], [4, 0.125], [-1, 3]];

async function twoByTwoModel(): Promise<tf.LayersModel> {
  const model = await tf.models.modelFromJSON(twoByTwoTopology() as never);
  model.compile({ optimizer: "sgd", loss: ["meanSquaredError", "categoricalCrossentropy"] });
  return model;
}

/** `model.predict` of a model with several outputs, in process, by output name. */
function localOutputs(model: tf.LayersModel, inputs: number[][][]): Record<string, number[][]> {
  return tf.tidy(() => {
    const xs = inputs.map((rows) => tf.tensor2d(rows));
    const ys = model.predict(xs.length === 1 ? xs[0]! : xs) as tf.Tensor[];
    return Object.fromEntries(
      ys.map((y, k) => [model.outputNames[k]!, y.reshape([y.shape[0]!, -1]).arraySync()]),
    );
  }) as Record<string, number[][]>;
}

async function okOutputs(res: Response): Promise<Record<string, number[][]>> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  return JSON.parse(text).outputs;
}

function assertOutputs(
  got: Record<string, number[][]>,
  want: Record<string, number[][]>,
  what: string,
): void {
  assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: output names, in model order`);
  for (const name of Object.keys(want)) assertClose(got[name]!, want[name]!, `${what}: ${name}`);
}

for (const predictWorkers of [0, 1]) {
  Deno.test(`POST /v1/models/:id/predict answers a 2-input, 2-output model's dict and list forms like model.predict, batched, without leaking (predictWorkers: ${predictWorkers})`, async () => {
    const app = await tempApp({ predictWorkers });
    const model = await twoByTwoModel();
    try {
      const id = await saved(app, model);
      const want = localOutputs(model, [IN_A, IN_B]);
      assert.deepEqual(Object.keys(want), ["out_a", "out_b"]);
      const predict = (inputs: unknown, headers: Record<string, string> = {}) =>
        call(app, "POST", `/v1/models/${id}/predict`, { inputs }, headers);

      assertOutputs(await okOutputs(await predict({ in_a: IN_A, in_b: IN_B })), want, "dict");
      assertOutputs(
        await okOutputs(await predict({ in_b: IN_B, in_a: IN_A })),
        want,
        "dict, keys in another order",
      );
      assertOutputs(await okOutputs(await predict([IN_A, IN_B])), want, "list");
      // Accept that ranks the binary form first but allows JSON: JSON (several outputs).
      assertOutputs(
        await okOutputs(
          await predict({ in_a: IN_A, in_b: IN_B }, {
            accept: "application/json;q=0.5, application/octet-stream",
          }),
        ),
        want,
        "JSON allowed by Accept",
      );

      // Concurrent one-row requests of both forms run in fewer batches, each row its own answer.
      const before = app.models.stats;
      const answers = await Promise.all(
        IN_A.map((a, i) =>
          predict(i % 2 === 0 ? { in_a: [a], in_b: [IN_B[i]!] } : [[a], [IN_B[i]!]]).then(
            okOutputs,
          )
        ),
      );
      const after = app.models.stats;
      assert.equal(after.requests - before.requests, IN_A.length);
      assert.ok(
        after.batches - before.batches < IN_A.length,
        `${after.batches - before.batches} batches for ${IN_A.length} requests`,
      );
      answers.forEach((got, i) => {
        assertOutputs(got, { out_a: [want.out_a![i]!], out_b: [want.out_b![i]!] }, `row ${i}`);
      });

      // No tensor left behind: on this thread, or in the inference Worker.
      const tensors = async () =>
        predictWorkers === 0
          ? tf.memory().numTensors
          : (await app.models.pool!.workerStats())[0]!.tensors;
      const warm = await tensors();
      for (let i = 0; i < 3; i++) await okOutputs(await predict([IN_A, IN_B]));
      await Promise.all(IN_A.map((a, i) => predict({ in_a: [a], in_b: [IN_B[i]!] })));
      assert.equal(await tensors(), warm, "predict leaked tensors");
    } finally {
      model.dispose();
      await app.dispose();
    }
  });
}

Deno.test("POST /v1/models/:id/predict takes the binary form for a 1-input, 2-output model and answers rows by output name", async () => {
  const app = await tempApp({ predictWorkers: 0 });
  const input = tf.input({ shape: [2, 2], name: "image" });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.model({
    inputs: input,
    outputs: [
      tf.layers.dense({ units: 2, kernelInitializer: init(4), name: "score" }).apply(flat),
      tf.layers.dense({ units: 1, kernelInitializer: init(5), name: "size" }).apply(flat),
    ] as tf.SymbolicTensor[],
  });
  try {
    const id = await saved(app, model);
    const want = tf.tidy(() => {
      const ys = model.predict(tf.tensor(INPUTS.flat(), [5, 2, 2])) as tf.Tensor[];
      return { score: ys[0]!.arraySync(), size: ys[1]!.arraySync() };
    }) as Record<string, number[][]>;
    assertOutputs(
      await okOutputs(
        await post(app, id, dtr([5, 2, 2], INPUTS.flat()), {
          "content-type": "application/octet-stream",
        }),
      ),
      want,
      "binary in, JSON dict out",
    );
    assertOutputs(
      await okOutputs(await call(app, "POST", `/v1/models/${id}/predict`, { inputs: INPUTS })),
      want,
      "rows in, JSON dict out",
    );
    assertOutputs(
      await okOutputs(
        await call(app, "POST", `/v1/models/${id}/predict`, { inputs: { image: INPUTS } }),
      ),
      want,
      "a dict of one input",
    );
  } finally {
    model.dispose();
    await app.dispose();
  }
});

Deno.test("POST /v1/models/:id/predict answers 400 naming the field, expected and received, for a bad body of a 2-input, 2-output model, before a Worker is asked", async () => {
  const app = await tempApp({ predictWorkers: 1 });
  const model = await twoByTwoModel();
  try {
    const id = await saved(app, model);
    const json = { "content-type": "application/json" };
    const body = (inputs: unknown) => JSON.stringify({ inputs });
    const shortB = [[1, 0], [1], [0, 0], [1, 1], [2, 2]];
    const cases: [string, BodyInit, Record<string, string>, number, string, string][] = [
      [
        "a missing input",
        body({ in_a: IN_A }),
        json,
        400,
        "invalid_request",
        'Invalid request body: inputs.in_b: expected the rows of every input of the model ("in_a", ' +
        '"in_b"), received none for "in_b"',
      ],
      [
        "an unknown input",
        body({ in_a: IN_A, in_b: IN_B, in_c: [[1]] }),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs.in_c: not an input of the model: expected the input names " +
        '"in_a", "in_b"',
      ],
      [
        "a list of one entry",
        body([IN_A]),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs: expected 2 entries, one list of rows per model input " +
        '("in_a", "in_b") in model.inputs order, received 1',
      ],
      [
        "a list of three entries",
        body([IN_A, IN_B, IN_B]),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs: expected 2 entries, one list of rows per model input " +
        '("in_a", "in_b") in model.inputs order, received 3',
      ],
      [
        "rows",
        body(IN_A),
        json,
        400,
        "invalid_request",
        'Invalid request body: inputs: the model has 2 inputs ("in_a", "in_b"): expected a dict ' +
        "of rows by input name, or a list of 2 lists of rows in model.inputs order, received rows",
      ],
      [
        "a number",
        body(3),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs: Invalid input: expected object or array, received number",
      ],
      [
        "row counts that differ (dict)",
        body({ in_a: IN_A, in_b: IN_B.slice(1) }),
        json,
        400,
        "shape_mismatch",
        "inputs.in_a and inputs.in_b must have the same number of rows, received 5 and 4",
      ],
      [
        "row counts that differ (list)",
        body([IN_A.slice(0, 2), IN_B]),
        json,
        400,
        "shape_mismatch",
        "inputs[0] and inputs[1] must have the same number of rows, received 2 and 5",
      ],
      [
        "a short row (dict)",
        body({ in_a: IN_A, in_b: shortB }),
        json,
        400,
        "shape_mismatch",
        'inputs.in_b[1] has 1 values, expected 2 (input "in_b"\'s shape [2])',
      ],
      [
        "a long row (list)",
        body([[...IN_A.slice(0, 4), [1, 2, 3, 4]], IN_B]),
        json,
        400,
        "shape_mismatch",
        'inputs[0][4] has 4 values, expected 3 (input "in_a"\'s shape [3])',
      ],
      [
        "Infinity (dict)",
        '{"inputs": {"in_a": [[1, 2, 3], [1, 1e999, 3]], "in_b": [[1, 2], [3, 4]]}}',
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs.in_a[1][1]: Invalid input: expected number, received Infinity",
      ],
      [
        "a string (list)",
        '{"inputs": [[[1, 2, 3], [1, 2, 3]], [[1, 2], ["x", 4]]]}',
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs[1][1][0]: Invalid input: expected number, received string",
      ],
      [
        "a row that is a number",
        body({ in_a: [[1, 2, 3], 5], in_b: [[1, 2], [3, 4]] }),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs.in_a[1]: Invalid input: expected array, received number",
      ],
      [
        "an input that is a number",
        body({ in_a: 5, in_b: IN_B }),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs.in_a: Invalid input: expected array, received number",
      ],
      [
        "no rows",
        body({ in_a: [], in_b: [] }),
        json,
        400,
        "invalid_request",
        "Invalid request body: inputs.in_a: Too small: expected array to have >=1 items, " +
        "received an array of 0",
      ],
      [
        "the binary form",
        dtr([5, 3], IN_A.flat()),
        { "content-type": "application/octet-stream" },
        400,
        "invalid_request",
        'Invalid request body: binary: the model has 2 inputs ("in_a", "in_b") and the binary ' +
        'form carries one: send JSON {"inputs": {"in_a": [[...], ...], "in_b": [[...], ...]}}, ' +
        "a dict of rows by input name",
      ],
      [
        "the .npy form",
        npy([5, 3], IN_A.flat()),
        { "content-type": "application/x-npy" },
        400,
        "invalid_request",
        'Invalid request body: npy: the model has 2 inputs ("in_a", "in_b") and the npy form ' +
        'carries one: send JSON {"inputs": {"in_a": [[...], ...], "in_b": [[...], ...]}}, a ' +
        "dict of rows by input name",
      ],
      [
        "a binary answer only",
        body({ in_a: IN_A, in_b: IN_B }),
        { ...json, accept: "application/octet-stream" },
        406,
        "not_acceptable",
        `Not acceptable: model ${id} has 2 outputs ("out_a", "out_b") and the binary and .npy ` +
        "answers carry one: expected an Accept that allows application/json (the answer is " +
        '{"outputs": {...}}, rows by output name), received "application/octet-stream"',
      ],
      [
        "a .npy answer, JSON refused",
        body({ in_a: IN_A, in_b: IN_B }),
        { ...json, accept: "application/x-npy, application/json;q=0" },
        406,
        "not_acceptable",
        'received "application/x-npy, application/json;q=0"',
      ],
    ];
    for (const [what, payload, headers, status, code, message] of cases) {
      const res = await post(app, id, payload, headers);
      const text = await res.clone().text();
      assert.equal(res.status, status, `${what}: ${text}`);
      const got = await assertError(res, status, code, message);
      if (what !== "a .npy answer, JSON refused") {
        assert.equal(got.error.message, message, what);
      }
    }
    const detail = await assertError(
      await post(app, id, body({ in_a: IN_A, in_b: shortB }), json),
      400,
      "shape_mismatch",
      "inputs.in_b[1]",
    );
    assert.deepEqual(detail.error.details, { field: "inputs.in_b[1]", expected: 2, received: 1 });
    const pool = app.models.pool!;
    assert.deepEqual([pool.stats.batches, pool.stats.running], [0, 0], "no Worker was asked");
    // Nothing was half-done: the model answers.
    assertOutputs(
      await okOutputs(await post(app, id, body({ in_a: IN_A, in_b: IN_B }), json)),
      localOutputs(model, [IN_A, IN_B]),
      "after the 400s",
    );
    assert.equal(pool.stats.batches, 1);
  } finally {
    model.dispose();
    await app.dispose();
  }
});

Deno.test("inference Workers keep their tensors flat, at most modelCacheSize models, and drop deleted ones", async () => {
  const app = await tempApp({ predictWorkers: 1, modelCacheSize: 1 });
  const a = smallModel(1);
  const b = smallModel(5);
  try {
    const ida = await saved(app, a);
    const idb = await saved(app, b);
    const predict = (id: string, rows = INPUTS) =>
      call(app, "POST", `/v1/models/${id}/predict`, { inputs: rows }).then(okJson);
    await predict(ida);
    const pool = app.models.pool!;
    const [warm] = await pool.workerStats();
    assert.deepEqual(warm!.loaded, [ida]);
    for (let i = 0; i < 5; i++) await predict(ida);
    await Promise.all(INPUTS.map((r) => predict(ida, [r])));
    assert.equal((await pool.workerStats())[0]!.tensors, warm!.tensors, "predict leaked tensors");

    assertClose(await predict(idb), local(b, INPUTS), "model b");
    const [afterB] = await pool.workerStats();
    assert.deepEqual(afterB!.loaded, [idb], "a was evicted from the Worker");
    assert.equal(app.models.stats.loaded, 1);

    assert.equal((await call(app, "DELETE", `/v1/models/${idb}`)).status, 204);
    const [afterDelete] = await pool.workerStats();
    assert.deepEqual(afterDelete!.loaded, [], "the deleted model left the Worker");
    assert.equal(afterDelete!.tensors, warm!.tensors - 4, "its 4 weights were disposed");
    assertClose(await predict(ida), local(a, INPUTS), "a reloads from disk");
  } finally {
    a.dispose();
    b.dispose();
    await app.dispose();
  }
});

Deno.test("POST /v1/models/:id/predict answers 200 to every request while a job trains", async () => {
  const app = await tempApp({ predictWorkers: 1, predictBackend: "wasm" });
  const model = smallModel();
  try {
    const id = await saved(app, model);
    const want = local(model, INPUTS);
    const job = await submit(app, jobBody({ fit: { epochs: 10_000, batchSize: 16, seed: 3 } }));
    await waitForJob(
      app,
      job,
      (j) => j.status === "running" && (j.progress as { step: number }).step > 0,
    );
    const statuses: number[] = [];
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(
        Array.from(
          { length: 10 },
          () =>
            call(app, "POST", `/v1/models/${id}/predict`, { inputs: INPUTS }).then(async (res) => {
              statuses.push(res.status);
              return res.status === 200 ? (await res.json()).outputs : null;
            }),
        ),
      );
      for (const a of answers) if (a !== null) assertClose(a, want, "while training");
    }
    assert.deepEqual(statuses, new Array(50).fill(200));
    const during = await (await call(app, "GET", `/v1/jobs/${job}`)).json();
    assert.equal(during.status, "running", "the job ran all along");
    assert.ok((await call(app, "DELETE", `/v1/jobs/${job}`)).status < 300);
  } finally {
    model.dispose();
    await app.dispose();
  }
});

Deno.test("a crashed inference Worker answers 503 for its batch, then a new Worker serves", async () => {
  const app = await tempApp({ predictWorkers: 1 });
  const model = smallModel();
  try {
    const id = await saved(app, model);
    const predict = () => call(app, "POST", `/v1/models/${id}/predict`, { inputs: INPUTS });
    const before = await okJson(await predict());
    const pool = app.models.pool!;
    await pool.injectFault(0, "crash");
    const res = await predict();
    assert.equal(res.headers.get("retry-after"), "1");
    await assertError(
      res,
      503,
      "predict_worker_crashed",
      /^Inference worker 0 crashed: .*injected fault.*answered 503 and a new Worker replaces it/,
    );
    assert.deepEqual(await okJson(await predict()), before, "the replacement answers the same");
    assert.equal(pool.stats.restarts, 1);
    assert.equal(pool.stats.running, 1);
  } finally {
    model.dispose();
    await app.dispose();
  }
});

Deno.test("PredictPool declares a hung or silently exited Worker dead after timeoutMs, and close() answers a stuck batch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtrain-predict-" });
  const store = new Store(await Deno.openKv(":memory:"));
  const model = smallModel();
  const pool = new PredictPool({ workers: 1, backend: "cpu", timeoutMs: 1500 });
  const stuck = new PredictPool({ workers: 1, backend: "cpu", timeoutMs: 60_000 });
  try {
    const registry = new ModelRegistry({ dir, store, pool });
    const id = (await registry.save(model, { jobId: null, metrics: {} })).id;
    const x = new Float32Array(INPUTS.flat());
    const want = (await registry.predictRows(id, x, 5)).data;
    for (const kind of ["hang", "exit"] as const) {
      await pool.injectFault(0, kind);
      await assert.rejects(() => registry.predictRows(id, x, 5), (e: unknown) => {
        assert.ok(e instanceof PredictWorkerCrashedError, String(e));
        assert.match(e.message, /no answer to a batch of 5 rows within 1500 ms/);
        return true;
      });
      assert.deepEqual((await registry.predictRows(id, x, 5)).data, want, `after ${kind}`);
    }
    assert.equal(pool.stats.restarts, 2);

    // A batch whose Worker hangs is answered when the pool closes, not left waiting.
    const other = new ModelRegistry({ dir, store, pool: stuck });
    await other.predictRows(id, x, 5);
    await stuck.injectFault(0, "hang");
    const pending = assert.rejects(() => other.predictRows(id, x, 5), ShuttingDownError);
    await new Promise((r) => setTimeout(r, 50)); // the batch reaches the Worker
    await stuck.close();
    await pending;
  } finally {
    await pool.close();
    await stuck.close();
    model.dispose();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createApp() and serve.ts take predictWorkers and predictBackend, and the docs list the body forms", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    await assert.rejects(() => createApp({ dataDir, predictWorkers: -1 }), {
      name: "RangeError",
      message: "predictWorkers must be an integer >= 0, received -1",
    });
    await assert.rejects(() => createApp({ dataDir, predictWorkers: 1.5 }), {
      name: "RangeError",
      message: "predictWorkers must be an integer >= 0, received 1.5",
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
  const o = parseServeArgs(["--predict-workers", "0", "--predict-backend", "wasm"]);
  assert.equal(o.predictWorkers, 0);
  assert.equal(o.predictBackend, "wasm");
  assert.throws(() => parseServeArgs(["--predict-backend", "gpu"]), {
    name: "TypeError",
    message: '--predict-backend must be cpu or wasm, received "gpu"',
  });
  assert.throws(() => parseServeArgs(["--predict-workers", "two"]), {
    name: "RangeError",
    message: '--predict-workers must be an integer >= 0, received "two"',
  });

  const app = await tempApp();
  try {
    const spec = await (await call(app, "GET", "/openapi.json")).json();
    const route = spec.paths["/v1/models/{id}/predict"].post;
    const forms = ["application/json", "application/octet-stream", "application/x-npy"];
    assert.deepEqual(Object.keys(route.requestBody.content), forms);
    assert.deepEqual(Object.keys(route.responses["200"].content), forms);
    assert.equal(
      route.requestBody.content["application/json"].schema.$ref,
      "#/components/schemas/PredictRequest",
    );
    assert.ok(route.responses["503"], "a crashed Worker's 503 is documented");
    assert.match(route.description, /"DTR1"/);
  } finally {
    await app.dispose();
  }
});
