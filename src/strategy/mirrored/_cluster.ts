/**
 * MirroredStrategy across hosts, the main thread's part: the cluster option
 * and its checks, what nodes must agree on, and the host's leader, which
 * meets the other nodes at the coordinator and sums each range the replicas
 * hand over (through the host link) across hosts by the ring all-reduce.
 *
 * @module
 */
import type * as tf from "../../tf.ts";
import { refuseUnknownOptions } from "../../core/checks.ts";
import { serveHostLink } from "../../collective/host_link.ts";
import {
  type AllReduceStats,
  type ClusterSpec,
  type ClusterTlsOptions,
  type Compression,
  type NodeConfig,
  rendezvous,
  validateClusterSpec,
} from "../../cluster/mod.ts";
import type { ReplicaPool } from "./replica_pool.ts";

/** `MirroredStrategyOptions.cluster`: where this host sits, and how hosts talk. */
export interface MirroredClusterOptions extends ClusterSpec {
  /** Deadline for all nodes to meet at the coordinator, each fit. @default 60000 */
  rendezvousTimeoutMs?: number;
  /** A peer silent this long is lost: `fit` rejects with `PeerLostError`. @default 30000 */
  peerTimeoutMs?: number;
  /**
   * `"fp16"` halves the bytes on the wire (Horovod's `Compression.fp16`): the
   * gradient sum is rounded to float16 between hosts, so results are close to,
   * not equal to, one host's. @default "none"
   */
  compression?: Compression;
  /** Address this node listens on. @default "0.0.0.0" */
  hostname?: string;
  /** Host the other nodes reach this node at. @default the address the coordinator sees */
  advertiseHost?: string;
  /** TLS certificate and key files for every cluster socket. @default plain TCP */
  tls?: ClusterTlsOptions;
  /**
   * Gradient bucket size in bytes: the step's gradients are summed across
   * hosts bucket by bucket (last layers first) while the backward pass is
   * still computing the earlier layers, as PyTorch DDP's `bucket_cap_mb`.
   * 0 sums the whole vector after the backward pass. Every node must use the
   * same value (checked at rendezvous). @default 1048576
   */
  bucketBytes?: number;
  /**
   * Times a fit goes back to rendezvous after a lost peer (the restarted node
   * rejoins) and resumes from the newest checkpoint, as `torchrun` elastic
   * restarts do. Needs the fit's `checkpoint` option. @default 0
   */
  maxRestarts?: number;
}

/** What the cross-host sums of one run cost this node. */
export interface CrossHostStats {
  /** Cross-host sums (one per step, plus validation and epoch-end ones). */
  exchanges: number;
  /** Bytes this node sent. */
  bytesSent: number;
  /** Bytes this node received. */
  bytesReceived: number;
  /** Time this node's main thread spent in them, ms. */
  ms: number;
}

/** dtrain's version, compared at every cluster rendezvous. */
export const VERSION = "0.1.0";

/** The shuffle seed of a cluster fit that names none (every node must agree). */
export const CLUSTER_SEED = 42;

const CLUSTER_OPTIONS = [
  "nodes",
  "rank",
  "coordinator",
  "token",
  "rendezvousTimeoutMs",
  "peerTimeoutMs",
  "compression",
  "hostname",
  "advertiseHost",
  "tls",
  "maxRestarts",
  "bucketBytes",
] as const satisfies readonly (keyof MirroredClusterOptions)[];

/** Checks the cluster option (names, spec, compression); undefined stays undefined. */
export function checkCluster(
  cluster: MirroredClusterOptions | undefined,
): MirroredClusterOptions | undefined {
  if (cluster === undefined) return undefined;
  if (typeof cluster !== "object" || cluster === null) {
    throw new TypeError(`cluster must be an object, received ${cluster}`);
  }
  refuseUnknownOptions(cluster, CLUSTER_OPTIONS, "MirroredStrategy's cluster");
  validateClusterSpec(cluster);
  const compression = cluster.compression ?? "none";
  if (compression !== "none" && compression !== "fp16") {
    throw new TypeError(
      `cluster.compression must be "none" or "fp16", received ${JSON.stringify(compression)}`,
    );
  }
  const maxRestarts = cluster.maxRestarts ?? 0;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
    throw new RangeError(`cluster.maxRestarts must be an integer >= 0, received ${maxRestarts}`);
  }
  const bucket = cluster.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!Number.isSafeInteger(bucket) || bucket < 0) {
    throw new RangeError(`cluster.bucketBytes must be an integer >= 0, received ${bucket}`);
  }
  return { ...cluster };
}

/** Default of `cluster.bucketBytes`. */
export const DEFAULT_BUCKET_BYTES = 1 << 20;

