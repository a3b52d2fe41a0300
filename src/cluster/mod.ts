/**
 * Multi-host training: form a group of hosts and sum vectors across them.
 *
 * - {@linkcode clusterFromEnv} reads this node's {@linkcode ClusterSpec} from
 *   dtrain, torchrun/Kubeflow, Kubernetes Indexed Job or `TF_CONFIG` variables.
 * - {@linkcode rendezvous} authenticates the nodes on a shared token, checks
 *   they agree on their config, and links them in a ring.
 * - {@linkcode ClusterGroup.allReduce} sums a `Float32Array` in place across
 *   hosts (ring reduce-scatter + all-gather, optional fp16 wire compression),
 *   bit-identical on every node; a lost peer rejects with {@linkcode PeerLostError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clusterFromEnv, rendezvous } from "./mod.ts";
 * const spec = clusterFromEnv({}) ?? { nodes: 1, rank: 0, coordinator: "127.0.0.1:29500" };
 * await using group = await rendezvous(spec);
 * const grad = new Float32Array([0.5, 1.5]);
 * await group.allReduce(grad, { compression: "fp16" });
 * assert.deepEqual([...grad], [0.5, 1.5]); // one node: nothing to add
 * ```
 * @module
 */
export { clusterFromEnv } from "./cluster_from_env.ts";
export { type ClusterSpec, validateClusterSpec } from "./cluster_spec.ts";
export {
  type ClusterTlsOptions,
  type ConfigValue,
  type NodeConfig,
  rendezvous,
  type RendezvousOptions,
} from "./rendezvous.ts";
export { ClusterGroup, type ClusterGroupOptions } from "./cluster_group.ts";
export {
  type AllReduceOptions,
  type AllReduceStats,
  type Compression,
  type Ring,
  ringAllReduce,
} from "./ring_all_reduce.ts";
export {
  ClusterAuthError,
  ClusterConfigMismatchError,
  type ClusterErrorOptions,
  ClusterJoinRefusedError,
  ClusterTimeoutError,
  type ConfigMismatch,
  FrameError,
  PeerLostError,
} from "./errors.ts";
