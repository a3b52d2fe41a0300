// Jobs survive the server: `deno task serve` is killed (SIGKILL) or stopped
// (SIGTERM) mid-job, a new server on the same data dir resumes the job from
// its newest checkpoint, and it ends with the weights of an uninterrupted run.
import assert from "node:assert/strict";
import { tf } from "../../mod.ts";
import { Server } from "../fixtures/serve_process.ts";
import { jobBody, parseSse, regression, TOKEN } from "./_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const EPOCHS = 6;

/** Mirrored (deterministic) with a fixed seed: equal runs give equal weights. */
function body() {
  return jobBody({
    data: regression(2048),
    fit: { epochs: EPOCHS, batchSize: 16, seed: 11 },
    strategy: { kind: "mirrored", replicas: 2, backend: "cpu" },
  });
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function until(
  server: Server,
  id: string,
  done: (job: Record<string, unknown>) => boolean,
  timeoutMs = 120_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await server.json(`/v1/jobs/${id}`);
    if (done(job)) return job;
    assert.ok(Date.now() < deadline, `job ${id}: still ${JSON.stringify(job.status)}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

const ended = (j: Record<string, unknown>) =>
  ["succeeded", "failed", "cancelled", "interrupted"].includes(j.status as string);

async function weightsOf(server: Server, modelId: string): Promise<Float32Array[]> {
  const model = await tf.loadLayersModel(`${server.url}/v1/models/${modelId}/model.json`, {
    requestInit: { headers: AUTH },
  });
  const values = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return values;
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!)))));
  return worst;
}

Deno.test(
  "a job resumes after the server is killed or stopped mid-job, with the weights of an uninterrupted run",
  opts,
  async (t) => {
    await tf.setBackend("cpu");
    const dataDir = await Deno.makeTempDir({ prefix: "dtrain-resume-" });
    const port = freePort();
    const start = () =>
      Server.start(dataDir, TOKEN, [
        "--port",
        String(port),
        "--lease-ms",
        "1500",
        "--replicas",
        "2",
      ]);
    let server = await start();
    try {
      const reference = await (async () => {
        const { id } = await server.json("/v1/jobs", {
          method: "POST",
          body: JSON.stringify(body()),
        });
        const job = await until(server, id as string, ended);
        assert.equal(job.status, "succeeded", JSON.stringify(job.error));
        return await weightsOf(server, job.modelId as string);
      })();

      for (const signal of ["SIGKILL", "SIGTERM"] as const) {
        await t.step(`${signal} in epoch 2`, async () => {
          const { id } = await server.json("/v1/jobs", {
            method: "POST",
            body: JSON.stringify(body()),
          });
          await until(server, id as string, (j) => (j.progress as { epoch: number }).epoch >= 2);
          const stopped = await server.stop(signal);
          if (signal === "SIGTERM") {
            assert.equal(stopped.code, 0, stopped.output);
            assert.match(stopped.output, /SIGTERM: shutting down/);
          }
          server = await start();
          const job = await until(server, id as string, ended);
          assert.equal(job.status, "succeeded", JSON.stringify(job.error));
          const history = job.history as { epoch: number[]; history: Record<string, number[]> };
          assert.deepEqual(history.epoch, [...Array(EPOCHS).keys()], "every epoch once");
          assert.equal(history.history.loss!.length, EPOCHS);
          // The new server resumed from a checkpoint: it trained only the later epochs.
          const events = parseSse(await (await server.fetch(`/v1/jobs/${id}/events`)).text());
          const resumed = events.find((e) => e.event === "resumed");
          assert.ok(resumed !== undefined, JSON.stringify(events.map((e) => e.event)));
          assert.ok((resumed.data.epoch as number) >= 1, JSON.stringify(resumed.data));
          const trained = events.filter((e) => e.event === "epoch").length;
          assert.ok(trained < EPOCHS, `the new server trained ${trained} epochs: no resume`);
          const weights = await weightsOf(server, job.modelId as string);
          assert.ok(
            maxDiff(weights, reference) <= 1e-5,
            `weights differ from the uninterrupted run's by ${maxDiff(weights, reference)}`,
          );
        });
      }
    } finally {
      await server.stop("SIGTERM");
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
