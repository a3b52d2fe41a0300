import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { createApp } from "../../src/server/mod.ts";
import {
  assertError,
  call,
  jobBody,
  regression,
  tempApp,
  TOKEN,
  twoByTwoData,
  twoByTwoTopology,
} from "./_helpers.ts";

const { x, y } = regression(8);
const two = twoByTwoData(8);
/** A two-input, two-output topology job: `over` replaces `data`, `fit` or `compile` fields. */
function twoByTwo(
  over: { x?: unknown; y?: unknown; fit?: Record<string, unknown>; compile?: unknown } = {},
) {
  return jobBody({
    model: twoByTwoTopology(),
    // An optimizer with a learning rate: a refused job must free its state too.
    compile: over.compile ?? {
      optimizer: { name: "adam", learningRate: 0.01 },
      loss: { out_a: "meanSquaredError", out_b: "categoricalCrossentropy" },
    },
    data: { x: over.x ?? two.x, y: over.y ?? two.y },
    fit: { batchSize: 4, ...over.fit },
  });
}
const SPARSE = tf.sequential({
  layers: [tf.layers.dense({ units: 3, activation: "softmax", inputShape: [4] })],
});
const sparseTopology = SPARSE.toJSON(null, false);
SPARSE.dispose();
function topology(inputShape: number[]): Record<string, unknown> {
  const m = tf.sequential({
    layers: inputShape.length > 1
      ? [tf.layers.flatten({ inputShape }), tf.layers.dense({ units: 1 })]
      : [tf.layers.dense({ units: 1, inputShape })],
  });
  const json = m.toJSON(null, false);
  m.dispose();
  return json as unknown as Record<string, unknown>;
}

