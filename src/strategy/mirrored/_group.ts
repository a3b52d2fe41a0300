/**
 * A MirroredStrategy replica group: its shared memory (control words, the
 * all-reduce slots and result with the sharded optimizer state in one
 * memory, the flat weights, the step-record ring, the host link across
 * hosts) and its replica Workers, started and checked to agree on a backend.
 *
 * @module
 */
import type * as tf from "../../tf.ts";
import type { BackendName, BlasReport } from "../../../backends/types.ts";
import { allReduceBytes, resultByteOffset } from "../../collective/all_reduce.ts";
import { HOST_LINK_SLOTS } from "../../collective/host_link.ts";
import { groupMemory } from "../../collective/kernels.ts";
import { RecordRing, RING_CONTROL_SLOTS } from "../../collective/ring.ts";
import { RECORD_HEADER } from "../../core/records.ts";
import { packWeights, weightsLength } from "../../core/weights.ts";
import { flatStateBytes } from "../_flat_optimizer.ts";
import { controlBytes, modelLayout } from "../_layout.ts";
import type { CompileSpec, ModelSource, Reply } from "../protocol.ts";
import type { MirroredClusterOptions } from "./_cluster.ts";
import { ReplicaPool } from "./replica_pool.ts";

/** Records the step ring holds before replica 0 waits for the main thread. */
const RING_RECORDS = 1024;

/** A started replica group. */
export interface Group {
  key: string;
  pool: ReplicaPool;
  control: Int32Array;
  /** The all-reduce result (the host's, then the global sum), in group memory. */
  result: Float32Array;
  /** The replicas' link to this thread, the host's leader, across hosts. */
  hostLink: Int32Array | null;
  weights: Float32Array;
  ring: RecordRing;
  metricsNames: string[];
}

/** What the replicas reported when they started. */
export interface GroupStart {
  /** Backend each replica runs (all the same). */
  backends: BackendName[];
  /** Why replica 0 chose it. */
  backendReason: string;
  /** WASM threads each replica runs. */
  threads: number[];
  /** Replica 0's host-BLAS report. */
  blas: BlasReport | null;
  /** Tensors alive in each replica once started. */
  replicaTensors: number[];
}

/**
 * Allocates the group's memory, writes `model`'s weights into it and starts
 * `replicas` Workers that rebuild the model. Rejects, with every Worker
 * closed, when one fails to start within `startTimeoutMs` or they chose
 * different backends.
 */
export async function startGroup(
  model: tf.LayersModel,
  o: {
    key: string;
    replicas: number;
    backend: BackendName | "auto";
    threads: number;
    source: ModelSource;
    compile: CompileSpec;
    cluster: MirroredClusterOptions | undefined;
    startTimeoutMs: number;
  },
): Promise<{ group: Group; stats: GroupStart }> {
  const layout = modelLayout(model);
  const ringWidth = RECORD_HEADER + 1 + layout.metricCount;
  // One memory for the all-reduce and the sharded optimizer state, so the
  // replicas' SIMD kernels reach both.
  const optimizerOffset = Math.ceil(allReduceBytes(o.replicas, layout.length) / 16) * 16;
  const groupBytes = optimizerOffset +
    flatStateBytes(model.optimizer, layout.trainable.reduce((a, b) => a + b, 0));
  const buffers = {
    control: new SharedArrayBuffer(controlBytes(o.replicas)),
    group: groupMemory(groupBytes) ?? new SharedArrayBuffer(groupBytes),
    optimizerOffset,
    weights: new SharedArrayBuffer(
      Math.max(4, weightsLength(model.weights) * 4),
    ),
    ring: new SharedArrayBuffer(RecordRing.bytes(RING_RECORDS, ringWidth)),
    ringControl: new SharedArrayBuffer(4 * RING_CONTROL_SLOTS),
    hostLink: o.cluster === undefined ? null : new SharedArrayBuffer(4 * HOST_LINK_SLOTS),
  };
  const memory = buffers.group instanceof WebAssembly.Memory
    ? buffers.group.buffer as SharedArrayBuffer
    : buffers.group;
  const result = new Float32Array(
    memory,
    resultByteOffset(o.replicas, layout.length),
    layout.length,
  );
  const rank = o.cluster?.rank ?? 0;
  const nodes = o.cluster?.nodes ?? 1;
  const weights = new Float32Array(buffers.weights);
  packWeights(model.weights, weights);
  const control = new Int32Array(buffers.control);
  const pool = new ReplicaPool(o.replicas, control);
  try {
    // Replicas do not beat while they initialise; a silently dead one is
    // declared dead after a generous start-up allowance instead of hanging.
    const init = pool.all((r) => ({
      type: "init",
      replica: r,
      replicas: o.replicas,
      shard: { index: rank * o.replicas + r, count: nodes * o.replicas },
      backend: o.backend,
      threads: o.threads,
      model: o.source,
      compile: o.compile,
      buffers,
      reduceLength: layout.length,
      ringRecords: RING_RECORDS,
      ringWidth,
    }));
    const replies = await pool.watch(init, o.startTimeoutMs, "startTimeoutMs");
    const ready = replies.filter((
      r,
    ): r is Extract<Reply, { type: "ready" }> => r.type === "ready");
    const backends = ready.map((r) => r.backend);
    if (new Set(backends).size !== 1) {
      throw new RangeError(
        `Replicas chose different backends (${backends.join(", ")}): pass an explicit backend`,
      );
    }
    const stats = {
      backends,
      backendReason: ready[0]!.backendReason,
      threads: ready.map((r) => r.threads),
      blas: ready[0]!.blas ?? null,
      replicaTensors: ready.map((r) => r.tensors),
    };
    const group: Group = {
      key: o.key,
      pool,
      control,
      result,
      hostLink: buffers.hostLink === null ? null : new Int32Array(buffers.hostLink),
      weights,
      ring: new RecordRing(buffers.ring, buffers.ringControl, {
        records: RING_RECORDS,
        width: ringWidth,
      }),
      metricsNames: ready[0]!.metricsNames,
    };
    return { group, stats };
  } catch (e) {
    const crash = pool.crash;
    await pool.close();
    throw crash ?? e;
  }
}
