/**
 * Entry point of a replica Worker. Owns one copy of the model and its
 * optimizer; runs whole epochs on its own, exchanging gradients with the other
 * replicas through the shared-memory all-reduce, and reporting each step
 * through the record ring (replica 0 only). The main thread only starts runs
 * and reads records.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as tf from "../../tf.ts";
import { AllReduce } from "../../collective/all_reduce.ts";
import { isAbortedShared } from "../../collective/barrier.ts";
import { HostLink } from "../../collective/host_link.ts";
import { groupKernels } from "../../collective/kernels.ts";
import {
  checkpointTempPath,
  loadCheckpointFiles,
  writeCheckpointFiles,
} from "../../io/checkpoint.ts";
import { registerFileIO } from "../../io/file_handler.ts";
import { RecordRing } from "../../collective/ring.ts";
import { epochOrder } from "../../core/random.ts";
import { packWeightsAsync, unpackWeights } from "../../core/weights.ts";
import { shardRange } from "../_sharding.ts";
import { BatchReader, evaluateRows } from "../_columns.ts";
import { CONTROL_STOP, type FusedLayout, heartbeatIndex } from "../_layout.ts";
import { FlatOptimizer } from "../_flat_optimizer.ts";
import {
  fromShared,
  lossAndGradients,
  readIntoSync,
  writeNonTrainable,
  writeStep,
} from "../_model.ts";
import { type Bucket, planBuckets, withGradientHooks } from "../_buckets.ts";
import { prepareWorkerModel, readyReply } from "../_worker_model.ts";
import { closeWorker, serveRequests } from "../../workers/worker_loop.ts";
import { RecordKind } from "../../core/records.ts";
import { parseRequest, type Reply, type Request, type SharedData } from "../protocol.ts";

interface State {
  replica: number;
  replicas: number;
  /** This replica's shard among all replicas of all hosts. */
  shard: { index: number; count: number };
  /** Whether the group spans hosts (its reductions go through the host's leader). */
  crossHost: boolean;
  model: tf.LayersModel;
  layout: FusedLayout;
  reducer: AllReduce;
  ring: RecordRing;
  control: Int32Array;
  weights: Float32Array;
  trainVars: tf.Variable[];
  /** The group's sharded optimizer step, or null to run the tfjs optimizer's own. */
  flat: FlatOptimizer | null;
  /** Floats of all trainable weights: where the fused vector's non-trainable part starts. */
  trainLength: number;
  /** Where each trainable weight starts in the fused vector. */
  varOffsets: number[];
}

let state: State | undefined;

function loadWeights(s: State): void {
  const tensors = unpackWeights(s.weights, s.model.weights);
  s.model.setWeights(tensors);
  tf.dispose(tensors);
}

async function storeWeights(s: State): Promise<void> {
  await packWeightsAsync(s.model.weights, s.weights);
}

async function init(req: Extract<Request, { type: "init" }>): Promise<Reply> {
  const { model, layout, report } = await prepareWorkerModel({
    backend: req.backend,
    threads: req.threads,
    model: req.model,
    compile: req.compile,
    expectedLength: req.reduceLength,
    who: `Replica ${req.replica}`,
  });
  const control = new Int32Array(req.buffers.control);
  const memory = req.buffers.group instanceof WebAssembly.Memory ? req.buffers.group : null;
  const group = memory === null
    ? req.buffers.group as SharedArrayBuffer
    : memory.buffer as SharedArrayBuffer;
  const kernels = memory === null ? null : groupKernels(memory);
  const trainVars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const hostLink = req.buffers.hostLink === null ? null : new HostLink(
    new Int32Array(req.buffers.hostLink),
    control,
    { leader: req.replica === 0, heartbeat: heartbeatIndex(req.replica) },
  );
  state = {
    replica: req.replica,
    replicas: req.replicas,
    shard: req.shard,
    crossHost: hostLink !== null,
    model,
    layout,
    control,
    reducer: new AllReduce(group, control, {
      kernels,
      replica: req.replica,
      replicas: req.replicas,
      length: layout.length,
      heartbeat: heartbeatIndex(req.replica),
      hostLink,
    }),
    ring: new RecordRing(req.buffers.ring, req.buffers.ringControl, {
      records: req.ringRecords,
      width: req.ringWidth,
    }),
    weights: new Float32Array(req.buffers.weights),
    trainVars,
    flat: FlatOptimizer.create(model.optimizer, group, trainVars, {
      byteOffset: req.buffers.optimizerOffset,
      kernels,
    }),
    trainLength: trainVars.reduce((n, v) => n + v.size, 0),
    varOffsets: trainVars.map((_, i) => trainVars.slice(0, i).reduce((n, v) => n + v.size, 0)),
  };
  loadWeights(state);
  return readyReply(req.id, model, report);
}

