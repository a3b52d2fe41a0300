// Every example runs, with small settings, and prints what it promises.
import assert from "node:assert/strict";

const FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
const hasFashion = await Deno.stat(FASHION).then(() => true, () => false);

async function example(
  path: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`../examples/${path}`, import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `${path} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return stdout;
}

function accuracy(output: string, label: string): number {
  const m = output.match(new RegExp(`${label}: test accuracy ([\\d.]+)%`));
  assert.ok(m, `no "${label}: test accuracy" line in:\n${output}`);
  return Number(m[1]) / 100;
}

Deno.test("examples/quickstart.ts learns its toy problem", async () => {
  const out = await example("quickstart.ts");
  const acc = Number(out.match(/accuracy ([\d.]+)%/)?.[1]) / 100;
  assert.ok(acc > 0.9, out);
  assert.match(out, /replicas: \d+, backend: (wasm|webgpu|cpu)/);
});

Deno.test("examples/mnist_mlp.ts trains on embedded MNIST digits", async () => {
  const out = await example("mnist_mlp.ts", ["--epochs", "2", "--limit", "3000"]);
  assert.ok(accuracy(out, "mnist_mlp") > 0.8, out);
});

Deno.test("examples/multi_input.ts trains an image + scalar model with two heads", async () => {
  const out = await example("multi_input.ts", ["--epochs", "2", "--limit", "1500"]);
  for (const key of ["loss", "digit_loss", "height_loss", "digit_acc", "val_height_mae"]) {
    assert.match(out, new RegExp(`^${key}: [\\d.]+, [\\d.]+$`, "m"), out);
  }
  const m = out.match(/multi_input: validation accuracy ([\d.]+)%/);
  assert.ok(m && Number(m[1]) > 50, out);
});

Deno.test("examples/custom_layer trains a custom layer in replicas", async () => {
  const out = await example("custom_layer/train.ts", ["--epochs", "1", "--limit", "3000"]);
  assert.ok(accuracy(out, "custom_layer") > 0.7, out);
  const gain = Number(out.match(/gain\[400\] = ([\d.-]+)/)?.[1]);
  assert.ok(Number.isFinite(gain) && gain !== 1, out);
});

for (const model of ["mlp", "cnn"]) {
  Deno.test({
    name: `examples/fashion_mnist.ts --model ${model} trains on Fashion-MNIST ` +
      "(skipped without Debian's dataset-fashion-mnist)",
    ignore: !hasFashion,
    fn: async () => {
      const out = await example("fashion_mnist.ts", [
        "--model",
        model,
        "--epochs",
        "1",
        "--limit",
        "2000",
      ]);
      assert.ok(accuracy(out, `fashion_mnist ${model}`) > 0.5, out);
    },
  });
}

Deno.test("examples/keras_tutorial.ts runs fit(workers=2) and multi_gpu_model(gpus=2)", async () => {
  const out = await example("keras_tutorial.ts", ["--epochs", "1", "--limit", "2000"]);
  assert.ok(accuracy(out, "keras_tutorial fit\\(workers=2\\)") > 0.6, out);
  assert.ok(accuracy(out, "keras_tutorial multi_gpu_model\\(gpus=2\\)") > 0.5, out);
  assert.match(out, /predicted classes of 5 test digits: \d,\d,\d,\d,\d/);
});

Deno.test("examples/demo.ts (deno task demo) trains, evaluates and saves", async () => {
  const out = await example("demo.ts", ["--epochs", "1"]);
  assert.match(out, /test accuracy [\d.]+% \(loss [\d.]+\), \d+ samples\/s/);
  assert.match(out, /saved to \.\/out\/demo/);
});

Deno.test("examples/http_client.ts trains, follows, predicts and downloads over HTTP", async () => {
  const dataDir = await Deno.makeTempDir();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-kv",
      new URL("../src/server/serve.ts", import.meta.url).pathname,
      "--port",
      "0",
      "--data-dir",
      dataDir,
    ],
    env: { DTRAIN_TOKEN: "example-token", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    let text = "";
    let url: string | undefined;
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = Date.now() + 60_000;
    while (url === undefined && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      url = text.match(/listening on (http:\/\/\S+)/)?.[1];
    }
    assert.ok(url, `server did not start: ${text}`);
    reader.releaseLock();
    server.stdout.cancel().catch(() => {});
    const out = await example(
      "http_client.ts",
      ["--url", url, "--epochs", "2", "--limit", "2000"],
      {
        DTRAIN_TOKEN: "example-token",
      },
    );
    assert.match(out, /submitted job \S+/);
    assert.match(out, /epoch 2\/2: loss [\d.]+/);
    assert.match(out, /job succeeded, model \S+/);
    const correct = Number(out.match(/http predict: (\d+)\/20/)?.[1]);
    assert.ok(correct >= 12, out);
    assert.match(out, /tf\.loadLayersModel over HTTP: same predictions/);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(dataDir, { recursive: true });
  }
});
