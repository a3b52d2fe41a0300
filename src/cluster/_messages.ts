// The control messages of the cluster protocol: one discriminated union
// (`ControlMessage`), its encoder, and the one parser that turns an arriving
// control frame (`unknown` JSON) into a member of the union or a FrameError.
// Private to src/cluster.
import { allocFrame, type Frame, FrameType } from "./_frames.ts";
import {
  ClusterAuthError,
  ClusterConfigMismatchError,
  ClusterJoinRefusedError,
  ClusterTimeoutError,
  type ConfigMismatch,
  FrameError,
  PeerLostError,
} from "./errors.ts";

/** A config value: flat records only, compared with `===`. */
export type ConfigValue = string | number | boolean | null;
/** The record every node sends; all nodes must agree field by field. */
export type NodeConfig = Record<string, ConfigValue>;

/** Why a handshake is made: joining the coordinator or linking ring neighbours. */
export type Purpose = "join" | "ring";

/** Every message that crosses a cluster socket as JSON. */
export type ControlMessage =
  /** client -> server: who I am, plus my nonce. */
  | { type: "hello"; proto: 1; purpose: Purpose; rank: number; nodes: number; nonce: string }
  /** server -> client: its nonce and its proof over both nonces. */
  | { type: "challenge"; nonce: string; proof: string }
  /** client -> server: the client's proof over both nonces. */
  | { type: "auth"; proof: string }
  /** server -> client: authenticated. */
  | { type: "welcome" }
  /** node -> coordinator: where my data port is and my config. */
  | { type: "join"; dataHost: string | null; dataPort: number; config: NodeConfig }
  /** coordinator -> node: every node's data address, by rank. */
  | { type: "peers"; peers: { rank: number; hostname: string; port: number }[] }
  /** node -> coordinator: my ring links are up. */
  | { type: "ready" }
  /** coordinator -> node: every ring link is up; the group is formed. */
  | { type: "go" }
  /** ring neighbour -> ring neighbour: closing; nothing follows on this link. */
  | { type: "bye" }
  /** ring neighbour -> ring neighbour: the group failed because `rank` was lost. */
  | { type: "abort"; rank: number; reason: string }
  /** either way, then close: a named error for the receiver to raise. */
  | {
    type: "error";
    name: string;
    message: string;
    rank?: number;
    reason?: string;
    mismatches?: ConfigMismatch[];
    timeoutMs?: number;
  };

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_CONFIG_FIELDS = 256;
const MAX_STRING = 4096;

/** Encodes one control message as a frame. */
export function controlFrame(message: ControlMessage): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(message));
  const { frame, payload } = allocFrame(FrameType.control, bytes.byteLength);
  payload.set(bytes);
  return frame;
}

function bad(what: string, value: unknown): never {
  const shown = JSON.stringify(value) ?? String(value);
  throw new FrameError(
    `Invalid control message: expected ${what}, received ${shown.slice(0, 200)}`,
  );
}

function isRank(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 1 << 20;
}

function isText(v: unknown): v is string {
  return typeof v === "string" && v.length <= MAX_STRING;
}

function isConfig(v: unknown): v is NodeConfig {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const entries = Object.entries(v);
  return entries.length <= MAX_CONFIG_FIELDS &&
    entries.every(([k, x]) =>
      k.length <= 256 &&
      (x === null || typeof x === "boolean" || (typeof x === "number" && Number.isFinite(x)) ||
        isText(x))
    );
}

/** Checks `value` is a flat config record; `TypeError` naming the bad field otherwise. */
export function checkConfig(value: unknown): NodeConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`config must be a flat record, received ${JSON.stringify(value)}`);
  }
  for (const [k, x] of Object.entries(value)) {
    if (!isConfig({ [k]: x })) {
      throw new TypeError(
        `config.${k} must be a string, finite number, boolean or null, received ` +
          `${JSON.stringify(x) ?? String(x)}`,
      );
    }
  }
  if (!isConfig(value)) {
    throw new RangeError(
      `config must have at most ${MAX_CONFIG_FIELDS} fields, received ${Object.keys(value).length}`,
    );
  }
  return value;
}

