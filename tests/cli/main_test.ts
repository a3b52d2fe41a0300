import assert from "node:assert/strict";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function captureErrors(fn: () => Promise<number>): Promise<{ status: number; err: string }> {
  const original = console.error;
  let err = "";
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { status: await fn(), err };
  } finally {
    console.error = original;
  }
}

for (
  const [args, message] of [
    [["train", "--epochs", "0"], '--epochs must be an integer >= 1, received "0"'],
    [["train", "--bogus"], "Unknown option '--bogus'"],
    [["train", "--backend", "tpu"], '--backend must be auto, webgpu, wasm, cpu, received "tpu"'],
    [["train", "--strategy", "ring"], '--strategy must be mirrored or worker, received "ring"'],
    [["worker", "--job", "job_1"], "--server URL is required"],
    [["worker", "--server", "http://127.0.0.1:1"], "--job ID is required"],
    [
      ["worker", "--server", "http://127.0.0.1:1", "--job", "j", "--transport", "pigeon"],
      "--transport must be websocket or http",
    ],
    [["serve", "--port", "abc"], '--port must be an integer >= 0, received "abc"'],
    [["train", "--nnodes", "2"], "missing --node-rank, --coordinator"],
    [
      ["train", "--nnodes", "2", "--node-rank", "2", "--coordinator", "127.0.0.1:1"],
      "rank must be in 0..1, received 2",
    ],
    [
      [
        "train",
        "--strategy",
        "worker",
        "--nnodes",
        "2",
        "--node-rank",
        "0",
        "--coordinator",
        "h:1",
      ],
      "--nnodes (training across hosts) works with --strategy mirrored only",
    ],
    [["train", "--dataset", "imagenet"], "--dataset must be mnist, fashion-mnist"],
    [["predict", "--model", "x"], "predict needs --model DIR and --input FILE"],
    [["bench", "--model", "resnet"], '--model must be mlp or cnn, received "resnet"'],
  ] as const
) {
  Deno.test(`run() exits 2 with a clear message for dtrain ${args.join(" ")}`, opts, async () => {
    const { status, err } = await captureErrors(() => run([...args], () => {}));
    assert.equal(status, 2);
    assert.ok(err.includes(message), `stderr was: ${err}`);
    assert.ok(err.includes(`Run "dtrain ${args[0]} --help" for usage.`));
  });
}

Deno.test("run() exits 2 for an unknown command and prints the command list", async () => {
  const { status, err } = await captureErrors(() => run(["fly"], () => {}));
  assert.equal(status, 2);
  assert.match(err, /Unknown command "fly"/);
  assert.match(err, /train {6}train a preset/);
});

Deno.test("run() prints help for every command with --help", async () => {
  for (const command of ["train", "predict", "backends", "bench", "serve", "worker"]) {
    const lines: string[] = [];
    assert.equal(await run([command, "--help"], (l) => lines.push(l)), 0);
    assert.match(lines.join("\n"), new RegExp(`^Usage: dtrain ${command}`));
  }
});

