import { DataFormatError } from "../errors.ts";
import type { LabeledData } from "./labeled_data.ts";

/** Options for {@linkcode readCsv}. */
export interface ReadCsvOptions {
  /**
   * The label column: its header name, or its zero-based index. A name needs
   * `header: true`. Every other column is a feature.
   */
  labelColumn: string | number;
  /**
   * Whether the first non-blank line holds column names.
   * @default {true}
   */
  header?: boolean;
  /**
   * What to do with a missing value (an empty field or `NaN`): `"fail"`
   * throws a {@linkcode DataFormatError} naming the line; `"drop"` skips the row
   * and counts it in `dropped`.
   * @default {"fail"}
   */
  nan?: "fail" | "drop";
  /**
   * Field separator, one character other than `"` or a line break.
   * @default {","}
   */
  delimiter?: string;
}

/** What {@linkcode readCsv} returns: features, numeric labels and column names. */
export interface CsvData extends LabeledData<Float32Array> {
  /** Names of the feature columns, in order (`column_<i>` without a header). */
  featureNames: string[];
  /** Name of the label column (`column_<i>` without a header). */
  labelName: string;
  /** Rows skipped because of a missing value (only with `nan: "drop"`). */
  dropped: number;
}

function splitRow(
  line: string,
  delimiter: string,
  where: string,
  path: string,
): string[] {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field.trim() === "") {
      quoted = true;
      field = "";
    } else if (ch === delimiter) {
      fields.push(field);
      field = "";
    } else {
      field += ch;
    }
  }
  if (quoted) {
    throw new DataFormatError(
      `${where}: expected a closing quote, received the end of the line`,
      { path },
    );
  }
  fields.push(field);
  return fields;
}

/**
 * Reads a numeric CSV file into row-major features and one numeric label per
 * row. Blank lines are skipped; fields may be double-quoted.
 *
 * @param path File path or `file:` URL.
 * @param options Label column, header, missing-value policy and delimiter.
 * @returns `{ x, y, count, featureShape: [features], featureNames, labelName, dropped }`.
 * @throws {TypeError} When an option has the wrong type (e.g. a label column
 *   name with `header: false`).
 * @throws {RangeError} When the label column is not in the file.
 * @throws {DataFormatError} For a ragged row (`file:line: expected N columns,
 *   received M`), a non-numeric value, a missing value under `nan: "fail"`,
 *   an unclosed quote or a file without data rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCsv } from "./csv.ts";
 * const path = await Deno.makeTempFile({ suffix: ".csv" });
 * await Deno.writeTextFile(path, "a,b,label\n1,2,0\n3,4,1\n");
 * const data = await readCsv(path, { labelColumn: "label" });
 * assert.ok(data.count === 2 && data.featureShape[0] === 2);
 * assert.ok(data.x[2] === 3 && data.y[1] === 1);
 * await Deno.remove(path);
 * ```
 */
