import assert from "node:assert/strict";
import { PipelineError, WorkerCrashedError } from "../../src/errors.ts";
import {
  type MappedEpoch,
  ParallelMap,
  type ParallelMapOptions,
  sampleRandom,
} from "../../src/data/pipeline.ts";
import type { LabeledData } from "../../src/data/labeled_data.ts";
import { epochOrder } from "../../src/core/random.ts";
import { augment } from "../../examples/augment.ts";
import { assertRejectsWith, assertThrowsWith } from "./_assert.ts";

const MAPS = new URL("../fixtures/pipeline_maps.ts", import.meta.url);

function fixture(count = 50, width = 4): LabeledData<Uint8Array> {
  return {
    x: Float32Array.from({ length: count * width }, (_, i) => i % 251),
    y: Uint8Array.from({ length: count }, (_, i) => i % 10),
    count,
    featureShape: [width],
  };
}

function options(exportName: string, more: Partial<ParallelMapOptions> = {}): ParallelMapOptions {
  return { map: { url: MAPS, exportName }, workers: 2, seed: 42, chunkSize: 4, ...more };
}

/** Copies what an epoch holds (its buffers are reused for later epochs). */
function snapshot(e: MappedEpoch) {
  return { epoch: e.epoch, x: e.x.slice(), y: e.y.slice(), order: e.order.slice() };
}

async function run(
  source: LabeledData,
  opts: ParallelMapOptions,
  epochs: number,
  initialEpoch = 0,
) {
  await using pipeline = new ParallelMap(source, opts);
  const out = [];
  for await (const e of pipeline.epochs(epochs, { initialEpoch })) out.push(snapshot(e));
  return out;
}

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* the consumer "trains" */ }
}

Deno.test("ParallelMap.epochs() gives identical epochs when run with 1 or 3 workers and across runs", async () => {
  const source = fixture(50);
  const one = await run(source, options("tag", { workers: 1 }), 3);
  const three = await run(source, options("tag", { workers: 3 }), 3);
  const again = await run(source, options("tag", { workers: 3, chunkSize: 7 }), 3);
  const resumed = await run(source, options("tag", { workers: 2 }), 1, 2);
  assert.equal(one.length, 3);
  assert.deepEqual(three, one);
  assert.deepEqual(again, one);
  assert.deepEqual(resumed[0], one[2]);
  // Each sample's randomness is ctx.random of (seed, epoch, index).
  const row = one[1]!.x.subarray(0, 7);
  assert.equal(row[2], Math.fround(sampleRandom(42, 1, row[0]!)()));
});

Deno.test("ParallelMap.epochs() maps every sample exactly once per epoch when shuffled", async () => {
  const source = fixture(37, 4);
  const epochs = await run(source, options("tag", { chunkSize: 5 }), 2);
  for (const e of epochs) {
    const seen = new Uint8Array(source.count);
    for (let row = 0; row < source.count; row++) {
      const index = e.order[row]!;
      seen[index]!++;
      const mapped = e.x.subarray(row * 7, row * 7 + 7);
      assert.equal(mapped[0], index, `row ${row} holds source sample ${index}`);
      assert.equal(mapped[1], e.epoch);
      assert.deepEqual(
        Array.from(mapped.subarray(3)),
        Array.from(source.x.subarray(index * 4, index * 4 + 4), (v) => 2 * v),
      );
      assert.equal(e.y[row], source.y[index]);
    }
    assert.ok(seen.every((n) => n === 1), `epoch ${e.epoch} covers every sample once`);
  }
});

Deno.test("ParallelMap.epochs() orders samples by seed and epoch when shuffle is true", async () => {
  const source = fixture(40);
  const a = await run(source, options("tag", { seed: 1 }), 2);
  const b = await run(source, options("tag", { seed: 2 }), 1);
  // The same order MirroredStrategy.fit uses for the same seed.
  assert.deepEqual(a[0]!.order, epochOrder(40, { seed: 1, epoch: 0, shuffle: true }));
  assert.deepEqual(a[1]!.order, epochOrder(40, { seed: 1, epoch: 1, shuffle: true }));
  assert.notDeepEqual(a[0]!.order, a[1]!.order);
  assert.notDeepEqual(a[0]!.order, b[0]!.order);
  const plain = await run(source, options("tag", { shuffle: false }), 2);
  for (const e of plain) {
    assert.deepEqual(
      Array.from(e.order),
      Array.from({ length: 40 }, (_, i) => i),
    );
  }
});

