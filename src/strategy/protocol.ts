/**
 * Every message that crosses the main-thread / replica-Worker boundary.
 *
 * Requests carry an `id` that the reply echoes; each request gets exactly one
 * reply (`ready`, `done` or `error`). Bulk data (datasets, weights, gradients)
 * never travels in messages: it lives in `SharedArrayBuffer`s whose handles are
 * sent once in `init` and `fit`/`evaluate`. Incoming `event.data` is `unknown`
 * until {@linkcode parseRequest} / {@linkcode parseReply} validate it.
 *
 * @module
 */
import type { BackendName, BlasReport } from "../../backends/types.ts";
import { checkEnvelope } from "../core/envelope.ts";

/** How a replica rebuilds the model. */
export type ModelSource =
  | { kind: "json"; topology: unknown; moduleUrl?: string }
  | { kind: "module"; url: string; exportName: string };

/** Optimizer, loss and metrics as given to `model.compile`. */
export interface CompileSpec {
  /** Registered class name of the optimizer, e.g. `"Adam"`. */
  optimizer: { className: string; config: Record<string, unknown> };
  /** Loss identifier: one for every output, one per output, or one per output name. */
  loss: string | string[] | Record<string, string>;
  /** Metric identifiers: for every output, or per output name. */
  metrics: string[] | Record<string, string | string[]>;
}

/** Shared memory a replica group uses for its whole life. */
export interface GroupBuffers {
  /** Barrier control words (Int32). */
  control: SharedArrayBuffer;
  /**
   * The all-reduce's slots and result (Float32) from byte 0, then the sharded
   * optimizer state from `optimizerOffset`: a shared `WebAssembly.Memory`
   * where the SIMD kernels can run (see `collective/kernels.ts`), else a
   * plain `SharedArrayBuffer`.
   */
  group: WebAssembly.Memory | SharedArrayBuffer;
  /** Byte offset of the sharded optimizer state in `group`. */
  optimizerOffset: number;
  /** Flat model weights, written by the main thread and replica 0 (Float32). */
  weights: SharedArrayBuffer;
  /** Step/epoch record ring (Float64) and its counters (Int32). */
  ring: SharedArrayBuffer;
  ringControl: SharedArrayBuffer;
  /** The link to the host's leader (Int32, see `HostLink`) when the group spans hosts. */
  hostLink: SharedArrayBuffer | null;
}

/** Shared memory of one WorkerStrategy run, as one worker sees it. */
export interface PsBuffers {
  /** Run control (Int32): `[stop, cursor, doorbell, ticket]` (see `_ps_layout.ts`). */
  control: SharedArrayBuffer;
  /** The server's weights, versioned (see `VersionedBuffer`). */
  weights: SharedArrayBuffer;
  /** This worker's gradient slot (see `GradientSlot`). */
  slot: SharedArrayBuffer;
}

/**
 * A dataset in shared memory. `x`/`y` are the model's first input and first
 * output (all a one-input, one-output model has); `inputs`/`outputs` list
 * every input and output in `model.inputs`/`model.outputs` order, the first
 * of each being `x`/`y` (the same buffers). Readers take the lists when they
 * are there, else `x` and `y` alone (see `_columns.ts`).
 */
export interface SharedData {
  /** The first input, float32, one row per sample. */
  x: SharedArrayBuffer;
  /** The first output's targets, float32, one row per sample. */
  y: SharedArrayBuffer;
  /** Per-sample shape of x (without the batch dimension). */
  xShape: number[];
  /** Per-sample shape of y. */
  yShape: number[];
  /** Number of samples in the buffers. */
  count: number;
  /**
   * Every input, in `model.inputs` order: its values (float32, one row per
   * sample) and per-sample shape. A column may be a part of wider rows that
   * hold several columns side by side (an input pipeline's parts): row `r`
   * starts at float `r * stride + offset`. Absent: `x` alone.
   */
  inputs?: { buffer: SharedArrayBuffer; shape: number[]; stride?: number; offset?: number }[];
  /** Every output's targets, in `model.outputs` order, as `inputs`. Absent: `y` alone. */
  outputs?: { buffer: SharedArrayBuffer; shape: number[] }[];
  /**
   * Per-sample loss weights (from `classWeight`), one float32 per sample, per
   * output in `model.outputs` order; null: that output is not weighted.
   * Absent: no output is.
   */
  sampleWeights?: (SharedArrayBuffer | null)[];
}

/** One input or output of a {@linkcode SharedData}: its rows and per-sample shape. */
export type SharedColumn = NonNullable<SharedData["inputs"]>[number];

/** Requests from the main thread to a replica. */
export type Request =
  | {
    type: "init";
    id: number;
    replica: number;
    replicas: number;
    /**
     * This replica's place among all replicas of all hosts, which decides its
     * shard of every batch: `rank * replicas + replica` of `nodes * replicas`
     * (`replica` of `replicas` on one host).
     */
    shard: { index: number; count: number };
    backend: BackendName | "auto";
    threads: number;
    model: ModelSource;
    compile: CompileSpec;
    buffers: GroupBuffers;
    /** Floats in the fused all-reduce vector. */
    reduceLength: number;
    ringRecords: number;
    ringWidth: number;
  }
  | {
    type: "fit";
    id: number;
    data: SharedData;
    trainCount: number;
    validation: SharedData | null;
    epochs: number;
    initialEpoch: number;
    batchSize: number;
    shuffle: boolean;
    seed: number;
    terminateOnNaN: boolean;
    validationBatchSize: number;
    /** Step of `initialEpoch` to start from (resuming mid-epoch). */
    startStep: number;
    /** Checkpoint every `everySteps` steps and/or at epoch ends (replica 0 writes). */
    checkpoint: { dir: string; everySteps: number; everyEpoch: boolean; runId: string } | null;
    /** Checkpoint folder whose weights and optimizer state every replica loads first. */
    resumeFrom: string | null;
    /** Weight of each output's loss in the total loss (null: 1 each). */
    lossWeights: number[] | null;
    /**
     * Across hosts, the gradient bucket size in floats (see `_buckets.ts`):
     * buckets are summed across hosts during the backward pass. 0: the whole
     * vector after it. Ignored on one host.
     */
    bucketFloats: number;
  }
  | {
    type: "evaluate";
    id: number;
    data: SharedData;
    batchSize: number;
    /** Weight of each output's loss in the total loss (null: 1 each). */
    lossWeights: number[] | null;
  }
  | { type: "loadWeights"; id: number }
  /** Free the model and wasm threads, reply `closed`, then close the Worker. */
  | { type: "close"; id: number };

