import assert from "node:assert/strict";
import { ProgressBar } from "../../src/training/progress.ts";

Deno.test("ProgressBar draws a Keras-style bar with ETA and logs when interactive", () => {
  let out = "";
  const bar = new ProgressBar({ epochs: 3, steps: 4, write: (t) => (out += t), interactive: true });
  bar.epochBegin(1);
  bar.step(1, { loss: 0.5, acc: 0.75 }, 32);
  bar.step(4, { loss: 0.25, acc: 0.875 }, 32);
  bar.epochEnd({ loss: 0.375, acc: 0.8125 });
  assert.match(out, /^Epoch 2\/3\n/);
  assert.match(out, /\r1\/4 \[={6}>\.{23}\] - ETA: \d+s - loss: 0\.5000 - acc: 0\.7500/);
  assert.ok(out.endsWith("\x1b[K\n"), JSON.stringify(out));
  assert.match(out, /\r4\/4 \[={30}\] - \d+s \d+ samples\/s - loss: 0\.3750 - acc: 0\.8125/);
});

Deno.test("ProgressBar writes only one line per epoch when not interactive", () => {
  let out = "";
  const bar = new ProgressBar({
    epochs: 1,
    steps: 2,
    write: (t) => (out += t),
    interactive: false,
  });
  bar.epochBegin(0);
  bar.step(1, { loss: 1 }, 8);
  bar.step(2, { loss: 1 }, 8);
  bar.epochEnd({ loss: 1 });
  assert.ok(!out.includes("\r"), JSON.stringify(out));
  assert.match(out, /^Epoch 1\/1\n2\/2 \[={30}\] - \d+s \d+ samples\/s - loss: 1\.0000\n$/);
});