Deno.test("ParallelMap.epochs() has epoch e+1 mapped when the consumer finishes epoch e", async () => {
  // ~1 ms per sample. The consumer blocks the main thread while it holds an
  // epoch (as a synchronous training step does): the Workers map on without it.
  const source = fixture(64);
  await using pipeline = new ParallelMap(source, options("slow", { chunkSize: 8 }));
  const events: string[] = [];
  for await (const e of pipeline.epochs(3)) {
    events.push(`got ${e.epoch} ${e.waitMs === 0 ? "ready" : "waited"}`);
    if (e.epoch === 2) break;
    // Work until the next epoch is mapped (bounded, so a broken pipeline fails).
    const deadline = performance.now() + 20_000;
    while (pipeline.progress(e.epoch + 1) < source.count && performance.now() < deadline) {
      busyWait(5);
    }
    events.push(`next mapped ${pipeline.progress(e.epoch + 1) === source.count}`);
  }
  assert.deepEqual(events, [
    "got 0 waited",
    "next mapped true",
    "got 1 ready",
    "next mapped true",
    "got 2 ready",
  ]);
});

Deno.test("ParallelMap.epochs() maps nothing ahead when prefetch is 0", async () => {
  const source = fixture(16);
  await using pipeline = new ParallelMap(source, options("slow", { prefetch: 0, chunkSize: 8 }));
  const seen: { waited: boolean; ahead: number }[] = [];
  for await (const e of pipeline.epochs(2)) {
    busyWait(100);
    seen.push({ waited: e.waitMs > 0, ahead: pipeline.progress(e.epoch + 1) });
  }
  assert.deepEqual(seen, [{ waited: true, ahead: 0 }, { waited: true, ahead: 0 }]);
});

Deno.test("ParallelMap.batches() yields contiguous views of the epoch when batchSize does not divide count", async () => {
  const source = fixture(23);
  const [whole] = await run(source, options("tag"), 1, 1);
  await using pipeline = new ParallelMap(source, options("tag"));
  const sizes: number[] = [];
  const xs: number[] = [];
  const ys: number[] = [];
  for await (const batch of pipeline.batches({ epoch: 1, batchSize: 5 })) {
    assert.equal(batch.offset, batch.step * 5);
    assert.equal(batch.x.buffer, (await pipeline.start(), batch.x.buffer));
    assert.ok(batch.x.buffer instanceof SharedArrayBuffer);
    sizes.push(batch.count);
    xs.push(...batch.x);
    ys.push(...batch.y);
  }
  assert.deepEqual(sizes, [5, 5, 5, 5, 3]);
  assert.deepEqual(xs, Array.from(whole!.x));
  assert.deepEqual(ys, Array.from(whole!.y));
});

Deno.test("ParallelMap.batches() rejects with PipelineError when another epoch is asked for meanwhile", async () => {
  await using pipeline = new ParallelMap(fixture(20), options("tag"));
  const batches = pipeline.batches({ epoch: 0, batchSize: 4 });
  assert.equal((await batches.next()).value?.step, 0);
  const other = await pipeline.epochs(1, { initialEpoch: 5 }).next();
  assert.equal(other.value?.epoch, 5);
  const err = await assertRejectsWith(
    () => batches.next(),
    PipelineError,
    "ParallelMap epoch 0 was released while it was being read: the pipeline was asked for " +
      "another epoch meanwhile (read one epoch at a time)",
  );
  assert.equal(err.epoch, 0);
});

Deno.test("ParallelMap.epochs() exposes shared buffers and shapes when the map changes the label", async () => {
  const source = fixture(12);
  source.y.forEach((_, i) => (source.y[i] = i % 4));
  await using pipeline = new ParallelMap(source, options("oneHot4", { shuffle: false }));
  const shapes = await pipeline.start();
  assert.deepEqual(shapes, {
    featureShape: [4],
    labelShape: [4],
    labelDtype: "float32",
    featureParts: [4],
    labelParts: [4],
  });
  for await (const e of pipeline.epochs(1)) {
    assert.ok(e.y instanceof Float32Array);
    assert.deepEqual(Array.from(e.y.subarray(4, 8)), [0, 1, 0, 0]);
    assert.deepEqual(e.shared.xShape, [4]);
    assert.deepEqual(e.shared.yShape, [4]);
    assert.equal(e.shared.yDtype, "float32");
    assert.equal(e.shared.count, 12);
    assert.equal(e.shared.x, e.x.buffer);
    assert.equal(e.shared.y.byteLength, 12 * 4 * 4);
    assert.deepEqual(new Float32Array(e.shared.x), e.x);
  }
});

