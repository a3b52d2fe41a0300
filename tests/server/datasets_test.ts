// POST /v1/datasets: data uploaded once (binary float32, CSV, multipart IDX),
// streamed to disk, named in job specs as {"upload": id}. Each format trains
// to the very loss of the same samples sent inline (MirroredStrategy, one
// replica, cpu, fixed seeds: deterministic), bad uploads answer 400 naming
// the problem and leave no file behind, and the size limit is the route's own.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DtrainApp } from "../../src/server/mod.ts";
import {
  assertError,
  call,
  jobBody,
  regression,
  submit,
  tempApp,
  twoByTwoTopology,
  waitForJob,
} from "./_helpers.ts";

type Json = Record<string, unknown>;
type Bytes = Uint8Array<ArrayBuffer>;
type History = { epoch: number[]; history: Record<string, number[]> };

// --- The formats, written from the documentation (not from the server's code). ---

/** The documented binary form: "DTDS", u32 version 1, count, ranks, dims, x then y, LE. */
function f32Body(
  x: number[][],
  y: number[][],
  shapes: { x?: number[]; y?: number[]; version?: number; magic?: string } = {},
): Bytes {
  const xShape = shapes.x ?? [x[0]!.length], yShape = shapes.y ?? [y[0]!.length];
  const header = 20 + 4 * (xShape.length + yShape.length);
  const values = [...x.flat(), ...y.flat()];
  const bytes = new Uint8Array(header + 4 * values.length);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(shapes.magic ?? "DTDS"));
  view.setUint32(4, shapes.version ?? 1, true);
  view.setUint32(8, x.length, true);
  view.setUint32(12, xShape.length, true);
  view.setUint32(16, yShape.length, true);
  [...xShape, ...yShape].forEach((d, i) => view.setUint32(20 + 4 * i, d, true));
  values.forEach((v, i) => view.setFloat32(header + 4 * i, v, true));
  return bytes;
}

/** An IDX file: magic 0 0 type rank, big-endian u32 dims, big-endian values. */
function idxFile(type: "uint8" | "float32", shape: number[], values: number[]): Bytes {
  const size = type === "uint8" ? 1 : 4;
  const header = 4 + 4 * shape.length;
  const bytes = new Uint8Array(header + size * values.length);
  const view = new DataView(bytes.buffer);
  bytes.set([0, 0, type === "uint8" ? 0x08 : 0x0d, shape.length]);
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  values.forEach((v, i) => {
    if (type === "uint8") bytes[header + i] = v;
    else view.setFloat32(header + 4 * i, v, false);
  });
  return bytes;
}

async function gzip(bytes: Bytes): Promise<Bytes> {
  const stream = new Blob([bytes]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const BOUNDARY = "----dtrain-test-boundary";

/** A multipart/form-data body of file fields, written by hand. */
function multipart(fields: [string, Uint8Array][], closed = true): Bytes {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = [];
  for (const [name, bytes] of fields) {
    pieces.push(enc.encode(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; ` +
        `filename="${name}.idx"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ));
    pieces.push(bytes, enc.encode("\r\n"));
  }
  if (closed) pieces.push(enc.encode(`--${BOUNDARY}--\r\n`));
  return concat(pieces);
}

function concat(pieces: Uint8Array[]): Bytes {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `bytes` as a stream of `size`-byte chunks (no Content-Length). */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream({
    pull(controller) {
      if (o >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(o, o + size));
      o += size;
    },
  });
}

function upload(
  app: DtrainApp,
  body: BodyInit,
  options: { query?: string; type?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.type !== undefined) headers["content-type"] = options.type;
  return Promise.resolve(app.request(`/v1/datasets${options.query ?? ""}`, {
    method: "POST",
    body,
    headers,
  }));
}

async function created(res: Response): Promise<Json> {
  const text = await res.text();
  assert.equal(res.status, 201, text);
  const record = JSON.parse(text);
  assert.equal(res.headers.get("location"), `/v1/datasets/${record.id}`);
  return record;
}

/** What is left under `<dataDir>/datasets`. */
async function leftovers(app: DtrainApp): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(join(app.dataDir, "datasets")))).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Trains `data` with `over`; returns the final record once it ended. */
async function train(app: DtrainApp, data: unknown, over: Json = {}): Promise<Json> {
  const id = await submit(app, jobBody({ data, ...over }));
  const job = await waitForJob(
    app,
    id,
    (j) => !["queued", "running"].includes(j.status as string),
    60_000,
  );
  assert.equal(job.status, "succeeded", JSON.stringify(job.error));
  return job;
}

