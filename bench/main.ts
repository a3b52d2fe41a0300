/**
 * `deno task bench [--suite SUITE] [--json FILE] [--quick]`: runs every
 * benchmark configuration in its own process, one at a time, prints Markdown
 * tables and writes the rows as JSON. Benchmarks are not tests: nothing here
 * asserts.
 *
 * Suites:
 * - `mlp`, `cnn`: tfjs model.fit (stock and dtrain wasm), MirroredStrategy
 *   and WorkerStrategy on the 784-512-512-10 MLP or the small CNN;
 * - `worker`: only the WorkerStrategy rows of both models;
 * - `straggler`: MirroredStrategy vs WorkerStrategy on the MLP, with and
 *   without one replica/worker about 3x slower (`bench/_slow_model.ts`);
 * - `scaling`: weak scaling of MirroredStrategy (N replicas at N x B vs 1
 *   replica at B, B = 128 and 256, MLP and CNN), three interleaved pairs
 *   per point, median reported: one pair swings several points on a shared
 *   machine. Not part of `all`;
 * - `kernels`: wasm kernel micro-benchmarks;
 * - `all` (default): kernels, mlp, cnn and straggler;
 * - `http`: predict latency and requests/s of the HTTP service on loopback
 *   (autocannon), idle and while a job trains. Not part of `all`: it runs a
 *   server and needs `--unstable-kv` (given to its child process);
 * - `multihost`: MirroredStrategy across processes (`bench/multihost.ts`):
 *   1 process x 2 replicas vs 2 processes x 1 replica over loopback and over
 *   a rate-limited veth between network namespaces. Not part of `all`;
 * - `edge`: WorkerStrategy with remote edge workers (`bench/edge.ts`): 2
 *   local workers vs 2 `dtrain worker` processes over loopback (WebSocket
 *   float32/float16, request/response) and through a 100 Mbit/s veth.
 *   Not part of `all`.
 *
 * Where the host's BLAS is found (see `backends/wasm/_host_blas.ts`), the
 * kernels, mlp, cnn, worker and scaling suites add the same configurations
 * on it ("+ BLAS" rows); every other row refuses it (`DTRAIN_BLAS=off`), so
 * it measures what it measured before the BLAS path existed.
 *
 * `--peers` then runs the PyTorch peer scripts (`../shared/peers/run_torch.sh`
 * from the repository root; skipped with a message where absent) in the same
 * session, after dtrain's rows, and prints the ratios.
 *
 * `--quick` shrinks every suite (fewer steps, shorter measurements).
 * `DTRAIN_BENCH_SLOW_MS=N` sets the straggler's wait per step (default:
 * twice a replica's compute per step, measured in the steady Mirrored run).
 *
 * @module
 */
import type { HttpRow } from "./_http.ts";
import type { KernelRow } from "./_kernels.ts";
import type { Row, RunConfig } from "./_run.ts";
import { type MultihostRow, multihostSuite, multihostTable } from "./multihost.ts";
import { type EdgeRow, edgeSuite, edgeTable } from "./edge.ts";
import { openHostBlas, parseBlasRequest } from "../backends/wasm/_blas_library.ts";

const SUITES = [
  "mlp",
  "cnn",
  "worker",
  "straggler",
  "scaling",
  "kernels",
  "http",
  "multihost",
  "edge",
  "all",
];
const USAGE = `Usage: deno task bench [--suite ${SUITES.join("|")}] [--json FILE] [--quick] ` +
  "[--peers]";
const args = [...Deno.args];
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
}
const suite = flag("--suite") ?? "all";
const jsonPath = flag("--json") ?? "bench/results/latest.json";
const quick = args.includes("--quick");
const peers = args.includes("--peers");
if (args.some((a) => a !== "--quick" && a !== "--peers") || !SUITES.includes(suite)) {
  console.error(USAGE);
  Deno.exit(2);
}
const cores = navigator.hardwareConcurrency ?? 1;
/** Samples per gradient of each WorkerStrategy worker. */
const PER_WORKER = 128;