Deno.test("ParallelMap.epochs() gives the same result when the map is async", async () => {
  const source = fixture(20);
  assert.deepEqual(
    await run(source, options("tagAsync"), 2),
    await run(source, options("tag"), 2),
  );
});

Deno.test("ParallelMap.epochs() matches augment() run in the main thread when given the example map", async () => {
  const count = 16;
  const source: LabeledData = {
    x: Float32Array.from({ length: count * 784 }, (_, i) => ((i * 7) % 256) / 255),
    y: Uint8Array.from({ length: count }, (_, i) => i % 10),
    count,
    featureShape: [28, 28],
  };
  const url = new URL("../../examples/augment.ts", import.meta.url);
  const [e] = await run(source, { map: { url, exportName: "augment" }, workers: 2, seed: 5 }, 1, 3);
  for (let row = 0; row < count; row++) {
    const index = e!.order[row]!;
    const expected = augment(source.x.slice(index * 784, (index + 1) * 784), source.y, {
      index,
      position: row,
      epoch: 3,
      seed: 5,
      random: sampleRandom(5, 3, index),
    }).x;
    assert.deepEqual(e!.x.subarray(row * 784, (row + 1) * 784), expected);
  }
  assert.ok(e!.x.every((v) => v >= 0 && v <= 1));
});

Deno.test("new ParallelMap() throws RangeError when an option is out of range", () => {
  const source = fixture(4);
  const cases: [Partial<ParallelMapOptions>, string][] = [
    [{ workers: 0 }, "new ParallelMap() expected workers to be an integer >= 1, received 0"],
    [{ workers: 1.5 }, "new ParallelMap() expected workers to be an integer >= 1, received 1.5"],
    [{ prefetch: -1 }, "new ParallelMap() expected prefetch to be an integer >= 0, received -1"],
    [{ chunkSize: 0 }, "new ParallelMap() expected chunkSize to be an integer >= 1, received 0"],
    [{ seed: -3 }, "new ParallelMap() expected seed to be an integer in [0, 2^32), received -3"],
    [
      { outputShape: [0, 2] },
      "new ParallelMap() expected outputShape to be positive integers, received [0,2]",
    ],
    [
      { workerTimeoutMs: 0 },
      "new ParallelMap() expected workerTimeoutMs to be a positive number, received 0",
    ],
  ];
  for (const [more, message] of cases) {
    assertThrowsWith(() => new ParallelMap(source, options("tag", more)), RangeError, message);
  }
});

Deno.test("new ParallelMap() throws when the source or the map module is malformed", () => {
  assertThrowsWith(
    () => new ParallelMap({ ...fixture(4), count: 5 }, options("tag")),
    RangeError,
    "new ParallelMap() expected source.x.length 20 (count 5 * 4 features), received 16",
  );
  assertThrowsWith(
    () => new ParallelMap({ ...fixture(4), y: new Uint8Array(6) }, options("tag")),
    RangeError,
    "new ParallelMap() expected source.y.length to be a multiple of count 4 " +
      "(one or more values per sample), received 6",
  );
  assertThrowsWith(
    () => new ParallelMap({ ...fixture(4), x: [1, 2] as unknown as Float32Array }, options("tag")),
    TypeError,
    "new ParallelMap() expected source.x to be a Float32Array, received an Array(2)",
  );
  assertThrowsWith(
    () => new ParallelMap(fixture(4), { map: { url: "./augment.ts", exportName: "augment" } }),
    TypeError,
    'new ParallelMap() expected options.map.url to be an absolute URL (e.g. new URL("./augment.ts", ' +
      'import.meta.url)), received "./augment.ts"',
  );
  assertThrowsWith(
    () => new ParallelMap(fixture(4), { map: { url: MAPS, exportName: "" } }),
    TypeError,
    "new ParallelMap() expected options.map.exportName to be a non-empty string, received string ",
  );
});