Deno.test(
  "dtrain train --json then predict --json work end to end on embedded MNIST",
  opts,
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const model = join(dir, "model");
      const trained = await cli([
        "train",
        "--dataset",
        "mnist",
        "--limit",
        "1500",
        "--epochs",
        "2",
        "--hidden",
        "64",
        "--replicas",
        "2",
        "--backend",
        "cpu",
        "--save",
        model,
        "--json",
      ]);
      assert.equal(trained.code, 0, trained.stderr);
      const result = JSON.parse(trained.stdout.trim().split("\n").pop()!);
      assert.equal(result.replicas, 2);
      assert.equal(result.backend, "cpu");
      assert.equal(result.epochs, 2);
      assert.deepEqual(Object.keys(result.history).sort(), ["acc", "loss", "val_acc", "val_loss"]);
      assert.ok(result.testAccuracy > 0.7, `test accuracy ${result.testAccuracy}`);
      assert.ok(result.samplesPerSec > 0);

      const { loadMnist } = await import("../../src/data/mnist.ts");
      const { test } = await loadMnist({ trainCount: 10, testCount: 20, seed: 9 });
      const input = join(dir, "digits.json");
      const rows = Array.from(
        { length: 20 },
        (_, i) => Array.from(test.x.subarray(i * 784, (i + 1) * 784)),
      );
      await Deno.writeTextFile(input, JSON.stringify(rows));
      const predicted = await cli(["predict", "--model", model, "--input", input, "--json"]);
      assert.equal(predicted.code, 0, predicted.stderr);
      const { outputs, classes } = JSON.parse(predicted.stdout);
      assert.equal(outputs.length, 20);
      assert.equal(outputs[0].length, 10);
      const correct = classes.filter((c: number, i: number) => c === test.y[i]).length;
      assert.ok(correct >= 12, `${correct}/20 correct`);

      await Deno.writeTextFile(input, JSON.stringify([[1, 2, 3]]));
      const bad = await cli(["predict", "--model", model, "--input", input]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /sample 0 has 3 values, the model expects 784 \(\[784\]\)/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "dtrain train --model MODULE trains a sparse-loss model on class indices and refuses a two-input one",
  opts,
  async () => {
    const module = new URL("../fixtures/cli_models.ts", import.meta.url).pathname;
    const common = ["--limit", "1500", "--epochs", "2", "--replicas", "2", "--backend", "cpu"];
    const trained = await cli([
      "train",
      "--model",
      module,
      "--export",
      "sparseMlp",
      ...common,
      "--json",
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = JSON.parse(trained.stdout.trim().split("\n").pop()!);
    assert.deepEqual(Object.keys(result.history).sort(), ["acc", "loss", "val_acc", "val_loss"]);
    assert.ok(result.testAccuracy > 0.7, `test accuracy ${result.testAccuracy}`);
    const refused = await cli(["train", "--model", module, "--export", "twoInputs", ...common]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /builds a model with 2 inputs and 1 outputs; a dataset holds samples of one input and one output/,
    );
  },
);

Deno.test(
  "dtrain train --strategy worker trains asynchronously and reports its workers",
  opts,
  async () => {
    const trained = await cli([
      "train",
      "--strategy",
      "worker",
      "--limit",
      "1500",
      "--epochs",
      "2",
      "--hidden",
      "64",
      "--replicas",
      "2",
      "--backend",
      "cpu",
      "--json",
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = JSON.parse(trained.stdout.trim().split("\n").pop()!);
    assert.equal(result.strategy, "worker");
    assert.equal(result.replicas, 2);
    assert.equal(result.backend, "cpu");
    assert.ok(result.testAccuracy > 0.6, `test accuracy ${result.testAccuracy}`);
  },
);

Deno.test(
  "dtrain train --nnodes 2 trains one job on two processes; rank 0 saves the model",
  opts,
  async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = l.addr.port;
    l.close();
    const dir = await Deno.makeTempDir({ prefix: "dtrain_cli_nodes_" });
    try {
      const node = (rank: number) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            MAIN,
            "train",
            "--limit",
            "1200",
            "--epochs",
            "2",
            "--hidden",
            "32",
            "--replicas",
            "1",
            "--backend",
            "cpu",
            "--batch-size",
            "64",
            "--nnodes",
            "2",
            "--node-rank",
            String(rank),
            "--coordinator",
            `127.0.0.1:${port}`,
            "--save",
            join(dir, "model"),
            "--json",
          ],
          env: { DTRAIN_TOKEN: "cli-test-token" },
          stdout: "piped",
          stderr: "piped",
        }).output();
      const outs = await Promise.all([node(0), node(1)]);
      const results = outs.map((o) => {
        const text = new TextDecoder().decode(o.stdout);
        assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
        return JSON.parse(text.trim().split("\n").pop()!);
      });
      assert.deepEqual(results.map((r) => [r.rank, r.nodes]), [[0, 2], [1, 2]]);
      assert.deepEqual(results[1].history, results[0].history, "one job: the same History");
      assert.equal(results[0].testLoss, results[1].testLoss);
      assert.equal(results[0].saved, join(dir, "model"));
      assert.equal(results[1].saved, null, "only rank 0 saves");
      assert.ok((await Deno.stat(join(dir, "model", "model.json"))).isFile);
      assert.ok(results[0].testAccuracy > 0.6, `test accuracy ${results[0].testAccuracy}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