/**
 * One training step on this replica's shard: fills the reduce slot with the
 * raw mean gradients, non-trainable weights, loss and metrics (the all-reduce
 * weights them by the shard's share of the batch). With class weights the
 * shard's loss is the mean of its weighted per-sample losses, so the shares
 * add up to the global batch's sum of weighted losses over its sample
 * count: what `model.fit` computes.
 */
async function computeShard(
  s: State,
  batches: BatchReader,
  order: Uint32Array,
  from: number,
  count: number,
  lossWeights: number[] | null,
): Promise<void> {
  const { model, layout, reducer } = s;
  const slot = reducer.slot;
  if (count === 0) {
    slot.fill(0, 0, layout.stop);
    return;
  }
  batches.read(order, from, count);
  const step = lossAndGradients(
    model,
    s.trainVars,
    batches.xs,
    batches.ys,
    lossWeights,
    batches.ws,
  );
  await writeStep(slot, layout, model, s.trainVars, step);
}

/**
 * {@linkcode computeShard} across hosts with gradient buckets: each bucket
 * of `buckets` is summed in the host and handed to the leader (which sums it
 * across hosts) as soon as the backward pass has produced its gradients, the
 * rest when the pass ends, then the tail (non-trainable weights, loss,
 * metrics and `stop`). Every replica reduces every bucket in plan order,
 * with samples or without. `finishBuckets` then waits for the global sums.
 */
async function computeShardBucketed(
  s: State,
  buckets: Bucket[],
  batches: BatchReader,
  order: Uint32Array,
  range: { from: number; count: number; weight: number; stop: number },
  lossWeights: number[] | null,
): Promise<void> {
  const { model, layout, reducer, trainVars, varOffsets } = s;
  const slot = reducer.slot;
  const written = new Uint8Array(trainVars.length);
  let next = 0;
  const flush = () => {
    while (next < buckets.length && buckets[next]!.vars.every((v) => written[v] === 1)) {
      const b = buckets[next++]!;
      reducer.reduceBucket(b.offset, b.length);
    }
  };
  reducer.beginBuckets(range.weight);
  if (range.count === 0) {
    slot.fill(0, 0, layout.stop);
  } else {
    batches.read(order, range.from, range.count);
    const compute = () =>
      lossAndGradients(model, trainVars, batches.xs, batches.ys, lossWeights, batches.ws);
    const step = withGradientHooks(model, (i, grad) => {
      if (readIntoSync(grad, slot, varOffsets[i]!)) {
        written[i] = 1;
        flush();
      }
    }, compute);
    await writeStep(slot, layout, model, trainVars, step, written);
  }
  written.fill(1);
  flush();
  slot[layout.stop] = range.stop;
  reducer.reduceBucket(s.trainLength, layout.length - s.trainLength);
}

function applyReduced(s: State): void {
  const { model, reducer } = s;
  const sum = reducer.result;
  if (s.flat !== null) {
    // The update itself ran inside the all-reduce, chunk by chunk.
    s.flat.advance();
    s.flat.assignTo(s.trainVars);
  } else {
    tf.tidy(() => {
      let offset = 0;
      const named: Record<string, tf.Tensor> = {};
      for (const v of s.trainVars) {
        named[v.name] = fromShared(sum.subarray(offset, offset + v.size), v.shape);
        offset += v.size;
      }
      model.optimizer.applyGradients(named);
    });
  }
  writeNonTrainable(model, sum, s.trainLength);
}

