/**
 * `deno task bench [--suite mlp|cnn|all] [--json FILE] [--quick]`: trains the
 * benchmark models under every configuration, one process at a time, prints a
 * table and writes JSON rows. Benchmarks are not tests: nothing here asserts.
 *
 * @module
 */
import type { Row, RunConfig } from "./_run.ts";

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
  args.filter((a) => a !== "--quick").length > 0 ||
  !["mlp", "cnn", "all"].includes(suite)
) {
  console.error(
    "Usage: deno task bench [--suite mlp|cnn|all] [--json FILE] [--quick]",
  );
  Deno.exit(2);
}
const cores = navigator.hardwareConcurrency ?? 1;

function configs(model: "mlp" | "cnn"): RunConfig[] {
  const steps = quick ? 8 : model === "mlp" ? 40 : 16;
  const base = { suite: model, model, backend: "wasm" as const, steps };
  return [
    { ...base, strategy: "stock", replicas: 1, threads: 1, globalBatch: 256 },
    { ...base, strategy: "fit", replicas: 1, threads: 1, globalBatch: 256 },
    { ...base, strategy: "fit", replicas: 1, threads: cores, globalBatch: 256 },
    {
      ...base,
      strategy: "mirrored",
      replicas: 1,
      threads: 1,
      globalBatch: 128,
    },
    {
      ...base,
      strategy: "mirrored",
      replicas: 1,
      threads: 1,
      globalBatch: 256,
    },
    {
      ...base,
      strategy: "mirrored",
      replicas: cores,
      threads: 1,
      globalBatch: 128 * cores,
    },
    {
      ...base,
      strategy: "mirrored",
      replicas: cores,
      threads: 1,
      globalBatch: 256,
    },
  ];
}

const todo =
  (suite === "all" ? ["mlp", "cnn"] as const : [suite as "mlp" | "cnn"])
    .flatMap(configs);
const rows: Row[] = [];
for (const c of todo) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_run.ts", import.meta.url).pathname,
      JSON.stringify(c),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ??
    "";
  if (!out.success) {
    console.error(
      `${c.model} ${c.strategy} failed:\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
    continue;
  }
  const row = JSON.parse(text) as Row;
  rows.push(row);
  console.error(
    `done: ${c.model} ${c.strategy} x${c.replicas} batch ${c.globalBatch}`,
  );
}

const label = (r: Row) =>
  r.strategy === "stock"
    ? "tfjs model.fit, stock wasm"
    : r.strategy === "fit"
    ? `tfjs model.fit, dtrain wasm (${r.threads} thr)`
    : `dtrain Mirrored ${r.replicas}x${r.threads}`;
console.log(
  "| suite | configuration | global batch | samples/s | step ms | exchange ms | vs stock |",
);
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const stock = rows.find((s) => s.suite === r.suite && s.strategy === "stock");
  console.log(
    `| ${r.suite} | ${label(r)} | ${r.globalBatch} | ${
      Math.round(r.samplesPerSec)
    } | ` +
      `${r.stepMs.toFixed(1)} | ${
        r.exchangeMs === null ? "-" : r.exchangeMs.toFixed(2)
      } | ` +
      `${
        stock ? (r.samplesPerSec / stock.samplesPerSec).toFixed(2) + "x" : "-"
      } |`,
  );
}
await Deno.mkdir(new URL(".", `file://${Deno.cwd()}/${jsonPath}`).pathname, {
  recursive: true,
});
await Deno.writeTextFile(jsonPath, JSON.stringify(rows, null, 2) + "\n");
console.log(`\n${rows.length} rows written to ${jsonPath} (${cores} cores)`);
