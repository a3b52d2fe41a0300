import assert from "node:assert/strict";
import { tf } from "../mod.ts";

Deno.test("tf tensors have the chained methods of the tfjs API", () => {
  const x = tf.tensor2d([[1, -2], [3, 4]]);
  const cases: [string, tf.Tensor, tf.Tensor][] = [
    ["slice", x.slice([0, 1], [2, 1]), tf.slice(x, [0, 1], [2, 1])],
    ["cast", x.cast("int32"), tf.cast(x, "int32")],
    ["matMul", x.matMul(x, false, true), tf.matMul(x, x, false, true)],
    ["sum", x.sum(1), tf.sum(x, 1)],
    ["abs", x.abs(), tf.abs(x)],
    ["argMax", x.argMax(1), tf.argMax(x, 1)],
    ["reshape", x.reshape([4]), tf.reshape(x, [4])],
    ["flatten", x.flatten(), tf.reshape(x, [4])],
    ["toFloat", x.toInt().toFloat(), x],
    ["concat", x.concat(x, 1), tf.concat([x, x], 1)],
    ["stack", x.stack(x), tf.stack([x, x])],
    [
      "where",
      x.where(tf.tensor2d([[1, 0], [0, 1]], undefined, "bool"), tf.zerosLike(x)),
      tf.tensor2d([[1, 0], [0, 4]]),
    ],
    ["expandDims", x.expandDims(0), tf.expandDims(x, 0)],
    ["transpose", x.transpose(), tf.transpose(x)],
  ];
  for (const [name, got, want] of cases) {
    assert.deepEqual(got.shape, want.shape, name);
    assert.equal(got.dtype, want.dtype, name);
    assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()), name);
  }
  tf.dispose([x, ...cases.flatMap(([, a, b]) => [a, b])]);
});

Deno.test("importing the library leaves tfjs usable at once (no backend to await)", async () => {
  // Importing the WASM backend would make it tfjs' default and every tensor
  // created before `await tf.ready()` would throw; the library must not.
  const code = `import { tf } from "${new URL("../mod.ts", import.meta.url).href}";
    const t = tf.tensor([1, 2, 3]);
    console.log(tf.getBackend(), t.sum().dataSync()[0]);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  assert.equal(dec.decode(out.stdout).trim(), "cpu 6");
});
