/**
 * Entry point of a `ParallelMap` Worker. Imports the user's map module once
 * (`init`), then for each `map` request takes chunks of the slot's epoch from
 * the shared cursor until none is left, maps every sample of a chunk into its
 * output row, flags the chunk and bumps its heartbeat after every sample.
 * The runtime's request loop (`serveRequests`) parses every request and
 * answers it exactly once; this file queues them so that they are handled
 * one at a time, in arrival order, even when the map is async. The main
 * thread's side is `_map_worker_group.ts`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { serveRequests } from "../workers/serve_requests.ts";
import { checkMapResult, type OutputSpec, sampleRandom } from "./_map_sample.ts";
import type { MapFunction } from "./pipeline_types.ts";
import {
  type MapReply,
  type MapRequest,
  parseMapRequest,
  SLOT_CURSOR,
  SLOT_DONE,
  SLOT_FLAGS,
} from "./_pipeline_protocol.ts";

interface OutputSlot {
  x: Float32Array;
  y: Float32Array | Uint8Array;
  order: Uint32Array;
  control: Int32Array;
}

interface State {
  worker: number;
  fn: MapFunction;
  seed: number;
  chunkSize: number;
  count: number;
  sourceX: Float32Array;
  sourceY: Float32Array | Uint8Array;
  xSize: number;
  ySize: number;
  spec: OutputSpec;
  slots: OutputSlot[];
  heartbeat: Int32Array;
}

/** Where a failure came from, for the error reply. */
class SampleError extends Error {
  constructor(
    readonly origin: "map" | "output",
    readonly error: unknown,
    readonly epoch: number,
    readonly index: number,
  ) {
    super("sample failed");
  }
}

let state: State | undefined;

function labels(
  dtype: "float32" | "uint8",
  buffer: SharedArrayBuffer,
  byteOffset: number,
  length: number,
): Float32Array | Uint8Array {
  return dtype === "float32"
    ? new Float32Array(buffer, byteOffset, length)
    : new Uint8Array(buffer, byteOffset, length);
}

async function init(req: Extract<MapRequest, { type: "init" }>): Promise<MapReply> {
  const mod: Record<string, unknown> = await import(req.map.url);
  const fn = mod[req.map.exportName];
  if (typeof fn !== "function") {
    throw new TypeError(
      `map module ${req.map.url} has no function export "${req.map.exportName}"`,
    );
  }
  const { source, output } = req;
  const count = source.count;
  state = {
    worker: req.worker,
    fn: fn as MapFunction,
    seed: req.seed,
    chunkSize: req.chunkSize,
    count,
    sourceX: new Float32Array(source.x, source.xByteOffset, count * source.xSize),
    sourceY: labels(source.yDtype, source.y, source.yByteOffset, count * source.ySize),
    xSize: source.xSize,
    ySize: source.ySize,
    spec: output,
    slots: req.slots.map((s) => ({
      x: new Float32Array(s.x),
      y: labels(output.yDtype, s.y, 0, count * output.ySize),
      order: new Uint32Array(s.order),
      control: new Int32Array(s.control),
    })),
    heartbeat: new Int32Array(req.heartbeat),
  };
  return { type: "ready", id: req.id };
}

/** Writes `parts` side by side from `at` (one row of a slot). */
function write(row: Float32Array | Uint8Array, parts: ArrayLike<number>[], at: number): void {
  for (const part of parts) {
    row.set(part, at);
    at += part.length;
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

async function map(
  s: State,
  req: Extract<MapRequest, { type: "map" }>,
): Promise<MapReply> {
  const out = s.slots[req.slot];
  if (out === undefined) {
    throw new RangeError(
      `map request for slot ${req.slot}, expected one of 0..${s.slots.length - 1}`,
    );
  }
  const { epoch } = req;
  const { control, order } = out;
  const chunks = control.length - SLOT_FLAGS;
  // Private copies: the map may modify its inputs in place.
  const x = new Float32Array(s.xSize);
  const y = s.sourceY instanceof Float32Array ? new Float32Array(s.ySize) : new Uint8Array(s.ySize);
  const { xSize, ySize, spec } = s;
  let samples = 0;
  for (;;) {
    const chunk = Atomics.add(control, SLOT_CURSOR, 1);
    if (chunk >= chunks) break;
    const end = Math.min(s.count, (chunk + 1) * s.chunkSize);
    for (let position = chunk * s.chunkSize; position < end; position++) {
      const index = order[position]!;
      x.set(s.sourceX.subarray(index * xSize, (index + 1) * xSize));
      y.set(s.sourceY.subarray(index * ySize, (index + 1) * ySize));
      let result: unknown;
      try {
        result = s.fn(x, y, {
          index,
          position,
          epoch,
          seed: s.seed,
          random: sampleRandom(s.seed, epoch, index),
        });
        if (isThenable(result)) result = await result;
      } catch (e) {
        throw new SampleError("map", e, epoch, index);
      }
      let checked;
      try {
        checked = checkMapResult(result, y, spec, epoch, index);
      } catch (e) {
        throw new SampleError("output", e, epoch, index);
      }
      write(out.x, checked.xs, position * spec.xSize);
      write(out.y, checked.ys, position * spec.ySize);
      samples++;
      Atomics.add(s.heartbeat, s.worker, 1);
    }
    Atomics.store(control, SLOT_FLAGS + chunk, 1);
    Atomics.add(control, SLOT_DONE, 1);
    Atomics.notify(control, SLOT_DONE);
  }
  return { type: "mapped", id: req.id, samples };
}

async function handle(req: MapRequest): Promise<MapReply> {
  if (req.type === "init") return await init(req);
  if (req.type === "close") {
    state = undefined;
    // Close once the reply is on its way: the main thread waits for it.
    setTimeout(() => self.close(), 0);
    return { type: "closed", id: req.id };
  }
  if (state === undefined) throw new Error(`Map worker received "${req.type}" before "init"`);
  try {
    return await map(state, req);
  } catch (err) {
    // A sample's failure says which sample; anything else is answered by serveRequests.
    if (err instanceof SampleError) return sampleErrorReply(req.id, err);
    throw err;
  }
}

function sampleErrorReply(id: number, err: SampleError): MapReply {
  const e = err.error instanceof Error ? err.error : new Error(String(err.error));
  return {
    type: "error",
    id,
    name: e.name,
    message: e.message,
    stack: e.stack,
    origin: err.origin,
    epoch: err.epoch,
    index: err.index,
  };
}

let queue: Promise<unknown> = Promise.resolve();

serveRequests(parseMapRequest, (req) => {
  // One request at a time, in arrival order, even when the map is async.
  const turn = queue.then(() => {
    if (state !== undefined) Atomics.add(state.heartbeat, state.worker, 1);
    return handle(req);
  });
  queue = turn.catch(() => {});
  return turn;
});
