import assert from "node:assert/strict";
import { readCsv } from "../../src/data/csv.ts";
import { DataFormatError } from "../../src/errors.ts";
import { assertRejectsWith } from "./_assert.ts";

async function withCsv(
  text: string,
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const path = await Deno.makeTempFile({
    prefix: "dtrain_csv_",
    suffix: ".csv",
  });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("readCsv() splits features and labels when labelColumn names a header column", async () => {
  await withCsv("sepal,label,petal\n1.5,0,2\n3,1,4.25\n\n", async (path) => {
    const data = await readCsv(path, { labelColumn: "label" });
    assert.ok(data.x instanceof Float32Array && data.y instanceof Float32Array);
    assert.deepEqual(Array.from(data.x), [1.5, 2, 3, 4.25]);
    assert.deepEqual(Array.from(data.y), [0, 1]);
    assert.equal(data.count, 2);
    assert.deepEqual(data.featureShape, [2]);
    assert.deepEqual(data.featureNames, ["sepal", "petal"]);
    assert.equal(data.labelName, "label");
    assert.equal(data.dropped, 0);
  });
});

Deno.test("readCsv() reads rows without a header when labelColumn is an index", async () => {
  await withCsv("1;2;9\r\n3;4;8\r\n", async (path) => {
    const data = await readCsv(path, {
      labelColumn: 2,
      header: false,
      delimiter: ";",
    });
    assert.deepEqual(Array.from(data.x), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(data.y), [9, 8]);
    assert.deepEqual(data.featureNames, ["column_0", "column_1"]);
    assert.equal(data.labelName, "column_2");
  });
});

Deno.test("readCsv() accepts double-quoted fields when names or values are quoted", async () => {
  await withCsv('"a, b","y"\n"1.5",2\n', async (path) => {
    const data = await readCsv(path, { labelColumn: "y" });
    assert.deepEqual(data.featureNames, ["a, b"]);
    assert.deepEqual(Array.from(data.x), [1.5]);
  });
});

Deno.test("readCsv() throws DataFormatError with file:line and column counts when a row is ragged", async () => {
  await withCsv("a,b,y\n1,2,0\n3,4\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y" }),
      DataFormatError,
      `${path}:3: expected 3 columns, received 2`,
    );
  });
});

Deno.test("readCsv() throws DataFormatError naming line and column when a value is not numeric", async () => {
  await withCsv("a,b,y\n1,2,0\n\n3,abc,1\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y" }),
      DataFormatError,
      `${path}:4: column "b" (2) expected a finite number, received "abc"`,
    );
  });
  await withCsv("1,Infinity\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: 0, header: false }),
      DataFormatError,
      `${path}:1: column 2 expected a finite number, received "Infinity"`,
    );
  });
});

Deno.test("readCsv() throws DataFormatError when a value is NaN or empty and nan is fail", async () => {
  await withCsv("a,y\n1,0\nNaN,1\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y" }),
      DataFormatError,
      `${path}:3: column "a" (1) is "NaN": expected a number (pass nan: "drop" to skip such rows)`,
    );
  });
  await withCsv("a,y\n1,\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y", nan: "fail" }),
      DataFormatError,
      `${path}:2: column "y" (2) is empty: expected a number (pass nan: "drop" to skip such rows)`,
    );
  });
});

Deno.test("readCsv() skips rows with missing values and counts them when nan is drop", async () => {
  await withCsv("a,y\n1,0\nnan,1\n2,\n3,1\n", async (path) => {
    const data = await readCsv(path, { labelColumn: "y", nan: "drop" });
    assert.deepEqual(Array.from(data.x), [1, 3]);
    assert.deepEqual(Array.from(data.y), [0, 1]);
    assert.equal(data.dropped, 2);
  });
});

Deno.test("readCsv() throws DataFormatError when no data rows remain", async () => {
  await withCsv("a,y\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y" }),
      DataFormatError,
      `${path}: expected at least one data row, received none`,
    );
  });
  await withCsv("a,y\nNaN,1\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y", nan: "drop" }),
      DataFormatError,
      `${path}: expected at least one data row, received none (1 dropped for missing values)`,
    );
  });
});

Deno.test("readCsv() throws DataFormatError when a quote is not closed", async () => {
  await withCsv('a,y\n"1,0\n', async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "y" }),
      DataFormatError,
      `${path}:2: expected a closing quote, received the end of the line`,
    );
  });
});

Deno.test("readCsv() throws RangeError when the label column is not in the file", async () => {
  await withCsv("a,b\n1,2\n", async (path) => {
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: "label" }),
      RangeError,
      `readCsv() labelColumn "label" is not a column of ${path}: expected one of "a", "b"`,
    );
    await assertRejectsWith(
      () => readCsv(path, { labelColumn: 5 }),
      RangeError,
      `readCsv() labelColumn 5 is out of range for ${path}: expected an index below 2 (the number of columns), received 5`,
    );
  });
});

Deno.test("readCsv() throws TypeError before reading when an option is invalid", async () => {
  const path = "/nonexistent.csv";
  await assertRejectsWith(
    () => readCsv(path, { labelColumn: "y", header: false }),
    TypeError,
    'readCsv() expected a numeric labelColumn when header is false, received "y"',
  );
  await assertRejectsWith(
    () => readCsv(path, { labelColumn: -1 }),
    TypeError,
    "readCsv() expected labelColumn to be a column name or a non-negative integer index, received -1",
  );
  await assertRejectsWith(
    () => readCsv(path, { labelColumn: 0, nan: "zero" as "fail" }),
    TypeError,
    'readCsv() expected nan to be "fail" or "drop", received "zero"',
  );
  await assertRejectsWith(
    () => readCsv(path, { labelColumn: 0, delimiter: ",," }),
    TypeError,
    'readCsv() expected delimiter to be one character other than a quote or line break, received ",,"',
  );
  await assertRejectsWith(
    () => readCsv(path, undefined as unknown as { labelColumn: number }),
    TypeError,
    "readCsv() expected an options object with labelColumn, received undefined",
  );
});
