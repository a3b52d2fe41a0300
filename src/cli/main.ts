/**
 * The `dtrain` command line: `train`, `predict`, `backends`, `bench`,
 * `serve`. Run `deno task dtrain --help` in the repository, or install it:
 * `deno install -g -A -n dtrain jsr:@dtrain/dtrain/cli`.
 *
 * Every command takes `--help`; unknown flags and bad values print a clear
 * message and exit with status 2.
 *
 * @example
 * ```sh
 * deno task dtrain train --dataset mnist --model mlp --epochs 5 --save ./out/mnist
 * deno task dtrain predict --model ./out/mnist --input digits.json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "../tf.ts";
import { selectBackend } from "../../backends/select.ts";
import { BACKEND_NAMES, type BackendName } from "../../backends/types.ts";
import { backendRows } from "../../backends/cli.ts";
import { toTensors } from "../data/to_tensors.ts";
import { fileHandler, registerFileIO } from "../io/file_handler.ts";
import { buildPreset } from "../models/presets.ts";
import { createStrategy, type StrategySpec } from "../strategy/create_strategy.ts";
import { isStrategyKind, STRATEGY_KINDS } from "../strategy/strategy.ts";
import type { MirroredClusterOptions } from "../strategy/mirrored.ts";
import { clusterFromEnv, type ClusterSpec, validateClusterSpec } from "../cluster/mod.ts";
import { loadCliDataset } from "./_dataset.ts";
import { UsageError } from "./_usage_error.ts";

const HELP: Record<string, string> = {
  main: `dtrain: data-parallel TensorFlow.js training on Deno

Usage: dtrain <command> [flags]

Commands:
  train      train a preset or module model on a dataset
  predict    run a saved model on inputs from a JSON or CSV file
  backends   show the backends this host can run, and which auto picks
  bench      measure training throughput of 1 replica vs all cores
  serve      start the HTTP service
  worker     lend this machine's cores to a remote job of a dtrain service

Run "dtrain <command> --help" for its flags.`,
  train: `Usage: dtrain train [flags]

  --dataset NAME        mnist (embedded, default), fashion-mnist (Debian
                        dataset-fashion-mnist), idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS],
                        or a .csv file (with --label-column)
  --label-column COL    CSV label column (name or zero-based index)
  --limit N             use at most N training samples
  --model NAME|URL      mlp (default), cnn, or a module URL exporting a builder
  --export NAME         the builder's export name in a model module (default: default)
  --hidden 256,128      MLP hidden layer sizes
  --strategy NAME       mirrored (synchronous replicas, global batch; default) or
                        worker (asynchronous parameter server, batch per worker)
  --replicas N          replicas or workers (default: all cores)
  --threads N           WASM threads per replica (default 1)
  --backend NAME        auto (default), wasm, webgpu or cpu
  --epochs N            default 5
  --batch-size N        global batch size (default 128)
  --lr X                Adam learning rate (default 0.001)
  --validation-split X  fraction of training samples held out (default 0.1)
  --seed N              shuffling and initialisation seed (default 42)
  --checkpoint DIR      checkpoint every epoch into DIR and resume from it
  --save DIR            save the trained model (model.json + weights.bin; rank 0 only)
  --trace FILE          write a Chrome-trace timeline of the fit (mirrored; open in Perfetto)
  --json                print one JSON object instead of progress and text

Across hosts (mirrored; every node runs the same command with its own rank):
  --nnodes N            number of nodes (hosts)
  --node-rank R         this node's rank, 0..N-1 (rank 0 is the coordinator)
  --coordinator H:P     rank 0's address and port
  --peer-timeout-ms MS  a silent peer is lost after MS (default 30000)
  --compression fp16    halve the bytes between hosts (inexact; default none)
  --max-restarts N      after a lost node, re-form the group and resume from the
                        newest checkpoint up to N times (needs --checkpoint)
  The token comes from DTRAIN_TOKEN. Without these flags, clusterFromEnv()
  reads DTRAIN_NNODES/DTRAIN_NODE_RANK/DTRAIN_COORDINATOR, torchrun's
  MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK, JOB_COMPLETION_INDEX or TF_CONFIG.`,
  predict: `Usage: dtrain predict --model DIR --input FILE [--json]

  --model DIR     a saved model folder (model.json + weights.bin)
  --input FILE    a JSON array of samples (number[] or nested) or a CSV file
                  of numbers (no header); each row is one sample
Prints one line per sample with the predicted class, or JSON with --json.`,
  backends: `Usage: dtrain backends [--json]

Probes WebGPU, WASM and CPU, measures a matMul on each available one and
marks the one auto selection picks.`,
  bench: `Usage: dtrain bench [--model mlp|cnn] [--steps N] [--batch-size N] [--json]

Trains the preset on synthetic data with 1 replica and with one replica per
core, and prints samples/s for both.`,
  worker: `Usage: dtrain worker --server URL --job JOB_ID [flags]

Computes gradients for a WorkerStrategy job submitted with
"strategy": { "kind": "worker", "remote": true }, until the job ends (exit 0).
Connects out to the service (works behind NAT); reconnects with backoff when
the connection or the server goes away. Ctrl-C leaves cleanly.

  --server URL      the service, e.g. http://10.0.0.2:8787
  --job ID          the job id POST /v1/jobs answered
  --backend NAME    auto (default), wasm, webgpu or cpu
  --threads N       WASM threads (default 1)
  --transport T     websocket (default) or http (one request per gradient)
  --fp16            float16 weights and gradients on the wire (half the bytes)
  --name NAME       shown in the job's worker list (default: the hostname)
  --max-retries N   failed connection attempts in a row before giving up (default 30)
  --json            print one JSON object at the end instead of progress lines
  The token comes from DTRAIN_TOKEN: the service token or the job's workerToken.`,
  serve: `Usage: dtrain serve [--host 127.0.0.1] [--port 8787] [--data-dir ./.dtrain]

Starts the HTTP service (needs --unstable-kv). Token from DTRAIN_TOKEN.`,
};

function intFlag(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, received "${value}"`);
  }
  return n;
}

function numFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, received "${value}"`);
  return n;
}

function backendFlag(value: string | undefined): BackendName | "auto" {
  const v = value ?? "auto";
  if (v !== "auto" && !(BACKEND_NAMES as readonly string[]).includes(v)) {
    throw new UsageError(`--backend must be auto, ${BACKEND_NAMES.join(", ")}, received "${v}"`);
  }
  return v as BackendName | "auto";
}

function parse<T extends Record<string, { type: "string" | "boolean" }>>(
  args: string[],
  options: T,
): Record<keyof T, string | boolean | undefined> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: "boolean" } }, strict: true })
      .values as unknown as Record<keyof T, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/**
 * The cluster this node belongs to: from --nnodes/--node-rank/--coordinator
 * (token from DTRAIN_TOKEN), else from the launcher variables
 * `clusterFromEnv()` reads; undefined for one host.
 */
