// The dashboard end to end in real headless Chromium: Debian's /usr/bin/chromium
// driven by playwright-core (over its pipe transport), the server (`serve.ts`)
// in a subprocess on a loopback port. Skipped only when /usr/bin/chromium is
// missing. Leaves a screenshot in $DTRAIN_ARTIFACTS (default
// <tmp>/dtrain-artifacts/dashboard.png).
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { tempApp, TOKEN } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = await Deno.stat(CHROMIUM).then((s) => s.isFile, () => false);
const SERVE = new URL("../../src/server/serve.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const ARTIFACTS = Deno.env.get("DTRAIN_ARTIFACTS") ?? join(tmpdir(), "dtrain-artifacts");

/** `serve.ts` in a subprocess on a free loopback port, with a token. */
async function startServer(dataDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "--config", CONFIG, SERVE, "--port", "0"]
      .concat(["--data-dir", dataDir]),
    env: { DTRAIN_TOKEN: TOKEN, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let resolveUrl!: (url: string) => void;
  const url = new Promise<string>((r) => (resolveUrl = r));
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      output += chunk;
      const m = output.match(/listening on (http:\/\/\S+)/);
      if (m) resolveUrl(m[1]!);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 60_000);
  });
  try {
    return {
      url: await Promise.race([url, timeout]),
      output: () => output,
      async stop(): Promise<number> {
        child.kill("SIGTERM");
        const { code } = await child.status;
        await drained;
        return code;
      },
    };
  } catch (e) {
    child.kill("SIGKILL");
    await child.status;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Draws a "7" on the canvas with the mouse. */
async function drawSeven(page: Page): Promise<void> {
  const box = (await page.locator("#pad").boundingBox())!;
  // Canvas pixels (280x280) to page coordinates.
  const x = (px: number) => box.x + (px * box.width) / 280;
  const y = (py: number) => box.y + (py * box.height) / 280;
  await page.mouse.move(x(70), y(60));
  await page.mouse.down();
  await page.mouse.move(x(210), y(60), { steps: 12 });
  await page.mouse.move(x(120), y(235), { steps: 16 });
  await page.mouse.up();
}

Deno.test({
  name: "dashboard at / starts a job, charts it live, predicts a drawing and shows a wrong " +
    "token's 401 in headless Chromium (skipped when /usr/bin/chromium is missing)",
  ignore: !HAS_CHROMIUM,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "dtrain-dashboard-" });
    const profile = await Deno.makeTempDir({ prefix: "dtrain-chromium-" });
    const server = await startServer(dataDir);
    const problems: string[] = [];
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--no-first-run",
          "--disable-component-update",
          "--disable-sync",
        ],
        viewport: { width: 1280, height: 900 },
      });
      const page = context.pages()[0] ?? await context.newPage();
      page.setDefaultTimeout(45_000);
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        // The browser logs each 4xx answer; the ones this test provokes are expected.
        if (m.type() === "error" && !/status of 40[01]/.test(m.text())) {
          problems.push(`console: ${m.text()}`);
        }
      });

      // The page and its assets load without a token; the API then asks for one.
      await page.goto(server.url);
      const dialog = page.locator("#token-dialog");
      await dialog.locator("#token-input").waitFor({ state: "visible" });
      assert.match(await page.textContent("#token-message") ?? "", /requires a bearer token/);

      // 401: a wrong token is refused with a readable message, the dialog stays.
      await page.fill("#token-input", "not-the-token");
      await page.click("#token-submit");
      await page.locator("#token-message", { hasText: "Invalid token" }).waitFor();
      assert.match(
        await page.textContent("#token-message") ?? "",
        /refused this token: Invalid token \(HTTP 401 unauthorized\)/,
      );
      assert.equal(await page.locator("#token-dialog[open]").count(), 1);

      await page.fill("#token-input", TOKEN);
      await page.click("#token-submit");
      await dialog.waitFor({ state: "hidden" });
      await page.locator('#backends tr[data-backend="cpu"]').waitFor();
      assert.equal(await page.evaluate('sessionStorage.getItem("dtrain.token")'), TOKEN);

      // An API error (400) is shown next to the form, naming the field.
      const form = page.locator("#job-form");
      await form.locator("[name=dataset]").selectOption("mnist");
      await form.locator("[name=limit]").fill("1000");
      await form.locator("[name=epochs]").fill("2");
      await form.locator("[name=replicas]").fill("2");
      await form.locator("[name=backend]").selectOption("cpu");
      await form.locator("[name=batchSize]").fill("1");
      await page.click("#job-submit");
      await page.locator("#job-form-error").waitFor({ state: "visible" });
      assert.match(
        await page.textContent("#job-form-error") ?? "",
        /POST \/v1\/jobs failed \(HTTP 400 invalid_request\): fit\.batchSize: cannot shard a batch of 1 across 2 replicas/,
      );

      // The form's choices come from GET /v1/options; kind worker sends its count as `workers`.
      assert.deepEqual(
        await page.evaluate(
          '[...document.querySelectorAll("#job-form [name=strategy] option")].map((o) => o.value)',
        ),
        ["mirrored", "worker"],
      );
      assert.equal(await form.locator("[name=loss]").inputValue(), "categoricalCrossentropy");
      await form.locator("[name=strategy]").selectOption("worker");
      assert.equal(await page.textContent("#job-count-label"), "Workers");
      await form.locator("[name=workers]").fill("2");
      let sent: Record<string, unknown> | undefined;
      await page.route("**/v1/jobs*", async (route) => {
        if (route.request().method() !== "POST") return await route.continue();
        sent = route.request().postDataJSON();
        await route.fulfill({
          status: 400,
          contentType: "application/json",
          body: JSON.stringify({ error: { code: "test", message: "intercepted by the test" } }),
        });
      });
      await page.click("#job-submit");
      await page.locator("#job-form-error", { hasText: "intercepted by the test" }).waitFor();
      await page.unroute("**/v1/jobs*");
      assert.deepEqual(sent?.strategy, { kind: "worker", workers: 2, backend: "cpu" });
      assert.deepEqual(sent?.compile, {
        optimizer: "adam",
        loss: "categoricalCrossentropy",
        metrics: ["accuracy"],
      });
      await form.locator("[name=strategy]").selectOption("mirrored");
      assert.equal(await page.textContent("#job-count-label"), "Replicas");
      assert.equal(await form.locator("[name=replicas]").inputValue(), "2");

      // Start a small job; the loss chart gains points while it trains.
      // (Code run in the page is a string: this file is type-checked without the DOM.)
      await page.evaluate(`{
        const chart = document.querySelector("#chart-loss");
        globalThis.seen = [];
        new MutationObserver(() => seen.push(Number(chart.dataset.points)))
          .observe(chart, { attributes: true, attributeFilter: ["data-points"] });
      }`);
      await form.locator("[name=batchSize]").fill("32");
      await page.click("#job-submit");
      await page.locator("#job-form-error").waitFor({ state: "hidden" });
      await page.locator('#job-panel[data-status="succeeded"]').waitFor({ timeout: 45_000 });

      // 1000 samples less 10% validation = 900, in batches of 32: 29 steps, 2 epochs.
      const seen = await page.evaluate("seen") as number[];
      const growing = [...new Set(seen.filter((n) => n > 0))];
      assert.ok(growing.length >= 3, `chart redrawn as points came: ${JSON.stringify(seen)}`);
      assert.deepEqual(growing, [...growing].sort((a, b) => a - b));
      assert.equal(await page.getAttribute("#chart-loss", "data-points"), "58");
      assert.equal(await page.getAttribute("#chart-metric", "data-points"), "58");
      assert.equal(await page.textContent("#stat-epoch"), "2 / 2");
      assert.equal(await page.textContent("#stat-step"), "29 / 29");
      assert.match(await page.textContent("#stat-rate") ?? "", /^[\d.]+ \(avg\)$/);
      assert.match(await page.textContent("#stat-loss") ?? "", /^[\d.]+ \(val [\d.]+\)$/);
      assert.equal(await page.locator("#chart-loss canvas").count(), 1);
      const row = page.locator("#jobs tbody tr").first();
      await row.locator(".status.succeeded").waitFor();

      // Predict: the new model is picked, a drawn digit gets 10 probabilities.
      await page.waitForFunction('document.querySelector("#predict-model").value !== ""');
      await page.locator("#predict-panel").scrollIntoViewIfNeeded();
      await drawSeven(page);
      await page.locator("#bars li").nth(9).waitFor();
      const bars = page.locator("#bars li");
      const probs: number[] = [];
      for (let i = 0; i < await bars.count(); i++) {
        probs.push(Number(await bars.nth(i).getAttribute("data-p")));
      }
      assert.equal(probs.length, 10);
      assert.ok(probs.every((p) => p >= 0 && p <= 1), JSON.stringify(probs));
      const sum = probs.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-3, `probabilities sum to ${sum}`);
      assert.match(await page.textContent("#predict-status") ?? "", /^Prediction: \d \(/);
      const top = await page.locator("#bars li.best .fill").boundingBox();
      assert.ok(top !== null && top.width > 0, "the top bar is drawn");

      // A WorkerStrategy job lists its workers (kind, where, applied, staleness).
      const submitted = await fetch(`${server.url}/v1/jobs`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: { preset: "mlp", hidden: [16] },
          compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
          data: { dataset: "mnist", limit: 400 },
          fit: { epochs: 1, batchSize: 32 },
          strategy: { kind: "worker", workers: 2, backend: "cpu" },
        }),
      });
      const workerJob = (await submitted.json()).id as string;
      await page.locator(`#jobs tr[data-id="${workerJob}"]`).click();
      await page.locator('#job-panel[data-status="succeeded"]').waitFor({ timeout: 45_000 });
      await page.locator('#job-workers-body tr[data-kind="local"]').nth(1).waitFor();
      const cells = await page.locator("#job-workers-body tr").first().locator("td")
        .allTextContents();
      assert.equal(cells[1], "local", JSON.stringify(cells));
      assert.ok(Number(cells[5]) > 0, `applied: ${JSON.stringify(cells)}`);
      assert.match(await page.textContent("#job-workers-remote") ?? "", /batches applied 13/);

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`dashboard screenshot: ${shot}`);

      // The token is kept for the tab: a reload does not ask again.
      await page.reload();
      await page.locator('#backends tr[data-backend="cpu"]').waitFor();
      assert.equal(await page.locator("#token-dialog[open]").count(), 0);
      assert.deepEqual(problems, []);
    } finally {
      await context?.close();
      const code = await server.stop();
      await Deno.remove(dataDir, { recursive: true });
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      assert.equal(code, 0, server.output());
    }
  },
});