/** [what, body, code, message fragment]: every row must answer 400. */
const MALFORMED: [string, unknown, string, string | RegExp][] = [
  ["a missing model", { ...jobBody(), model: undefined }, "invalid_request", "model: "],
  ["a missing compile.loss", jobBody({ compile: {} }), "invalid_request", "compile.loss"],
  [
    "an unknown loss",
    jobBody({ compile: { loss: "nope" } }),
    "invalid_request",
    /compile\.loss: Invalid option: expected one of .*received "nope"/,
  ],
  [
    "an unknown metric",
    jobBody({ compile: { loss: "meanSquaredError", metrics: ["f1"] } }),
    "invalid_request",
    "compile.metrics[0]",
  ],
  [
    "a negative learning rate",
    jobBody({ compile: { loss: "hinge", optimizer: { name: "sgd", learningRate: -1 } } }),
    "invalid_request",
    "compile.optimizer.learningRate: Too small: expected number to be >0, received -1",
  ],
  [
    "zero epochs",
    jobBody({ fit: { epochs: 0 } }),
    "invalid_request",
    "fit.epochs: Too small: expected number to be >=1, received 0",
  ],
  [
    "epochs as a string",
    jobBody({ fit: { epochs: "3" } }),
    "invalid_request",
    "fit.epochs: Invalid input: expected number, received string",
  ],
  [
    "fractional epochs",
    jobBody({ fit: { epochs: 1.5 } }),
    "invalid_request",
    "fit.epochs: Invalid input: expected int, received number",
  ],
  [
    "a misspelt fit option",
    jobBody({ fit: { epoch: 3 } }),
    "invalid_request",
    'fit: Unrecognized key: "epoch"',
  ],
  [
    "validationSplit 1",
    jobBody({ fit: { validationSplit: 1 } }),
    "invalid_request",
    "fit.validationSplit: Too big: expected number to be <1, received 1",
  ],
  [
    "an unknown preset",
    jobBody({ model: { preset: "resnet" } }),
    "invalid_request",
    `model.preset: Invalid discriminator value. Expected 'mlp' | 'cnn', received "resnet"`,
  ],
  [
    "a cnn with three filter sizes",
    jobBody({ model: { preset: "cnn", filters: [8, 16, 32] } }),
    "invalid_request",
    "model.filters: Too big: expected array to have exactly 2 items, received an array of 3",
  ],
  [
    "a topology with a numeric class_name",
    jobBody({ model: { class_name: 1, config: {} } }),
    "invalid_request",
    "model.class_name: Invalid input: expected string, received number",
  ],
  [
    "hidden as a string",
    jobBody({ model: { preset: "mlp", hidden: "256" } }),
    "invalid_request",
    "model.hidden: Invalid input: expected array, received string",
  ],
  [
    "a topology without config",
    jobBody({ model: { class_name: "Sequential" } }),
    "invalid_request",
    "model.config",
  ],
  [
    "a non-number in x",
    jobBody({ data: { x: [[1, "a"]], y: [[1]] } }),
    "invalid_request",
    "data.x[0][1]: Invalid input: expected number, received string",
  ],
  [
    "empty x",
    jobBody({ data: { x: [], y: [] } }),
    "invalid_request",
    "data.x: Too small: expected array to have >=1 items, received an array of 0",
  ],
  [
    "an unknown dataset",
    jobBody({ data: { dataset: "cifar10" } }),
    "invalid_request",
    /data\.dataset: Invalid option: expected one of "mnist"\|"fashion-mnist", received "cifar10"/,
  ],
  [
    "an unknown strategy kind",
    jobBody({ strategy: { kind: "ring" } }),
    "invalid_request",
    "strategy.kind",
  ],
  [
    "a mirrored option on a worker strategy",
    jobBody({ strategy: { kind: "worker", replicas: 2 } }),
    "invalid_request",
    'Unrecognized key: "replicas"',
  ],
  ["backend tpu", jobBody({ strategy: { backend: "tpu" } }), "invalid_request", "strategy.backend"],
  ["zero replicas", jobBody({ strategy: { replicas: 0 } }), "invalid_request", "strategy.replicas"],
  ["a top-level typo", { ...jobBody(), fitt: {} }, "invalid_request", 'Unrecognized key: "fitt"'],
  [
    "an array body",
    [jobBody()],
    "invalid_request",
    "(root): Invalid input: expected object, received array",
  ],
  // Checked against the model, before anything is queued.
  [
    "x and y of different lengths",
    jobBody({ data: { x, y: y.slice(1) } }),
    "shape_mismatch",
    "x and y must have the same number of samples, received 8 and 7",
  ],
  [
    "a row of the wrong width",
    jobBody({ data: { x: [...x.slice(0, 3), [1, 2, 3]], y: y.slice(0, 4) } }),
    "shape_mismatch",
    "data.x[3] has 3 values, expected 4",
  ],
  [
    "rows that do not fit a topology",
    jobBody({ model: topology([3, 2]), data: { x, y } }),
    "shape_mismatch",
    "data.x[0] has 4 values, expected 6 (the model's per-sample shape [3, 2])",
  ],
  [
    "a topology with an unknown layer",
    jobBody({
      model: { class_name: "Sequential", config: { layers: [{ class_name: "Nope", config: {} }] } },
    }),
    "invalid_model",
    "fails to build",
  ],
  [
    "batchSize below replicas",
    jobBody({ fit: { batchSize: 1 }, strategy: { replicas: 2, backend: "cpu" } }),
    "invalid_request",
    "fit.batchSize: cannot shard a batch of 1 across 2 replicas",
  ],
  [
    "more replicas than the server allows",
    jobBody({ strategy: { replicas: 64, backend: "cpu" } }),
    "invalid_request",
    "strategy.replicas: this server runs at most 2 replicas per job, received 64",
  ],
  [
    "a validation split that leaves nothing",
    jobBody({
      data: { x: x.slice(0, 1), y: y.slice(0, 1) },
      fit: { validationSplit: 0.5, batchSize: 1 },
    }),
    "invalid_request",
    "leaves no training sample",
  ],
  [
    "an mnist limit above its size",
    jobBody({ data: { dataset: "mnist", limit: 20000 } }),
    "invalid_request",
    "mnist has 10000 training examples, received limit 20000",
  ],
  [
    "a dataset the model does not fit",
    jobBody({ model: topology([3]), data: { dataset: "mnist", limit: 10 } }),
    "shape_mismatch",
    "mnist has 784 inputs and 10 one-hot outputs",
  ],
  // Several inputs and outputs: dicts of rows by layer name, checked against the model.
  [
    "a non-number in a dict entry",
    twoByTwo({ x: { ...two.x, in_b: [[1, "a"]] } }),
    "invalid_request",
    "data.x.in_b[0][1]: Invalid input: expected number, received string",
  ],
  [
    "an empty dict",
    twoByTwo({ x: {} }),
    "invalid_request",
    "data.x: expected rows, or a dict of rows by input layer name, received an empty dict",
  ],
  [
    "rows for a model with two inputs",
    twoByTwo({ x: two.x.in_a }),
    "shape_mismatch",
    'data.x: the model has 2 inputs ("in_a", "in_b"): send data.x as a dict of rows by input ' +
    "name, received rows",
  ],
  [
    "rows for a model with two outputs",
    twoByTwo({ y: two.y.out_b }),
    "shape_mismatch",
    'data.y: the model has 2 outputs ("out_a", "out_b"): send data.y as a dict of rows by ' +
    "output name, received rows",
  ],
  [
    "an input missing from the dict",
    twoByTwo({ x: { in_a: two.x.in_a } }),
    "invalid_request",
    'data.x has no entry for input "in_b": expected one per input name ("in_a", "in_b")',
  ],
  [
    "an unknown input name",
    twoByTwo({ x: { ...two.x, in_c: two.x.in_a } }),
    "invalid_request",
    'data.x has an entry "in_c", which is not an input of the model: expected the input ' +
    'names "in_a", "in_b"',
  ],
  [
    "an unknown output name",
    twoByTwo({ y: { ...two.y, out: two.y.out_a } }),
    "invalid_request",
    'data.y has an entry "out", which is not an output of the model: expected the output ' +
    'names "out_a", "out_b"',
  ],
  [
    "a row of the wrong width in a dict",
    twoByTwo({ x: { ...two.x, in_a: two.x.in_a.map((r, i) => (i === 3 ? [...r, 0, 0] : r)) } }),
    "shape_mismatch",
    `data.x.in_a[3] has 5 values, expected 3 (input "in_a"'s per-sample shape [3])`,
  ],
  [
    "a target row of the wrong width in a dict",
    twoByTwo({ y: { ...two.y, out_b: two.y.out_b.map((r, i) => (i === 2 ? [1] : r)) } }),
    "shape_mismatch",
    `data.y.out_b[2] has 1 values, expected 3 (output "out_b"'s per-sample shape [3])`,
  ],
  [
    "inputs with different sample counts",
    twoByTwo({ x: { ...two.x, in_b: two.x.in_b.slice(1) } }),
    "shape_mismatch",
    "data: x.in_a and x.in_b must have the same number of samples, received 8 and 7",
  ],
  [
    "an output with another sample count than the inputs",
    twoByTwo({ y: { ...two.y, out_b: two.y.out_b.slice(2) } }),
    "shape_mismatch",
    "data: x.in_a and y.out_b must have the same number of samples, received 8 and 6",
  ],
  [
    "a dict with a preset",
    jobBody({ data: { x: { in_a: x }, y } }),
    "invalid_request",
    'data.x: model.preset "mlp" builds a model with one input and one output and takes rows; ' +
    "a dict of rows by layer name is for a topology model (model.toJSON(null, false)) with " +
    "several inputs or outputs",
  ],
  [
    "a dict of losses with a preset",
    jobBody({ compile: { loss: { out: "meanSquaredError" } } }),
    "invalid_compile",
    'compile.loss: model.preset "mlp" builds a model with one input and one output: expected ' +
    'one loss name, received {"out":"meanSquaredError"}',
  ],
  [
    "a dataset with a model of two inputs and two outputs",
    jobBody({ model: twoByTwoTopology(), data: { dataset: "mnist", limit: 10 } }),
    "invalid_model",
    "data.dataset: a dataset holds samples of one input and one output, received a model " +
    'with 2 inputs ("in_a", "in_b") and 2 outputs ("out_a", "out_b"): send its samples ' +
    "inline, as data.x and data.y dicts of rows by layer name",
  ],
  [
    "inline dicts beside data.dataset",
    jobBody({ model: twoByTwoTopology(), data: { dataset: "mnist", x: two.x } }),
    "invalid_request",
    'Invalid request body: data: Unrecognized key: "x"',
  ],
  [
    "a list of losses of the wrong length",
    twoByTwo({ compile: { loss: ["meanSquaredError"] } }),
    "invalid_compile",
    'compile.loss has 1 losses, expected 2: one per model output ("out_a", "out_b"), in ' +
    "model.outputs order",
  ],
  [
    "a loss for an unknown output",
    twoByTwo({ compile: { loss: { out_a: "meanSquaredError", out_c: "hinge" } } }),
    "invalid_compile",
    'compile.loss names "out_c", which is not an output of the model: expected the output ' +
    'names "out_a", "out_b"',
  ],
  [
    "a dict of losses missing an output",
    twoByTwo({ compile: { loss: { out_a: "meanSquaredError" } } }),
    "invalid_compile",
    'compile.loss has no loss for output "out_b": expected one per output name ("out_a", ' +
    '"out_b")',
  ],
  [
    "metrics for an unknown output",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: { out_a: ["mae"], out_c: [] } } }),
    "invalid_compile",
    'compile.metrics names "out_c", which is not an output of the model: expected the output ' +
    'names "out_a", "out_b"',
  ],
  [
    "a list of metric lists of the wrong length",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: [["mae"]] } }),
    "invalid_compile",
    'compile.metrics has 1 lists, expected 2: one list of metric names per model output ("out_a", ' +
    '"out_b"), in model.outputs order',
  ],
  [
    "metric names mixed with lists",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: ["mae", ["mse"]] } }),
    "invalid_compile",
    "compile.metrics: expected a list of metric names (every output) or a list of lists of them " +
    '(one per output), received a list that mixes both (compile.metrics[0] is "mae")',
  ],
  [
    "an unknown metric in a dict by output name",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: { out_b: ["accuracy", "f1"] } } }),
    "invalid_request",
    /^Invalid request body: compile\.metrics\.out_b\[1\]: Invalid option: expected one of .*received "f1"$/,
  ],
  [
    "an unknown metric in a list of lists",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: [["mae"], ["f1"]] } }),
    "invalid_request",
    /^Invalid request body: compile\.metrics\[1\]\[0\]: Invalid option: expected one of .*received "f1"$/,
  ],
  [
    "an unknown metric name for every output",
    twoByTwo({ compile: { loss: "meanSquaredError", metrics: ["mae", "f1"] } }),
    "invalid_request",
    /^Invalid request body: compile\.metrics\[1\]: Invalid option: expected one of .*received "f1"$/,
  ],
  [
    "more than 8 metric names",
    jobBody({ compile: { loss: "meanSquaredError", metrics: new Array(9).fill("mae") } }),
    "invalid_compile",
    "compile.metrics has 9 metric names, expected at most 8",
  ],
  [
    "a dict of metrics with a preset",
    jobBody({ compile: { loss: "meanSquaredError", metrics: { out: ["mae"] } } }),
    "invalid_compile",
    'compile.metrics: model.preset "mlp" builds a model with one input and one output: ' +
    'expected a list of metric names, received {"out":["mae"]}',
  ],
  [
    "lossWeights of the wrong length",
    twoByTwo({ fit: { lossWeights: [1, 2, 3] } }),
    "invalid_request",
    'fit.lossWeights has 3 entries, expected 2: one per model output ("out_a", "out_b"), in ' +
    "model.outputs order",
  ],
  [
    "lossWeights for an unknown output",
    twoByTwo({ fit: { lossWeights: { out_c: 2 } } }),
    "invalid_request",
    'fit.lossWeights names "out_c", which is not an output of the model: expected the ' +
    'output names "out_a", "out_b"',
  ],
  [
    "a lossWeights value that is not a number",
    twoByTwo({ fit: { lossWeights: { out_a: "2" } } }),
    "invalid_request",
    "fit.lossWeights.out_a: Invalid input: expected number, received string",
  ],
  [
    "one classWeight map for two outputs",
    twoByTwo({ fit: { classWeight: { "0": 1, "1": 2, "2": 1 } } }),
    "invalid_request",
    'fit.classWeight: the model has 2 outputs ("out_a", "out_b"): send a list of 2 ' +
    "class-weight maps or a dict of them by output name, received one map",
  ],
  [
    "a classWeight list of the wrong length",
    twoByTwo({ fit: { classWeight: [null] } }),
    "invalid_request",
    'fit.classWeight has 1 entries, expected 2: one class-weight map per model output ("out_a", ' +
    '"out_b"), in model.outputs order (null: not weighted)',
  ],
  [
    "classWeight for an unknown output",
    twoByTwo({ fit: { classWeight: { out_c: { "0": 1 } } } }),
    "invalid_request",
    'fit.classWeight names "out_c", which is not an output of the model: expected the output ' +
    'names "out_a", "out_b"',
  ],
  [
    "a classWeight class the output does not have",
    twoByTwo({ fit: { classWeight: { out_b: { "0": 1, "1": 1, "2": 1, "3": 1 } } } }),
    "invalid_request",
    'fit.classWeight.out_b has a weight for class "3", which is not a class of output "out_b": ' +
    "expected integer class indices in [0, 3)",
  ],
  [
    "a classWeight without a class of the labels",
    twoByTwo({ fit: { classWeight: [null, { "0": 1, "1": 2 }] } }),
    "invalid_request",
    "fit.classWeight[1] has no weight for class 2 (data.y.out_b[2]): classWeight must weigh " +
    "every class in the labels, as model.fit requires",
  ],
  [
    "a negative class weight",
    twoByTwo({ fit: { classWeight: { out_b: { "0": -1 } } } }),
    "invalid_request",
    "fit.classWeight.out_b.0: Too small: expected number to be >=0, received -1",
  ],
  [
    "sparse labels that are not class indices",
    jobBody({
      model: sparseTopology,
      compile: { loss: "sparseCategoricalCrossentropy" },
      data: { x, y: x.map((_, i) => [i === 5 ? 3 : i % 3]) },
    }),
    "shape_mismatch",
    "data.y[5] is [3]: a sparseCategoricalCrossentropy label is a class index, an integer in " +
    "[0, 3)",
  ],
  [
    "one-hot targets for the sparse loss",
    jobBody({
      model: sparseTopology,
      compile: { loss: "sparseCategoricalCrossentropy" },
      data: { x, y: x.map(() => [1, 0, 0]) },
    }),
    "shape_mismatch",
    "data.y[0] has 3 values, expected 1 (a class index per sample for " +
    "sparseCategoricalCrossentropy, the model's 3 classes)",
  ],
];

