import assert from "node:assert/strict";
import { join } from "node:path";
import { latestCheckpoint } from "../../src/io/checkpoint.ts";

const FIXTURE = new URL("../fixtures/resume_train.ts", import.meta.url).pathname;
/** Max |weight difference| between a resumed and an uninterrupted run. */
const TOL = 1e-5;

interface Result {
  weights: number[][];
  history: Record<string, number[]>;
  epochs: number[];
}

async function train(dir: string, out: string, slowMs = 0): Promise<Result> {
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, dir, out, String(slowMs)],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
  return JSON.parse(await Deno.readTextFile(out)) as Result;
}

/** Starts training and SIGKILLs it once `ready(name)` holds for a committed checkpoint. */
async function killWhen(
  dir: string,
  out: string,
  ready: (name: string) => boolean,
): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, dir, out, "40"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      const found = await latestCheckpoint(dir);
      const name = found?.path.split("/").pop();
      if (name !== undefined && ready(name)) return name;
      if (Date.now() > deadline) throw new Error("no checkpoint appeared within 60 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

/** Every file under `dir` with its size and modification time, sorted by path. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else {
        const info = await Deno.stat(path);
        out.push(`${path.slice(dir.length)} ${info.size} ${info.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return out.sort();
}

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((w, i) => w.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i]![j]!)))));
  return m;
}

Deno.test("MirroredStrategy.fit() resumed after SIGKILL ends with the weights of an uninterrupted run", async () => {
  const root = await Deno.makeTempDir();
  try {
    const reference = await train(join(root, "ref"), join(root, "ref.json"));
    assert.deepEqual(reference.epochs, [0, 1, 2]);

    const dir = join(root, "ckpt");
    const out = join(root, "resumed.json");
    // Killed mid-epoch 0 (after the checkpoint at step 3 or 6)...
    const first = await killWhen(dir, out, (n) => /^ckpt-00000000-0000000[36]$/.test(n));
    // ...resumed and killed again mid-epoch 1...
    const second = await killWhen(dir, out, (n) => /^ckpt-00000001-0000000[1-9]$/.test(n));
    assert.notEqual(first, second);
    // Both runs were killed before they finished: neither wrote its result.
    await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);
    // ...and a write interrupted by the kill leaves a temporary folder behind.
    const torn = join(dir, ".tmp-ckpt-00000001-00000012-deadbeef");
    await Deno.mkdir(torn, { recursive: true });
    await Deno.writeTextFile(join(torn, "model.json"), "{ truncated");

    const resumed = await train(dir, out);
    const diff = maxDiff(resumed.weights, reference.weights);
    assert.ok(diff <= TOL, `max |weight difference| ${diff} > ${TOL}`);
    assert.deepEqual(resumed.epochs, [0, 1, 2]);
    for (const [key, values] of Object.entries(reference.history)) {
      values.forEach((v, i) => {
        const got = resumed.history[key]![i]!;
        assert.ok(Math.abs(got - v) <= TOL, `history ${key}[${i}]: ${got} vs ${v}`);
      });
    }
    // The torn folder was cleaned up and at most `keep` checkpoints remain.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.ok(!names.some((n) => n.startsWith(".tmp-")), `left: ${names}`);
    assert.ok(names.length <= 2, `kept ${names}`);
    assert.equal(names.at(-1), "ckpt-00000003-00000000");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("MirroredStrategy.fit() with a finished checkpoint returns its History without training", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = join(root, "ckpt");
    const first = await train(dir, join(root, "a.json"));
    const written = await snapshot(dir);
    assert.ok(written.length > 0, "the first run wrote checkpoints");
    const again = await train(dir, join(root, "b.json"));
    assert.deepEqual(again.weights, first.weights);
    assert.deepEqual(again.epochs, first.epochs);
    assert.deepEqual(again.history, first.history);
    // Training again from scratch would end with the same weights (the run is
    // seeded); only an untouched checkpoint folder shows that nothing trained.
    assert.deepEqual(await snapshot(dir), written, "the second run wrote checkpoints");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
