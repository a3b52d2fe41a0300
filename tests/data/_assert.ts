// Private test helpers: assert the error class AND the message. (node:assert's
// third argument is the failure message, not a matcher, so
// `assert.throws(fn, TypeError, "text")` would not check the text.)
import assert from "node:assert/strict";

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

function check<E extends Error>(
  err: unknown,
  type: ErrorClass<E>,
  message: string | RegExp,
): E {
  assert.ok(
    err instanceof type,
    `expected ${type.name}, received ${
      err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    }`,
  );
  if (typeof message === "string") assert.equal(err.message, message);
  else assert.match(err.message, message);
  return err;
}

/** Asserts `fn` throws an instance of `type` whose message equals (or matches) `message`. */
export function assertThrowsWith<E extends Error>(
  fn: () => unknown,
  type: ErrorClass<E>,
  message: string | RegExp,
): E {
  try {
    fn();
  } catch (err) {
    return check(err, type, message);
  }
  throw new assert.AssertionError({
    message: `expected ${type.name} to be thrown, received no error`,
  });
}

/** Asserts `fn` rejects with an instance of `type` whose message equals (or matches) `message`. */
export async function assertRejectsWith<E extends Error>(
  fn: () => Promise<unknown>,
  type: ErrorClass<E>,
  message: string | RegExp,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    return check(err, type, message);
  }
  throw new assert.AssertionError({
    message: `expected ${type.name} to be thrown, received no error`,
  });
}
