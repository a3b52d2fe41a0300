/**
 * `deno task bench --suite edge`: WorkerStrategy with remote edge workers.
 * A `deno task serve` process trains an MLP on the MNIST digits; its
 * gradients come from 2 local workers (shared memory, the reference) or 2
 * `dtrain worker` processes over loopback (WebSocket float32 and float16,
 * request/response) and, when `ip netns` works here, through two network
 * namespaces joined by a veth pair limited with `tc tbf` to 100 Mbit/s as an
 * edge link (this kernel has no `netem`: no added latency).
 *
 * Each row: applied gradients/s over epochs 2 and 3 (1 and 4 hold the
 * start-up and the end), bytes per gradient each way (the frames' sizes),
 * mean staleness, and where a remote gradient's time goes: the server's
 * cycle per gradient (assignment sent to gradient accepted), of it the
 * worker's compute, and the rest (wire, encoding, queues); the gap to the
 * observed rate is the server's share (applying, publishing, its turn).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { frameBytes } from "../src/edge/frames.ts";
import { oneNamespace, type Placement } from "./_netns.ts";
// The service and worker processes the edge tests start, reused as they are.
import { Server } from "../tests/fixtures/serve_process.ts";
import { WorkerProcess } from "../tests/edge/_edge.ts";

const TOKEN = "edge-bench-token";
const HIDDEN = [256, 128];
const BATCH = 32;
const SAMPLES = 8000;

/** One edge configuration and what it measured. */
export interface EdgeRow {
  suite: "edge";
  workers: string;
  link: string;
  transport: string;
  wire: "float32" | "float16" | "-";
  gradientsPerSec?: number;
  bytesDown?: number;
  bytesUp?: number;
  meanStaleness?: number;
  cycleMs?: number;
  computeMs?: number;
  error?: string;
}

/** Floats in the MLP's weights (784 -> HIDDEN -> 10). */
function weightCount(): number {
  let n = 0, inputs = 784;
  for (const units of [...HIDDEN, 10]) {
    n += inputs * units + units;
    inputs = units;
  }
  return n;
}

function job(remote: boolean) {
  return {
    model: { preset: "mlp", hidden: HIDDEN },
    compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
    data: { dataset: "mnist", limit: SAMPLES },
    fit: { epochs: 4, batchSize: BATCH, seed: 1, checkpoint: false },
    strategy: remote
      ? {
        kind: "worker",
        workers: 0,
        remote: true,
        staleness: 8,
        stalePolicy: "scale",
        backend: "wasm",
      }
      : { kind: "worker", workers: 2, staleness: 8, stalePolicy: "scale", backend: "wasm" },
  };
}

