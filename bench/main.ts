/**
 * `deno task bench [--suite mlp|cnn|kernels|all] [--json FILE] [--quick]`:
 * runs every benchmark configuration in its own process, one at a time,
 * prints Markdown tables and writes the rows as JSON. Benchmarks are not
 * tests: nothing here asserts.
 *
 * @module
 */
import type { KernelRow } from "./_kernels.ts";
import type { Row, RunConfig } from "./_run.ts";

const USAGE = "Usage: deno task bench [--suite mlp|cnn|kernels|all] [--json FILE] [--quick]";
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
if (
  args.some((a) => a !== "--quick") || !["mlp", "cnn", "kernels", "all"].includes(suite)
) {
  console.error(USAGE);
  Deno.exit(2);
}
const cores = navigator.hardwareConcurrency ?? 1;

function configs(model: "mlp" | "cnn"): RunConfig[] {
  const steps = quick ? 8 : model === "mlp" ? 40 : 16;
  const base = { suite: model, model, backend: "wasm" as const, steps };
  const run = (
    strategy: RunConfig["strategy"],
    replicas: number,
    threads: number,
    globalBatch: number,
  ) => ({
    ...base,
    strategy,
    replicas,
    threads,
    globalBatch,
  });
  const all = [
    run("stock", 1, 1, 256),
    run("fit", 1, 1, 256),
    run("fit", 1, cores, 256),
    run("mirrored", 1, 1, 128),
    run("mirrored", 1, 1, 256),
    run("mirrored", cores, 1, 256),
    run("mirrored", cores, 1, 128 * cores),
    run("mirrored", cores, 1, 256 * cores),
  ];
  const seen = new Set<string>();
  return all.filter((c) => {
    const key = `${c.strategy} ${c.replicas} ${c.threads} ${c.globalBatch}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Runs one script in its own process; parses its last stdout line as JSON. */
async function runChild<T>(
  script: string,
  childArgs: string[],
  what: string,
): Promise<T | { error: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, import.meta.url).pathname, ...childArgs],
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

const kernels: KernelRow[] = [];
if (suite === "kernels" || suite === "all") {
  for (const [variant, threads] of [["stock", 1], ["dtrain", 1], ["dtrain", cores]] as const) {
    const row = await runChild<KernelRow>(
      "./_kernels.ts",
      [variant, String(threads)],
      `kernels ${variant} x${threads}`,
    );
    if (!("error" in row)) kernels.push(row);
  }
}
const models = suite === "all"
  ? ["mlp", "cnn"] as const
  : suite === "kernels"
  ? []
  : [suite as "mlp" | "cnn"];
const rows: Row[] = [];
for (const c of models.flatMap(configs)) {
  const what = `${c.model} ${c.strategy} ${c.replicas}x${c.threads} batch ${c.globalBatch}`;
  const row = await runChild<Row>("./_run.ts", [JSON.stringify(c)], what);
  rows.push(
    "error" in row
      ? { ...c, samplesPerSec: 0, stepMs: 0, exchangeMs: null, error: row.error }
      : row,
  );
}

if (kernels.length > 0) {
  console.log(
    "| wasm kernels | threads | matMul 512 ms | transposeA ms | transposeB ms | " +
      "worst transposed / plain | MLP step @128 ms |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const k of kernels) {
    const m = k.matmulMs;
    const worst = Math.max(m.transposeA, m.transposeB) / m.plain;
    console.log(
      `| ${k.variant} | ${k.threads} | ${m.plain.toFixed(2)} | ${m.transposeA.toFixed(2)} | ` +
        `${m.transposeB.toFixed(2)} | ${worst.toFixed(2)}x | ${k.denseStepMs.toFixed(1)} |`,
    );
  }
  console.log("");
}

const label = (r: Row) =>
  r.strategy === "stock"
    ? "tfjs model.fit, stock wasm"
    : r.strategy === "fit"
    ? `tfjs model.fit, dtrain wasm ${r.threads} thr`
    : `dtrain Mirrored ${r.replicas} repl x ${r.threads} thr`;
if (rows.length > 0) {
  console.log(
    "| suite | configuration | global batch | samples/s | step ms | exchange ms | vs stock |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
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
}
for (const suiteName of new Set(rows.map((r) => r.suite))) {
  const one = (batch: number) =>
    rows.find((r) =>
      r.suite === suiteName && r.strategy === "mirrored" && r.replicas === 1 &&
      r.globalBatch === batch
    );
  const many = (batch: number) =>
    rows.find((r) =>
      r.suite === suiteName && r.strategy === "mirrored" && r.replicas === cores &&
      r.globalBatch === batch
    );
  for (const perReplica of [128, 256]) {
    const a = one(perReplica), b = many(perReplica * cores);
    if (a && b && !a.error && !b.error && cores > 1) {
      const eff = b.samplesPerSec / (cores * a.samplesPerSec);
      console.log(
        `${suiteName}: weak scaling at ${perReplica} per replica, ${cores} replicas: ` +
          `${(eff * 100).toFixed(0)}%; exchange ${
            (100 * b.exchangeMs! / b.stepMs).toFixed(1)
          }% of a step`,
      );
    }
  }
}
const dir = jsonPath.includes("/") ? jsonPath.slice(0, jsonPath.lastIndexOf("/")) : ".";
await Deno.mkdir(dir, { recursive: true });
await Deno.writeTextFile(jsonPath, JSON.stringify({ cores, kernels, rows }, null, 2) + "\n");
console.log(`\n${kernels.length + rows.length} rows written to ${jsonPath} (${cores} cores)`);