Deno.test("createApp() serves GET / and the dashboard assets without a token, /v1 still needs one", async () => {
  const app = await tempApp({ token: TOKEN });
  try {
    const page = await app.request("/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const html = await page.text();
    for (const asset of ["app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"]) {
      assert.ok(html.includes(`assets/${asset}`), `the page links ${asset}`);
      const res = await app.request(`/assets/${asset}`);
      assert.equal(res.status, 200, asset);
      assert.ok((await res.text()).length > 100, asset);
      const etag = res.headers.get("etag")!;
      const again = await app.request(`/assets/${asset}`, { headers: { "if-none-match": etag } });
      assert.equal(again.status, 304, asset);
      await again.body?.cancel();
    }
    // Every module the page's script imports (transitively) is served, with a JS type.
    const modules = ["app.js"];
    for (let i = 0; i < modules.length; i++) {
      const res = await app.request(`/assets/${modules[i]}`);
      assert.equal(res.status, 200, modules[i]);
      assert.match(res.headers.get("content-type") ?? "", /^text\/javascript/, modules[i]);
      for (const m of (await res.text()).matchAll(/^import [^;]*? from "\.\/([a-z_]+\.js)";/gms)) {
        if (!modules.includes(m[1]!)) modules.push(m[1]!);
      }
    }
    assert.ok(modules.length >= 10, `the script is split into modules: ${modules}`);
    assert.ok(modules.includes("job_form.js") && modules.includes("api.js"), `${modules}`);
    const uplot = await (await app.request("/assets/uPlot.iife.min.js")).text();
    assert.match(uplot, /uPlot/);
    assert.equal((await app.request("/v1/jobs")).status, 401);
    // Only the dashboard's own files are open.
    assert.equal((await app.request("/assets/missing.js")).status, 401);
  } finally {
    await app.dispose();
  }
});
