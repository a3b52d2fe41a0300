/**
 * Option checks every room shares: integers with a lower bound, and the
 * refusal of option names nobody reads (a misspelt option must fail, not be
 * dropped). Each error names the option, the bound and what was received.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intAtLeast, refuseUnknownOptions } from "./checks.ts";
 * assert.equal(intAtLeast(3, "epochs", 1), 3);
 * assert.throws(() => intAtLeast(0, "epochs", 1), /epochs must be an integer >= 1, received 0/);
 * assert.throws(
 *   () => refuseUnknownOptions({ epoch: 3 }, ["epochs"], "fit()"),
 *   /fit\(\) has no option "epoch"/,
 * );
 * ```
 * @module
 */

/** `value` when it is an integer >= `min`; a RangeError naming `name` otherwise. */
export function intAtLeast(value: unknown, name: string, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, received ${value}`);
  }
  return value;
}

/** `value` when it is an integer >= 1; a RangeError naming `name` otherwise. */
export function positiveInt(value: unknown, name: string): number {
  return intAtLeast(value, name, 1);
}

/** `value` when it is an integer >= 0; a RangeError naming `name` otherwise. */
export function nonNegativeInt(value: unknown, name: string): number {
  return intAtLeast(value, name, 0);
}

/**
 * Throws a TypeError for the first key of `options` that is not in `known`
 * (keys whose value is `undefined` included: they were still asked for).
 * `what` names the receiver in the message, e.g. `"MirroredStrategy"`.
 */
export function refuseUnknownOptions(
  options: object,
  known: readonly string[],
  what: string,
): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `${what} has no option "${key}": expected one of ${known.join(", ")}`,
      );
    }
  }
}