Deno.test("POST /v1/jobs answers 400 naming the field for every malformed body", async () => {
  const app = await tempApp();
  try {
    const before = tf.memory().numTensors;
    for (const [what, body, code, message] of MALFORMED) {
      const res = await call(app, "POST", "/v1/jobs", body);
      try {
        await assertError(res, 400, code, message);
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      }
    }
    // Models built to check the shapes are disposed again.
    assert.equal(tf.memory().numTensors, before);
    const list = await (await call(app, "GET", "/v1/jobs")).json();
    assert.equal(list.jobs.length, 0, "nothing was queued");
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs lists every issue in details when several fields are wrong", async () => {
  const app = await tempApp();
  try {
    const res = await call(app, "POST", "/v1/jobs", jobBody({ fit: { epochs: 0, batchSize: 0 } }));
    const body = await assertError(res, 400, "invalid_request", "(and 1 more)");
    const details = body.error.details as { target: string; issues: { path: string }[] };
    assert.equal(details.target, "body");
    assert.deepEqual(details.issues.map((i) => i.path), ["fit.epochs", "fit.batchSize"]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs answers 400 for malformed JSON and 415 for another media type", async () => {
  const app = await tempApp();
  try {
    await assertError(
      await call(app, "POST", "/v1/jobs", "{not json"),
      400,
      "bad_request",
      "Malformed JSON in request body",
    );
    await assertError(
      await call(app, "POST", "/v1/jobs", "model=1", { "content-type": "text/plain" }),
      415,
      "unsupported_media_type",
      'expected "Content-Type: application/json"',
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() answers 413 when a body exceeds maxBodyBytes", async () => {
  const app = await tempApp({ maxBodyBytes: 2000 });
  try {
    const big = jobBody({ data: regression(200) });
    const res = await call(app, "POST", "/v1/jobs", big);
    const body = await assertError(res, 413, "payload_too_large", "expected at most 2000 bytes");
    assert.deepEqual(body.error.details, { maxBodyBytes: 2000 });
    // Also without a Content-Length (a streamed body).
    const stream = new Blob([JSON.stringify(big)]).stream();
    const streamed = await app.request("/v1/jobs", {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/json" },
    });
    await assertError(streamed, 413, "payload_too_large", "expected at most 2000 bytes");
    const predict = await call(app, "POST", "/v1/models/mdl_00000000000000000/predict", {
      inputs: regression(200).x,
    });
    await assertError(predict, 413, "payload_too_large", "2000 bytes");
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() answers 404 with the id for unknown jobs, models and routes", async () => {
  const app = await tempApp();
  try {
    const job = "job_00000000000000000";
    const model = "mdl_00000000000000000";
    const cases: [string, string, unknown, string][] = [
      ["GET", `/v1/jobs/${job}`, undefined, `No job with id "${job}"`],
      ["GET", "/v1/jobs/../../etc/passwd", undefined, "No route for GET"],
      ["GET", "/v1/jobs/not-an-id", undefined, 'No job with id "not-an-id"'],
      ["GET", `/v1/jobs/${job}/events`, undefined, `No job with id "${job}"`],
      ["DELETE", `/v1/jobs/${job}`, undefined, `No job with id "${job}"`],
      ["GET", `/v1/models/${model}`, undefined, `No model with id "${model}"`],
      ["GET", `/v1/models/${model}/model.json`, undefined, `No model with id "${model}"`],
      ["GET", `/v1/models/${model}/weights.bin`, undefined, `No model with id "${model}"`],
      ["POST", `/v1/models/${model}/predict`, { inputs: [[1]] }, `No model with id "${model}"`],
      ["DELETE", `/v1/models/${model}`, undefined, `No model with id "${model}"`],
      ["DELETE", "/v1/models/..", undefined, "No route for DELETE"],
      ["GET", "/v1/nope", undefined, "No route for GET /v1/nope"],
    ];
    for (const [method, path, body, message] of cases) {
      await assertError(await call(app, method, path, body), 404, "not_found", message);
    }
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /v1/jobs answers 400 naming the query parameter when it is malformed", async () => {
  const app = await tempApp();
  try {
    await assertError(
      await call(app, "GET", "/v1/jobs?limit=0"),
      400,
      "invalid_request",
      'Invalid request query: limit: Too small: expected number to be >=1, received "0"',
    );
    await assertError(
      await call(app, "GET", "/v1/jobs?status=done"),
      400,
      "invalid_request",
      "status: Invalid option",
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() answers 401 without or with a wrong token, except on /healthz", async () => {
  const app = await tempApp({ token: TOKEN });
  try {
    const health = await call(app, "GET", "/healthz");
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });

    for (const path of ["/v1/jobs", "/v1/models", "/v1/backends", "/openapi.json", "/docs"]) {
      const res = await call(app, "GET", path);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="dtrain"');
      await assertError(
        res,
        401,
        "unauthorized",
        'expected an "Authorization: Bearer <token>" header',
      );
    }
    await assertError(
      await call(app, "GET", "/v1/jobs", undefined, { Authorization: "Bearer wrong" }),
      401,
      "unauthorized",
      "Invalid token",
    );
    await assertError(
      await call(app, "GET", "/v1/jobs", undefined, { Authorization: `Bearer ${TOKEN}x` }),
      401,
      "unauthorized",
      "Invalid token",
    );
    await assertError(
      await call(app, "GET", "/v1/jobs", undefined, { Authorization: `Basic ${TOKEN}` }),
      401,
      "unauthorized",
      "Malformed credentials",
    );
    // A body is not even parsed without credentials.
    await assertError(
      await call(app, "POST", "/v1/jobs", "{not json"),
      401,
      "unauthorized",
      "Missing credentials",
    );
    const ok = await call(app, "GET", "/v1/jobs", undefined, { Authorization: `bearer ${TOKEN}` });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { jobs: [], cursor: null });
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() throws RangeError/TypeError for bad options", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    await assert.rejects(() => createApp({ dataDir, maxBodyBytes: 0 }), {
      name: "RangeError",
      message: "maxBodyBytes must be an integer >= 1, received 0",
    });
    await assert.rejects(() => createApp({ dataDir, maxConcurrentJobs: 1.5 }), {
      name: "RangeError",
      message: "maxConcurrentJobs must be an integer >= 1, received 1.5",
    });
    await assert.rejects(() => createApp({ dataDir, predictBackend: "webgpu" as "cpu" }), {
      name: "TypeError",
      message: 'predictBackend must be "cpu" or "wasm", received "webgpu"',
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