/** The fit request's `bucketFloats`: 0 on one host or with buckets off. */
export function bucketFloats(cluster: MirroredClusterOptions | undefined): number {
  if (cluster === undefined) return 0;
  return Math.ceil((cluster.bucketBytes ?? DEFAULT_BUCKET_BYTES) / 4);
}

/** What nodes compare about the model: its topology and its optimizer. */
export function describeModel(model: tf.LayersModel): NodeConfig {
  const optimizer = model.optimizer;
  return {
    topology: fnv1a(JSON.stringify(model.toJSON(null, false))),
    optimizer: optimizer.getClassName(),
    optimizerConfig: fnv1a(JSON.stringify(optimizer.getConfig())),
    loss: fnv1a(JSON.stringify(model.loss) ?? String(model.loss)),
  };
}

/** FNV-1a of a string's UTF-16 code units, as 8 hex digits. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * The checkpoint position every node has: each node offers its newest one
 * (`mine`, null for none), and all take the oldest offered, or null (start
 * afresh) when a node has none. Nodes keep several checkpoints, so the one a
 * node behind the others wrote last is still on the nodes ahead of it.
 */
export async function agreeOnCheckpoint(
  cluster: MirroredClusterOptions,
  mine: { epoch: number; step: number } | null,
  config: NodeConfig,
): Promise<{ epoch: number; step: number } | null> {
  const { nodes, rank, coordinator, token, ...rest } = cluster;
  const { compression: _c, maxRestarts: _m, bucketBytes: _b, ...options } = rest;
  await using ring = await rendezvous({ nodes, rank, coordinator, token }, {
    ...options,
    config: { dtrain: VERSION, op: "resume", ...config },
  });
  // [has, epoch, step] per rank; integers far below 2^24 are exact in float32.
  const offers = new Float32Array(3 * nodes);
  if (mine !== null) offers.set([1, mine.epoch, mine.step], 3 * rank);
  await ring.allReduce(offers);
  let oldest: { epoch: number; step: number } | null = null;
  for (let r = 0; r < nodes; r++) {
    if (offers[3 * r] !== 1) return null;
    const p = { epoch: offers[3 * r + 1]!, step: offers[3 * r + 2]! };
    if (
      oldest === null || p.epoch < oldest.epoch ||
      (p.epoch === oldest.epoch && p.step < oldest.step)
    ) {
      oldest = p;
    }
  }
  return oldest;
}

/** What the leader needs of a replica group. */
export interface LeaderGroup {
  /** The all-reduce result in group memory: summed across hosts in place. */
  result: Float32Array;
  /** The replicas' link to the leader. */
  hostLink: Int32Array | null;
  /** The group, aborted when a peer is lost. */
  pool: ReplicaPool;
}

/**
 * Runs `work` (a fit or evaluate of the replicas) with this thread as the
 * host's leader: the nodes meet at the coordinator and check they agree on
 * `config`, then every cross-host request of the replicas is summed over the
 * ring. A lost peer aborts the replica group, so `work` rejects with the
 * `PeerLostError`. `onStats` gets what the sums cost, whatever the outcome.
 */
export async function acrossHosts<T>(
  cluster: MirroredClusterOptions,
  group: LeaderGroup,
  options: {
    config: NodeConfig;
    onStats: (stats: CrossHostStats) => void;
    /** Called after each cross-host sum with its start (ms since the epoch) and stats. */
    onExchange?: (startedAt: number, stats: AllReduceStats) => void;
  },
  work: () => Promise<T>,
): Promise<T> {
  if (group.hostLink === null) return await work();
  const {
    compression = "none",
    nodes,
    rank,
    coordinator,
    token,
    maxRestarts: _,
    bucketBytes: _b,
    ...rest
  } = cluster;
  const ring = await rendezvous({ nodes, rank, coordinator, token }, {
    ...rest,
    config: { dtrain: VERSION, ...options.config },
  });
  const stop = new AbortController();

  const counts: CrossHostStats = { exchanges: 0, bytesSent: 0, bytesReceived: 0, ms: 0 };
  const served = serveHostLink(group.hostLink, async (offset, length) => {
    // Summed in place in group memory: the ring copies each chunk into its
    // own (plain) frame buffers, so the shared result needs no staging copy.
    const startedAt = performance.timeOrigin + performance.now();
    const t = await ring.allReduce(group.result.subarray(offset, offset + length), {
      compression,
    });
    counts.exchanges++;
    counts.bytesSent += t.bytesSent;
    counts.bytesReceived += t.bytesReceived;
    counts.ms += t.totalMs;
    options.onExchange?.(startedAt, t);
  }, stop.signal).catch((e: unknown) => {
    group.pool.fail(e instanceof Error ? e : new Error(String(e)));
  });
  try {
    return await work();
  } catch (e) {
    throw group.pool.crash ?? e;
  } finally {
    stop.abort();
    await served;
    await ring.close();
    options.onStats(counts);
  }
}
