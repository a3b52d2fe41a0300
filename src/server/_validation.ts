// Private: turns zod issues into one 400 whose message names the field, what
// was expected and what was received.
import type { z } from "@hono/zod-openapi";
import { HttpError } from "./_errors.ts";

type Issue = z.core.$ZodIssue;

/** One validation problem in an error response's `details.issues`. */
export interface IssueDetail {
  /** Dotted path of the field, e.g. `fit.epochs` or `data.x[3][1]`. */
  path: string;
  /** What was wrong. */
  message: string;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object" || !(key in value)) {
      return { found: false, value: undefined };
    }
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value };
}

function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  }
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return String(value);
}

/**
 * A branch that failed only because the input lacks its discriminator key,
 * or because the value is not of the branch's kind at all (one type or
 * option issue at the union's own path: an object where the branch takes
 * rows).
 */
function notTried(branch: readonly Issue[], input: unknown, path: readonly PropertyKey[]): boolean {
  const only = branch.length === 1 ? branch[0]! : undefined;
  if (
    only !== undefined && only.path.length === 0 &&
    (only.code === "invalid_type" || only.code === "invalid_value")
  ) {
    return true;
  }
  if (only?.code !== "invalid_union" || only.errors.length > 0) return false;
  return !valueAt(input, [...path, ...only.path]).found;
}

/**
 * Flattens issues: a union's issues are replaced by those of the branch that
 * came closest (fewest issues, ignoring branches whose discriminator the
 * input does not have or whose kind of value it is not), so
 * `{ "preset": "mlp", "hidden": "x" }` reports `model.hidden`, and
 * `data.x: { "a": [[1, "b"]] }` reports `data.x.a[0][1]`, not "no branch
 * matched".
 */
function flatten(
  issues: readonly Issue[],
  input: unknown,
  prefix: readonly PropertyKey[] = [],
): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      const tried = issue.errors.filter((b) => !notTried(b, input, path));
      const best = [...(tried.length > 0 ? tried : issue.errors)]
        .sort((a, b) => a.length - b.length)[0]!;
      out.push(...flatten(best, input, path));
    } else {
      out.push({ ...issue, path } as Issue);
    }
  }
  return out;
}

/**
 * A 400 `invalid_request` error for failed zod validation of `target`
 * (`json`, `query`, `param`). `input` is the value that was validated, used to
 * say what was received.
 */
export function validationError(
  issues: readonly Issue[],
  input: unknown,
  target: string,
): HttpError {
  const details: IssueDetail[] = flatten(issues, input).map((issue) => {
    const path = formatPath(issue.path);
    let message = issue.message;
    if (issue.code === "too_small" || issue.code === "too_big") {
      const { found, value } = valueAt(input, issue.path);
      if (found) message += `, received ${describe(value)}`;
    } else if (issue.code === "invalid_value" || issue.code === "invalid_union") {
      const { found, value } = valueAt(input, issue.path);
      message += `, received ${found ? describe(value) : "nothing"}`;
    }
    return { path: path === "" ? "(root)" : path, message };
  });
  const where = target === "json" ? "body" : target === "param" ? "path" : target;
  const first = details[0] ?? { path: "(root)", message: "invalid" };
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : "";
  return new HttpError(
    400,
    "invalid_request",
    `Invalid request ${where}: ${first.path}: ${first.message}${more}`,
    { details: { target: where, issues: details } },
  );
}