function clusterFlags(
  f: Record<string, string | boolean | undefined>,
): MirroredClusterOptions | undefined {
  const given = ["nnodes", "node-rank", "coordinator"].filter((k) => f[k] !== undefined);
  let spec: ClusterSpec | undefined;
  if (given.length > 0) {
    if (given.length < 3) {
      throw new UsageError(
        "--nnodes, --node-rank and --coordinator go together: missing " +
          ["--nnodes", "--node-rank", "--coordinator"].filter((k) => !given.includes(k.slice(2)))
            .join(", "),
      );
    }
    spec = {
      nodes: intFlag(f.nnodes as string, "nnodes", 1),
      rank: intFlag(f["node-rank"] as string, "node-rank", 0, 0),
      coordinator: f.coordinator as string,
      token: Deno.env.get("DTRAIN_TOKEN") || undefined,
    };
  } else {
    try {
      spec = clusterFromEnv();
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
  }
  const compression = (f.compression as string | undefined) ?? "none";
  if (compression !== "none" && compression !== "fp16") {
    throw new UsageError(`--compression must be none or fp16, received "${compression}"`);
  }
  if (spec === undefined || spec.nodes === 1) {
    if (
      f.compression !== undefined || f["peer-timeout-ms"] !== undefined ||
      f["max-restarts"] !== undefined
    ) {
      throw new UsageError("--compression, --peer-timeout-ms and --max-restarts need --nnodes > 1");
    }
    return undefined;
  }
  try {
    validateClusterSpec(spec);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  return {
    ...spec,
    compression,
    peerTimeoutMs: intFlag(f["peer-timeout-ms"] as string, "peer-timeout-ms", 30_000),
    maxRestarts: intFlag(f["max-restarts"] as string, "max-restarts", 0, 0),
  };
}

const s = { type: "string" } as const;
const b = { type: "boolean" } as const;

async function train(args: string[], out: (line: string) => void): Promise<void> {
  const f = parse(args, {
    dataset: s,
    "label-column": s,
    limit: s,
    model: s,
    export: s,
    hidden: s,
    strategy: s,
    replicas: s,
    threads: s,
    backend: s,
    epochs: s,
    "batch-size": s,
    lr: s,
    "validation-split": s,
    seed: s,
    checkpoint: s,
    save: s,
    trace: s,
    json: b,
    nnodes: s,
    "node-rank": s,
    coordinator: s,
    "peer-timeout-ms": s,
    compression: s,
    "max-restarts": s,
  });
  const json = f.json === true;
  const epochs = intFlag(f.epochs as string, "epochs", 5);
  const batchSize = intFlag(f["batch-size"] as string, "batch-size", 128);
  const seed = intFlag(f.seed as string, "seed", 42, 0);
  const lr = numFlag(f.lr as string, "lr", 0.001);
  const split = numFlag(f["validation-split"] as string, "validation-split", 0.1);
  const replicas = f.replicas === undefined
    ? undefined
    : intFlag(f.replicas as string, "replicas", 1);
  const threads = intFlag(f.threads as string, "threads", 1);
  const backend = backendFlag(f.backend as string);
  const strategyName = (f.strategy as string) ?? "mirrored";
  const kinds = Object.keys(STRATEGY_KINDS);
  if (!isStrategyKind(strategyName)) {
    throw new UsageError(
      `--strategy must be ${kinds.join(" or ")}, received "${strategyName}"`,
    );
  }
  const kind = STRATEGY_KINDS[strategyName];
  const cluster = clusterFlags(f);
  if (cluster !== undefined && strategyName !== "mirrored") {
    throw new UsageError("--nnodes (training across hosts) works with --strategy mirrored only");
  }
  const rank = cluster?.rank ?? 0;
  // Every node prints its own lines; rank 0's are the job's.
  const say = rank === 0 ? out : (line: string) => out(`[rank ${rank}] ${line}`);
  if (!kind.checkpoints && f.checkpoint !== undefined) {
    const able = kinds.filter((k) => STRATEGY_KINDS[k as typeof strategyName].checkpoints);
    throw new UsageError(`--checkpoint works with --strategy ${able.join(" or ")} only`);
  }
  // A main thread that only prepares data needs no more than the CPU; a
  // parameter server applies every update and gets a fast backend.
  await selectBackend(
    kind.mainThread === "optimizer"
      ? { prefer: "wasm", threads: 1, override: "" }
      : { require: "cpu", override: "" },
  );
  const modelName = (f.model as string) ?? "mlp";
  const hidden = f.hidden === undefined
    ? undefined
    : (f.hidden as string).split(",").map((h) => intFlag(h, "hidden", 1));
  const limit = f.limit === undefined ? undefined : intFlag(f.limit as string, "limit", 1);
  const ds = await loadCliDataset((f.dataset as string) ?? "mnist", {
    limit,
    labelColumn: f["label-column"] as string | undefined,
    seed,
  });
  const image = modelName === "cnn";
  const width = ds.featureShape.reduce((a, c) => a * c, 1);
  let model: tf.LayersModel;
  let modelModule: { url: string; exportName: string } | undefined;
  if (modelName === "mlp") {
    model = buildPreset({ preset: "mlp", hidden, inputSize: width, classes: ds.classes }, { seed });
  } else if (modelName === "cnn") {
    if (ds.featureShape.length !== 2) {
      throw new UsageError(
        `--model cnn needs image data (28x28), received samples of shape [${ds.featureShape}]`,
      );
    }
    const [h, w] = ds.featureShape as [number, number];
    model = buildPreset({ preset: "cnn", classes: ds.classes, inputShape: [h, w, 1] }, { seed });
  } else {
    const url = new URL(modelName, `file://${Deno.cwd()}/`).href;
    const exportName = (f.export as string) ?? "default";
    const mod = await import(url) as Record<string, unknown>;
    if (typeof mod[exportName] !== "function") {
      throw new UsageError(`--model ${modelName} must export a function "${exportName}"`);
    }
    model = await (mod[exportName] as () => tf.LayersModel | Promise<tf.LayersModel>)();
    modelModule = { url, exportName };
  }
  if (model.optimizer === undefined) {
    model.compile({
      optimizer: tf.train.adam(lr),
      loss: "categoricalCrossentropy",
      metrics: ["accuracy"],
    });
  }
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UsageError(
      `--model ${modelName} builds a model with ${model.inputs.length} inputs and ` +
        `${model.outputs.length} outputs; a dataset holds samples of one input and one output ` +
        "(train such a model with the library's fit(model, [x...], [y...]) or the HTTP service)",
    );
  }
  const layout = image ? "image" : "flat";
  // A sparse categorical loss takes class indices, any other loss one-hot labels.
  const loss = [model.loss].flat()[0];
  const sparse = loss === "sparseCategoricalCrossentropy" ||
    loss === "sparse_categorical_crossentropy";
  const numClasses = sparse ? undefined : ds.classes;
  const trainSet = toTensors(ds.data.train, { layout, numClasses });
  const testSet = toTensors(ds.data.test, { layout, numClasses });
  await using strategy = createStrategy({
    kind: strategyName,
    [kind.countOption]: replicas,
    [kind.threadsOption]: threads,
    backend,
    modelModule,
    ...(cluster === undefined ? {} : { cluster }),
  } as StrategySpec);
  const parallel = strategy.parallelism;
  if (!json) {
    say(
      `Training ${modelName} on ${ds.name} (${ds.data.train.count} samples, ${ds.classes} classes) ` +
        `with ${parallel} ${kind.unit}` +
        (cluster === undefined
          ? ", "
          : ` on each of ${cluster.nodes} nodes (this is rank ${rank}), `) +
        (kind.batchScope === "global"
          ? `global batch ${batchSize}`
          : `batch ${batchSize} per worker`),
    );
  }
  const started = performance.now();
  const fitOptions = {
    epochs,
    batchSize,
    seed,
    validationSplit: split > 0 ? split : undefined,
    verbose: (json || rank !== 0 ? 0 : 1) as 0 | 1,
  };
  const history = await strategy.fit(model, trainSet.xs, trainSet.ys, {
    ...fitOptions,
    ...(f.checkpoint === undefined ? {} : { checkpoint: { dir: f.checkpoint as string } }),
    ...(f.trace === undefined ? {} : { trace: f.trace as string }),
  });
  const seconds = (performance.now() - started) / 1000;
  const st = strategy.stats!;
  const report = {
    backend: st.backends[0],
    reason: st.backendReason,
    threads: st.threads[0],
    blas: st.blas,
  };
  const scores = await strategy.evaluate(model, testSet.xs, testSet.ys, { batchSize: 512 });
  const trained = Math.floor(ds.data.train.count * (1 - (split > 0 ? split : 0)));
  const samplesPerSec = (history.epoch.length * trained) / seconds;
  const save = rank === 0 ? f.save as string | undefined : undefined;
  if (save !== undefined) {
    registerFileIO();
    await Deno.mkdir(save, { recursive: true });
    await model.save(fileHandler(save));
  }
  const result = {
    dataset: ds.name,
    model: modelName,
    strategy: strategyName,
    replicas: parallel,
    backend: report.backend,
    backendReason: report.reason,
    threads: report.threads,
    blas: report.blas,
    epochs: history.epoch.length,
    history: history.history,
    testLoss: scores.loss,
    testAccuracy: scores.acc,
    samplesPerSec: Math.round(samplesPerSec),
    seconds: Math.round(seconds * 10) / 10,
    saved: save ?? null,
    ...(cluster === undefined ? {} : { nodes: cluster.nodes, rank }),
  };
  if (json) {
    out(JSON.stringify(result));
  } else {
    const blas = report.blas;
    say(
      `backend: ${result.backend} (${result.backendReason}), ${result.threads} thread(s) each` +
        (blas === null
          ? ""
          : blas.used
          ? `; products on ${blas.library ?? "the host's BLAS"}${
            blas.coreName ? ` (${blas.coreName})` : ""
          }${blas.gflops ? `, ${blas.gflops} GFLOP/s` : ""}`
          : `; host BLAS not used: ${blas.reason}`),
    );
    say(
      `test accuracy ${((scores.acc ?? NaN) * 100).toFixed(2)}%, test loss ` +
        `${scores.loss!.toFixed(4)}, ${result.samplesPerSec} samples/s over ${result.seconds} s` +
        (save !== undefined ? `, saved to ${save}` : ""),
    );
  }
  tf.dispose([trainSet.xs, trainSet.ys, testSet.xs, testSet.ys]);
  model.dispose();
}

async function readSamples(path: string): Promise<number[][]> {
  const text = await Deno.readTextFile(path);
  let rows: unknown;
  if (path.endsWith(".json")) {
    try {
      rows = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${path} is not valid JSON: ${e instanceof Error ? e.message : e}`);
    }
  } else {
    rows = text.trim().split(/\r?\n/).map((line) => line.split(",").map(Number));
  }
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new UsageError(`${path} must hold a non-empty array of samples`);
  }
  return rows.map((r, i) => {
    const flat = (Array.isArray(r) ? r.flat(Infinity) : [r]) as unknown[];
    if (!flat.every((v) => typeof v === "number" && Number.isFinite(v))) {
      throw new UsageError(`${path}: sample ${i} has a value that is not a finite number`);
    }
    return flat as number[];
  });
}

async function predict(args: string[], out: (line: string) => void): Promise<void> {
  const f = parse(args, { model: s, input: s, json: b });
  if (f.model === undefined || f.input === undefined) {
    throw new UsageError("predict needs --model DIR and --input FILE");
  }
  await selectBackend({ prefer: "wasm" });
  registerFileIO();
  const dir = f.model as string;
  const model = await tf.loadLayersModel(
    fileHandler(dir.endsWith("model.json") ? dir : `${dir}/model.json`),
  );
  const samples = await readSamples(f.input as string);
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  const width = inShape.reduce((a, c) => a * c, 1);
  samples.forEach((row, i) => {
    if (row.length !== width) {
      throw new UsageError(
        `sample ${i} has ${row.length} values, the model expects ${width} ([${inShape}])`,
      );
    }
  });
  const outputs = tf.tidy(() => {
    const x = tf.tensor(samples.flat(), [samples.length, ...inShape]);
    return (model.predict(x) as tf.Tensor).arraySync() as number[][];
  });
  const classes = outputs.map((o) => o.indexOf(Math.max(...o)));
  if (f.json === true) {
    out(JSON.stringify({ outputs, classes }));
  } else {
    classes.forEach((c, i) => out(`${i}\tclass ${c}\tp=${outputs[i]![c]!.toFixed(4)}`));
  }
  model.dispose();
}

async function backends(args: string[], out: (line: string) => void): Promise<void> {
  const f = parse(args, { json: b });
  const rows = await backendRows();
  if (f.json === true) {
    out(JSON.stringify(rows));
    return;
  }
  out("backend  available  auto  threads  matmul GFLOP/s  reason");
  for (const r of rows) {
    out(
      `${r.name.padEnd(8)} ${String(r.available).padEnd(10)} ${(r.auto ? "*" : "").padEnd(5)} ` +
        `${String(r.threads ?? "-").padEnd(8)} ${String(r.matmulGflops ?? "-").padEnd(15)} ` +
        r.reason,
    );
  }
}

async function bench(args: string[], out: (line: string) => void): Promise<void> {
  const f = parse(args, { model: s, steps: s, "batch-size": s, json: b });
  const preset = (f.model as string) ?? "mlp";
  if (preset !== "mlp" && preset !== "cnn") {
    throw new UsageError(`--model must be mlp or cnn, received "${preset}"`);
  }
  const steps = intFlag(f.steps as string, "steps", 20);
  const batch = intFlag(f["batch-size"] as string, "batch-size", 256);
  const cores = navigator.hardwareConcurrency ?? 1;
  await selectBackend({ require: "cpu", override: "" });
  const n = steps * batch;
  const x = tf.randomUniform(preset === "mlp" ? [n, 784] : [n, 28, 28, 1]);
  const y = tf.oneHot(tf.randomUniform([n], 0, 10, "int32"), 10);
  const rows: { replicas: number; samplesPerSec: number; exchangeMs: number }[] = [];
  for (const replicas of [...new Set([1, cores])]) {
    const model = buildPreset(
      preset === "mlp" ? { preset: "mlp", hidden: [512, 512] } : { preset: "cnn" },
    );
    model.compile({ optimizer: "adam", loss: "categoricalCrossentropy" });
    await using strategy = createStrategy({ kind: "mirrored", replicas, backend: "auto" });
    await strategy.fit(model, x, y, { epochs: 1, batchSize: batch }); // warm-up
    const t0 = performance.now();
    await strategy.fit(model, x, y, { epochs: 1, batchSize: batch });
    const sec = (performance.now() - t0) / 1000;
    rows.push({
      replicas,
      samplesPerSec: Math.round(n / sec),
      exchangeMs: strategy.stats!.exchangeMs,
    });
    model.dispose();
  }
  tf.dispose([x, y]);
  if (f.json === true) {
    out(JSON.stringify({ model: preset, globalBatch: batch, steps, rows }));
    return;
  }
  for (const r of rows) {
    out(
      `${preset} ${r.replicas} replica(s), global batch ${batch}: ${r.samplesPerSec} samples/s ` +
        `(exchange ${r.exchangeMs.toFixed(2)} ms/step)`,
    );
  }
  if (rows.length === 2) {
    out(
      `speed-up with ${cores} replicas: ${
        (rows[1]!.samplesPerSec / rows[0]!.samplesPerSec).toFixed(2)
      }x`,
    );
  }
}

async function worker(args: string[], out: (line: string) => void): Promise<void> {
  const f = parse(args, {
    server: { type: "string" },
    job: { type: "string" },
    backend: { type: "string" },
    threads: { type: "string" },
    transport: { type: "string" },
    fp16: { type: "boolean" },
    name: { type: "string" },
    "max-retries": { type: "string" },
    json: { type: "boolean" },
  });
  if (typeof f.server !== "string") throw new UsageError("--server URL is required");
  if (typeof f.job !== "string") throw new UsageError("--job ID is required");
  const transport = f.transport ?? "websocket";
  if (transport !== "websocket" && transport !== "http") {
    throw new UsageError(`--transport must be websocket or http, received "${transport}"`);
  }
  try {
    new URL(f.server);
  } catch {
    throw new UsageError(
      `--server must be a URL such as http://127.0.0.1:8787, received "${f.server}"`,
    );
  }
  const token = Deno.env.get("DTRAIN_TOKEN");
  if (token === undefined || token === "") {
    throw new UsageError("set DTRAIN_TOKEN to the service token or the job's workerToken");
  }
  const { runRemoteWorker } = await import("../edge/remote_worker.ts");
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  const json = f.json === true;
  try {
    const result = await runRemoteWorker({
      server: f.server,
      job: f.job,
      token,
      backend: backendFlag(f.backend as string | undefined),
      threads: intFlag(f.threads as string | undefined, "threads", 1),
      transport,
      fp16: f.fp16 === true,
      name: (f.name as string | undefined) ?? Deno.hostname(),
      maxRetries: intFlag(f["max-retries"] as string | undefined, "max-retries", 30, 0),
      signal: stop.signal,
      onEvent: json ? undefined : (e) => {
        if (e.type === "welcome") {
          out(`worker ${e.worker}: computing on ${e.backend} (${e.reason})`);
        } else if (e.type === "disconnected") {
          out(`disconnected (${e.detail}); retrying in ${e.retryInMs} ms`);
        }
      },
    });
    if (json) out(JSON.stringify(result));
    else {
      out(
        `done: ${result.reason} (${result.gradients} gradients, ${result.reconnects} reconnects)`,
      );
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

async function serve(args: string[]): Promise<void> {
  const server = await import("../server/serve.ts");
  try {
    server.parseServeArgs(args, Deno.env.toObject());
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  await server.main(args);
}

/**
 * Runs one CLI invocation; returns the exit status. Output lines go to `out`
 * (stdout by default), errors to stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { run } from "./main.ts";
 * const lines: string[] = [];
 * const status = await run(["train", "--epochs", "zero"], (l) => lines.push(l));
 * assert.ok(status === 2);
 * ```
 */
export async function run(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  const [command, ...rest] = args;
  const commands: Record<string, (a: string[], o: (l: string) => void) => Promise<void>> = {
    train,
    predict,
    backends,
    bench,
    serve: (a) => serve(a),
    worker,
  };
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    out(HELP.main!);
    return command === undefined ? 2 : 0;
  }
  const handler = commands[command];
  if (handler === undefined) {
    console.error(`Unknown command "${command}".\n\n${HELP.main}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    out(HELP[command]!);
    return 0;
  }
  try {
    await handler(rest, out);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`dtrain ${command}: ${e.message}\nRun "dtrain ${command} --help" for usage.`);
      return 2;
    }
    console.error(`dtrain ${command}: ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
    return 1;
  }
}

if (import.meta.main) {
  const status = await run(Deno.args);
  // WASM threads and GPU devices keep the event loop alive: exit explicitly.
  Deno.exit(status);
}