/** Evaluates loss and metrics over a dataset; every replica takes a chunk. */
async function evaluateShared(
  s: State,
  data: SharedData,
  batchSize: number,
  lossWeights: number[] | null,
): Promise<number[]> {
  const { model, layout, reducer } = s;
  const [from, to] = shardRange(data.count, s.shard.count, s.shard.index);
  const sums = await evaluateRows(model, data, { from, to, batchSize }, lossWeights);
  const slot = reducer.slot;
  const scale = data.count === 0 ? 0 : 1 / data.count;
  slot[layout.loss] = sums[0]! * scale;
  for (let m = 0; m < layout.metricCount; m++) {
    slot[layout.metrics + m] = sums[m + 1]! * scale;
  }
  reducer.reduce(layout.loss, layout.stop - layout.loss);
  return Array.from(reducer.result.subarray(layout.loss, layout.stop));
}

async function fit(
  s: State,
  req: Extract<Request, { type: "fit" }>,
): Promise<Reply> {
  const { layout, reducer, ring, replica, control } = s;
  // Polled while replica 0 waits for ring space: keep the heartbeat alive.
  const aborted = () => {
    Atomics.add(control, heartbeatIndex(replica), 1);
    return isAbortedShared(control);
  };
  let stopped = false;
  if (req.resumeFrom !== null) await loadCheckpointFiles(s.model, req.resumeFrom);
  const flat = s.flat;
  if (flat !== null) {
    // Replica 0 publishes the weights and optimizer state; every replica
    // reads the hyperparameters from its own (identical) optimizer.
    if (replica === 0) await flat.load(s.trainVars);
    else flat.readConfig();
    reducer.barrier();
  }
  // The wasm backend copies a new tensor's values into its heap, so one set
  // of batch buffers serves every step (others may keep the array).
  const batches = new BatchReader(req.data, {
    reuseRows: tf.getBackend() === "wasm" ? Math.ceil(req.batchSize / s.shard.count) : 0,
  });
  // Across hosts, gradients go on the wire bucket by bucket during the backward pass.
  const buckets = s.crossHost && req.bucketFloats > 0
    ? planBuckets(s.trainVars.map((v) => v.size), req.bucketFloats)
    : null;
  const ckpt = req.checkpoint;
  const checkpoint = async (epoch: number, step: number) => {
    if (ckpt === null || replica !== 0) return;
    await flat?.store(s.trainVars);
    registerFileIO();
    await writeCheckpointFiles(s.model, checkpointTempPath(ckpt.dir, epoch, step, ckpt.runId));
    ring.write([RecordKind.Checkpoint, epoch, step], aborted);
  };
  for (let epoch = req.initialEpoch; epoch < req.epochs && !stopped; epoch++) {
    const order = epochOrder(req.trainCount, {
      seed: req.seed,
      epoch,
      shuffle: req.shuffle,
    });
    const steps = Math.ceil(req.trainCount / req.batchSize);
    const first = epoch === req.initialEpoch ? req.startStep : 0;
    for (let step = first; step < steps; step++) {
      const t0 = performance.now();
      const start = step * req.batchSize;
      const n = Math.min(req.batchSize, req.trainCount - start);
      const [lo, hi] = shardRange(n, s.shard.count, s.shard.index);
      const count = hi - lo;
      // Weighted by the share below, so a stop vote counts from any replica with samples.
      const stopVote = () => Atomics.load(control, CONTROL_STOP) !== 0 ? 1 : 0;
      let updateMs = 0;
      const onChunk = (begin: number, end: number) => {
        // Every replica sees the same reduced loss here, so all skip together.
        if (
          flat === null || (req.terminateOnNaN && !Number.isFinite(reducer.peek(layout.loss)))
        ) {
          return;
        }
        const u = performance.now();
        flat.update(reducer.result, begin, Math.min(end, s.trainLength));
        updateMs = performance.now() - u;
      };
      let t1: number;
      if (buckets !== null) {
        const range = { from: start + lo, count, weight: count / n, stop: stopVote() };
        await computeShardBucketed(s, buckets, batches, order, range, req.lossWeights);
        t1 = performance.now();
        reducer.finishBuckets(layout.length, onChunk);
      } else {
        await computeShard(s, batches, order, start + lo, count, req.lossWeights);
        reducer.slot[layout.stop] = stopVote();
        t1 = performance.now();
        reducer.reduce(0, layout.length, { weight: count / n, onChunk });
      }
      const t2 = performance.now();
      const sum = reducer.result;
      const loss = sum[layout.loss]!;
      if (!Number.isFinite(loss) && req.terminateOnNaN) {
        if (replica === 0) {
          ring.write(
            [RecordKind.NonFinite, epoch, step, 0, 0, 0, 0, 0, 0, loss],
            aborted,
          );
        }
        await flat?.store(s.trainVars);
        return await done(s, req.id, [], true);
      }
      const t3 = performance.now();
      applyReduced(s);
      // Compute: gradients plus the optimizer step; exchange: summing and waiting.
      const computeMs = t1 - t0 + updateMs + performance.now() - t3;
      if (replica === 0) {
        const record = [
          RecordKind.Batch,
          epoch,
          step,
          n,
          computeMs,
          t2 - t1 - updateMs,
          performance.timeOrigin + t0,
          t1 - t0,
          t2 - t1,
          loss,
        ];
        for (let m = 0; m < layout.metricCount; m++) {
          record.push(sum[layout.metrics + m]!);
        }
        ring.write(record, aborted);
      }
      if (sum[layout.stop]! > 0) {
        stopped = true;
        break;
      }
      const stepsDone = epoch * steps + step + 1;
      if (
        ckpt !== null && ckpt.everySteps > 0 && stepsDone % ckpt.everySteps === 0 &&
        step + 1 < steps
      ) {
        await checkpoint(epoch, step + 1);
      }
    }
    let val: number[] = [];
    if (req.validation !== null) {
      val = await evaluateShared(s, req.validation, req.validationBatchSize, req.lossWeights);
    }
    if (replica === 0) {
      await storeWeights(s);
      ring.write([
        RecordKind.EpochEnd,
        epoch,
        0,
        req.validation?.count ?? 0,
        0,
        0,
        0,
        0,
        0,
        ...val,
      ], aborted);
    }
    if (ckpt?.everyEpoch && !stopped) await checkpoint(epoch + 1, 0);
    // Epoch boundary: replica 0 waits until the main thread has run the epoch's
    // callbacks, so a stop they request (EarlyStopping-style) takes effect
    // before the next epoch. After the barrier every replica reads the same flag.
    if (replica === 0) ring.waitHandled(aborted);
    if (s.crossHost) {
      // Across hosts every replica of every host takes the same decision:
      // a stop asked on any host counts.
      reducer.slot[layout.stop] = Atomics.load(control, CONTROL_STOP) !== 0 ? 1 : 0;
      reducer.reduce(layout.stop, 1);
      if (reducer.result[layout.stop]! > 0) stopped = true;
    } else {
      reducer.barrier();
      if (Atomics.load(control, CONTROL_STOP) !== 0) stopped = true;
    }
  }
  await flat?.store(s.trainVars);
  return await done(s, req.id, [], stopped);
}

