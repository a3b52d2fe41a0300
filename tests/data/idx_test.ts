import assert from "node:assert/strict";
import { readIdx } from "../../src/data/idx.ts";
import { parseIdx } from "../../src/data/parse_idx.ts";
import { DataFormatError } from "../../src/errors.ts";
import { gzip, idxBytes } from "./_fixtures.ts";
import { assertRejectsWith, assertThrowsWith } from "./_assert.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtrain_idx_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readIdx() reads a raw uint8 IDX file when it is not gzipped", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/images-idx3-ubyte`;
    await Deno.writeFile(
      path,
      idxBytes("uint8", [2, 2, 3], [
        0,
        1,
        2,
        3,
        4,
        5,
        250,
        251,
        252,
        253,
        254,
        255,
      ]),
    );
    const idx = await readIdx(path);
    assert.equal(idx.dtype, "uint8");
    assert.deepEqual(idx.shape, [2, 2, 3]);
    assert.ok(idx.data instanceof Uint8Array);
    assert.deepEqual(Array.from(idx.data), [
      0,
      1,
      2,
      3,
      4,
      5,
      250,
      251,
      252,
      253,
      254,
      255,
    ]);
  });
});

Deno.test("readIdx() gunzips when the file starts with 1f 8b", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/labels-idx1-ubyte.gz`;
    await Deno.writeFile(
      path,
      await gzip(idxBytes("uint8", [4], [9, 0, 3, 7])),
    );
    const idx = await readIdx(path);
    assert.deepEqual(idx.shape, [4]);
    assert.deepEqual(Array.from(idx.data), [9, 0, 3, 7]);
    // a gzipped file without a .gz name is detected by content too
    const renamed = `${dir}/labels-no-suffix`;
    await Deno.rename(path, renamed);
    assert.deepEqual(
      Array.from((await readIdx(new URL(`file://${renamed}`))).data),
      [9, 0, 3, 7],
    );
  });
});

Deno.test("readIdx() decodes big-endian multi-byte types when the type code is 09, 0b, 0c, 0d or 0e", async () => {
  await withTempDir(async (dir) => {
    const cases = [
      ["int8", [-128, -1, 0, 127], Int8Array],
      ["int16", [-32768, -2, 258, 32767], Int16Array],
      ["int32", [-2147483648, -3, 65536 + 2, 2147483647], Int32Array],
      ["float32", [-1.5, 0, 0.25, 3e38], Float32Array],
      ["float64", [-1e300, Math.PI, 0, 1e-300], Float64Array],
    ] as const;
    for (const [dtype, values, type] of cases) {
      const path = `${dir}/${dtype}.idx`;
      await Deno.writeFile(path, idxBytes(dtype, [2, 2], values));
      const idx = await readIdx(path);
      assert.equal(idx.dtype, dtype);
      assert.deepEqual(idx.shape, [2, 2]);
      assert.ok(idx.data instanceof type, `${dtype} gives ${type.name}`);
      assert.deepEqual(Array.from(idx.data), Array.from(new type(values)));
    }
  });
});

Deno.test("readIdx() throws DataFormatError naming the file when the magic number is wrong", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad-magic`;
    const bytes = idxBytes("uint8", [1], [5]);
    bytes[0] = 0x12;
    await Deno.writeFile(path, bytes);
    const err = await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      `Not an IDX file ${path}: expected magic 0x0000 followed by a type code ` +
        "08, 09, 0b, 0c, 0d or 0e, received 0x12000801",
    );
    assert.equal(err.path, path);
  });
});

Deno.test("readIdx() throws DataFormatError when the type code is unknown", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad-type`;
    const bytes = idxBytes("uint8", [1], [5]);
    bytes[2] = 0x0a;
    await Deno.writeFile(path, bytes);
    await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      `Not an IDX file ${path}: expected magic 0x0000 followed by a type code ` +
        "08, 09, 0b, 0c, 0d or 0e, received 0x00000a01",
    );
  });
});

Deno.test("readIdx() throws DataFormatError with expected and received byte counts when the data is truncated", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/truncated.gz`;
    const full = idxBytes("uint8", [3, 2, 2], new Array(12).fill(1));
    await Deno.writeFile(path, await gzip(full.slice(0, full.length - 5)));
    await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      `Truncated IDX file ${path}: expected 28 bytes (16-byte header + 12 uint8 values ` +
        "for shape [3, 2, 2]), received 23",
    );
  });
});

Deno.test("readIdx() throws DataFormatError when the header itself is cut short", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/short-header`;
    await Deno.writeFile(path, idxBytes("uint8", [3, 2, 2], []).slice(0, 10));
    await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      `Truncated IDX file ${path}: expected at least 16 bytes of header for 3 dimensions, received 10`,
    );
    const tiny = `${dir}/tiny`;
    await Deno.writeFile(tiny, new Uint8Array([0, 0]));
    await assertRejectsWith(
      () => readIdx(tiny),
      DataFormatError,
      `Truncated IDX file ${tiny}: expected at least 4 bytes of header, received 2`,
    );
  });
});

Deno.test("readIdx() throws DataFormatError when bytes follow the data", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/oversized`;
    const good = idxBytes("int16", [2], [1, 2]);
    const bytes = new Uint8Array(good.length + 3);
    bytes.set(good);
    await Deno.writeFile(path, bytes);
    await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      `Oversized IDX file ${path}: expected 12 bytes (8-byte header + 2 int16 values for shape [2]), received 15`,
    );
  });
});

Deno.test("readIdx() throws DataFormatError when gzip data is corrupt", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/corrupt.gz`;
    const zipped = await gzip(idxBytes("uint8", [64], new Array(64).fill(7)));
    await Deno.writeFile(path, zipped.slice(0, 12));
    const err = await assertRejectsWith(
      () => readIdx(path),
      DataFormatError,
      /^Corrupt gzip data in .*corrupt\.gz: expected a complete gzip stream, received 12 bytes that failed to decompress \(.+\)$/,
    );
    assert.equal(err.path, path);
  });
});

Deno.test("readIdx() throws NotFound when the file does not exist", async () => {
  await withTempDir(async (dir) => {
    await assertRejectsWith(
      () => readIdx(`${dir}/missing`),
      Deno.errors.NotFound,
      /No such file or directory.*missing/,
    );
  });
});

Deno.test("readIdx() throws TypeError when path is not a string or URL", async () => {
  await assertRejectsWith(
    () => readIdx(42 as unknown as string),
    TypeError,
    "readIdx() expected path to be a string or URL, received number",
  );
});

Deno.test("parseIdx() uses <bytes> as the source name when none is given", () => {
  assertThrowsWith(
    () => parseIdx(new Uint8Array([1, 2, 3, 4])),
    DataFormatError,
    "Not an IDX file <bytes>: expected magic 0x0000 followed by a type code 08, 09, 0b, 0c, 0d or 0e, received 0x01020304",
  );
});