/**
 * Requests from the parameter server (WorkerStrategy) to a gradient worker
 * (`ps_worker.ts`). A separate union from {@linkcode Request} so that the
 * replica entry point's exhaustive switch keeps compiling; merge them once
 * it has a default branch.
 */
export type PsRequest =
  /** Free the model and wasm threads, reply `closed`, then close the Worker. */
  | { type: "close"; id: number }
  /** WorkerStrategy: build the model and select the backend; reply `ready`. */
  | {
    type: "psInit";
    id: number;
    /** The worker's id (its Worker is named `dtrain-ps-worker-<id>`). */
    worker: number;
    backend: BackendName | "auto";
    threads: number;
    model: ModelSource;
    /** Loss and metrics; the optimizer stays on the parameter server. */
    compile: CompileSpec;
    /** One Int32 the worker bumps while it is alive (watched by the server). */
    heartbeat: SharedArrayBuffer;
    /** Floats in a gradient slot (see `fusedLayout`). */
    slotLength: number;
  }
  /**
   * WorkerStrategy: compute gradients on batches drawn from the shared cursor
   * until the run stops or the slot's `leave` flag is set; reply `psDone`.
   */
  | {
    type: "psTrain";
    id: number;
    buffers: PsBuffers;
    data: SharedData;
    trainCount: number;
    /** Samples per gradient (per worker). */
    batchSize: number;
    shuffle: boolean;
    seed: number;
    /** Pass `floor(b / steps)` of batch `b` uses the permutation of epoch `initialEpoch + pass`. */
    initialEpoch: number;
    /** Weight of each output's loss in the total loss (null: 1 each). */
    lossWeights: number[] | null;
  }
  /**
   * WorkerStrategy: sum loss and metrics over samples `[from, to)` of `data`
   * with the weights in `weights`; reply `done` with the sums.
   */
  | {
    type: "psEvaluate";
    id: number;
    weights: SharedArrayBuffer;
    data: SharedData;
    from: number;
    to: number;
    batchSize: number;
    /** Weight of each output's loss in the total loss (null: 1 each). */
    lossWeights: number[] | null;
  };

/** Replies from a replica. */
export type Reply =
  | {
    type: "ready";
    id: number;
    backend: BackendName;
    backendReason: string;
    threads: number;
    /** What the WASM backend's host-BLAS path chose, on WASM. */
    blas: BlasReport | null;
    metricsNames: string[];
    paramCount: number;
    tensors: number;
  }
  | {
    type: "done";
    id: number;
    values: number[];
    tensors: number;
    stopped: boolean;
    /** FNV-1a hash of the replica's weights (32-bit words): equal on every replica. */
    weightsDigest: number;
  }
  | { type: "closed"; id: number }
  /** WorkerStrategy: a `psTrain` run ended (stop or leave). */
  | {
    type: "psDone";
    id: number;
    /** Gradients this worker pushed in the run. */
    computed: number;
    /** Milliseconds spent computing them (reading weights, forward, backward). */
    computeMs: number;
    /** Tensors alive in the worker. */
    tensors: number;
  }
  | {
    type: "error";
    id: number;
    name: string;
    message: string;
    stack?: string;
  };

const REQUEST_TYPES = new Set([
  "init",
  "fit",
  "evaluate",
  "loadWeights",
  "close",
]);
const PS_REQUEST_TYPES = new Set(["psInit", "psTrain", "psEvaluate", "close"]);
const REPLY_TYPES = new Set(["ready", "done", "closed", "error", "psDone"]);

/**
 * Validates a message received by a replica.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequest } from "./protocol.ts";
 * assert.ok(parseRequest({ type: "loadWeights", id: 1 }).type === "loadWeights");
 * ```
 */
export function parseRequest(data: unknown): Request {
  return checkEnvelope(data, REQUEST_TYPES, "request") as Request;
}

/**
 * Validates a message received by a WorkerStrategy gradient worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePsRequest } from "./protocol.ts";
 * assert.ok(parsePsRequest({ type: "close", id: 1 }).type === "close");
 * ```
 */
export function parsePsRequest(data: unknown): PsRequest {
  return checkEnvelope(data, PS_REQUEST_TYPES, "request") as PsRequest;
}

/**
 * Validates a message received by the main thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReply } from "./protocol.ts";
 * const reply = parseReply({
 *   type: "done", id: 1, values: [], tensors: 0, stopped: false, weightsDigest: 0,
 * });
 * assert.ok(reply.type === "done");
 * ```
 */
export function parseReply(data: unknown): Reply {
  return checkEnvelope(data, REPLY_TYPES, "reply") as Reply;
}