/** Trains one job; resolves with the gradients/s of epochs 2 and 3 and the workers' stats. */
async function measure(
  place: Placement,
  remote: { transport: "websocket" | "http"; fp16: boolean } | null,
): Promise<Omit<EdgeRow, "suite" | "workers" | "link" | "transport" | "wire">> {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-bench-edge-" });
  const server = await Server.start(dataDir, TOKEN, ["--host", place.host(0)], place.prefix(0));
  const workers: WorkerProcess[] = [];
  try {
    const accepted = await server.json("/v1/jobs", {
      method: "POST",
      body: JSON.stringify(job(remote !== null)),
    });
    const id = accepted.id as string;
    for (let i = 0; remote !== null && i < 2; i++) {
      const flags = ["--transport", remote.transport, ...(remote.fp16 ? ["--fp16"] : [])];
      workers.push(
        new WorkerProcess(server.url, id, accepted.workerToken as string, flags, {
          prefix: place.prefix(1),
          backend: "wasm",
        }),
      );
    }
    const seen: Record<number, number> = {};
    let status = "";
    const deadline = Date.now() + 600_000;
    while (!["succeeded", "failed", "cancelled", "interrupted"].includes(status)) {
      if (Date.now() > deadline) throw new Error("the job did not end within 10 minutes");
      const record = await server.json(`/v1/jobs/${id}`);
      status = record.status as string;
      seen[(record.progress as { epoch: number }).epoch] ??= performance.now();
      await new Promise((r) => setTimeout(r, 20));
    }
    if (status !== "succeeded") throw new Error(`job ${status}`);
    const steps = Math.ceil(SAMPLES / BATCH);
    const gradientsPerSec = (2 * steps) / ((seen[4]! - seen[2]!) / 1000);
    const stats = await server.json(`/v1/jobs/${id}/workers`);
    const list = stats.workers as { applied: number; meanStaleness: number; stepMs: number }[];
    const applied = list.reduce((s, w) => s + w.applied, 0);
    const meanStaleness = list.reduce((s, w) => s + w.meanStaleness * w.applied, 0) / applied;
    let computeMs: number | undefined, cycleMs: number | undefined;
    if (remote !== null) {
      await Promise.all(workers.map((w) => w.done));
      const results = workers.map((w) => w.result());
      const n = results.reduce((s, r) => s + r.gradients, 0);
      computeMs = results.reduce((s, r) => s + r.computeMs, 0) / n;
      cycleMs = list.reduce((s, w) => s + w.stepMs * w.applied, 0) / applied;
    }
    return { gradientsPerSec, meanStaleness, computeMs, cycleMs };
  } finally {
    for (const w of workers) {
      try {
        w.child.kill("SIGKILL");
      } catch { /* exited */ }
      await w.done;
    }
    await server.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** Runs the edge suite; `quick` keeps the loopback rows only. */
export async function edgeSuite(quick: boolean): Promise<EdgeRow[]> {
  const rows: EdgeRow[] = [];
  const w = weightCount();
  const bytes = (fp16: boolean) => ({
    bytesDown: frameBytes(fp16, [w, BATCH * 784, BATCH * 10]),
    bytesUp: frameBytes(fp16, [w, 2]),
  });
  const loopback: Placement = { prefix: () => [], host: () => "127.0.0.1", link: "loopback" };
  const record = async (
    place: Placement,
    remote: { transport: "websocket" | "http"; fp16: boolean } | null,
  ) => {
    const base: EdgeRow = {
      suite: "edge",
      workers: remote === null ? "2 local" : "2 remote",
      link: remote === null ? "shared memory" : place.link,
      transport: remote?.transport ?? "-",
      wire: remote === null ? "-" : remote.fp16 ? "float16" : "float32",
      ...(remote === null ? {} : bytes(remote.fp16)),
    };
    console.error(`edge: ${base.workers} ${base.link} ${base.transport} ${base.wire}`);
    try {
      rows.push({ ...base, ...(await measure(place, remote)) });
    } catch (e) {
      rows.push({ ...base, error: e instanceof Error ? e.message : String(e) });
    }
  };
  await record(loopback, null);
  await record(loopback, { transport: "websocket", fp16: false });
  await record(loopback, { transport: "websocket", fp16: true });
  await record(loopback, { transport: "http", fp16: false });
  if (!quick) {
    const place = await oneNamespace("100mbit");
    if (place === undefined) {
      console.error("edge: network namespaces unavailable here; the 100 Mbit/s rows are skipped");
    } else {
      try {
        await record(place, { transport: "websocket", fp16: false });
        await record(place, { transport: "websocket", fp16: true });
      } finally {
        await place.close();
      }
    }
  }
  return rows;
}

/** The suite's table, each rate as a share of 2 local workers'. */
export function edgeTable(rows: EdgeRow[]): string {
  const lines = [
    "| workers | link | transport | wire | gradients/s | vs local | bytes down / up per gradient | mean staleness | cycle ms | of it compute ms | wire + codec ms |",
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const ref = rows.find((r) => r.workers === "2 local")?.gradientsPerSec;
  for (const r of rows) {
    const head = `| ${r.workers} | ${r.link} | ${r.transport} | ${r.wire} |`;
    if (r.error !== undefined) {
      lines.push(`${head} fails: ${r.error.split("\n")[0]} | | | | | | |`);
      continue;
    }
    const share = ref ? `${Math.round((r.gradientsPerSec! / ref) * 100)}%` : "-";
    const traffic = r.bytesDown === undefined
      ? "-"
      : `${r.bytesDown.toLocaleString("en-US")} / ${r.bytesUp!.toLocaleString("en-US")}`;
    lines.push(
      `${head} ${r.gradientsPerSec!.toFixed(1)} | ${share} | ${traffic} | ` +
        `${r.meanStaleness!.toFixed(2)} | ${r.cycleMs?.toFixed(1) ?? "-"} | ` +
        `${r.computeMs?.toFixed(1) ?? "-"} | ` +
        `${r.cycleMs === undefined ? "-" : (r.cycleMs - r.computeMs!).toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const rows = await edgeSuite(quick);
  console.log(edgeTable(rows));
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}edge.json`, JSON.stringify(rows, null, 2) + "\n");
}
