/**
 * The description of a multi-host cluster as one node sees it
 * ({@linkcode ClusterSpec}) and its validation. `clusterFromEnv()` builds one
 * from launcher variables; `rendezvous()` takes one.
 *
 * @module
 */
import { parseHostPort } from "./_host_port.ts";

/** Where this node sits in a cluster of hosts. */
export interface ClusterSpec {
  /** Number of nodes (hosts), one dtrain process each. */
  nodes: number;
  /** This node's rank in `0..nodes-1`; rank 0 is the coordinator. */
  rank: number;
  /** The coordinator's (rank 0's) address, `"host:port"` (IPv6 as `"[addr]:port"`). */
  coordinator: string;
  /** Shared secret for the challenge-response handshake; never sent on the wire. */
  token?: string;
}

/**
 * Checks a {@linkcode ClusterSpec} and returns it unchanged. Throws `TypeError`
 * for a wrong type or malformed address, `RangeError` for an out-of-range
 * number, each message naming the field and the received value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateClusterSpec } from "./cluster_spec.ts";
 * const spec = validateClusterSpec({ nodes: 2, rank: 1, coordinator: "10.0.0.1:29500" });
 * assert.equal(spec.rank, 1);
 * assert.throws(
 *   () => validateClusterSpec({ nodes: 2, rank: 2, coordinator: "10.0.0.1:29500" }),
 *   { name: "RangeError", message: /rank must be in 0\.\.1, received 2/ },
 * );
 * ```
 */
export function validateClusterSpec(spec: ClusterSpec): ClusterSpec {
  if (typeof spec !== "object" || spec === null) {
    throw new TypeError(`Expected a ClusterSpec object, received ${String(spec)}`);
  }
  const { nodes, rank, coordinator, token } = spec;
  if (!Number.isSafeInteger(nodes) || nodes < 1) {
    throw new RangeError(`nodes must be an integer >= 1, received ${String(nodes)}`);
  }
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= nodes) {
    throw new RangeError(`rank must be in 0..${nodes - 1}, received ${String(rank)}`);
  }
  if (typeof coordinator !== "string") {
    throw new TypeError(`coordinator must be a "host:port" string, received ${typeof coordinator}`);
  }
  parseHostPort(coordinator, "coordinator");
  if (token !== undefined && (typeof token !== "string" || token.length === 0)) {
    throw new TypeError(
      `token must be a non-empty string when given, received ${JSON.stringify(token)}`,
    );
  }
  return spec;
}
