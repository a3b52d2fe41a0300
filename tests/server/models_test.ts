import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import type { DtrainApp } from "../../src/server/mod.ts";
import {
  assertError,
  call,
  jobBody,
  loadOverApp,
  regression,
  submit,
  tempApp,
} from "./_helpers.ts";

async function trainedModel(app: DtrainApp, seed = 1): Promise<string> {
  const id = await submit(app, jobBody({ model: { preset: "mlp", hidden: [8], seed } }));
  await app.jobs.wait(id);
  const job = await (await call(app, "GET", `/v1/jobs/${id}`)).json();
  assert.equal(job.status, "succeeded", JSON.stringify(job.error));
  return job.modelId;
}

Deno.test("GET /v1/models/:id/model.json serves tfjs layers files that tf.loadLayersModel reads", async () => {
  const app = await tempApp();
  try {
    const modelId = await trainedModel(app);
    const res = await call(app, "GET", `/v1/models/${modelId}/model.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^application\/json/);
    const json = await res.json();
    assert.deepEqual(json.weightsManifest.map((g: { paths: string[] }) => g.paths), [[
      "weights.bin",
    ]]);
    assert.equal(json.modelTopology.class_name, "Sequential");

    const record = await (await call(app, "GET", `/v1/models/${modelId}`)).json();
    const weights = await call(app, "GET", `/v1/models/${modelId}/weights.bin`);
    assert.equal(weights.headers.get("content-type"), "application/octet-stream");
    assert.equal((await weights.arrayBuffer()).byteLength, record.bytes);
    await assertError(
      await call(app, "GET", `/v1/models/${modelId}/dtrain.kv`),
      404,
      "not_found",
      'No file with id "dtrain.kv"',
    );

    const loaded = await loadOverApp(app, modelId);
    const inputs = regression(5).x;
    const local = tf.tidy(() =>
      (loaded.predict(tf.tensor2d(inputs)) as tf.Tensor).arraySync()
    ) as number[][];
    loaded.dispose();
    const served = await (await call(app, "POST", `/v1/models/${modelId}/predict`, { inputs }))
      .json();
    // Predict runs on WASM: within 1e-5 of tfjs' CPU backend.
    (served.outputs as number[][]).forEach((row, i) =>
      row.forEach((v, j) =>
        assert.ok(Math.abs(v - local[i]![j]!) <= 1e-5, `${v} vs ${local[i]![j]}`)
      )
    );
    assert.equal(served.outputs.length, local.length);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/models/:id/predict leaks no tensors and batches concurrent requests", async () => {
  const app = await tempApp();
  try {
    const modelId = await trainedModel(app);
    const rows = regression(12).x;
    const one = (r: number[]) =>
      call(app, "POST", `/v1/models/${modelId}/predict`, { inputs: [r] }).then((res) => res.json());
    const first = await one(rows[0]!); // warm-up: loads the model
    const tensors = tf.memory().numTensors;
    const before = app.models.stats;
    const singles: number[][] = [];
    for (const r of rows) singles.push((await one(r)).outputs[0]);
    const together = await Promise.all(rows.map(one));
    assert.deepEqual(together.map((t) => t.outputs[0]), singles);
    assert.deepEqual(first.outputs[0], singles[0]);
    const after = app.models.stats;
    assert.equal(after.requests - before.requests, 2 * rows.length);
    assert.ok(
      after.batches - before.batches < 2 * rows.length,
      `${after.batches - before.batches} batches for ${2 * rows.length} requests`,
    );
    assert.equal(tf.memory().numTensors, tensors, "predict leaked tensors");
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/models/:id/predict answers 400 when inputs do not fit the model", async () => {
  // On this thread's tfjs (no inference Worker), where the loaded model's tensors can be counted.
  const app = await tempApp({ predictWorkers: 0 });
  try {
    const modelId = await trainedModel(app);
    const path = `/v1/models/${modelId}/predict`;
    const tensors = tf.memory().numTensors;
    const body = await assertError(
      await call(app, "POST", path, { inputs: [[1, 2, 3, 4], [1, 2, 3]] }),
      400,
      "shape_mismatch",
      "inputs[1] has 3 values, expected 4 (the model's input shape [4])",
    );
    assert.deepEqual(body.error.details, { field: "inputs[1]", expected: 4, received: 3 });
    await assertError(
      await call(app, "POST", path, { inputs: [] }),
      400,
      "invalid_request",
      "inputs: Too small: expected array to have >=1 items",
    );
    await assertError(
      await call(app, "POST", path, { input: [[1, 2, 3, 4]] }),
      400,
      "invalid_request",
      "inputs: Invalid input: expected array, received undefined",
    );
    await assertError(
      await call(app, "POST", path, { inputs: [[1, 2, null, 4]] }),
      400,
      "invalid_request",
      "inputs[0][2]: Invalid input: expected number, received null",
    );
    // The model loaded for the first request stays cached; nothing else remains.
    assert.equal(tf.memory().numTensors - tensors, 4, "only the cached model's 4 weights");
  } finally {
    await app.dispose();
  }
});

Deno.test("DELETE /v1/models/:id removes the model, its files and its loaded copy", async () => {
  const app = await tempApp();
  try {
    const modelId = await trainedModel(app);
    await call(app, "POST", `/v1/models/${modelId}/predict`, { inputs: [[0, 0, 0, 0]] });
    assert.equal(app.models.stats.loaded, 1);
    const list = await (await call(app, "GET", "/v1/models")).json();
    assert.deepEqual(list.models.map((m: { id: string }) => m.id), [modelId]);

    const res = await call(app, "DELETE", `/v1/models/${modelId}`);
    assert.equal(res.status, 204);
    assert.equal(await res.text(), "");
    assert.equal(app.models.stats.loaded, 0);
    await assert.rejects(() => Deno.stat(`${app.dataDir}/models/${modelId}`), Deno.errors.NotFound);
    await assertError(
      await call(app, "GET", `/v1/models/${modelId}`),
      404,
      "not_found",
      `No model with id "${modelId}"`,
    );
    await assertError(
      await call(app, "DELETE", `/v1/models/${modelId}`),
      404,
      "not_found",
      `No model with id "${modelId}"`,
    );
    assert.deepEqual((await (await call(app, "GET", "/v1/models")).json()).models, []);
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() keeps at most modelCacheSize models loaded and disposes the others", async () => {
  const app = await tempApp({ modelCacheSize: 1, maxQueuedJobs: 4 });
  try {
    const a = await trainedModel(app, 1);
    const b = await trainedModel(app, 2);
    const predict = async (id: string) =>
      (await (await call(app, "POST", `/v1/models/${id}/predict`, { inputs: [[1, 0, 1, 0]] }))
        .json()).outputs[0][0];
    const pa = await predict(a);
    const tensors = tf.memory().numTensors;
    const pb = await predict(b);
    await new Promise((r) => setTimeout(r, 0)); // the evicted model is disposed asynchronously
    assert.notEqual(pa, pb);
    assert.equal(app.models.stats.loaded, 1);
    assert.equal(tf.memory().numTensors, tensors, "the evicted model was disposed");
    assert.equal(await predict(a), pa, "reloaded from disk");
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/models/:id/predict answers 500 model_files_missing when the files are gone", async () => {
  const app = await tempApp();
  try {
    const modelId = await trainedModel(app);
    await Deno.remove(`${app.dataDir}/models/${modelId}`, { recursive: true });
    const original = console.error;
    console.error = () => {};
    try {
      await assertError(
        await call(app, "POST", `/v1/models/${modelId}/predict`, { inputs: [[0, 0, 0, 0]] }),
        500,
        "model_files_missing",
        `Model ${modelId} is registered but`,
      );
      await assertError(
        await call(app, "GET", `/v1/models/${modelId}/model.json`),
        500,
        "model_files_missing",
        `Model ${modelId} is registered but its file model.json is missing`,
      );
    } finally {
      console.error = original;
    }
  } finally {
    await app.dispose();
  }
});
