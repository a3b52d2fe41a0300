/**
 * Entry point of a WorkerStrategy worker. Owns one copy of the model (no
 * optimizer state that matters: the parameter server owns the optimizer).
 * In a run it loops on its own: wait until its gradient slot is empty, claim
 * the next batch from the shared cursor, copy the latest published weights,
 * compute loss, metrics and gradients on the batch, write them into the slot
 * and ring the server's doorbell. No message crosses per step; the loop ends
 * when the server sets `stop` or asks this worker to leave.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as tf from "../../tf.ts";
import { GradientSlot } from "../../collective/gradient_slot.ts";
import { VersionedBuffer } from "../../collective/versioned_buffer.ts";
import { epochOrder } from "../../core/random.ts";
import { gatherRows } from "../_sharding.ts";
import { lossOf } from "../_model.ts";
import { GradientComputer } from "./gradient_computer.ts";
import { closeWorker, serveRequests } from "../../workers/worker_loop.ts";
import { PS_CURSOR, PS_DOORBELL, PS_STOP, PS_TICKET } from "./_layout.ts";
import { parsePsRequest, type PsRequest, type Reply, type SharedData } from "../protocol.ts";

interface State {
  computer: GradientComputer;
  heartbeat: Int32Array;
}

let state: State | undefined;

function beat(s: State): void {
  Atomics.add(s.heartbeat, 0, 1);
}

async function init(req: Extract<PsRequest, { type: "psInit" }>): Promise<Reply> {
  const computer = await GradientComputer.create({
    backend: req.backend,
    threads: req.threads,
    model: req.model,
    compile: req.compile,
    slotLength: req.slotLength,
    who: `Worker ${req.worker}`,
  });
  state = { computer, heartbeat: new Int32Array(req.heartbeat) };
  const { model, report } = computer;
  return {
    type: "ready",
    id: req.id,
    backend: report.name,
    backendReason: report.reason,
    threads: report.threads,
    blas: report.blas ?? null,
    metricsNames: model.metricsNames,
    paramCount: model.countParams(),
    tensors: tf.memory().numTensors,
  };
}

/** Copies the latest published weights into the model; returns their version. */
function pullWeights(s: State, source: VersionedBuffer): number {
  const flat = new Float32Array(s.computer.weightCount);
  const version = source.read(flat, () => beat(s));
  s.computer.setWeights(flat);
  return version;
}

function views(data: SharedData) {
  return {
    x: new Float32Array(data.x),
    y: new Float32Array(data.y),
    xWidth: data.xShape.reduce((a, b) => a * b, 1),
    yWidth: data.yShape.reduce((a, b) => a * b, 1),
  };
}

async function train(
  s: State,
  req: Extract<PsRequest, { type: "psTrain" }>,
): Promise<Reply> {
  const control = new Int32Array(req.buffers.control);
  const source = new VersionedBuffer(req.buffers.weights, s.computer.weightCount);
  const slot = new GradientSlot(req.buffers.slot, s.computer.layout.length);
  const v = views(req.data);
  const steps = Math.ceil(req.trainCount / req.batchSize);
  const over = () => {
    beat(s);
    return Atomics.load(control, PS_STOP) !== 0 || slot.leaving;
  };
  let pass = -1;
  let order: Uint32Array = new Uint32Array(0);
  let computed = 0, computeMs = 0;
  while (!over() && slot.waitEmpty(over)) {
    const t0 = performance.now();
    const batch = Atomics.add(control, PS_CURSOR, 1);
    const p = Math.floor(batch / steps);
    if (p !== pass) {
      pass = p;
      order = epochOrder(req.trainCount, {
        seed: req.seed,
        epoch: req.initialEpoch + p,
        shuffle: req.shuffle,
      });
    }
    const start = (batch % steps) * req.batchSize;
    const n = Math.min(req.batchSize, req.trainCount - start);
    const xb = gatherRows(v.x, v.xWidth, order, start, n);
    const yb = gatherRows(v.y, v.yWidth, order, start, n);
    const base = pullWeights(s, source);
    await s.computer.compute(xb, yb, n, req.data.xShape, req.data.yShape, slot.payload);
    slot.push({ base, batch, samples: n, ticket: Atomics.add(control, PS_TICKET, 1) });
    Atomics.add(control, PS_DOORBELL, 1);
    Atomics.notify(control, PS_DOORBELL);
    computed++;
    computeMs += performance.now() - t0;
  }
  return { type: "psDone", id: req.id, computed, computeMs, tensors: tf.memory().numTensors };
}

async function evaluate(
  s: State,
  req: Extract<PsRequest, { type: "psEvaluate" }>,
): Promise<Reply> {
  const { model, layout } = s.computer;
  pullWeights(s, new VersionedBuffer(req.weights, s.computer.weightCount));
  const v = views(req.data);
  const order = epochOrder(req.data.count, { seed: 0, epoch: 0, shuffle: false });
  const sums = new Array<number>(1 + layout.metricCount).fill(0);
  for (let at = req.from; at < req.to; at += req.batchSize) {
    beat(s);
    const n = Math.min(req.batchSize, req.to - at);
    const partial = tf.tidy(() => {
      const x = tf.tensor(gatherRows(v.x, v.xWidth, order, at, n), [n, ...req.data.xShape]);
      const y = tf.tensor(gatherRows(v.y, v.yWidth, order, at, n), [n, ...req.data.yShape]);
      const out = model.apply(x, { training: false }) as tf.Tensor;
      return [
        tf.sum(lossOf(model)(y, out)),
        ...model.metricsTensors.map(([metric]) => tf.sum(metric(y, out))),
      ];
    });
    for (let i = 0; i < partial.length; i++) sums[i]! += (await partial[i]!.data())[0]!;
    tf.dispose(partial);
  }
  return {
    type: "done",
    id: req.id,
    values: sums,
    tensors: tf.memory().numTensors,
    stopped: false,
    weightsDigest: 0,
  };
}

async function handle(req: PsRequest): Promise<Reply> {
  if (req.type === "psInit") return await init(req);
  if (req.type === "close") {
    const model = state?.computer.model;
    state = undefined;
    return closeWorker(req.id, model);
  }
  if (state === undefined) {
    throw new Error(`Worker received "${req.type}" before "psInit"`);
  }
  switch (req.type) {
    case "psTrain":
      return await train(state, req);
    case "psEvaluate":
      return await evaluate(state, req);
  }
}

serveRequests(parsePsRequest, handle);
