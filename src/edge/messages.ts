/**
 * The JSON control messages of the edge-worker protocol, one typed union per
 * direction, each validated on arrival ({@linkcode parseWorkerMessage},
 * {@linkcode parseServerMessage}). Tensors never travel here: they are
 * binary frames (`frames.ts`).
 *
 * A session, over a WebSocket: worker `hello` → server `welcome` → worker
 * `ready` (model built) → server assignment frame → worker gradient frame →
 * next assignment ... → server `end`. Either side may `ping`; the other
 * answers `pong`. A worker going away sends `bye`. A broken rule gets
 * `error` and the connection closes.
 *
 * @module
 */
import type { RemoteWelcome } from "../strategy/ps/remote_workers.ts";
import { EDGE_PROTOCOL } from "./frames.ts";

/** Worker to server. */
export type WorkerMessage =
  | {
    type: "hello";
    protocol: number;
    /** The worker's name for itself. */
    name?: string;
    /** Ask for float16 weights and gradients on the wire. */
    fp16?: boolean;
  }
  | { type: "ready"; backend: string; backendReason: string; threads: number }
  | { type: "ping" }
  | { type: "pong" }
  | { type: "bye" };

/** Server to worker. */
export type ServerMessage =
  | ({ type: "welcome"; protocol: number; job: string; fp16: boolean } & RemoteWelcome)
  | { type: "end"; reason: string }
  | { type: "error"; code: string; message: string }
  | { type: "ping" }
  | { type: "pong" };

/** Longest control message accepted, in characters. */
export const MAX_MESSAGE_CHARS = 1 << 16;

/** A control message broke the protocol. */
export class MessageError extends Error {
  /** `message` says what is wrong with the message. */
  constructor(message: string) {
    super(message);
    this.name = "MessageError";
  }
}

function parseObject(text: string): Record<string, unknown> {
  if (text.length > MAX_MESSAGE_CHARS) {
    throw new MessageError(
      `control message of ${text.length} characters (most ${MAX_MESSAGE_CHARS})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MessageError("control message is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MessageError("control message is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function optional(o: Record<string, unknown>, key: string, type: "string" | "boolean"): void {
  if (o[key] !== undefined && typeof o[key] !== type) {
    throw new MessageError(`${o.type}.${key} must be a ${type}`);
  }
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isInteger(d) && d >= 1);
}

/** The welcome's columns: shapes of every input and output, loss and sample weights. */
function checkWelcomeColumns(o: Record<string, unknown>): void {
  const ins = o.inputShapes, outs = o.outputShapes;
  if (!Array.isArray(ins) || ins.length < 1 || !ins.every(isShape)) {
    throw new MessageError("welcome.inputShapes must be a non-empty array of shapes");
  }
  if (!Array.isArray(outs) || outs.length < 1 || !outs.every(isShape)) {
    throw new MessageError("welcome.outputShapes must be a non-empty array of shapes");
  }
  const lw = o.lossWeights;
  if (
    lw !== null &&
    !(Array.isArray(lw) && lw.length === outs.length && lw.every((w) => Number.isFinite(w)))
  ) {
    throw new MessageError(
      `welcome.lossWeights must be null or ${outs.length} finite numbers (one per output)`,
    );
  }
  const wo = o.weightedOutputs;
  if (
    wo !== null &&
    !(Array.isArray(wo) && wo.length === outs.length && wo.every((w) => typeof w === "boolean"))
  ) {
    throw new MessageError(
      `welcome.weightedOutputs must be null or ${outs.length} booleans (one per output)`,
    );
  }
}

/**
 * Validates a message from a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseWorkerMessage } from "./messages.ts";
 * assert.equal(parseWorkerMessage('{"type":"hello","protocol":3}').type, "hello");
 * assert.throws(() => parseWorkerMessage('{"type":"gradient"}'), /unknown/);
 * ```
 */
export function parseWorkerMessage(text: string): WorkerMessage {
  const o = parseObject(text);
  switch (o.type) {
    case "hello":
      if (o.protocol !== EDGE_PROTOCOL) {
        throw new MessageError(
          `hello.protocol must be ${EDGE_PROTOCOL}, received ${JSON.stringify(o.protocol)}: ` +
            "this server speaks edge protocol " + EDGE_PROTOCOL + "; run the same dtrain " +
            "release on the worker",
        );
      }
      optional(o, "name", "string");
      optional(o, "fp16", "boolean");
      if (typeof o.name === "string" && o.name.length > 200) {
        throw new MessageError("hello.name is longer than 200 characters");
      }
      return o as WorkerMessage;
    case "ready":
      if (
        typeof o.backend !== "string" || typeof o.backendReason !== "string" ||
        typeof o.threads !== "number"
      ) {
        throw new MessageError("ready needs backend, backendReason (strings) and threads (number)");
      }
      return o as WorkerMessage;
    case "ping":
    case "pong":
    case "bye":
      return { type: o.type };
    default:
      throw new MessageError(`unknown control message type ${JSON.stringify(o.type)}`);
  }
}

/** Validates a message from the server. */
export function parseServerMessage(text: string): ServerMessage {
  const o = parseObject(text);
  switch (o.type) {
    case "welcome":
      if (o.protocol !== EDGE_PROTOCOL) {
        throw new MessageError(
          `the server speaks edge protocol ${
            JSON.stringify(o.protocol)
          }, this worker ${EDGE_PROTOCOL}`,
        );
      }
      for (const key of ["worker", "slotLength", "weightCount", "metricCount", "batchSize"]) {
        if (typeof o[key] !== "number") throw new MessageError(`welcome.${key} must be a number`);
      }
      if (!Array.isArray(o.xShape) || !Array.isArray(o.yShape)) {
        throw new MessageError("welcome.xShape and yShape must be arrays");
      }
      checkWelcomeColumns(o);
      return o as ServerMessage;
    case "end":
      return { type: "end", reason: String(o.reason ?? "") };
    case "error":
      return { type: "error", code: String(o.code ?? ""), message: String(o.message ?? "") };
    case "ping":
    case "pong":
      return { type: o.type };
    default:
      throw new MessageError(`unknown control message type ${JSON.stringify(o.type)}`);
  }
}
