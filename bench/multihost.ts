/**
 * `deno task bench --suite multihost`: MirroredStrategy across processes.
 * The same cores do the same work in every row; what changes is where the
 * replicas live: 1 process x 2 replicas (shared memory only) vs 2 processes
 * x 1 replica joined over TCP (loopback, then two network namespaces joined
 * by a veth pair rate-limited with `tc tbf` at 10 and 1 Gbit/s when `ip
 * netns` works here; this kernel has no `netem`, so added latency is not
 * emulated). Each row: samples/s (median timed epoch), exchange ms per step
 * (replica 0: in-host reduce plus the cross-host sum and its waits), the
 * cross-host sum's own ms, and bytes sent per step, with and without fp16.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

import { namespaces, type Placement } from "./_netns.ts";

const NODE = new URL("./_multihost_node.ts", import.meta.url).pathname;

/** One multihost configuration and what it measured. */
export interface MultihostRow {
  suite: "multihost";
  model: "mlp" | "cnn";
  layout: string;
  link: string;
  globalBatch: number;
  compression: "none" | "fp16";
  /** `cluster.bucketBytes` (null: the default; 0: the whole vector after the backward pass). */
  bucketBytes: number | null;
  samplesPerSec?: number;
  stepMs?: number;
  exchangeMs?: number;
  crossHostMs?: number | null;
  bytesPerStep?: number;
  error?: string;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

async function runNodes(
  c: {
    model: "mlp" | "cnn";
    nodes: number;
    replicas: number;
    globalBatch: number;
    steps: number;
    bucketBytes?: number;
  },
  compression: "none" | "fp16",
  place: Placement,
): Promise<Record<string, number | null>> {
  const port = c.nodes > 1 ? freePort() : 0;
  const outs = await Promise.all(Array.from({ length: c.nodes }, (_, rank) => {
    const job = {
      ...c,
      rank,
      port,
      compression,
      host: place.host(rank),
      coordinatorHost: place.host(0),
    };
    const [cmd, ...args] = [
      ...place.prefix(rank),
      Deno.execPath(),
      "run",
      "-A",
      NODE,
      JSON.stringify(job),
    ];
    return new Deno.Command(cmd!, { args, stdout: "piped", stderr: "piped" }).output();
  }));
  const lines = outs.map((o) => {
    const text = new TextDecoder().decode(o.stdout).trim().split("\n").at(-1) ?? "";
    if (o.code !== 0) throw new Error(new TextDecoder().decode(o.stderr).slice(-400));
    return JSON.parse(text);
  });
  return lines[0];
}

/** Runs the multihost suite; `quick` shrinks it. */
export async function multihostSuite(quick: boolean): Promise<MultihostRow[]> {
  const rows: MultihostRow[] = [];
  const loopback: Placement = { prefix: () => [], host: () => "127.0.0.1", link: "loopback" };
  const plans: { model: "mlp" | "cnn"; globalBatch: number; steps: number }[] = quick
    ? [{ model: "mlp", globalBatch: 256, steps: 10 }]
    : [
      { model: "mlp", globalBatch: 256, steps: 40 },
      { model: "mlp", globalBatch: 512, steps: 20 },
      { model: "cnn", globalBatch: 256, steps: 12 },
      { model: "cnn", globalBatch: 512, steps: 12 },
    ];
  const record = async (
    p: { model: "mlp" | "cnn"; globalBatch: number; steps: number },
    layout: { nodes: number; replicas: number; bucketBytes?: number },
    compression: "none" | "fp16",
    place: Placement,
  ) => {
    const base = {
      suite: "multihost" as const,
      model: p.model,
      layout: `${layout.nodes} process${layout.nodes > 1 ? "es" : ""} x ${layout.replicas}`,
      link: layout.nodes > 1 ? place.link : "shared memory",
      globalBatch: p.globalBatch,
      compression,
      bucketBytes: layout.bucketBytes ?? null,
    };
    console.error(
      `multihost: ${base.model} ${base.layout} ${base.link} ${compression} @${p.globalBatch}` +
        ` buckets ${base.bucketBytes}`,
    );
    try {
      const r = await runNodes({ ...p, ...layout }, compression, place);
      rows.push({
        ...base,
        samplesPerSec: r.samplesPerSec!,
        stepMs: r.stepMs!,
        exchangeMs: r.exchangeMs!,
        crossHostMs: r.crossHostMs,
        bytesPerStep: r.bytesPerStep!,
      });
    } catch (e) {
      rows.push({ ...base, error: e instanceof Error ? e.message : String(e) });
    }
  };
  for (const p of plans) {
    await record(p, { nodes: 1, replicas: 2 }, "none", loopback);
    await record(p, { nodes: 2, replicas: 1 }, "none", loopback);
    await record(p, { nodes: 2, replicas: 1, bucketBytes: 0 }, "none", loopback);
    await record(p, { nodes: 2, replicas: 1 }, "fp16", loopback);
  }
  for (const rate of quick ? [] : ["10gbit", "1gbit"]) {
    const place = await namespaces(rate);
    if (place === undefined) {
      console.error("multihost: network namespaces unavailable here; the veth rows are skipped");
      break;
    }
    try {
      for (const compression of ["none", "fp16"] as const) {
        await record(plans[0]!, { nodes: 2, replicas: 1 }, compression, place);
      }
      await record(plans[0]!, { nodes: 2, replicas: 1, bucketBytes: 0 }, "none", place);
    } finally {
      await place.close();
    }
  }
  return rows;
}

function buckets(r: MultihostRow): string {
  if (!r.layout.startsWith("2")) return "-";
  return r.bucketBytes === 0 ? "off" : r.bucketBytes === null ? "on" : `${r.bucketBytes} B`;
}

/** The suite's table, with each row's samples/s as a share of 1 process x 2 replicas. */
export function multihostTable(rows: MultihostRow[]): string {
  const lines = [
    "| model | layout | link | global batch | wire | buckets | samples/s | vs 1 process | step ms | exchange ms | cross-host ms | bytes/step |",
    "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const ref = rows.find((q) =>
      q.model === r.model && q.globalBatch === r.globalBatch && q.layout.startsWith("1 process")
    );
    if (r.error !== undefined) {
      lines.push(
        `| ${r.model} | ${r.layout} | ${r.link} | ${r.globalBatch} | ${r.compression} | ${
          buckets(r)
        } | fails: ${r.error.split("\n")[0]} | | | | | |`,
      );
      continue;
    }
    const share = ref?.samplesPerSec
      ? `${Math.round((r.samplesPerSec! / ref.samplesPerSec) * 100)}%`
      : "-";
    lines.push(
      `| ${r.model} | ${r.layout} | ${r.link} | ${r.globalBatch} | ${r.compression} | ` +
        `${buckets(r)} | ${Math.round(r.samplesPerSec!)} | ${share} | ${r.stepMs!.toFixed(1)} | ` +
        `${r.exchangeMs!.toFixed(2)} | ${
          r.crossHostMs == null ? "-" : r.crossHostMs.toFixed(2)
        } | ` +
        `${r.bytesPerStep!.toLocaleString("en-US")} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const rows = await multihostSuite(quick);
  console.log(multihostTable(rows));
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}multihost.json`, JSON.stringify(rows, null, 2) + "\n");
}
