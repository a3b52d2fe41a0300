import assert from "node:assert/strict";
import { STRATEGY_KINDS } from "../../mod.ts";
import {
  DATASETS,
  JobRequestSchema,
  LOSSES,
  METRICS,
  OPTIMIZERS,
} from "../../src/server/schemas.ts";
import { call, jobBody, tempApp, TOKEN } from "./_helpers.ts";

const AUTH = { Authorization: `Bearer ${TOKEN}` };

Deno.test("GET /openapi.json documents every route from the request schemas", async () => {
  const app = await tempApp({ token: TOKEN });
  try {
    const res = await call(app, "GET", "/openapi.json", undefined, AUTH);
    assert.equal(res.status, 200);
    const spec = await res.json();
    assert.equal(spec.openapi, "3.0.0");
    assert.deepEqual(
      Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`)
      ).sort(),
      [
        "DELETE /v1/datasets/{id}",
        "DELETE /v1/jobs/{id}",
        "DELETE /v1/jobs/{id}/workers/{session}",
        "DELETE /v1/models/{id}",
        "GET /healthz",
        "GET /v1/backends",
        "GET /v1/datasets",
        "GET /v1/datasets/{id}",
        "GET /v1/jobs",
        "GET /v1/jobs/{id}",
        "GET /v1/jobs/{id}/events",
        "GET /v1/jobs/{id}/workers",
        "GET /v1/jobs/{id}/workers/connect",
        "GET /v1/models",
        "GET /v1/models/{id}",
        "GET /v1/models/{id}/model.json",
        "GET /v1/models/{id}/{file}",
        "GET /v1/options",
        "POST /v1/datasets",
        "POST /v1/jobs",
        "POST /v1/jobs/{id}/workers",
        "POST /v1/jobs/{id}/workers/{session}/step",
        "POST /v1/models/{id}/predict",
      ],
    );
    const job = spec.components.schemas.JobRequest;
    assert.deepEqual(
      job.required.sort(),
      ["compile", "data", "model"],
      "fit and strategy have defaults",
    );
    assert.equal(job.additionalProperties, false);
    assert.equal(spec.components.schemas.Fit.properties.epochs.minimum, 1);
    assert.deepEqual(spec.components.securitySchemes.bearerAuth, {
      type: "http",
      scheme: "bearer",
    });
    assert.deepEqual(spec.security, [{ bearerAuth: [] }]);
    assert.deepEqual(spec.paths["/healthz"].get.security, []);
    const submit = spec.paths["/v1/jobs"].post;
    assert.deepEqual(Object.keys(submit.responses).sort(), [
      "202",
      "400",
      "401",
      "413",
      "415",
      "429",
      "503",
    ]);
    assert.equal(
      submit.responses["400"].content["application/json"].schema.$ref,
      "#/components/schemas/Error",
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /v1/options lists exactly the values POST /v1/jobs accepts", async () => {
  const app = await tempApp({ token: TOKEN });
  try {
    assert.equal((await call(app, "GET", "/v1/options")).status, 401, "it needs the token");
    const res = await call(app, "GET", "/v1/options", undefined, AUTH);
    assert.equal(res.status, 200);
    const options = await res.json();
    assert.deepEqual(Object.keys(options), [
      "strategies",
      "backends",
      "presets",
      "datasets",
      "optimizers",
      "losses",
      "metrics",
      "classNames",
    ]);
    assert.deepEqual(options.classNames["fashion-mnist"]![9], "Ankle boot");
    assert.deepEqual(options.classNames.mnist, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert.deepEqual(
      options.strategies,
      Object.entries(STRATEGY_KINDS).map(([kind, info]) => ({
        kind,
        description: info.description,
        countOption: info.countOption,
        batchScope: info.batchScope,
      })),
    );
    assert.deepEqual(
      options.strategies.map((s: { kind: string; countOption: string }) => [s.kind, s.countOption]),
      [["mirrored", "replicas"], ["worker", "workers"]],
    );
    assert.deepEqual(options.backends, ["auto", "cpu", "wasm", "webgpu"]);
    assert.deepEqual(options.presets, ["mlp", "cnn"]);
    assert.deepEqual(options.datasets, [...DATASETS]);
    assert.deepEqual(options.optimizers, [...OPTIMIZERS]);
    assert.deepEqual(options.losses, [...LOSSES]);
    assert.deepEqual(options.metrics, [...METRICS]);

    // Every value offered is one the job schema takes, in the field it is offered for.
    const accepts = (over: Record<string, unknown>) => {
      const result = JobRequestSchema.safeParse(jobBody(over));
      return result.success || JSON.stringify(result.error.issues);
    };
    for (const s of options.strategies) {
      for (const backend of options.backends) {
        const strategy = { kind: s.kind, [s.countOption]: 2, backend };
        assert.equal(accepts({ strategy }), true, JSON.stringify(strategy));
      }
    }
    for (const preset of options.presets) assert.equal(accepts({ model: { preset } }), true);
    for (const dataset of options.datasets) {
      assert.equal(accepts({ data: { dataset, limit: 10 } }), true, dataset);
    }
    for (const optimizer of options.optimizers) {
      assert.equal(accepts({ compile: { optimizer, loss: "hinge" } }), true, optimizer);
    }
    for (const loss of options.losses) assert.equal(accepts({ compile: { loss } }), true, loss);
    for (const metric of options.metrics) {
      assert.equal(accepts({ compile: { loss: "hinge", metrics: [metric] } }), true, metric);
    }
    // ... and the count option of one kind is refused by the other.
    assert.notEqual(accepts({ strategy: { kind: "worker", replicas: 2 } }), true);
    assert.notEqual(accepts({ strategy: { kind: "mirrored", workers: 2 } }), true);

    const spec = await (await call(app, "GET", "/openapi.json", undefined, AUTH)).json();
    assert.equal(
      spec.paths["/v1/options"].get.responses["200"].content["application/json"].schema.$ref,
      "#/components/schemas/Options",
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /docs renders the OpenAPI document as a self-contained page", async () => {
  const app = await tempApp();
  try {
    const res = await call(app, "GET", "/docs");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/html/);
    const html = await res.text();
    assert.ok(html.includes("/v1/models/{id}/predict"));
    assert.ok(html.includes('id="schema-JobRequest"'));
    assert.ok(!html.includes("<script"), "no script, no CDN");
  } finally {
    await app.dispose();
  }
});

Deno.test("GET /v1/backends reports every backend without activating one", async () => {
  const app = await tempApp();
  try {
    const res = await call(app, "GET", "/v1/backends");
    assert.equal(res.status, 200);
    const report = await res.json();
    assert.deepEqual(report.backends.map((b: { name: string }) => b.name), [
      "webgpu",
      "wasm",
      "cpu",
    ]);
    const cpu = report.backends.find((b: { name: string }) => b.name === "cpu");
    assert.equal(cpu.available, true);
    // Predict runs in inference Workers on WASM (not started yet: what they will run).
    assert.equal(report.predict, "wasm");
    const { tf } = await import("../../mod.ts");
    assert.equal(tf.getBackend(), "cpu", "probing activated no backend in this process");
    assert.equal(report.backends.filter((b: { auto: boolean }) => b.auto).length, 1);
    assert.equal(report.backends.find((b: { auto: boolean }) => b.auto).name, report.auto);
  } finally {
    await app.dispose();
  }
});
