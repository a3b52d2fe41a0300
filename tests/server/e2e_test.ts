// End to end over a real loopback port: `serve.ts` runs in a subprocess.
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { isLoopback, parseServeArgs } from "../../src/server/serve.ts";
import { jobBody, regression, type Sse, TOKEN } from "./_helpers.ts";
import { Server } from "../fixtures/serve_process.ts";

const SERVE = new URL("../../src/server/serve.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const AUTH = { Authorization: `Bearer ${TOKEN}` };

/** Reads an SSE response event by event. */
async function* events(res: Response): AsyncGenerator<Sse> {
  let buffer = "";
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!block.includes("data:")) continue;
      const f: Record<string, string> = {};
      for (const line of block.split("\n")) {
        const i = line.indexOf(":");
        f[line.slice(0, i)] = line.slice(i + 1).trimStart();
      }
      yield { id: Number(f.id), event: f.event!, data: JSON.parse(f.data!) };
    }
  }
}

Deno.test("serve.ts trains, streams, serves the model over HTTP and finds it again after a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-e2e-" });
  let server = await Server.start(dataDir, TOKEN);
  try {
    assert.equal((await server.fetch("/healthz", {}, false)).status, 200);
    const denied = await server.fetch("/v1/jobs", {}, false);
    assert.equal(denied.status, 401);
    assert.equal((await denied.json()).error.code, "unauthorized");

    const { id } = await server.json("/v1/jobs", {
      method: "POST",
      body: JSON.stringify(
        jobBody({ fit: { epochs: 3, batchSize: 16 }, strategy: { replicas: 2, backend: "cpu" } }),
      ),
    }) as { id: string };
    const seen: Sse[] = [];
    for await (const e of events(await server.fetch(`/v1/jobs/${id}/events`))) seen.push(e);
    assert.equal(seen.filter((e) => e.event === "batch").length, 3 * 4);
    assert.equal(seen.filter((e) => e.event === "epoch").length, 3);
    const end = seen.at(-1)!;
    assert.equal(end.event, "end");
    assert.equal(end.data.status, "succeeded");
    const modelId = end.data.modelId as string;

    const inputs = regression(6).x;
    const served = await server.json(`/v1/models/${modelId}/predict`, {
      method: "POST",
      body: JSON.stringify({ inputs }),
    });
    // tfjs' own HTTP loader, as a browser would use it.
    const model = await tf.loadLayersModel(`${server.url}/v1/models/${modelId}/model.json`, {
      requestInit: { headers: AUTH },
    });
    const local = tf.tidy(() =>
      (model.predict(tf.tensor2d(inputs)) as tf.Tensor).arraySync()
    ) as number[][];
    model.dispose();
    // The service predicts on WASM (and the host's BLAS where found): within 1e-5 of tfjs' CPU.
    const outputs = served.outputs as number[][];
    assert.equal(outputs.length, local.length);
    outputs.forEach((row, i) =>
      row.forEach((v, j) =>
        assert.ok(
          Math.abs(v - local[i]![j]!) <= 1e-5,
          `outputs[${i}][${j}]: ${v} vs ${local[i]![j]}`,
        )
      )
    );
    const job = await server.json(`/v1/jobs/${id}`);

    const stopped = await server.stop("SIGTERM");
    assert.equal(stopped.code, 0, stopped.output);

    server = await Server.start(dataDir, TOKEN);
    assert.deepEqual(await server.json(`/v1/jobs/${id}`), job);
    assert.equal((await server.json(`/v1/models/${modelId}`)).jobId, id);
    const again = await server.json(`/v1/models/${modelId}/predict`, {
      method: "POST",
      body: JSON.stringify({ inputs }),
    });
    assert.deepEqual(again, served);
  } finally {
    const { code, output } = await server.stop("SIGTERM");
    await Deno.remove(dataDir, { recursive: true });
    assert.equal(code, 0, output);
  }
});

Deno.test("serve.ts refuses to bind a non-loopback host without a token", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      "--config",
      CONFIG,
      SERVE,
      "--host",
      "0.0.0.0",
      "--port",
      "0",
    ],
    env: { DTRAIN_TOKEN: "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /Refusing to listen on 0\.0\.0\.0 without a token: expected DTRAIN_TOKEN to be set/,
  );
});

Deno.test("parseServeArgs() applies defaults and rejects bad flags naming them", () => {
  assert.deepEqual(parseServeArgs([], {}), {
    host: "127.0.0.1",
    port: 8787,
    dataDir: "./.dtrain",
    maxBodyBytes: undefined,
    maxDatasetBytes: undefined,
    maxConcurrentJobs: undefined,
    maxQueuedJobs: undefined,
    defaultReplicas: undefined,
    leaseMs: undefined,
    corsOrigins: [],
    token: undefined,
    kv: undefined,
  });
  const o = parseServeArgs(["--max-jobs", "2", "--cors-origin", "a", "--cors-origin", "b"], {
    DTRAIN_KV: "https://kv.example/db",
  });
  assert.equal(o.maxConcurrentJobs, 2);
  assert.deepEqual(o.corsOrigins, ["a", "b"]);
  assert.equal(o.kv, "https://kv.example/db");
  assert.throws(() => parseServeArgs(["--port", "http"]), {
    name: "RangeError",
    message: '--port must be an integer >= 0, received "http"',
  });
  assert.throws(() => parseServeArgs(["--port", "70000"]), {
    name: "RangeError",
    message: "--port must be <= 65535, received 70000",
  });
  assert.throws(() => parseServeArgs(["--prot", "1"]), {
    name: "TypeError",
    message: /Unknown option '--prot'/,
  });
  assert.ok(isLoopback("localhost") && isLoopback("127.1.2.3") && isLoopback("[::1]"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("192.168.1.2") && !isLoopback("::"));
});
