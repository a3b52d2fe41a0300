// Private: the handlers of the models resource: metadata, the tfjs files
// (`model.json` and its weight files, so `tf.loadLayersModel(url)` works),
// predict and delete. They only translate between HTTP and the registry:
// predict decodes its body here (JSON, the binary form, `.npy`) into one
// Float32Array per model input and encodes the outputs the way `Accept` asks.
// A model with several inputs takes JSON only (a dict of rows by input name,
// or a list of rows per input); one with several outputs answers JSON only,
// a dict of rows by output name.
//
// The binary form (`application/octet-stream`), requests and answers alike,
// all little-endian:
//
//   bytes 0-3      magic "DTR1" (0x44 0x54 0x52 0x31)
//   bytes 4-7      u32 rank r, 2 <= r <= 8
//   next 4r bytes  u32 dims [rows, d1, ..., d(r-1)], each >= 1; in a request
//                  d1 x ... x d(r-1) is the model's input size ([n, 784] or
//                  [n, 28, 28, 1] for a 28x28x1 model)
//   the rest       rows x d1 x ... x d(r-1) float32 values, row-major,
//                  exactly (the header is a multiple of 4 bytes: they are
//                  read in place)
//
// An answer is [rows, width]. `.npy` (`application/x-npy`, format 1.0-3.0,
// descr '<f4', C order, at least 2 dimensions) is accepted and answered the
// same way. Both carry one input and one output.
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { JSONValue } from "hono/utils/types";
import type { z } from "@hono/zod-openapi";
import type { ModelRegistry, PredictPort } from "./registry.ts";
import { describePorts, InputError, portNames } from "./_domain_errors.ts";
import { HttpError } from "./_errors.ts";
import { PredictWorkerCrashedError } from "./_predict_pool.ts";
import { ROUTES } from "./_routes.ts";
import { validationError } from "./_validation.ts";

type Issue = z.core.$ZodIssue;

/** The binary form's magic, "DTR1". */
const MAGIC = [0x44, 0x54, 0x52, 0x31];
const MAX_RANK = 8;
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const BINARY = "application/octet-stream";
const NPY = "application/x-npy";

type Input = Pick<PredictPort, "shape" | "size">;

/** The rows of every model input, in `model.inputs` order, and their count. */
interface Decoded {
  xs: Float32Array[];
  rows: number;
}

/** A 400 naming the field, worded like the schema's own (`_validation.ts`). */
function invalid(path: readonly PropertyKey[], message: string, code = "invalid_type"): HttpError {
  return validationError(
    [{ code, path: [...path], message } as unknown as Issue],
    undefined,
    "json",
  );
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  // zod's words: NaN and Infinity by name, any other number as "number".
  if (typeof value === "number") return value - value === 0 ? "number" : String(value);
  return typeof value;
}

