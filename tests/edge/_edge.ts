// Shared helpers of the edge-worker tests: a service process, a remote job,
// and `dtrain worker` subprocesses.
import assert from "node:assert/strict";
import type { Server } from "../fixtures/serve_process.ts";

export const TOKEN = "edge-test-token";
const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** A remote WorkerStrategy job on the embedded MNIST digits. */
export function remoteJob(
  options: {
    workers?: number;
    epochs?: number;
    limit?: number;
    remoteWaitMs?: number;
    backend?: string;
  } = {},
) {
  return {
    model: { preset: "mlp", hidden: [64] },
    compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
    data: { dataset: "mnist", limit: options.limit ?? 8000 },
    fit: { epochs: options.epochs ?? 5, batchSize: 32, validationSplit: 0.2, seed: 7 },
    strategy: {
      kind: "worker",
      workers: options.workers ?? 0,
      remote: true,
      staleness: 8,
      stalePolicy: "scale",
      backend: options.backend ?? "wasm",
      ...(options.remoteWaitMs === undefined ? {} : { remoteWaitMs: options.remoteWaitMs }),
    },
  };
}

/** Submits `body`; resolves with the job id and its worker token. */
export async function submitRemote(
  server: Server,
  body: unknown,
): Promise<{ id: string; workerToken: string }> {
  const accepted = await server.json("/v1/jobs", { method: "POST", body: JSON.stringify(body) });
  assert.equal(typeof accepted.workerToken, "string", JSON.stringify(accepted));
  return { id: accepted.id as string, workerToken: accepted.workerToken as string };
}

/** `dtrain worker` in a subprocess. */
export class WorkerProcess {
  readonly child: Deno.ChildProcess;
  readonly output = { text: "" };
  readonly done: Promise<Deno.CommandStatus>;

  /** `flags` are more `dtrain worker` flags; `prefix` a command to run it under. */
  constructor(
    url: string,
    job: string,
    token: string,
    flags: string[] = [],
    options: { prefix?: string[]; backend?: string } = {},
  ) {
    const [cmd, ...pre] = [...(options.prefix ?? []), Deno.execPath()];
    this.child = new Deno.Command(cmd!, {
      args: [
        ...pre,
        "run",
        "-A",
        "--config",
        CONFIG,
        CLI,
        "worker",
        "--server",
        url,
        "--job",
        job,
        "--backend",
        options.backend ?? "wasm",
        "--json",
        ...flags,
      ],
      env: { DTRAIN_TOKEN: token, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.output.text += chunk;
      }
    };
    const drained = Promise.all([drain(this.child.stdout), drain(this.child.stderr)]);
    this.done = this.child.status.then(async (s) => (await drained, s));
  }

  /** The JSON result line a finished worker printed. */
  result(): { reason: string; gradients: number; computeMs: number; reconnects: number } {
    const line = this.output.text.trim().split("\n").findLast((l) => l.startsWith("{"));
    assert.ok(line !== undefined, `no result line in: ${this.output.text}`);
    return JSON.parse(line);
  }
}

/** Polls job `id` until it ended or `timeoutMs` passed; resolves with its record. */
export async function waitForEnd(
  server: Server,
  id: string,
  timeoutMs = 240_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await server.json(`/v1/jobs/${id}`);
    if (["succeeded", "failed", "cancelled", "interrupted"].includes(job.status as string)) {
      return job;
    }
    assert.ok(Date.now() < deadline, `job ${id} still ${job.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
