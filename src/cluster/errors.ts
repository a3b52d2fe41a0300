/**
 * The named errors of the cluster layer (rendezvous, frames, ring all-reduce).
 * Bad arguments are plain `TypeError`/`RangeError`; everything that goes wrong
 * between hosts is one of these classes. Each sets `name` and keeps `cause`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PeerLostError } from "./errors.ts";
 * const err = new PeerLostError(2, "connection closed");
 * assert.equal(err.name, "PeerLostError");
 * assert.equal(err.rank, 2);
 * ```
 * @module
 */

/** Options shared by the cluster error constructors. */
export interface ClusterErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A peer (another node) died, closed its connection, or stayed silent longer
 * than `peerTimeoutMs`. Raised on every surviving node; the group is closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PeerLostError } from "./errors.ts";
 * const err = new PeerLostError(1, "silent for 2000 ms (peerTimeoutMs 2000)");
 * assert.match(err.message, /rank 1/);
 * assert.equal(err.reason, "silent for 2000 ms (peerTimeoutMs 2000)");
 * ```
 */
export class PeerLostError extends Error {
  /** Rank of the node that was lost. */
  readonly rank: number;
  /** What was observed: closed connection, silence, a report relayed by another rank. */
  readonly reason: string;
  /** `rank` is the lost node; `reason` says how it was lost. */
  constructor(rank: number, reason: string, options: ClusterErrorOptions = {}) {
    super(`Lost peer rank ${rank}: ${reason}`, { cause: options.cause });
    this.name = "PeerLostError";
    this.rank = rank;
    this.reason = reason;
  }
}

/** One field on which two nodes disagree. */
export interface ConfigMismatch {
  /** The config field, e.g. `"batchSize"`. */
  field: string;
  /** The reference node (rank 0). */
  expectedRank: number;
  /** Rank 0's value (`undefined` when rank 0 lacks the field). */
  expected: unknown;
  /** The disagreeing node. */
  receivedRank: number;
  /** Its value (`undefined` when it lacks the field). */
  received: unknown;
}

/**
 * Nodes joined the rendezvous with different configs (model digest, batch
 * size, seed, ...). Raised on every node; `mismatches` lists every difference,
 * the message names the first one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterConfigMismatchError } from "./errors.ts";
 * const err = new ClusterConfigMismatchError([
 *   { field: "batch", expectedRank: 0, expected: 32, receivedRank: 2, received: 64 },
 * ]);
 * assert.equal(err.field, "batch");
 * assert.match(err.message, /rank 0 has 32, rank 2 has 64/);
 * ```
 */
export class ClusterConfigMismatchError extends Error {
  /** The first mismatching field (same as `mismatches[0].field`). */
  readonly field: string;
  /** Every mismatch found, sorted by field then rank. */
  readonly mismatches: readonly ConfigMismatch[];
  /** `mismatches` must hold at least one entry. */
  constructor(mismatches: readonly ConfigMismatch[], options: ClusterErrorOptions = {}) {
    const first = mismatches[0];
    if (first === undefined) throw new RangeError("Expected at least one mismatch, received 0");
    const show = (v: unknown) => v === undefined ? "no value" : JSON.stringify(v);
    const more = mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : "";
    super(
      `Cluster config mismatch on "${first.field}": rank ${first.expectedRank} has ` +
        `${show(first.expected)}, rank ${first.receivedRank} has ${show(first.received)}${more}`,
      { cause: options.cause },
    );
    this.name = "ClusterConfigMismatchError";
    this.field = first.field;
    this.mismatches = mismatches;
  }
}

/**
 * The challenge-response on the shared token failed: the other side does not
 * know the token (or this side has the wrong one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterAuthError } from "./errors.ts";
 * const err = new ClusterAuthError("coordinator 127.0.0.1:29500 failed the token check");
 * assert.equal(err.name, "ClusterAuthError");
 * ```
 */
export class ClusterAuthError extends Error {
  /** `message` says who failed the check. */
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "ClusterAuthError";
  }
}

/**
 * The coordinator refused this node: its rank is already taken or out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterJoinRefusedError } from "./errors.ts";
 * const err = new ClusterJoinRefusedError(1, "rank 1 already joined");
 * assert.equal(err.rank, 1);
 * ```
 */
export class ClusterJoinRefusedError extends Error {
  /** The rank this node asked for. */
  readonly rank: number;
  /** `rank` is the refused node's rank; `reason` is the coordinator's. */
  constructor(rank: number, reason: string, options: ClusterErrorOptions = {}) {
    super(`Coordinator refused rank ${rank}: ${reason}`, { cause: options.cause });
    this.name = "ClusterJoinRefusedError";
    this.rank = rank;
  }
}

/**
 * A wire-format violation: bad magic or version, a frame over `maxFrameBytes`,
 * a truncated frame, or a control message that is not a known member of the
 * protocol union. The connection it arrived on is closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameError } from "./errors.ts";
 * const err = new FrameError("Bad frame magic: expected 0x4454524e, received 0x47455420");
 * assert.equal(err.name, "FrameError");
 * ```
 */
export class FrameError extends Error {
  /** `message` says what was expected and what was received. */
  constructor(message: string, options: ClusterErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "FrameError";
  }
}

/**
 * A bounded wait ran out: a frame read, a handshake, or the whole rendezvous.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterTimeoutError } from "./errors.ts";
 * const err = new ClusterTimeoutError("rendezvous", 30000, "waiting for ranks 2, 3");
 * assert.equal(err.timeoutMs, 30000);
 * assert.match(err.message, /waiting for ranks 2, 3/);
 * ```
 */
export class ClusterTimeoutError extends Error {
  /** What was being waited for, e.g. `"rendezvous"`, `"frame"`. */
  readonly operation: string;
  /** The limit that ran out. */
  readonly timeoutMs: number;
  /** `detail` says what was still missing. */
  constructor(
    operation: string,
    timeoutMs: number,
    detail: string,
    options: ClusterErrorOptions = {},
  ) {
    super(`${operation} timed out after ${timeoutMs} ms: ${detail}`, { cause: options.cause });
    this.name = "ClusterTimeoutError";
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}