/** `inputs.a[3]` or `inputs[0][3]`, as `_validation.ts` names a path. */
function fieldOf(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    out += typeof key === "number" ? `[${key}]` : out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** `whose` names the shape: "the model's input" or `input "a"'s`. */
function shapeMismatch(field: string, received: number, input: Input, whose: string): InputError {
  return new InputError(
    "shape_mismatch",
    `${field} has ${received} values, expected ${input.size} ` +
      `(${whose} shape [${input.shape.join(", ")}])`,
    { field, expected: input.size, received },
  );
}

/**
 * Checks the rows at `path` (an array, already known) against `input` and
 * copies them into one Float32Array: 400 naming the first bad field
 * (`inputs[3][7]`, `inputs.a[3][7]`), `shape_mismatch` for a row of the
 * wrong length.
 */
function copyRows(
  rows: readonly unknown[],
  path: readonly PropertyKey[],
  input: Input,
  whose: string,
): Float32Array {
  if (rows.length === 0) {
    throw invalid(
      path,
      "Too small: expected array to have >=1 items, received an array of 0",
      "custom",
    );
  }
  const { size } = input;
  const x = new Float32Array(rows.length * size);
  let o = 0;
  for (let i = 0; i < rows.length; i++) {
    const row: unknown = rows[i];
    if (!Array.isArray(row)) {
      throw invalid([...path, i], `Invalid input: expected array, received ${kind(row)}`);
    }
    if (row.length !== size) throw shapeMismatch(fieldOf([...path, i]), row.length, input, whose);
    for (let j = 0; j < size; j++) {
      const v: unknown = row[j];
      // `v - v` is 0 for every finite number, NaN for NaN and +-Infinity.
      if (typeof v !== "number" || v - v !== 0) {
        throw invalid([...path, i, j], `Invalid input: expected number, received ${kind(v)}`);
      }
      x[o++] = v;
    }
  }
  return x;
}

/**
 * The rows of each input of a model with several (or a dict for one):
 * `inputs` is a dict of rows by input name (every input once) or a list of
 * rows per input in `model.inputs` order; every input has the same number of
 * rows. 400 naming the field for anything else, before a value is copied
 * past the first bad one.
 */
function columnInputs(inputs: object, ports: readonly PredictPort[]): Decoded {
  const single = ports.length === 1;
  let columns: { path: PropertyKey[]; value: unknown }[];
  if (Array.isArray(inputs)) {
    const first: unknown = inputs[0];
    if (Array.isArray(first) && first.length > 0 && !Array.isArray(first[0])) {
      throw invalid(
        ["inputs"],
        `the model has ${describePorts(ports, "input")}: expected a dict of rows by input ` +
          `name, or a list of ${ports.length} lists of rows in model.inputs order, received rows`,
        "custom",
      );
    }
    if (inputs.length !== ports.length) {
      throw invalid(
        ["inputs"],
        `expected ${ports.length} entries, one list of rows per model input (${
          portNames(ports)
        }) in model.inputs order, received ${inputs.length}`,
        "custom",
      );
    }
    columns = ports.map((_, k) => ({ path: ["inputs", k], value: inputs[k] }));
  } else {
    const dict = inputs as Record<string, unknown>;
    const names = ports.map((p) => p.name);
    const unknown = Object.keys(dict).find((key) => !names.includes(key));
    if (unknown !== undefined) {
      throw invalid(
        ["inputs", unknown],
        `not an input of the model: expected the input names ${portNames(ports)}`,
        "custom",
      );
    }
    const missing = names.find((name) => !Object.hasOwn(dict, name));
    if (missing !== undefined) {
      throw invalid(
        ["inputs", missing],
        `expected the rows of every input of the model (${portNames(ports)}), received none ` +
          `for ${JSON.stringify(missing)}`,
        "custom",
      );
    }
    columns = ports.map((p) => ({ path: ["inputs", p.name], value: dict[p.name] }));
  }
  for (const { path, value } of columns) {
    if (!Array.isArray(value)) {
      throw invalid(path, `Invalid input: expected array, received ${kind(value)}`);
    }
  }
  const counts = columns.map((c) => (c.value as unknown[]).length);
  const rows = counts[0]!;
  const other = counts.findIndex((n) => n !== rows);
  if (other > 0 && rows > 0 && counts[other]! > 0) {
    const a = fieldOf(columns[0]!.path), b = fieldOf(columns[other]!.path);
    throw new InputError(
      "shape_mismatch",
      `${a} and ${b} must have the same number of rows, received ${rows} and ${counts[other]}`,
      { field: b, expected: rows, received: counts[other] },
    );
  }
  const xs = columns.map(({ path, value }, k) =>
    copyRows(
      value as unknown[],
      path,
      ports[k]!,
      single ? "the model's input" : `input ${JSON.stringify(ports[k]!.name)}'s`,
    )
  );
  return { xs, rows };
}

/**
 * The JSON form, `{"inputs": [[...], ...]}` (or, see `columnInputs`, a dict
 * of rows by input name or a list of rows per input), checked and copied
 * into one Float32Array per input in a single pass (the schema would walk
 * every number once more): 400 naming the first bad field (`inputs[3][7]`),
 * `shape_mismatch` for a row of the wrong length.
 */
function jsonInputs(text: string, ports: readonly PredictPort[]): Decoded {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, "bad_request", "Malformed JSON in request body");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid([], `Invalid input: expected object, received ${kind(body)}`);
  }
  const inputs = (body as { inputs?: unknown }).inputs;
  const single = ports.length === 1;
  const dict = typeof inputs === "object" && inputs !== null && !Array.isArray(inputs);
  if (!Array.isArray(inputs) && !dict) {
    throw invalid(
      ["inputs"],
      `Invalid input: expected ${single ? "array" : "object or array"}, received ${kind(inputs)}`,
    );
  }
  const extra = Object.keys(body).filter((k) => k !== "inputs");
  if (extra.length > 0) {
    const keys = extra.map((k) => JSON.stringify(k)).join(", ");
    throw invalid([], `Unrecognized key${extra.length > 1 ? "s" : ""}: ${keys}`, "custom");
  }
  if (!single || dict) return columnInputs(inputs as object, ports);
  const rows = inputs as unknown[];
  return { xs: [copyRows(rows, ["inputs"], ports[0]!, "the model's input")], rows: rows.length };
}