/** Whether the host's BLAS opens here (as DTRAIN_BLAS asks): BLAS rows run only then. */
const blasHere = (() => {
  let request;
  try {
    request = parseBlasRequest(Deno.env.get("DTRAIN_BLAS"));
  } catch (cause) {
    console.error(`${cause instanceof Error ? cause.message : cause}`);
    Deno.exit(2);
  }
  const lib = openHostBlas(request);
  if (!("sgemm" in lib)) {
    console.error(`no BLAS rows: ${lib.reason}`);
    return undefined;
  }
  const what = `${lib.path}${lib.coreName ? ` (${lib.coreName})` : ""}`;
  lib.close();
  console.error(`BLAS rows on ${what}`);
  return what;
})();

function configs(model: "mlp" | "cnn"): RunConfig[] {
  const steps = quick ? 8 : model === "mlp" ? 100 : 40;
  const base = { suite: model, model, backend: "wasm" as const };
  const run = (
    strategy: RunConfig["strategy"],
    replicas: number,
    threads: number,
    globalBatch: number,
  ) => ({
    ...base,
    // Stock steps are 10-30x longer: fewer of them time as long an epoch.
    steps: strategy === "stock" ? Math.max(4, Math.round(steps / 5)) : steps,
    strategy,
    replicas,
    threads,
    globalBatch,
  });
  const all: RunConfig[] = [
    run("stock", 1, 1, 256),
    run("fit", 1, 1, 256),
    run("fit", 1, cores, 256),
    run("mirrored", 1, 1, 128),
    run("mirrored", 1, 1, 256),
    run("mirrored", cores, 1, 256),
    run("mirrored", cores, 1, 128 * cores),
    run("mirrored", cores, 1, 256 * cores),
    // WorkerStrategy: `cores` workers of PER_WORKER samples per gradient.
    run("worker", cores, 1, PER_WORKER * cores),
  ];
  if (blasHere !== undefined) {
    const onBlas = (c: RunConfig): RunConfig => ({ ...c, blas: true });
    all.push(
      ...[
        run("fit", 1, 1, 256),
        run("fit", 1, cores, 256),
        run("mirrored", 1, 1, 128),
        run("mirrored", 1, 1, 256),
        // threadsPerReplica maps onto the library's threads.
        run("mirrored", 1, cores, 256),
        run("mirrored", cores, 1, 256),
        run("mirrored", cores, 1, 128 * cores),
        run("mirrored", cores, 1, 256 * cores),
        run("worker", cores, 1, PER_WORKER * cores),
      ].map(onBlas),
    );
  }
  const seen = new Set<string>();
  return all.filter((c) => {
    const key = `${c.strategy} ${c.replicas} ${c.threads} ${c.globalBatch} ${c.blas === true}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Weak-scaling pairs: 1 replica at B, then N replicas at N x B, three times per point. */
function scalingConfigs(): RunConfig[] {
  const n = Math.max(2, cores);
  const out: RunConfig[] = [];
  for (const blas of blasHere === undefined ? [false] : [false, true]) {
    for (const model of ["mlp", "cnn"] as const) {
      const steps = quick ? 8 : model === "mlp" ? 100 : 40;
      for (const perReplica of [128, 256]) {
        for (let pair = 0; pair < SCALING_PAIRS; pair++) {
          for (const replicas of [1, n]) {
            out.push({
              suite: "scaling",
              model,
              strategy: "mirrored",
              backend: "wasm",
              replicas,
              threads: 1,
              globalBatch: replicas * perReplica,
              steps,
              ...(blas ? { blas } : {}),
            });
          }
        }
      }
    }
  }
  return out;
}

/** Interleaved pairs per weak-scaling point. */
const SCALING_PAIRS = 3;

/**
 * MirroredStrategy and WorkerStrategy on the MLP, each without and with a
 * straggler: at least 2 replicas/workers (replica/worker 1 is the slow one),
 * PER_WORKER samples per replica/worker and step.
 */
function stragglerConfigs(): RunConfig[] {
  const n = Math.max(2, cores);
  const out: RunConfig[] = [];
  // Steady runs first: the straggler's wait comes from the steady Mirrored run.
  for (const straggler of [false, true]) {
    for (const strategy of ["mirrored", "worker"] as const) {
      out.push({
        suite: "straggler",
        model: "mlp",
        strategy,
        backend: "wasm",
        replicas: n,
        threads: 1,
        globalBatch: PER_WORKER * n,
        steps: quick ? 8 : 30,
        straggler,
      });
    }
  }
  return out;
}

/** Runs one script in its own process; parses its last stdout line as JSON. */
async function runChild<T>(
  script: string,
  childArgs: string[],
  what: string,
  denoFlags: string[] = [],
  env: Record<string, string> = {},
): Promise<T | { error: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, new URL(script, import.meta.url).pathname, ...childArgs],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr);
    console.error(`${what} failed:\n${stderr}`);
    return { error: stderr.match(/Error: ([^\n]*)/)?.[1] ?? "failed" };
  }
  console.error(`done: ${what}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "") as T;
}

/** `DTRAIN_BENCH_SLOW_MS` set by the user: the straggler's wait, in ms. */
const SLOW_MS_OVERRIDE = Number(Deno.env.get("DTRAIN_BENCH_SLOW_MS")) > 0
  ? Number(Deno.env.get("DTRAIN_BENCH_SLOW_MS"))
  : undefined;

/**
 * The straggler's wait per training step: twice a replica's compute time per
 * step in the steady Mirrored run, so that its step takes about 3x as long;
 * the same wait for both strategies. Undefined when that run failed: the
 * slow Worker then measures its own normal step (`bench/_slow_model.ts`).
 */
function stragglerWaitMs(done: Row[]): number | undefined {
  const steady = done.find((r) =>
    r.suite === "straggler" && r.strategy === "mirrored" && r.straggler === false &&
    r.error === undefined && r.computeMs !== undefined && r.computeMs > 0
  );
  return steady === undefined ? undefined : Math.round(2 * steady.computeMs! * 10) / 10;
}

const kernels: KernelRow[] = [];
if (suite === "kernels" || suite === "all") {
  const variants: [KernelRow["variant"], number][] = [["stock", 1], ["dtrain", 1], [
    "dtrain",
    cores,
  ]];
  if (blasHere !== undefined) variants.push(["blas", 1], ["blas", cores]);
  for (const [variant, threads] of variants) {
    const row = await runChild<KernelRow>(
      "./_kernels.ts",
      [variant, String(threads), ...(quick ? ["quick"] : [])],
      `kernels ${variant} x${threads}`,
      [],
      variant === "blas" ? {} : { DTRAIN_BLAS: "off" },
    );
    if (!("error" in row)) kernels.push(row);
  }
}
const plan: RunConfig[] = suite === "all"
  ? [...configs("mlp"), ...configs("cnn"), ...stragglerConfigs()]
  : suite === "mlp" || suite === "cnn"
  ? configs(suite)
  : suite === "worker"
  ? [...configs("mlp"), ...configs("cnn")].filter((c) => c.strategy === "worker")
  : suite === "straggler"
  ? stragglerConfigs()
  : suite === "scaling"
  ? scalingConfigs()
  : [];
const rows: Row[] = [];
for (const c of plan) {
  const what = `${c.suite}: ${c.model} ${c.strategy} ${c.replicas}x${c.threads} batch ` +
    `${c.globalBatch}${c.straggler === undefined ? "" : c.straggler ? ", straggler" : ", steady"}` +
    (c.blas ? ", BLAS" : "");
  const slowMs = c.straggler ? SLOW_MS_OVERRIDE ?? stragglerWaitMs(rows) : undefined;
  const row = await runChild<Row>(
    "./_run.ts",
    [JSON.stringify(c)],
    what,
    [],
    slowMs === undefined ? {} : { DTRAIN_BENCH_SLOW_MS: String(slowMs) },
  );
  rows.push(
    "error" in row
      ? { ...c, samplesPerSec: 0, stepMs: 0, exchangeMs: null, slowMs, error: row.error }
      : { ...row, slowMs },
  );
}
let http: HttpRow[] = [];
if (suite === "http") {
  const out = await runChild<HttpRow[]>(
    "./_http.ts",
    [JSON.stringify({ quick })],
    "http: predict latency, idle and while training",
    ["--unstable-kv"],
  );
  if ("error" in out) console.error(`http suite failed: ${out.error}`);
  else http = out;
}

// Across processes: its own suite (it starts node processes and, where it can,
// network namespaces), not part of "all".
let multihost: MultihostRow[] = [];
if (suite === "multihost") {
  multihost = await multihostSuite(quick);
  console.log(multihostTable(multihost));
}
// Remote edge workers: its own suite too (a server, worker processes, a
// rate-limited namespace where it can).
let edge: EdgeRow[] = [];
if (suite === "edge") {
  edge = await edgeSuite(quick);
  console.log(edgeTable(edge));
}

if (kernels.length > 0) {
  console.log(
    "| wasm kernels | threads | matMul 512 ms | transposeA ms | transposeB ms | " +
      "worst transposed / plain | fresh 128x784x512 ms | same, XNNPACK ms | MLP step @128 ms |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const k of kernels) {
    const m = k.matmulMs;
    const worst = Math.max(m.transposeA, m.transposeB) / m.plain;
    console.log(
      `| ${k.variant} | ${k.threads} | ${m.plain.toFixed(2)} | ${m.transposeA.toFixed(2)} | ` +
        `${m.transposeB.toFixed(2)} | ${worst.toFixed(2)}x | ${k.freshMatmulMs.toFixed(2)} | ` +
        `${k.freshXnnpackMs?.toFixed(2) ?? "-"} | ${k.denseStepMs.toFixed(1)} |`,
    );
  }
  console.log(
    "\nfresh: a right operand never seen before, as every operand is in training " +
      "(XNNPACK packs it on first use); dtrain's GEMM runs when the backend has 1 thread; " +
      "blas: the products on the host's BLAS.\n",
  );
  const onBlas = kernels.filter((k) => k.variant === "blas");
  if (onBlas.length > 0) {
    console.log(
      "| host BLAS, fresh 128x784x512 | threads | zero-copy (heap pointers) ms | " +
        "copy out + sgemm + copy back ms | sgemm alone, plain arrays ms | dtrain GEMM ms | " +
        "core | probe GFLOP/s |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---|---:|");
    for (const k of onBlas) {
      console.log(
        `| ${k.blas?.library ?? "-"} | ${k.threads} | ${k.freshMatmulMs.toFixed(2)} | ` +
          `${k.freshCopyMs?.toFixed(2) ?? "-"} | ${k.plainSgemmMs?.toFixed(2) ?? "-"} | ` +
          `${k.freshGemmMs?.toFixed(2) ?? "-"} | ${k.blas?.coreName ?? "-"} | ` +
          `${k.blas?.gflops ?? "-"} |`,
      );
    }
    console.log("");
  }
}

const plainLabel = (r: Row) =>
  r.strategy === "stock"
    ? "tfjs model.fit, stock wasm"
    : r.strategy === "fit"
    ? `tfjs model.fit, dtrain wasm ${r.threads} thr`
    : r.strategy === "worker"
    ? `dtrain Worker ${r.replicas} workers${r.threads > 1 ? ` x ${r.threads} thr` : ""}`
    : `dtrain Mirrored ${r.replicas} repl x ${r.threads} thr`;
const label = (r: Row) => plainLabel(r) + (r.blas ? " + BLAS" : "");
const fixed = (v: number | undefined, digits: number) => v === undefined ? "-" : v.toFixed(digits);
const mainRows = rows.filter((r) => r.suite !== "straggler" && r.suite !== "scaling");
if (mainRows.length > 0) {
  console.log(
    "| suite | configuration | global batch | samples/s | step ms | exchange ms | vs stock |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const r of mainRows) {
    if (r.error !== undefined) {
      console.log(
        `| ${r.suite} | ${label(r)} | ${r.globalBatch} | fails: ${r.error} | - | - | - |`,
      );
      continue;
    }
    const stock = rows.find((s) => s.suite === r.suite && s.strategy === "stock" && !s.error);
    const ratio = stock ? `${(r.samplesPerSec / stock.samplesPerSec).toFixed(2)}x` : "-";
    const exchange = r.exchangeMs === null ? "-" : r.exchangeMs.toFixed(2);
    console.log(
      `| ${r.suite} | ${label(r)} | ${r.globalBatch} | ${Math.round(r.samplesPerSec)} | ` +
        `${r.stepMs.toFixed(1)} | ${exchange} | ${ratio} |`,
    );
  }
  console.log(
    "\nmodel.fit and Mirrored rows: the median of epochs 2-4 of a four-epoch fit (steady " +
      "state with its epoch boundaries); the once-per-fit setup is in the JSON as fitOverheadMs.",
  );
  if (mainRows.some((r) => r.strategy === "worker")) {
    console.log(
      `Worker rows: a whole one-epoch fit; ${PER_WORKER} samples per gradient and worker; ` +
        `global batch = workers x ${PER_WORKER}; samples/s counts applied gradients; ` +
        "step ms = time per global batch.",
    );
  }
}
const workerRows = rows.filter((r) => r.strategy === "worker" && r.error === undefined);
if (workerRows.length > 0) {
  console.log("");
  console.log(
    "| suite | WorkerStrategy | applied | mean staleness | max staleness | dropped | " +
      "ms per gradient, each worker |",
  );
  console.log("|---|---|---:|---:|---:|---:|---|");
  for (const r of workerRows) {
    const name = r.straggler === undefined
      ? label(r)
      : `${label(r)}, ${r.straggler ? "straggler" : "no straggler"}`;
    console.log(
      `| ${r.suite} | ${name} | ${r.applied ?? "-"} | ${fixed(r.meanStaleness, 2)} | ` +
        `${r.maxStaleness ?? "-"} | ${r.dropped ?? "-"} | ` +
        `${(r.workerStepMs ?? []).map((ms) => ms.toFixed(1)).join(" / ")} |`,
    );
  }
}
const stragglerRows = rows.filter((r) => r.suite === "straggler").sort((a, b) =>
  a.strategy.localeCompare(b.strategy) || Number(a.straggler) - Number(b.straggler)
);
if (stragglerRows.length > 0) {
  console.log("");
  console.log(
    "| straggler (MLP) | replica/worker 1 | per-replica batch | samples/s | step ms | " +
      "vs no straggler | worker 1 / worker 0 ms per gradient |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const r of stragglerRows) {
    const slow = r.straggler ? "~3x slower" : "normal";
    const perReplica = r.globalBatch / r.replicas;
    if (r.error !== undefined) {
      console.log(`| ${label(r)} | ${slow} | ${perReplica} | fails: ${r.error} | - | - | - |`);
      continue;
    }
    const steady = stragglerRows.find((s) =>
      s.strategy === r.strategy && s.straggler === false && s.error === undefined
    );
    const ratio = steady ? `${(r.samplesPerSec / steady.samplesPerSec).toFixed(2)}x` : "-";
    const [w0, w1] = r.workerStepMs ?? [];
    const measured = w0 !== undefined && w1 !== undefined ? `${(w1 / w0).toFixed(2)}x` : "-";
    console.log(
      `| ${label(r)} | ${slow} | ${perReplica} | ${Math.round(r.samplesPerSec)} | ` +
        `${r.stepMs.toFixed(1)} | ${ratio} | ${measured} |`,
    );
  }
  const wait = stragglerRows.find((r) => r.slowMs !== undefined)?.slowMs;
  const how = wait === undefined
    ? "2x its own normal step, measured in its first training steps"
    : `${wait} ms (${
      SLOW_MS_OVERRIDE !== undefined
        ? "DTRAIN_BENCH_SLOW_MS"
        : "2x a replica's compute per step in the steady Mirrored run"
    })`;
  console.log(`\nThe slow replica/worker (id 1) busy-waits ${how} per training step.`);
  console.log(
    "Ideal, compute-bound: Mirrored keeps 1/3 of its throughput (every " +
      "step waits for the slow replica); Worker keeps (N - 1 + 1/3) / N, minus dropped gradients.",
  );
}
if (http.length > 0) {
  console.log("");
  console.log(
    "| http predict (MLP, 1 row) | form | concurrency | requests/s | p50 ms | p99 ms | mean ms | " +
      "failed |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const h of http) {
    const load = h.load === "idle"
      ? "idle"
      : `while training${h.trainingRunning === false ? " (job ended early)" : ""}`;
    console.log(
      `| ${load} | ${h.form} | ${h.concurrency} | ${Math.round(h.requestsPerSec)} | ${h.p50Ms} | ` +
        `${h.p99Ms} | ${h.meanMs.toFixed(1)} | ${h.failed} |`,
    );
  }
  console.log(
    `\nLoad generator: ${http[0]!.tool}, ${http[0]!.durationS} s per measurement, ` +
      "server on 127.0.0.1 in its own process.",
  );
}
for (const suiteName of new Set(mainRows.map((r) => r.suite))) {
  const one = (batch: number, blas: boolean) =>
    rows.find((r) =>
      r.suite === suiteName && r.strategy === "mirrored" && r.replicas === 1 &&
      r.threads === 1 && r.globalBatch === batch && (r.blas === true) === blas
    );
  const many = (batch: number, blas: boolean) =>
    rows.find((r) =>
      r.suite === suiteName && r.strategy === "mirrored" && r.replicas === cores &&
      r.globalBatch === batch && (r.blas === true) === blas
    );
  for (
    const [perReplica, blas] of [[128, false], [256, false], [128, true], [256, true]] as const
  ) {
    const a = one(perReplica, blas), b = many(perReplica * cores, blas);
    if (a && b && !a.error && !b.error && cores > 1) {
      const eff = b.samplesPerSec / (cores * a.samplesPerSec);
      console.log(
        `${suiteName}${blas ? " + BLAS" : ""}: weak scaling at ${perReplica} per replica, ` +
          `${cores} replicas: ` +
          `${(eff * 100).toFixed(0)}%; exchange ${
            (100 * b.exchangeMs! / b.stepMs).toFixed(1)
          }% of a step`,
      );
    }
  }
}
const scaling = rows.filter((r) => r.suite === "scaling" && r.error === undefined);
if (scaling.length > 0) {
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  console.log(
    "\n| weak scaling | per-replica batch | replicas | weak scaling, median | each pair | " +
      "exchange, % of a step | 1-replica samples/s, median |",
  );
  console.log("|---|---:|---:|---:|---|---:|---:|");
  for (const [model, blas] of [["mlp", false], ["cnn", false], ["mlp", true], ["cnn", true]]) {
    for (const perReplica of [128, 256]) {
      const ones = scaling.filter((r) =>
        r.model === model && r.replicas === 1 && r.globalBatch === perReplica &&
        (r.blas === true) === blas
      );
      const manys = scaling.filter((r) =>
        r.model === model && r.replicas > 1 && r.globalBatch === r.replicas * perReplica &&
        (r.blas === true) === blas
      );
      const pairs = Math.min(ones.length, manys.length);
      if (pairs === 0) continue;
      const eff = Array.from(
        { length: pairs },
        (_, i) => manys[i]!.samplesPerSec / (manys[i]!.replicas * ones[i]!.samplesPerSec),
      );
      const exchange = manys.slice(0, pairs).map((r) => 100 * r.exchangeMs! / r.stepMs);
      console.log(
        `| ${model}${blas ? " + BLAS" : ""} | ${perReplica} | ${manys[0]!.replicas} | ${
          (100 * median(eff)).toFixed(0)
        }% | ` +
          `${eff.map((e) => `${(100 * e).toFixed(0)}%`).join(" / ")} | ${
            median(exchange).toFixed(1)
          }% | ${Math.round(median(ones.slice(0, pairs).map((r) => r.samplesPerSec)))} |`,
      );
    }
  }
}
/** One JSON line of the PyTorch peer scripts (`../shared/peers/run_torch.sh`). */
interface PeerRow {
  torch?: string;
  threads?: number;
  B?: number;
  step_ms?: number | number[];
  samples_per_s?: number;
  ddp_gloo_ws?: number;
  global_B?: number;
  lib?: string;
  gflops?: number;
  error?: string;
}
let peerRows: PeerRow[] = [];
if (peers) peerRows = await runPeers();

/**
 * Runs `../shared/peers/run_torch.sh` (from the repository root) after
 * dtrain's rows, alone, and parses its JSON lines; none where it is absent.
 */
async function runPeers(): Promise<PeerRow[]> {
  const script = new URL("../../shared/peers/run_torch.sh", import.meta.url).pathname;
  try {
    await Deno.stat(script);
  } catch {
    console.error(`--peers: ${script} not found; the PyTorch rows are skipped`);
    return [];
  }
  console.error(`--peers: running ${script} (alone, after dtrain's rows)`);
  const out = await new Deno.Command("bash", { args: [script], stdout: "piped", stderr: "piped" })
    .output();
  const parsed: PeerRow[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    try {
      parsed.push(JSON.parse(line) as PeerRow);
    } catch {
      console.error(`--peers: not JSON: ${line}`);
    }
  }
  if (!out.success || parsed.length === 0) {
    console.error(
      `--peers: run_torch.sh exited ${out.code}: ${
        new TextDecoder().decode(out.stderr).slice(-500)
      }`,
    );
  }
  return parsed;
}

if (peerRows.length > 0) {
  const mlp = rows.filter((r) => r.suite === "mlp" && r.error === undefined);
  const find = (f: (r: Row) => boolean, blas: boolean) =>
    mlp.find((r) => f(r) && (r.blas === true) === blas);
  const torch = (threads: number, batch?: number) =>
    peerRows.filter((p) =>
      p.torch !== undefined && p.threads === threads && (batch === undefined || p.B === batch)
    ).sort((a, b) => (b.samples_per_s ?? 0) - (a.samples_per_s ?? 0))[0];
  const ddp = peerRows.find((p) => p.ddp_gloo_ws === 2);
  const best = (blas: boolean) =>
    mlp.filter((r) => r.strategy !== "stock" && (r.blas === true) === blas)
      .sort((a, b) => b.samplesPerSec - a.samplesPerSec)[0];
  const pairs: [string, Row | undefined, string, PeerRow | undefined, string][] = [];
  for (const blas of [true, false]) {
    const tag = blas ? " + BLAS" : "";
    pairs.push(
      [
        `Mirrored 2 repl x 1 thr, global 256${tag}`,
        find((r) =>
          r.strategy === "mirrored" && r.replicas === 2 && r.threads === 1 &&
          r.globalBatch === 256, blas),
        "DDP gloo, 2 processes x 1 thread, global 256",
        ddp,
        ">= 1.0x",
      ],
      [
        `Mirrored 1 repl x 1 thr, batch 128${tag}`,
        find((r) =>
          r.strategy === "mirrored" && r.replicas === 1 && r.threads === 1 &&
          r.globalBatch === 128, blas),
        "1 thread, batch 128",
        torch(1, 128),
        ">= 1.0x",
      ],
      [
        `best 2-core configuration${tag}`,
        best(blas),
        "2 threads, best batch",
        torch(2),
        ">= 0.8x (stretch)",
      ],
    );
  }
  console.log(
    "\n| MLP vs PyTorch (same session) | dtrain samples/s | PyTorch | PyTorch samples/s | " +
      "ratio | target |",
  );
  console.log("|---|---:|---|---:|---:|---|");
  for (const [name, d, peerName, p, target] of pairs) {
    if (d === undefined || p?.samples_per_s === undefined) continue;
    const what = name.startsWith("best") ? `${name}: ${label(d)} @${d.globalBatch}` : name;
    const peer = peerName.includes("best") ? `${peerName} (B=${p.B})` : peerName;
    console.log(
      `| ${what} | ${Math.round(d.samplesPerSec)} | ${peer} | ${p.samples_per_s} | ` +
        `${(d.samplesPerSec / p.samples_per_s).toFixed(2)}x | ${target} |`,
    );
  }
  const sgemm = peerRows.filter((p) => p.lib !== undefined);
  const blasKernel = kernels.find((k) => k.variant === "blas" && k.threads === 1);
  if (sgemm.length > 0) {
    console.log(
      `\nsgemm 2048^3, PyTorch: ${
        sgemm.map((p) => `${p.gflops} GFLOP/s (${p.threads} thr)`).join(", ")
      }` +
        (blasKernel?.blas?.gflops === undefined
          ? ""
          : `; dtrain's host BLAS probe (128x784x512, 1 thr): ${blasKernel.blas.gflops} GFLOP/s`),
    );
  }
}

const dir = jsonPath.includes("/") ? jsonPath.slice(0, jsonPath.lastIndexOf("/")) : ".";
await Deno.mkdir(dir, { recursive: true });
await Deno.writeTextFile(
  jsonPath,
  JSON.stringify({ cores, kernels, rows, http, multihost, edge, peers: peerRows }, null, 2) + "\n",
);
console.log(
  `\n${
    kernels.length + rows.length + http.length + multihost.length + edge.length
  } rows written to ${jsonPath} (${cores} cores)`,
);
