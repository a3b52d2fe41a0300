/**
 * The backends' one domain error: no backend satisfies a selection request,
 * or a required backend failed to initialise. Re-exported by the library
 * root; it lives here so that the backends import nothing from `src/`.
 *
 * @module
 */

/**
 * Raised when no backend satisfies a selection request, or a required backend
 * failed to initialise. `tried` lists every candidate and why it was refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BackendUnavailableError } from "./errors.ts";
 * const err = new BackendUnavailableError("webgpu required but unavailable", {
 *   tried: [{ name: "webgpu", available: false, reason: "navigator.gpu missing" }],
 * });
 * assert.ok(err.tried.length === 1);
 * ```
 */
export class BackendUnavailableError extends Error {
  /** Every candidate the selection looked at, with the reason it was refused. */
  readonly tried: ReadonlyArray<
    { name: string; available: boolean; reason: string }
  >;
  /** `tried` lists every candidate with why it was refused. */
  constructor(
    message: string,
    options: {
      tried: ReadonlyArray<
        { name: string; available: boolean; reason: string }
      >;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "BackendUnavailableError";
    this.tried = options.tried;
  }
}