Deno.test("ParallelMap.start() throws TypeError listing the exports when the map module lacks the export", async () => {
  await using pipeline = new ParallelMap(fixture(4), options("augmnt"));
  const err = await assertRejectsWith(
    () => pipeline.start(),
    TypeError,
    /^ParallelMap map module file:\/\/.*pipeline_maps\.ts has no function export "augmnt": expected a function \(x, y, ctx\) => \{ x, y\? \}, received undefined \(the module exports: .*tag.*\)$/,
  );
  // Iterating reports the same error: nothing was started.
  await assertRejectsWith(() => pipeline.epochs(1).next(), TypeError, err.message);
  await assertRejectsWith(
    () => new ParallelMap(fixture(4), options("notAFunction")).start(),
    TypeError,
    /has no function export "notAFunction": .* received number 42 /,
  );
});

Deno.test("ParallelMap.start() throws TypeError when the map module cannot be imported", async () => {
  await using pipeline = new ParallelMap(fixture(4), {
    map: { url: new URL("./no_such_module.ts", MAPS), exportName: "tag" },
  });
  await assertRejectsWith(
    () => pipeline.start(),
    TypeError,
    /^ParallelMap could not import the map module file:\/\/.*no_such_module\.ts: /,
  );
});

Deno.test("ParallelMap.start() throws when sample 0's output is of the wrong type or shape", async () => {
  await assertRejectsWith(
    () => new ParallelMap(fixture(4), options("returnsArray")).start(),
    TypeError,
    "map() must return { x: Float32Array | Float32Array[], y?: Float32Array | Uint8Array | " +
      "Float32Array[] }, received an object " +
      "with keys [x] with x an Array(4) for sample 0 of epoch 0",
  );
  await assertRejectsWith(
    () => new ParallelMap(fixture(4), options("tag", { outputShape: [2, 2] })).start(),
    RangeError,
    "ParallelMap outputShape [2,2] holds 4 values, but map() returned x with 7 values for " +
      "sample 0 of epoch 0",
  );
  await using ok = new ParallelMap(fixture(4), options("tag", { outputShape: [7, 1] }));
  assert.deepEqual((await ok.start()).featureShape, [7, 1]);
});

Deno.test("ParallelMap writes a map's x and y parts side by side in each row", async () => {
  const source = fixture(30);
  await using pipeline = new ParallelMap(source, options("twoParts"));
  const shapes = await pipeline.start();
  assert.deepEqual(shapes, {
    featureShape: [4],
    labelShape: [11],
    labelDtype: "float32",
    featureParts: [1, 3],
    labelParts: [10, 1],
  });
  for await (const e of pipeline.epochs(2)) {
    for (let row = 0; row < e.count; row++) {
      const i = e.order[row]!, label = source.y[i]!;
      const src = Array.from(source.x.subarray(i * 4, i * 4 + 4));
      assert.deepEqual(Array.from(e.x.subarray(row * 4, row * 4 + 4)), [
        src[0]!,
        ...src.slice(1).map((v) => 2 * v),
      ]);
      const y = Array.from(e.y.subarray(row * 11, row * 11 + 11));
      assert.deepEqual(y, [...Array.from({ length: 10 }, (_, k) => k === label ? 1 : 0), label]);
    }
  }
});

Deno.test("ParallelMap refuses parts that change, uint8 among several y parts, and outputShape with parts", async () => {
  await using shrinks = new ParallelMap(fixture(20), options("partShrinksAt7"));
  await assertRejectsWith(
    () => shrinks.epochs(1).next(),
    RangeError,
    "map() returned x with parts of [1, 2] values for sample 7 of epoch 0, expected parts of " +
      "[1, 3] as for sample 0 (the output shape must not change between samples)",
  );
  await assertRejectsWith(
    () => new ParallelMap(fixture(4), options("uint8Part")).start(),
    TypeError,
    "map() must return y as a Float32Array or Uint8Array, an array of Float32Arrays (one per " +
      "model output), or omit it, received an Array(2) for sample 0 of epoch 0",
  );
  await assertRejectsWith(
    () => new ParallelMap(fixture(4), options("twoParts", { outputShape: [4] })).start(),
    RangeError,
    "ParallelMap outputShape describes one x, but map() returned 2 x parts for sample 0 of " +
      "epoch 0 (a model with several inputs gives their shapes)",
  );
});

Deno.test("ParallelMap.epochs() rejects with PipelineError naming the sample when the map throws", async () => {
  // No look-ahead: with prefetch, epoch 1's copy of sample 5 may fail first
  // (the pipeline fails at its first failure, whichever epoch it is in).
  await using pipeline = new ParallelMap(fixture(20), options("throwsAt5", { prefetch: 0 }));
  const err = await assertRejectsWith(
    async () => {
      for await (const _ of pipeline.epochs(2)) { /* consume */ }
    },
    PipelineError,
    /^map\(\) threw on sample 5 of epoch 0 in pipeline worker [01]: Error: bad pixel$/,
  );
  assert.equal(err.index, 5);
  assert.equal(err.epoch, 0);
  assert.ok(err.cause instanceof Error && err.cause.message === "bad pixel");
  // The pipeline stays failed.
  await assertRejectsWith(() => pipeline.epochs(1).next(), PipelineError, err.message);
});

