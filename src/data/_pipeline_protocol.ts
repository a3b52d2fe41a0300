/**
 * Every message that crosses the main-thread / map-Worker boundary of
 * `ParallelMap` (src/data/pipeline.ts, `_map_worker_group.ts` on the main
 * thread, `_map_worker.ts` in the Workers). Kept apart from
 * `src/strategy/protocol.ts` because the map Workers share nothing with the
 * replicas; it follows the same rules (and the envelope of `core/envelope.ts`):
 *
 * - one discriminated union per direction, with a string `type`;
 * - every request carries an `id` that its single reply echoes;
 * - errors cross as `{ type: "error", id, name, message }`;
 * - incoming `event.data` stays `unknown` until {@linkcode parseMapRequest} /
 *   {@linkcode parseMapReply} validate it;
 * - samples never travel in messages: the source and the output slots are
 *   `SharedArrayBuffer`s sent once in `init`; a `map` request names a slot.
 *
 * @module
 */
import { checkEnvelope } from "../core/envelope.ts";

/** Element type of a label array. */
export type LabelDtype = "float32" | "uint8";

/**
 * One output slot: an epoch's mapped samples, in epoch order.
 *
 * `control` (Int32) is `[cursor, done, chunkDone_0, chunkDone_1, ...]`: Workers
 * take chunk `Atomics.add(cursor, 1)` until it passes the last chunk, write its
 * rows, then set its flag and bump `done` (notified).
 */
export interface SlotBuffers {
  /** Mapped features, `count * xSize` float32. */
  x: SharedArrayBuffer;
  /** Mapped labels, `count * ySize` of the output label dtype. */
  y: SharedArrayBuffer;
  /** Source index of each output row (Uint32, `count`). */
  order: SharedArrayBuffer;
  /** Chunk cursor, done counter and per-chunk flags (Int32). */
  control: SharedArrayBuffer;
}

/** Index of the chunk cursor in a slot's control array. */
export const SLOT_CURSOR = 0;
/** Index of the done-chunk counter in a slot's control array. */
export const SLOT_DONE = 1;
/** Index of chunk 0's done flag in a slot's control array. */
export const SLOT_FLAGS = 2;

/** Requests from the main thread to a map Worker. */
export type MapRequest =
  | {
    type: "init";
    id: number;
    /** This Worker's index (its heartbeat word). */
    worker: number;
    /** The map module and the name of its function export. */
    map: { url: string; exportName: string };
    /** The source samples (views start at the byte offsets). */
    source: {
      x: SharedArrayBuffer;
      xByteOffset: number;
      y: SharedArrayBuffer;
      yByteOffset: number;
      yDtype: LabelDtype;
      count: number;
      xSize: number;
      ySize: number;
    };
    /**
     * Size and label dtype of one mapped sample, and the sizes of the parts
     * its row holds side by side (one part unless the map returns several).
     */
    output: {
      xSize: number;
      ySize: number;
      yDtype: LabelDtype;
      xParts: number[];
      yParts: number[];
    };
    /** Every output slot, in slot order. */
    slots: SlotBuffers[];
    /** Samples per chunk. */
    chunkSize: number;
    seed: number;
    /** One Int32 per Worker, bumped after every sample. */
    heartbeat: SharedArrayBuffer;
  }
  /** Map chunks of `slot` (holding `epoch`) until its cursor passes the end; reply `mapped`. */
  | { type: "map"; id: number; slot: number; epoch: number }
  /** Reply `closed`, then close the Worker. */
  | { type: "close"; id: number };

/** Replies from a map Worker. */
export type MapReply =
  | { type: "ready"; id: number }
  /** `samples`: how many samples this Worker mapped for the request. */
  | { type: "mapped"; id: number; samples: number }
  | { type: "closed"; id: number }
  | {
    type: "error";
    id: number;
    name: string;
    message: string;
    stack?: string;
    /**
     * `"map"`: the user's map function threw; `"output"`: it returned a value
     * of the wrong type or size; absent: anything else (import, protocol),
     * answered by the runtime's request loop (`src/workers/serve_requests.ts`).
     */
    origin?: "map" | "output";
    /** Epoch and source index of the sample being mapped, when there was one. */
    epoch?: number;
    index?: number;
  };

const REQUEST_TYPES = new Set(["init", "map", "close"]);
const REPLY_TYPES = new Set(["ready", "mapped", "closed", "error"]);

/**
 * Validates a message received by a map Worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMapRequest } from "./_pipeline_protocol.ts";
 * assert.ok(parseMapRequest({ type: "close", id: 1 }).type === "close");
 * ```
 */
export function parseMapRequest(data: unknown): MapRequest {
  const msg = checkEnvelope(data, REQUEST_TYPES, "pipeline request") as MapRequest;
  if (
    msg.type === "map" &&
    (!Number.isInteger(msg.slot) || !Number.isInteger(msg.epoch))
  ) {
    throw new TypeError(
      `Malformed pipeline request message: expected integer slot and epoch, received ${
        JSON.stringify(msg)
      }`,
    );
  }
  return msg;
}

/**
 * Validates a message received by the main thread from a map Worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMapReply } from "./_pipeline_protocol.ts";
 * assert.ok(parseMapReply({ type: "mapped", id: 2, samples: 64 }).type === "mapped");
 * ```
 */
export function parseMapReply(data: unknown): MapReply {
  const msg = checkEnvelope(data, REPLY_TYPES, "pipeline reply") as MapReply;
  if (
    msg.type === "error" &&
    (typeof msg.name !== "string" || typeof msg.message !== "string")
  ) {
    throw new TypeError(
      `Malformed pipeline reply message: expected an error with string name and message, ` +
        `received ${JSON.stringify(msg)?.slice(0, 200)}`,
    );
  }
  return msg;
}