function finalLoss(job: Json): number {
  return (job.history as History).history.loss!.at(-1)!;
}

/** Trains the upload and the inline rows alike; asserts both end with the same loss. */
async function assertSameTraining(
  app: DtrainApp,
  id: string,
  inline: { x: number[][]; y: number[][] },
  over: Json = {},
): Promise<Json> {
  const uploaded = await train(app, { upload: id }, over);
  const sent = await train(app, inline, over);
  const history = uploaded.history as History;
  assert.deepEqual(history.epoch, [0, 1], "the History has both epochs");
  assert.equal(history.history.loss!.length, 2);
  assert.ok(Number.isFinite(finalLoss(uploaded)));
  assert.equal(
    finalLoss(uploaded),
    finalLoss(sent),
    "the upload trains exactly like the same rows sent inline",
  );
  assert.deepEqual(history, sent.history, "every epoch's logs are the same");
  assert.equal((uploaded.spec as Json).data, `upload ${id}: ${inline.x.length} samples`);
  return uploaded;
}

const CLASSIFY = {
  compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
};

/** 24 samples of 4 values and a class in {2, 5, 7}. */
function classes3(): { x: number[][]; labels: number[] } {
  const x = Array.from({ length: 24 }, (_, i) => [i % 2, (i % 3) / 2, (i % 5) / 4, i / 24]);
  return { x, labels: x.map((_, i) => [2, 5, 7][i % 3]!) };
}

function oneHot(labels: number[], values: number[]): number[][] {
  return labels.map((l) => values.map((v) => (v === l ? 1 : 0)));
}

// --- Tests. ---

