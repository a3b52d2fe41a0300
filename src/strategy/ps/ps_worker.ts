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
import { BatchReader, evaluateRows } from "../_columns.ts";
import { GradientComputer } from "./gradient_computer.ts";
import { readyReply } from "../_worker_model.ts";
import { closeWorker, serveRequests } from "../../workers/worker_loop.ts";
import { PS_CURSOR, PS_DOORBELL, PS_STOP, PS_TICKET } from "./_layout.ts";
import { parsePsRequest, type PsRequest, type Reply } from "../protocol.ts";

interface State {
  computer: GradientComputer;
  heartbeat: Int32Array;
  /** Where each step reads the published weights (reused). */
  flat: Float32Array;
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
  state = {
    computer,
    heartbeat: new Int32Array(req.heartbeat),
    flat: new Float32Array(computer.weightCount),
  };
  return readyReply(req.id, computer.model, computer.report);
}

/** Copies the latest published weights into the model; returns their version. */
function pullWeights(s: State, source: VersionedBuffer): number {
  const version = source.read(s.flat, () => beat(s));
  s.computer.setWeights(s.flat); // copies: `flat` is read into again next step
  return version;
}

async function train(
  s: State,
  req: Extract<PsRequest, { type: "psTrain" }>,
): Promise<Reply> {
  const control = new Int32Array(req.buffers.control);
  const source = new VersionedBuffer(req.buffers.weights, s.computer.weightCount);
  const slot = new GradientSlot(req.buffers.slot, s.computer.layout.length);
  const batches = new BatchReader(req.data);
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
    batches.read(order, start, n);
    const base = pullWeights(s, source);
    await s.computer.computeBatch(
      batches.xs,
      batches.ys,
      slot.payload,
      req.lossWeights,
      batches.ws,
    );
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
  const { model } = s.computer;
  pullWeights(s, new VersionedBuffer(req.weights, s.computer.weightCount));
  const sums = await evaluateRows(
    model,
    req.data,
    { from: req.from, to: req.to, batchSize: req.batchSize },
    req.lossWeights,
    () => beat(s),
  );
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