Deno.test("ParallelMap.epochs() rejects with RangeError when the output shape changes between samples", async () => {
  await using pipeline = new ParallelMap(fixture(20), options("shrinksAt7"));
  await assertRejectsWith(
    () => pipeline.epochs(1).next(),
    RangeError,
    "map() returned x with 3 values for sample 7 of epoch 0, expected 4 as for sample 0 " +
      "(the output shape must not change between samples)",
  );
  await using typed = new ParallelMap(fixture(20), options("arrayAt7"));
  await assertRejectsWith(
    () => typed.epochs(1).next(),
    TypeError,
    "map() must return { x: Float32Array | Float32Array[], y?: Float32Array | Uint8Array | " +
      "Float32Array[] }, received an object " +
      "with keys [x] with x an Array(4) for sample 7 of epoch 0",
  );
});

Deno.test("ParallelMap.epochs() rejects with PipelineError when a Worker dies silently", async () => {
  // The map calls Deno.exit() in its Worker: no event reaches the main
  // thread, the heartbeat watchdog notices.
  await using pipeline = new ParallelMap(
    fixture(20),
    options("exitsAt3", { workers: 1, workerTimeoutMs: 1000 }),
  );
  const err = await assertRejectsWith(
    () => pipeline.epochs(1).next(),
    PipelineError,
    /^Pipeline worker 0 stopped responding while mapping epoch 0: no sample finished for \d+ ms \(the Worker died or its map hangs; workerTimeoutMs is 1000\)$/,
  );
  assert.equal(err.worker, 0);
  assert.equal(err.epoch, 0);
  // The runtime's crash error says which map Worker died and how.
  assert.ok(err.cause instanceof WorkerCrashedError);
  assert.deepEqual([err.cause.role, err.cause.index], ["map", 0]);
  assert.match(err.cause.detail, /^no heartbeat for \d+ ms .*workerTimeoutMs is 1000\)$/);
});

Deno.test("ParallelMap.epochs() rejects with PipelineError when a Worker throws an uncaught error", async () => {
  await using pipeline = new ParallelMap(fixture(20), options("uncaughtAt2", { workers: 1 }));
  const err = await assertRejectsWith(
    async () => {
      for await (const _ of pipeline.epochs(50)) await new Promise((r) => setTimeout(r, 5));
    },
    PipelineError,
    /^Pipeline worker 0 died: .*uncaught in the worker$/,
  );
  assert.equal(err.worker, 0);
  assert.ok(err.cause instanceof WorkerCrashedError);
  assert.deepEqual([err.cause.role, err.cause.index], ["map", 0]);
  assert.equal(err.cause.message, `Map worker 0 crashed: ${err.cause.detail}`);
});

Deno.test("ParallelMap.close() rejects a pending epoch with PipelineError when called mid-epoch", async () => {
  const pipeline = new ParallelMap(fixture(200), options("slow", { workers: 1 }));
  const message = "ParallelMap is closed: create a new pipeline to map more epochs";
  const pending = assertRejectsWith(() => pipeline.epochs(1).next(), PipelineError, message);
  await pipeline.start();
  await pipeline.close();
  await pending;
  await assertRejectsWith(() => pipeline.epochs(1).next(), PipelineError, message);
  await pipeline.close(); // idempotent
});

Deno.test("ParallelMap.close() lets the process exit when called after a good or a failed run", async () => {
  const script = new URL("../fixtures/pipeline_exit.ts", import.meta.url);
  for (const [mode, expected] of [["ok", "mapped 3 epochs"], ["fail", "failed as expected"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script.pathname, mode!],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    assert.equal(out.code, 0, `${mode}: ${new TextDecoder().decode(out.stderr)}`);
    assert.equal(stdout, expected);
  }
});

Deno.test("examples/augment.ts augments embedded MNIST digits when run as a script", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../examples/augment.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(stdout, /^epoch 1: 2048 digits 28x28, mean \|augmented - original\| 0\.\d+/);
  assert.equal(stdout.trim().split("\n").length, 3);
});