function bodyError(form: string, message: string): HttpError {
  return new HttpError(400, "invalid_request", `Invalid request body: ${form}: ${message}`, {
    details: { target: "body", form },
  });
}

/**
 * The one input a binary or .npy body carries; a 400 that points to the JSON
 * dict form for a model with several.
 */
function onlyInput(form: string, ports: readonly PredictPort[]): Input {
  if (ports.length === 1) return ports[0]!;
  const example = ports.map((p) => `${JSON.stringify(p.name)}: [[...], ...]`).join(", ");
  throw bodyError(
    form,
    `the model has ${describePorts(ports, "input")} and the ${form} form carries one: send ` +
      `JSON {"inputs": {${example}}}, a dict of rows by input name`,
  );
}

/** The sample values of a binary body's dims, checked against the model; 400 otherwise. */
function checkDims(form: string, dims: number[], input: Input): number {
  if (dims.length < 2 || dims.length > MAX_RANK) {
    throw bodyError(
      form,
      `expected 2 to ${MAX_RANK} dimensions [rows, ...sample], received ${dims.length}`,
    );
  }
  const zero = dims.findIndex((d) => !Number.isSafeInteger(d) || d < 1);
  if (zero >= 0) {
    throw bodyError(form, `dimension ${zero} must be an integer >= 1, received ${dims[zero]}`);
  }
  const size = dims.slice(1).reduce((a, b) => a * b, 1);
  if (size !== input.size) {
    throw new InputError(
      "shape_mismatch",
      `${form} shape [${dims.join(", ")}] holds samples of ${size} values, expected ` +
        `${input.size} (the model's input shape [${input.shape.join(", ")}])`,
      { field: "shape", expected: input.size, received: size },
    );
  }
  return dims[0]!;
}

/** `count` float32 values at `offset`, in place when aligned; non-finite ones refused. */
function floats(bytes: Uint8Array, offset: number, count: number, rowSize: number): Float32Array {
  const at = bytes.byteOffset + offset;
  let x: Float32Array;
  if (LITTLE_ENDIAN && at % 4 === 0) {
    x = new Float32Array(bytes.buffer, at, count);
  } else {
    x = new Float32Array(count);
    const view = new DataView(bytes.buffer, at, count * 4);
    for (let i = 0; i < count; i++) x[i] = view.getFloat32(i * 4, true);
  }
  for (let i = 0; i < count; i++) {
    const v = x[i]!;
    if (v - v !== 0) {
      const row = Math.floor(i / rowSize);
      throw invalid(
        ["inputs", row, i - row * rowSize],
        `Invalid input: expected number, received ${kind(v)}`,
      );
    }
  }
  return x;
}

function dataLength(form: string, bytes: Uint8Array, offset: number, count: number): void {
  const have = bytes.byteLength - offset;
  if (have !== count * 4) {
    throw bodyError(
      form,
      `expected ${count * 4} bytes of float32 data after the ${offset}-byte header ` +
        `(${count} values), received ${have}`,
    );
  }
}