Deno.test("POST /v1/datasets stores a binary f32 upload that trains like the same rows inline", async () => {
  const app = await tempApp();
  try {
    const data = regression();
    const body = f32Body(data.x, data.y);
    const record = await created(await upload(app, body, { type: "application/octet-stream" }));
    assert.match(record.id as string, /^ds_[0-9a-z]{17}$/);
    assert.deepEqual(
      {
        count: record.count,
        xShape: record.xShape,
        yShape: record.yShape,
        bytes: record.bytes,
        format: record.format,
        classes: record.classes,
      },
      { count: 64, xShape: [4], yShape: [1], bytes: body.length, format: "f32", classes: null },
    );
    // The stored file is the upload, byte for byte.
    const stored = await Deno.readFile(
      join(app.dataDir, "datasets", record.id as string, "data.dtds"),
    );
    assert.deepEqual(stored, body);
    assert.deepEqual(await (await call(app, "GET", `/v1/datasets/${record.id}`)).json(), record);
    assert.deepEqual(await (await call(app, "GET", "/v1/datasets")).json(), { datasets: [record] });

    const job = await assertSameTraining(app, record.id as string, data);
    // The job's stored request names the upload; the samples are stored once, with the dataset.
    const request = await Deno.readTextFile(
      join(app.dataDir, "jobs", job.id as string, "request.json"),
    );
    assert.deepEqual(JSON.parse(request).data, { upload: record.id });
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/datasets checks an f32 body that arrives in chunks of 3 bytes, shapes of any rank", async () => {
  const app = await tempApp();
  try {
    const x = Array.from({ length: 6 }, (_, i) => [i, i + 0.5, -i, 1, 2, 3]);
    const y = x.map((_, i) => [i % 2, 1 - (i % 2)]);
    const body = f32Body(x, y, { x: [2, 3, 1] });
    const record = await created(
      await upload(app, chunked(body, 3), { query: "?format=f32&name=cube" }),
    );
    assert.deepEqual([record.count, record.xShape, record.yShape], [6, [2, 3, 1], [2]]);
    assert.equal(record.name, "cube");
    const stored = await Deno.readFile(
      join(app.dataDir, "datasets", record.id as string, "data.dtds"),
    );
    assert.deepEqual(stored, body);

    // A NaN whose 4 bytes straddle two chunks is still found, with its sample.
    const bad = f32Body(x, y, { x: [2, 3, 1] });
    new DataView(bad.buffer).setFloat32(36 + 4 * (4 * 6 + 5), NaN, true); // a 36-byte header; x of sample 4, value 5
    await assertError(
      await upload(app, chunked(bad, 3), { query: "?format=f32" }),
      400,
      "invalid_dataset",
      "x of sample 4, value 5: expected a finite number, received NaN",
    );
    assert.deepEqual(await leftovers(app), [record.id]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/datasets turns CSV into one-hot classes that train like the same rows inline", async () => {
  const app = await tempApp();
  try {
    const { x, labels } = classes3();
    const csv = "a,b,label,c,d\n" +
      x.map((r, i) => `${r[0]},${r[1]},${labels[i]},${r[2]},${r[3]}`).join("\n") + "\n";
    const record = await created(
      await upload(app, csv, { type: "text/csv", query: "?label=label" }),
    );
    assert.deepEqual(
      [record.format, record.count, record.xShape, record.yShape, record.classes],
      ["csv", 24, [4], [3], [2, 5, 7]],
    );
    await assertSameTraining(
      app,
      record.id as string,
      { x, y: oneHot(labels, [2, 5, 7]) },
      CLASSIFY,
    );

    // By index, without a header, over classes=8: labels are class indices.
    const headless = x.map((r, i) => `${labels[i]},${r.join(",")}`).join("\r\n");
    const indexed = await created(
      await upload(app, headless, {
        type: "text/csv; charset=utf-8",
        query: "?label=0&header=false&classes=8",
      }),
    );
    assert.deepEqual([indexed.yShape, indexed.classes], [[8], [0, 1, 2, 3, 4, 5, 6, 7]]);
    const job = await train(app, { upload: indexed.id }, CLASSIFY);
    assert.deepEqual((job.history as History).epoch, [0, 1]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/datasets reads multipart IDX files, gzipped or not, that train like the same rows inline", async () => {
  const app = await tempApp();
  try {
    const count = 20;
    const pixels = Array.from({ length: count * 4 }, (_, i) => (i * 37) % 256);
    const labels = Array.from({ length: count }, (_, i) => i % 3);
    const images = idxFile("uint8", [count, 2, 2], pixels);
    const labelFile = idxFile("uint8", [count], labels);
    const inline = {
      x: Array.from(
        { length: count },
        (_, i) => pixels.slice(4 * i, 4 * i + 4).map((p) => p / 255),
      ),
      y: oneHot(labels, [0, 1, 2]),
    };

    // Written by hand and streamed in 7-byte chunks: boundaries split across chunks.
    const body = multipart([["images", await gzip(images)], ["labels", labelFile]]);
    const record = await created(
      await upload(app, chunked(body, 7), {
        type: `multipart/form-data; boundary=${BOUNDARY}`,
      }),
    );
    assert.deepEqual(
      [record.format, record.count, record.xShape, record.yShape, record.classes],
      ["idx", count, [2, 2], [3], [0, 1, 2]],
    );
    assert.deepEqual(await leftovers(app), [record.id], "no temporary file is left");
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(join(app.dataDir, "datasets", record.id as string))))
        .map((e) => e.name),
      ["data.dtds"],
      "only the stored file stays, not the uploaded parts",
    );
    await assertSameTraining(app, record.id as string, inline, CLASSIFY);

    // As a FormData a client builds, with classes=4.
    const form = new FormData();
    form.append("images", new Blob([images]), "images.idx");
    form.append("labels", new Blob([await gzip(labelFile)]), "l.gz");
    const fromForm = await created(await upload(app, form, { query: "?classes=4" }));
    assert.deepEqual([fromForm.count, fromForm.yShape], [count, [4]]);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/datasets answers 400 naming the problem and leaves no file behind", async () => {
  const app = await tempApp();
  try {
    const { x, y } = regression(8);
    const good = f32Body(x, y);
    const withValue = (index: number, value: number) => {
      const bytes = good.slice();
      new DataView(bytes.buffer).setFloat32(28 + 4 * index, value, true);
      return bytes;
    };
    const images = idxFile("uint8", [8, 2], Array.from({ length: 16 }, (_, i) => i));
    const labels = idxFile("uint8", [8], [0, 1, 0, 1, 0, 1, 0, 1]);
    const mp = `multipart/form-data; boundary=${BOUNDARY}`;
    const csv = "text/csv";
    const cases: [string, BodyInit, { query?: string; type?: string }, string][] = [
      [
        "wrong magic",
        f32Body(x, y, { magic: "NOPE" }),
        { type: "application/octet-stream" },
        'expected the magic "DTDS"',
      ],
      [
        "wrong version",
        f32Body(x, y, { version: 2 }),
        { query: "?format=f32" },
        "expected version 1, received 2",
      ],
      [
        "rank 9",
        f32Body(x, y, { x: [1, 1, 1, 1, 1, 1, 1, 1, 4] }),
        { query: "?format=f32" },
        "rank of a sample of x to be 1 to 8, received 9",
      ],
      [
        "truncated",
        good.slice(0, good.length - 4),
        { query: "?format=f32" },
        `truncated body: expected ${good.length} bytes`,
      ],
      ["oversized", concat([good, new Uint8Array(4)]), { query: "?format=f32" }, "received more"],
      [
        "short header",
        good.slice(0, 10),
        { query: "?format=f32" },
        "truncated header: expected at least 20 bytes, received 10",
      ],
      [
        "NaN in x",
        withValue(4 * 2 + 1, NaN),
        { query: "?format=f32" },
        "x of sample 2, value 1: expected a finite number, received NaN",
      ],
      [
        "Infinity in y",
        withValue(8 * 4 + 3, Infinity),
        { query: "?format=f32" },
        "y of sample 3, value 0: expected a finite number, received Infinity",
      ],
      [
        "csv param on f32",
        good,
        { query: "?format=f32&label=a" },
        "the parameter label does not apply to format f32",
      ],
      [
        "ragged csv",
        "a,b,label\n1,2,0\n3,1\n",
        { type: csv, query: "?label=label" },
        "line 3: expected 3 columns, received 2",
      ],
      [
        "NaN in csv",
        "a,b,label\n1,NaN,0\n",
        { type: csv, query: "?label=label" },
        'line 2: column "b" (2) is "NaN": expected a number',
      ],
      [
        "text in csv",
        "a,b,label\n1,x1,0\n",
        { type: csv, query: "?label=label" },
        'line 2: column "b" (2) expected a finite number, received "x1"',
      ],
      ["csv without label", "a,b\n1,2\n", { type: csv }, "expected the parameter label"],
      [
        "unknown label column",
        "a,b\n1,2\n",
        { type: csv, query: "?label=z" },
        'label "z" is not a column: expected one of "a", "b"',
      ],
      [
        "only a label column",
        "label\n1\n",
        { type: csv, query: "?label=label" },
        "expected at least one feature column",
      ],
      [
        "empty csv",
        "a,label\n",
        { type: csv, query: "?label=label" },
        "expected at least one data row",
      ],
      ["label out of classes", "a,label\n1,0\n2,3\n", {
        type: csv,
        query: "?label=label&classes=2",
      }, 'label column "label" of sample 1: expected an integer in [0, 2) (classes=2), received 3'],
      ["no labels field", multipart([["images", images]]), { type: mp }, 'missing "labels"'],
      [
        "extra field",
        multipart([["images", images], ["extra", labels]]),
        { type: mp },
        'unexpected field "extra"',
      ],
      [
        "field twice",
        multipart([["images", images], ["images", images]]),
        { type: mp },
        'the field "images" appears twice',
      ],
      ["no closing boundary", multipart([["images", images], ["labels", labels]], false), {
        type: mp,
      }, "expected the closing boundary"],
      ["count mismatch", multipart([["images", images], ["labels", labels.slice(0, -1)]]), {
        type: mp,
      }, "Truncated IDX file labels: expected 16 bytes"],
      [
        "labels not rank 1",
        multipart([["images", images], [
          "labels",
          idxFile("uint8", [8, 1], [0, 1, 0, 1, 0, 1, 0, 1]),
        ]]),
        { type: mp },
        "labels: expected one class label per sample",
      ],
      [
        "samples differ",
        multipart([["images", images], ["labels", idxFile("uint8", [7], [0, 1, 0, 1, 0, 1, 0])]]),
        { type: mp },
        "images has 8 samples and labels has 7",
      ],
      ["not IDX", multipart([["images", new TextEncoder().encode("hello")], ["labels", labels]]), {
        type: mp,
      }, "Not an IDX file images"],
      [
        "corrupt gzip",
        multipart([["images", new Uint8Array([0x1f, 0x8b, 1, 2, 3])], ["labels", labels]]),
        { type: mp },
        "images: corrupt gzip data",
      ],
      [
        "NaN in float IDX",
        multipart([["images", idxFile("float32", [2, 2], [0, 1, NaN, 3])], [
          "labels",
          idxFile("uint8", [2], [0, 1]),
        ]]),
        { type: mp },
        "images of sample 1, value 0: expected a finite number, received NaN",
      ],
      [
        "idx without multipart",
        images,
        { query: "?format=idx" },
        "expected a multipart/form-data body",
      ],
    ];
    for (const [what, body, options, message] of cases) {
      const res = await upload(app, body, options);
      const error = await assertError(res, 400, "invalid_dataset", message).catch((e) => {
        throw new Error(`${what}: ${e.message}`);
      });
      assert.ok(error.error.message.startsWith("Invalid "), `${what}: ${error.error.message}`);
      assert.deepEqual(await leftovers(app), [], `${what}: nothing is left behind`);
    }
    assert.deepEqual(await (await call(app, "GET", "/v1/datasets")).json(), { datasets: [] });

    // A body of no known type, and a query the schema refuses.
    await assertError(
      await upload(app, "1,2", { type: "text/plain" }),
      415,
      "unsupported_media_type",
      "expected application/octet-stream (f32), text/csv (csv) or multipart/form-data (idx)",
    );
    await assertError(
      await upload(app, good, { query: "?format=npy" }),
      400,
      "invalid_request",
      "Invalid request query: format",
    );
    assert.deepEqual(await leftovers(app), []);
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/datasets answers 413 over maxDatasetBytes, and is exempt from maxBodyBytes", async () => {
  const app = await tempApp({ maxBodyBytes: 1024, maxDatasetBytes: 8192 });
  try {
    // 4 KiB: over the app's body limit, under the datasets' own.
    const { x, y } = regression(200);
    const body = f32Body(x, y);
    assert.ok(body.length > 1024 && body.length < 8192, String(body.length));
    await created(await upload(app, chunked(body, 512), { query: "?format=f32" }));
    await assertError(
      await call(app, "POST", "/v1/jobs", jobBody({ data: { x, y } })),
      413,
      "payload_too_large",
      "expected at most 1024 bytes",
    );
    const kept = await leftovers(app);
    assert.equal(kept.length, 1);

    const big = regression(500);
    const tooBig = f32Body(big.x, big.y);
    // Streamed: refused once the header declares more, before the rest arrives.
    await assertError(
      await upload(app, chunked(tooBig, 64), { query: "?format=f32" }),
      413,
      "payload_too_large",
      `the header declares ${tooBig.length} bytes; expected at most 8192 bytes`,
    );
    // A CSV stream is counted as it arrives.
    const csv = "a,b,c,d,e\n" + big.x.map((r, i) => [...r, big.y[i]![0]].join(",")).join("\n");
    await assertError(
      await upload(app, chunked(new TextEncoder().encode(csv), 1000), {
        type: "text/csv",
        query: "?label=e",
      }),
      413,
      "payload_too_large",
      "the body exceeds 8192 bytes",
    );
    // A declared Content-Length over the limit is refused before reading.
    await assertError(
      await upload(app, tooBig, {
        query: "?format=f32",
        headers: { "content-length": String(tooBig.length) },
      }),
      413,
      "payload_too_large",
      `Content-Length ${tooBig.length}`,
    );
    assert.deepEqual(await leftovers(app), kept, "refused uploads leave nothing behind");
  } finally {
    await app.dispose();
  }
});

Deno.test("POST /v1/jobs answers 400 naming data.upload for an unknown or unfitting dataset", async () => {
  const app = await tempApp();
  try {
    for (const id of ["ds_00000000000000000", "../models"]) {
      const res = await call(app, "POST", "/v1/jobs", jobBody({ data: { upload: id } }));
      const body = await assertError(
        res,
        400,
        "invalid_request",
        `data.upload: no uploaded dataset ${JSON.stringify(id)}`,
      );
      assert.deepEqual(body.error.details, { field: "data.upload", received: id });
    }
    await assertError(
      await call(app, "POST", "/v1/jobs", jobBody({ data: { upload: 7 } })),
      400,
      "invalid_request",
      "Invalid request body: data.upload",
    );
    const { x, y } = regression(16);
    const record = await created(await upload(app, f32Body(x, y), { query: "?format=f32" }));
    await assertError(
      await call(
        app,
        "POST",
        "/v1/jobs",
        jobBody({ model: { preset: "cnn", seed: 1 }, data: { upload: record.id } }),
      ),
      400,
      "shape_mismatch",
      `data.upload: the dataset ${record.id} has samples of shape [4] and targets of shape [1], ` +
        "the model takes [28, 28, 1]",
    );
    await assertError(
      await call(
        app,
        "POST",
        "/v1/jobs",
        jobBody({ model: twoByTwoTopology(), data: { upload: record.id } }),
      ),
      400,
      "invalid_model",
      "data.upload: a dataset holds samples of one input and one output, received a model " +
        'with 2 inputs ("in_a", "in_b") and 2 outputs ("out_a", "out_b"): send its samples ' +
        "inline, as data.x and data.y dicts of rows by layer name",
    );
    await assertError(
      await call(
        app,
        "POST",
        "/v1/jobs",
        jobBody({ data: { upload: record.id }, fit: { validationSplit: 0.99 } }),
      ),
      400,
      "invalid_request",
      "fit.validationSplit: 0.99 of 16 samples leaves no training sample",
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("DELETE /v1/datasets/:id answers 409 while a queued job trains on it, then 204 and removes the files", async () => {
  const app = await tempApp({ maxConcurrentJobs: 1 });
  try {
    const { x, y } = regression(16);
    const record = await created(await upload(app, f32Body(x, y), { query: "?format=f32" }));
    const id = record.id as string;
    const blocker = await submit(app, jobBody({ fit: { epochs: 10000, batchSize: 16 } }));
    const waiting = await submit(app, jobBody({ data: { upload: id } }));
    const refused = await assertError(
      await call(app, "DELETE", `/v1/datasets/${id}`),
      409,
      "dataset_in_use",
      waiting,
    );
    assert.deepEqual(refused.error.details, { jobs: [waiting] });
    for (const job of [waiting, blocker]) await call(app, "DELETE", `/v1/jobs/${job}`);

    const res = await call(app, "DELETE", `/v1/datasets/${id}`);
    assert.equal(res.status, 204, await res.text());
    assert.deepEqual(await leftovers(app), [], "its folder is gone");
    await assertError(await call(app, "GET", `/v1/datasets/${id}`), 404, "not_found", id);
    await assertError(await call(app, "DELETE", `/v1/datasets/${id}`), 404, "not_found", id);
    assert.deepEqual(await (await call(app, "GET", "/v1/datasets")).json(), { datasets: [] });
    await assertError(
      await call(app, "POST", "/v1/jobs", jobBody({ data: { upload: id } })),
      400,
      "invalid_request",
      "data.upload: no uploaded dataset",
    );
  } finally {
    await app.dispose();
  }
});

Deno.test("a job on an upload, left queued by a closed app, is resumed by the next app from the dataset's folder", async () => {
  const app = await tempApp({ maxConcurrentJobs: 1 });
  let closed = false;
  try {
    const data = regression();
    const record = await created(
      await upload(app, f32Body(data.x, data.y), { query: "?format=f32" }),
    );
    const blocker = await submit(app, jobBody({ fit: { epochs: 10000, batchSize: 16 } }));
    const queued = await submit(app, jobBody({ data: { upload: record.id } }));
    await app.close();
    closed = true;

    const reopened = await tempApp({ dataDir: app.dataDir, maxConcurrentJobs: 1 });
    try {
      await call(reopened, "DELETE", `/v1/jobs/${blocker}`);
      const job = await waitForJob(
        reopened,
        queued,
        (j) => !["queued", "running"].includes(j.status as string),
        60_000,
      );
      assert.equal(job.status, "succeeded", JSON.stringify(job.error));
      assert.deepEqual((job.history as History).epoch, [0, 1]);
      const reference = await train(reopened, data);
      assert.equal(finalLoss(job), finalLoss(reference));
    } finally {
      await reopened.close();
    }
  } finally {
    if (!closed) await app.close();
    await Deno.remove(app.dataDir, { recursive: true });
  }
});

Deno.test("GET /openapi.json documents the dataset routes and the upload's body forms", async () => {
  const app = await tempApp();
  try {
    const spec = await (await call(app, "GET", "/openapi.json")).json();
    const post = spec.paths["/v1/datasets"].post;
    assert.deepEqual(Object.keys(post.requestBody.content).sort(), [
      "application/octet-stream",
      "multipart/form-data",
      "text/csv",
    ]);
    assert.deepEqual(Object.keys(post.responses).sort(), [
      "201",
      "400",
      "401",
      "413",
      "415",
      "503",
    ]);
    assert.match(post.description, /"DTDS", u32 version 1, u32 count n/);
    assert.deepEqual(
      post.parameters.map((p: { name: string }) => p.name).sort(),
      ["classes", "format", "header", "label", "name"],
    );
    assert.ok(spec.paths["/v1/datasets"].get);
    assert.deepEqual(Object.keys(spec.paths["/v1/datasets/{id}"]).sort(), ["delete", "get"]);
    assert.ok(spec.components.schemas.UploadData, "data.upload is in the JobRequest schema");
    assert.deepEqual(spec.components.schemas.Dataset.required.sort(), [
      "bytes",
      "classes",
      "count",
      "createdAt",
      "format",
      "id",
      "name",
      "xShape",
      "yShape",
    ]);
  } finally {
    await app.dispose();
  }
});

Deno.test("createApp() removes the folders of uploads a crash interrupted", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dtrain-server-" });
  try {
    const torn = join(dataDir, "datasets", ".incoming-ds_0000000000000torn");
    await Deno.mkdir(torn, { recursive: true });
    await Deno.writeTextFile(join(torn, "data.dtds"), "half");
    const app = await tempApp({ dataDir });
    try {
      const names = [...Deno.readDirSync(join(dataDir, "datasets"))].map((e) => e.name);
      assert.deepEqual(names, [], "the interrupted upload's folder is gone");
      const list = await (await call(app, "GET", "/v1/datasets")).json();
      assert.deepEqual(list.datasets, []);
    } finally {
      await app.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
