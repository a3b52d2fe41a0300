/**
 * A client of the dtrain HTTP service: submits a training job, follows its
 * progress over Server-Sent Events, predicts with the trained model, and
 * loads the model into tfjs over HTTP.
 *
 *   DTRAIN_TOKEN=secret deno task serve &
 *   DTRAIN_TOKEN=secret deno run -A examples/http_client.ts --url http://127.0.0.1:8787
 *
 * @module
 */
import { loadMnist, tf } from "../mod.ts";
import { flags } from "./_args.ts";

const f = flags({ url: "http://127.0.0.1:8787", epochs: "3", limit: "4000" });
const token = Deno.env.get("DTRAIN_TOKEN");
const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${f.url}${path}`, {
    ...init,
    headers: { ...headers, ...(init.body ? { "content-type": "application/json" } : {}) },
  });
  const body = await res.json();
  if (!res.ok) {
    throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(body.error)}`);
  }
  return body as T;
}

// 1. Submit a job: a preset MLP on the embedded MNIST digits, 2 replicas.
const { id } = await api<{ id: string }>("/v1/jobs", {
  method: "POST",
  body: JSON.stringify({
    model: { preset: "mlp", hidden: [128] },
    compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
    data: { dataset: "mnist", limit: Number(f.limit) },
    fit: { epochs: Number(f.epochs), batchSize: 128, validationSplit: 0.1 },
    strategy: { kind: "mirrored", replicas: 2, backend: "auto" },
  }),
});
console.log(`submitted job ${id}`);

// 2. Follow it: Server-Sent Events, one per batch and per epoch, then `end`.
const events = await fetch(`${f.url}/v1/jobs/${id}/events`, { headers });
let buffer = "";
let ended = false;
for await (const chunk of events.body!.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let cut: number;
  while ((cut = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    const event = block.match(/^event: (.*)$/m)?.[1];
    const data = JSON.parse(block.match(/^data: (.*)$/m)?.[1] ?? "null");
    if (event === "epoch") {
      const logs = Object.entries(data.logs as Record<string, number>)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
      console.log(`epoch ${data.epoch}/${data.epochs}: ${logs}`);
    }
    if (event === "end") ended = true;
  }
  if (ended) break; // leaving the loop closes the stream
}
const job = await api<{ status: string; modelId: string | null; error?: unknown }>(
  `/v1/jobs/${id}`,
);
if (job.status !== "succeeded" || job.modelId === null) {
  throw new Error(`job ended ${job.status}: ${JSON.stringify(job.error)}`);
}
console.log(`job ${job.status}, model ${job.modelId}`);

// 3. Predict over HTTP with a few test digits.
const { test } = await loadMnist({ trainCount: 10, testCount: 20, seed: 5 });
const inputs = Array.from(
  { length: 20 },
  (_, i) => Array.from(test.x.subarray(i * 784, (i + 1) * 784)),
);
const { outputs } = await api<{ outputs: number[][] }>(`/v1/models/${job.modelId}/predict`, {
  method: "POST",
  body: JSON.stringify({ inputs }),
});
const predicted = outputs.map((o) => o.indexOf(Math.max(...o)));
const correct = predicted.filter((c, i) => c === test.y[i]).length;
console.log(`http predict: ${correct}/20 test digits correct`);

// 4. Load the same model into tfjs straight from the service.
const model = await tf.loadLayersModel(`${f.url}/v1/models/${job.modelId}/model.json`, {
  requestInit: { headers },
});
const local = tf.tidy(() =>
  tf.argMax(model.predict(tf.tensor2d(inputs)) as tf.Tensor, 1).arraySync()
);
const same = (local as number[]).every((c, i) => c === predicted[i]);
console.log(`tf.loadLayersModel over HTTP: ${same ? "same predictions" : "DIFFERENT predictions"}`);