/** Parses an arriving frame into a {@linkcode ControlMessage}; FrameError if it is none. */
export function parseControl(frame: Frame): ControlMessage {
  if (frame.type !== FrameType.control) bad("a control frame (type 1)", `type ${frame.type}`);
  let m: unknown;
  try {
    m = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(frame.payload));
  } catch {
    bad("UTF-8 JSON", `${frame.payload.byteLength} undecodable bytes`);
  }
  if (typeof m !== "object" || m === null) bad("an object", m);
  const o = m as Record<string, unknown>;
  switch (o.type) {
    case "hello":
      if (
        o.proto === 1 && (o.purpose === "join" || o.purpose === "ring") && isRank(o.rank) &&
        isRank(o.nodes) && typeof o.nonce === "string" && HEX64.test(o.nonce)
      ) {
        return {
          type: "hello",
          proto: 1,
          purpose: o.purpose,
          rank: o.rank,
          nodes: o.nodes,
          nonce: o.nonce,
        };
      }
      break;
    case "challenge":
      if (
        typeof o.nonce === "string" && HEX64.test(o.nonce) && typeof o.proof === "string" &&
        HEX64.test(o.proof)
      ) return { type: "challenge", nonce: o.nonce, proof: o.proof };
      break;
    case "auth":
      if (typeof o.proof === "string" && HEX64.test(o.proof)) {
        return { type: "auth", proof: o.proof };
      }
      break;
    case "welcome":
    case "ready":
    case "go":
    case "bye":
      return { type: o.type };
    case "join":
      if (
        (o.dataHost === null || (isText(o.dataHost) && o.dataHost.length > 0)) &&
        Number.isSafeInteger(o.dataPort) && (o.dataPort as number) > 0 &&
        (o.dataPort as number) < 65536 && isConfig(o.config)
      ) {
        return {
          type: "join",
          dataHost: o.dataHost as string | null,
          dataPort: o.dataPort as number,
          config: o.config,
        };
      }
      break;
    case "peers":
      if (
        Array.isArray(o.peers) && o.peers.length <= 1 << 20 &&
        o.peers.every((p: Record<string, unknown>) =>
          typeof p === "object" && p !== null && isRank(p.rank) && isText(p.hostname) &&
          Number.isSafeInteger(p.port) && (p.port as number) > 0 && (p.port as number) < 65536
        )
      ) {
        return {
          type: "peers",
          peers: (o.peers as { rank: number; hostname: string; port: number }[]).map((p) => ({
            rank: p.rank,
            hostname: p.hostname,
            port: p.port,
          })),
        };
      }
      break;
    case "abort":
      if (isRank(o.rank) && isText(o.reason)) {
        return { type: "abort", rank: o.rank, reason: o.reason };
      }
      break;
    case "error":
      if (isText(o.name) && isText(o.message)) {
        const e: ControlMessage = { type: "error", name: o.name, message: o.message };
        if (isRank(o.rank)) e.rank = o.rank;
        if (isText(o.reason)) e.reason = o.reason;
        if (Number.isFinite(o.timeoutMs)) e.timeoutMs = o.timeoutMs as number;
        if (Array.isArray(o.mismatches) && o.mismatches.length > 0) {
          e.mismatches = (o.mismatches as Record<string, unknown>[]).filter((x) =>
            typeof x === "object" && x !== null && isText(x.field) && isRank(x.expectedRank) &&
            isRank(x.receivedRank)
          ).map((x) => ({
            field: x.field as string,
            expectedRank: x.expectedRank as number,
            expected: x.expected,
            receivedRank: x.receivedRank as number,
            received: x.received,
          }));
        }
        return e;
      }
      break;
  }
  return bad("a known control message (hello, challenge, auth, ...)", m);
}

/** The error message that makes the receiver raise `error`. */
export function errorMessage(error: Error): ControlMessage {
  const m: ControlMessage & { type: "error" } = {
    type: "error",
    name: error.name,
    message: error.message,
  };
  if (error instanceof PeerLostError) {
    m.rank = error.rank;
    m.reason = error.reason;
  } else if (error instanceof ClusterJoinRefusedError) {
    m.rank = error.rank;
    m.reason = error.message.replace(/^Coordinator refused rank \d+: /, "");
  } else if (error instanceof ClusterConfigMismatchError) {
    m.mismatches = [...error.mismatches];
  } else if (error instanceof ClusterTimeoutError) {
    m.timeoutMs = error.timeoutMs;
    m.reason = error.message.replace(/^.* timed out after \d+ ms: /, "");
  }
  return m;
}

/** Rebuilds the named error an `error` message carries. */
export function errorFrom(m: ControlMessage & { type: "error" }): Error {
  switch (m.name) {
    case "PeerLostError":
      return new PeerLostError(m.rank ?? 0, m.reason ?? m.message);
    case "ClusterJoinRefusedError":
      return new ClusterJoinRefusedError(m.rank ?? 0, m.reason ?? m.message);
    case "ClusterConfigMismatchError":
      if (m.mismatches?.length) return new ClusterConfigMismatchError(m.mismatches);
      break;
    case "ClusterAuthError":
      return new ClusterAuthError(m.message);
    case "ClusterTimeoutError":
      return new ClusterTimeoutError("rendezvous", m.timeoutMs ?? 0, m.reason ?? m.message);
  }
  return new FrameError(`Peer reported ${m.name}: ${m.message}`);
}