export async function readCsv(
  path: string | URL,
  options: ReadCsvOptions,
): Promise<CsvData> {
  if (typeof path !== "string" && !(path instanceof URL)) {
    throw new TypeError(
      `readCsv() expected path to be a string or URL, received ${typeof path}`,
    );
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `readCsv() expected an options object with labelColumn, received ${options}`,
    );
  }
  const { labelColumn, header = true, nan = "fail", delimiter = "," } = options;
  if (typeof header !== "boolean") {
    throw new TypeError(
      `readCsv() expected header to be a boolean, received ${typeof header}`,
    );
  }
  if (typeof labelColumn === "string") {
    if (!header) {
      throw new TypeError(
        `readCsv() expected a numeric labelColumn when header is false, received "${labelColumn}"`,
      );
    }
  } else if (!Number.isInteger(labelColumn) || labelColumn < 0) {
    throw new TypeError(
      `readCsv() expected labelColumn to be a column name or a non-negative integer index, received ${
        String(labelColumn)
      }`,
    );
  }
  if (nan !== "fail" && nan !== "drop") {
    throw new TypeError(
      `readCsv() expected nan to be "fail" or "drop", received ${JSON.stringify(nan)}`,
    );
  }
  if (
    typeof delimiter !== "string" || delimiter.length !== 1 ||
    delimiter === '"' || delimiter === "\n" || delimiter === "\r"
  ) {
    throw new TypeError(
      `readCsv() expected delimiter to be one character other than a quote or line break, received ${
        JSON.stringify(delimiter)
      }`,
    );
  }

  const file = String(path);
  const lines = (await Deno.readTextFile(path)).split("\n");
  let names: string[] | undefined;
  let width = -1;
  let label = -1;
  const x: number[] = [];
  const y: number[] = [];
  let dropped = 0;
  const row: number[] = [];

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.endsWith("\r") ? lines[i]!.slice(0, -1) : lines[i]!;
    if (line.trim() === "") continue;
    const where = `${file}:${i + 1}`;
    const fields = splitRow(line, delimiter, where, file);
    if (width === -1) {
      width = fields.length;
      if (header) names = fields.map((name) => name.trim());
      label = resolveLabel(names, width);
      if (header) continue;
    }
    if (fields.length !== width) {
      throw new DataFormatError(
        `${where}: expected ${width} columns, received ${fields.length}`,
        { path: file },
      );
    }
    row.length = 0;
    let missing: string | undefined;
    for (let c = 0; c < width; c++) {
      const text = fields[c]!.trim();
      if (text === "" || /^nan$/i.test(text)) {
        missing ??= `column ${columnName(c)} is ${text === "" ? "empty" : JSON.stringify(text)}`;
        row.push(NaN);
        continue;
      }
      const value = Number(text);
      if (!Number.isFinite(value)) {
        throw new DataFormatError(
          `${where}: column ${columnName(c)} expected a finite number, received ${
            JSON.stringify(text)
          }`,
          { path: file },
        );
      }
      row.push(value);
    }
    if (missing !== undefined) {
      if (nan === "drop") {
        dropped++;
        continue;
      }
      throw new DataFormatError(
        `${where}: ${missing}: expected a number (pass nan: "drop" to skip such rows)`,
        { path: file },
      );
    }
    for (let c = 0; c < width; c++) {
      if (c === label) y.push(row[c]!);
      else x.push(row[c]!);
    }
  }

  if (y.length === 0) {
    throw new DataFormatError(
      `${file}: expected at least one data row, received none` +
        (dropped > 0 ? ` (${dropped} dropped for missing values)` : ""),
      { path: file },
    );
  }
  const featureNames: string[] = [];
  for (let c = 0; c < width; c++) {
    if (c !== label) featureNames.push(names?.[c] ?? `column_${c}`);
  }
  return {
    x: new Float32Array(x),
    y: new Float32Array(y),
    count: y.length,
    featureShape: [width - 1],
    featureNames,
    labelName: names?.[label] ?? `column_${label}`,
    dropped,
  };

  function columnName(c: number): string {
    return names?.[c] !== undefined ? `"${names[c]}" (${c + 1})` : String(c + 1);
  }

  function resolveLabel(names: string[] | undefined, width: number): number {
    if (typeof labelColumn === "string") {
      const index = names!.indexOf(labelColumn);
      if (index === -1) {
        throw new RangeError(
          `readCsv() labelColumn "${labelColumn}" is not a column of ${file}: ` +
            `expected one of ${names!.map((n) => JSON.stringify(n)).join(", ")}`,
        );
      }
      return index;
    }
    if (labelColumn >= width) {
      throw new RangeError(
        `readCsv() labelColumn ${labelColumn} is out of range for ${file}: ` +
          `expected an index below ${width} (the number of columns), received ${labelColumn}`,
      );
    }
    return labelColumn;
  }
}
