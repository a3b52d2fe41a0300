/**
 * The envelope every message across a Worker boundary shares: a known string
 * `type` and a numeric `id` that the reply echoes. Each channel's parser
 * checks it first, then narrows to its own union.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkEnvelope } from "./envelope.ts";
 * assert.equal(checkEnvelope({ type: "close", id: 3 }, new Set(["close"]), "request").id, 3);
 * assert.throws(() => checkEnvelope({ type: "nope", id: 3 }, new Set(["close"]), "request"), TypeError);
 * ```
 * @module
 */

/**
 * Checks the envelope every Worker message shares: a known string `type` and
 * a numeric `id`. `side` names the message kind in the error.
 */
export function checkEnvelope(
  data: unknown,
  types: Set<string>,
  side: string,
): { type: string; id: number } {
  if (
    typeof data !== "object" || data === null ||
    typeof (data as { type?: unknown }).type !== "string" ||
    !types.has((data as { type: string }).type) ||
    typeof (data as { id?: unknown }).id !== "number"
  ) {
    throw new TypeError(
      `Malformed ${side} message: expected { type: ${[...types].join("|")}, id: number }, ` +
        `received ${JSON.stringify(data)?.slice(0, 200)}`,
    );
  }
  return data as { type: string; id: number };
}
