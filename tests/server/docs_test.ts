import assert from "node:assert/strict";
import { call, tempApp, TOKEN } from "./_helpers.ts";

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
        "DELETE /v1/jobs/{id}",
        "DELETE /v1/models/{id}",
        "GET /healthz",
        "GET /v1/backends",
        "GET /v1/jobs",
        "GET /v1/jobs/{id}",
        "GET /v1/jobs/{id}/events",
        "GET /v1/models",
        "GET /v1/models/{id}",
        "GET /v1/models/{id}/model.json",
        "GET /v1/models/{id}/{file}",
        "POST /v1/jobs",
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
    assert.equal(report.predict, "cpu", "predict still runs on the backend createApp chose");
    assert.equal(report.backends.filter((b: { auto: boolean }) => b.auto).length, 1);
    assert.equal(report.backends.find((b: { auto: boolean }) => b.auto).name, report.auto);
  } finally {
    await app.dispose();
  }
});