async function done(
  s: State,
  id: number,
  values: number[],
  stopped: boolean,
): Promise<Reply> {
  let hash = 0x811c9dc5;
  for (const w of s.model.weights) {
    const data = await w.read().data() as Float32Array;
    // FNV-1a over 32-bit words: every bit of every weight counts.
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < words.length; i++) {
      hash = Math.imul(hash ^ words[i]!, 0x01000193);
    }
  }
  return {
    type: "done",
    id,
    values,
    tensors: tf.memory().numTensors,
    stopped,
    weightsDigest: hash >>> 0,
  };
}

async function handle(req: Request): Promise<Reply> {
  if (req.type === "init") return await init(req);
  if (req.type === "close") {
    const model = state?.model;
    state = undefined;
    return closeWorker(req.id, model);
  }
  if (state === undefined) {
    throw new Error(`Replica received "${req.type}" before "init"`);
  }
  switch (req.type) {
    case "fit":
      return await fit(state, req);
    case "evaluate": {
      const values = await evaluateShared(state, req.data, req.batchSize, req.lossWeights);
      return await done(state, req.id, values, false);
    }
    case "loadWeights":
      loadWeights(state);
      return await done(state, req.id, [], false);
    default:
      throw new TypeError(`Replica cannot handle request "${(req as { type: string }).type}"`);
  }
}

serveRequests(parseRequest, handle);