/** The binary form (see the top of this file). */
function binaryInputs(bytes: Uint8Array, input: Input): Decoded {
  const form = "binary";
  if (bytes.byteLength < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw bodyError(
      form,
      'expected the magic "DTR1" and a u32 rank (8 bytes) first, received ' +
        (bytes.byteLength < 8 ? `${bytes.byteLength} bytes` : "other bytes"),
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rank = view.getUint32(4, true);
  if (rank < 2 || rank > MAX_RANK) {
    throw bodyError(
      form,
      `expected 2 to ${MAX_RANK} dimensions [rows, ...sample], received ${rank}`,
    );
  }
  const offset = 8 + 4 * rank;
  if (bytes.byteLength < offset) {
    throw bodyError(
      form,
      `a header of rank ${rank} takes ${offset} bytes, received ${bytes.byteLength}`,
    );
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(8 + 4 * i, true));
  const rows = checkDims(form, dims, input);
  dataLength(form, bytes, offset, rows * input.size);
  return { xs: [floats(bytes, offset, rows * input.size, input.size)], rows };
}

/** A `.npy` file of little-endian float32 in C order. */
function npyInputs(bytes: Uint8Array, input: Input): Decoded {
  const form = "npy";
  if (bytes.byteLength < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) {
    throw bodyError(form, 'expected a .npy file (magic "\\x93NUMPY"), received other bytes');
  }
  const major = bytes[6]!;
  if (major < 1 || major > 3) {
    throw bodyError(form, `expected format version 1, 2 or 3, received ${major}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.byteLength < 8 + lengthBytes) {
    throw bodyError(form, `the header is cut short at ${bytes.byteLength} bytes`);
  }
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const offset = 8 + lengthBytes + headerLength;
  if (bytes.byteLength < offset) {
    throw bodyError(
      form,
      `the header says ${headerLength} bytes, the body has ${bytes.byteLength - 8 - lengthBytes}`,
    );
  }
  const header = new TextDecoder().decode(bytes.subarray(8 + lengthBytes, offset));
  const descr = header.match(/'descr'\s*:\s*'([^']*)'/)?.[1];
  if (descr !== "<f4") {
    throw bodyError(
      form,
      `expected descr '<f4' (little-endian float32), received ${
        descr === undefined ? "none" : `'${descr}'`
      }`,
    );
  }
  const fortran = header.match(/'fortran_order'\s*:\s*(True|False)/)?.[1];
  if (fortran !== "False") {
    throw bodyError(
      form,
      `expected 'fortran_order': False (C order), received ${fortran ?? "none"}`,
    );
  }
  const tuple = header.match(/'shape'\s*:\s*\(([^)]*)\)/)?.[1];
  if (tuple === undefined) throw bodyError(form, "the header has no 'shape' tuple");
  const dims = tuple.split(",").map((d) => d.trim()).filter((d) => d !== "").map(Number);
  const rows = checkDims(form, dims, input);
  dataLength(form, bytes, offset, rows * input.size);
  return { xs: [floats(bytes, offset, rows * input.size, input.size)], rows };
}

function essence(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

function isJson(type: string): boolean {
  return /^application\/([a-z0-9.-]+\+)?json$/.test(type);
}

/** Decodes a predict body by its `Content-Type`; 415 for another type. */
async function decodeInputs(c: Context, ports: readonly PredictPort[]): Promise<Decoded> {
  const header = c.req.header("content-type");
  const type = essence(header);
  if (isJson(type)) return jsonInputs(await c.req.text(), ports);
  if (type === BINARY) {
    const input = onlyInput("binary", ports);
    return binaryInputs(new Uint8Array(await c.req.arrayBuffer()), input);
  }
  if (type === NPY) {
    const input = onlyInput("npy", ports);
    return npyInputs(new Uint8Array(await c.req.arrayBuffer()), input);
  }
  throw new HttpError(
    415,
    "unsupported_media_type",
    `Unsupported media type: expected "Content-Type: application/json", "${BINARY}" or ` +
      `"${NPY}", received ${header === undefined ? "none" : JSON.stringify(header)}`,
  );
}

/**
 * The answer's form: the supported type `Accept` ranks highest (JSON by
 * default). With several outputs (`single` false) only JSON answers: null
 * when `Accept` asks for the binary or .npy form and not for JSON.
 */
function answerType(
  accept: string | undefined,
  single: boolean,
): "json" | "binary" | "npy" | null {
  if (accept === undefined) return "json";
  let best: "json" | "binary" | "npy" = "json";
  let bestQ = 0;
  let refused = false;
  for (const part of accept.split(",")) {
    const [range, ...params] = part.split(";");
    const type = range!.trim().toLowerCase();
    const form = type === BINARY ? "binary" : type === NPY ? "npy" : isJson(type) ? "json" : null;
    if (form === null) continue;
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!single && form !== "json") {
      refused ||= q > 0;
      continue;
    }
    if (q > bestQ) {
      best = form;
      bestQ = q;
    }
  }
  return bestQ === 0 && refused ? null : best;
}

/** 406 for a model with several outputs asked for the binary or .npy answer only. */
function notAcceptable(id: string, outputs: readonly PredictPort[], accept: string): HttpError {
  return new HttpError(
    406,
    "not_acceptable",
    `Not acceptable: model ${id} has ${describePorts(outputs, "output")} and the binary and ` +
      `.npy answers carry one: expected an Accept that allows application/json (the answer ` +
      `is {"outputs": {...}}, rows by output name), received ${JSON.stringify(accept)}`,
    { details: { outputs: outputs.map((p) => p.name) } },
  );
}

/** `rows x width` values as one array per row. */
function toRows(data: Float32Array, rows: number, width: number): number[][] {
  const out: number[][] = new Array(rows);
  for (let i = 0; i < rows; i++) out[i] = Array.from(data.subarray(i * width, (i + 1) * width));
  return out;
}

function binaryAnswer(data: Float32Array, rows: number, width: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16 + data.byteLength);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(4, 2, true);
  view.setUint32(8, rows, true);
  view.setUint32(12, width, true);
  copyFloats(out, 16, data);
  return out;
}

function npyAnswer(data: Float32Array, rows: number, width: number): Uint8Array<ArrayBuffer> {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${width}), }`;
  // Magic, version and length take 10 bytes; the data starts on a multiple of 64.
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1, " ") + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  copyFloats(out, 10 + header.length, data);
  return out;
}

function copyFloats(out: Uint8Array, offset: number, data: Float32Array): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  } else {
    const view = new DataView(out.buffer, offset);
    data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
}

/** Attaches the `/v1/models` routes to `app`. */
export function modelHandlers(app: OpenAPIHono, deps: { models: ModelRegistry }): void {
  const { models } = deps;

  app.openapi(ROUTES.listModels, async (c) => {
    return c.json({ models: await models.list() }, 200);
  });

  app.openapi(ROUTES.getModel, async (c) => {
    return c.json(await models.get(c.req.valid("param").id), 200);
  });

  // Before `weights`: both match GET /v1/models/{id}/model.json, the first answers.
  app.openapi(ROUTES.modelJson, async (c) => {
    const bytes = await models.file(c.req.valid("param").id, "model.json");
    return c.json(JSON.parse(new TextDecoder().decode(bytes)) as Record<string, JSONValue>, 200);
  });

  app.openapi(ROUTES.weights, async (c) => {
    const { id, file } = c.req.valid("param");
    const bytes = await models.file(id, file);
    return new Response(bytes, {
      headers: {
        "content-type": "application/octet-stream",
        "cache-control": "private, max-age=31536000, immutable",
      },
    });
  });

  // The predict route is documented with its full body, but attached with
  // its path parameter only: the handler decodes and checks the body in one
  // pass (`decodeInputs`), where the schema would walk every number again.
  const { predict } = ROUTES;
  app.openAPIRegistry.registerPath(predict);
  app.openapi(
    { ...predict, hide: true, request: { params: predict.request.params } },
    async (c) => {
      const { id } = c.req.valid("param");
      const { inputs, outputs } = await models.signature(id);
      const accept = c.req.header("accept");
      const form = answerType(accept, outputs.length === 1);
      if (form === null) throw notAcceptable(id, outputs, accept!);
      const { xs, rows } = await decodeInputs(c, inputs);
      let out: { data: Float32Array; width: number }[];
      try {
        out = await models.predictColumns(id, xs, rows);
      } catch (e) {
        if (e instanceof PredictWorkerCrashedError) {
          throw new HttpError(503, e.code, e.message, {
            headers: { "Retry-After": "1" },
            cause: e,
          });
        }
        throw e;
      }
      if (outputs.length > 1) {
        const byName: Record<string, number[][]> = {};
        outputs.forEach((p, k) => (byName[p.name] = toRows(out[k]!.data, rows, out[k]!.width)));
        return c.json({ outputs: byName }, 200);
      }
      const { data, width } = out[0]!;
      if (form !== "json") {
        return new Response(
          form === "binary" ? binaryAnswer(data, rows, width) : npyAnswer(data, rows, width),
          { headers: { "content-type": form === "binary" ? BINARY : NPY } },
        );
      }
      return c.json({ outputs: toRows(data, rows, width) }, 200);
    },
  );

  app.openapi(ROUTES.deleteModel, async (c) => {
    await models.delete(c.req.valid("param").id);
    return c.body(null, 204);
  });
}
