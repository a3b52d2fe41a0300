// Length-prefixed binary frames over one Deno.Conn (TCP or TLS). Owns the wire
// header, the size bound, the background reader (partial reads, heartbeats,
// truncation), serialized writes and bounded waits. Private to src/cluster.
//
// Header, 12 bytes, little-endian:
//   u32 magic "DTRN" (0x4454524e) | u8 version (1) | u8 type | u16 reserved (0) | u32 length
// followed by `length` payload bytes. Types: 1 control (UTF-8 JSON, small),
// 2 data (raw bytes), 3 heartbeat (empty).
import { ClusterTimeoutError, FrameError, PeerLostError } from "./errors.ts";

/** "DTRN" read as a little-endian u32. */
export const FRAME_MAGIC = 0x4e525444;
/** Wire version; a peer with another version is refused. */
export const FRAME_VERSION = 1;
/** Bytes of the frame header. */
export const FRAME_HEADER_BYTES = 12;
/** Frame types. */
export const FrameType = { control: 1, data: 2, heartbeat: 3 } as const;
/** A frame type number. */
export type FrameTypeId = typeof FrameType[keyof typeof FrameType];
/** Control frames (JSON) larger than this are refused whatever `maxFrameBytes` says. */
export const MAX_CONTROL_BYTES = 64 * 1024;

/** One received frame. */
export interface Frame {
  type: FrameTypeId;
  payload: Uint8Array;
}

const SCRATCH_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Reusable byte buffers of exact sizes, so that the large frames of every
 * all-reduce step are not allocated (and their fresh pages faulted in) each
 * time. Holds at most `perSize` buffers of each of at most 32 sizes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BufferPool } from "./_frames.ts";
 * const pool = new BufferPool();
 * const a = pool.take(1024);
 * pool.give(a);
 * assert.equal(pool.take(1024), a, "the same buffer again");
 * assert.notEqual(pool.take(1024), a, "a new one while the first is taken");
 * ```
 */
export class BufferPool {
  #free = new Map<number, Uint8Array[]>();
  #perSize: number;

  constructor(perSize = 4) {
    this.#perSize = perSize;
  }

  /** A buffer of `bytes` (contents undefined: the caller overwrites all of it). */
  take(bytes: number): Uint8Array {
    return this.#free.get(bytes)?.pop() ?? new Uint8Array(bytes);
  }

  /** Hands back a whole buffer from {@linkcode BufferPool.take} that nothing uses any more. */
  give(buffer: Uint8Array): void {
    if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) return;
    let list = this.#free.get(buffer.byteLength);
    if (list === undefined) {
      if (this.#free.size >= 32) this.#free.clear();
      list = [];
      this.#free.set(buffer.byteLength, list);
    }
    if (list.length < this.#perSize) list.push(buffer);
  }
}

/**
 * Bytes before a frame in the buffer {@linkcode allocFrame} takes, so that its
 * payload starts 8-aligned in that buffer, as a received payload does (read
 * into a buffer of its own). V8 copies between a shared and a plain buffer
 * (all-reduce chunks to and from group memory) 6-8x slower when the two
 * addresses differ modulo 8.
 */
const FRAME_LEAD_BYTES = (8 - (FRAME_HEADER_BYTES % 8)) % 8;

/**
 * Allocates one frame with its header written (from `pool` when given; the
 * frame is a view from byte `FRAME_LEAD_BYTES` of the buffer taken,
 * which goes back whole); fill `payload`, then send `frame`.
 */
export function allocFrame(
  type: FrameTypeId,
  payloadBytes: number,
  pool?: BufferPool,
): { frame: Uint8Array; payload: Uint8Array } {
  const bytes = FRAME_HEADER_BYTES + payloadBytes;
  const whole = pool?.take(FRAME_LEAD_BYTES + bytes) ?? new Uint8Array(FRAME_LEAD_BYTES + bytes);
  const frame = whole.subarray(FRAME_LEAD_BYTES);
  const view = new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_BYTES);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, type);
  view.setUint16(6, 0, true);
  view.setUint32(8, payloadBytes, true);
  return { frame, payload: frame.subarray(FRAME_HEADER_BYTES) };
}

/** Encodes a whole frame around a copy of `payload`. */
export function encodeFrame(type: FrameTypeId, payload: Uint8Array = EMPTY): Uint8Array {
  const { frame, payload: body } = allocFrame(type, payload.byteLength);
  body.set(payload);
  return frame;
}

const HEARTBEAT = encodeFrame(FrameType.heartbeat);

/** Options of a {@linkcode FrameConn}. */
export interface FrameConnOptions {
  /** Largest payload accepted; a larger header closes the connection. @default MAX_CONTROL_BYTES */
  maxFrameBytes?: number;
  /** Peer's rank when known: a lost connection then fails with `PeerLostError`. @default unknown */
  peerRank?: number;
  /** How the peer is named in errors. @default the remote address */
  label?: string;
}

/**
 * A framed connection. A background reader parses frames as bytes arrive;
 * {@linkcode FrameConn.next} takes them in order with a timeout. After a
 * failure (EOF, bad frame, write error, local close) the frames that arrived
 * before it are still delivered, then every wait rejects with the failure.
 */
export class FrameConn {
  /** Largest payload accepted; may be raised once the peer is authenticated. */
  maxFrameBytes: number;
  /** Rank of the peer once known; lost connections then fail with `PeerLostError`. */
  peerRank: number | undefined;
  /** `performance.now()` of the last bytes received (any frame, partial reads included). */
  lastReceivedAt: number;
  /** `performance.now()` of the last completed write. */
  lastSentAt: number;
  /** How the peer is named in errors. */
  readonly label: string;
  /** Sees every control frame first, in the reader; returning `true` consumes it. */
  intercept: ((frame: Frame) => boolean) | undefined;
  #conn: Deno.Conn;
  #scratch = new Uint8Array(SCRATCH_BYTES);
  #start = 0;
  #end = 0;
  #queue: Frame[] = [];
  #waiters: { resolve: (f: Frame) => void; reject: (e: Error) => void }[] = [];
  #failure: Error | undefined;
  #ended: Error | undefined;
  #writing: Promise<void> = Promise.resolve();
  #reader: Promise<void>;
  #onFail: ((e: Error) => void)[] = [];
  #pool = new BufferPool();

  constructor(conn: Deno.Conn, options: FrameConnOptions = {}) {
    this.#conn = conn;
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_CONTROL_BYTES;
    this.peerRank = options.peerRank;
    let addr = "peer";
    try {
      const a = conn.remoteAddr as Deno.NetAddr;
      addr = a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
    } catch { /* address unavailable */ }
    this.label = options.label ?? addr;
    this.lastReceivedAt = this.lastSentAt = performance.now();
    this.#reader = this.#readLoop();
  }

  /** The remote host as the socket sees it. */
  get remoteHostname(): string {
    return (this.#conn.remoteAddr as Deno.NetAddr).hostname;
  }

  /** Set by {@linkcode FrameConn.end}: the peer said nothing more follows. */
  get ended(): Error | undefined {
    return this.#ended;
  }

  /**
   * Marks the end of the peer's stream (it said goodbye) without closing the
   * socket: frames already received are still delivered, then waits reject with `error`.
   */
  end(error: Error): void {
    if (this.#ended || this.#failure) return;
    this.#ended = error;
    if (this.#queue.length === 0) { for (const w of this.#waiters.splice(0)) w.reject(error); }
  }

  /** The failure that ended this connection, if it has ended. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Calls `fn` once when the connection fails or closes (at once if it already has). */
  onFail(fn: (e: Error) => void): void {
    if (this.#failure) fn(this.#failure);
    else this.#onFail.push(fn);
  }

  /** The next frame (heartbeats are consumed silently), waiting at most `timeoutMs`. */
  next(timeoutMs: number, what = "frame"): Promise<Frame> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new ClusterTimeoutError(what, timeoutMs, `nothing arrived from ${this.label}`));
      }, timeoutMs);
      const waiter = {
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Writes one encoded frame (see {@linkcode allocFrame}); writes are serialized. */
  send(frame: Uint8Array): Promise<void> {
    const run = async () => {
      if (this.#failure) throw this.#failure;
      try {
        for (let off = 0; off < frame.byteLength;) {
          off += await this.#conn.write(frame.subarray(off));
        }
        this.lastSentAt = performance.now();
      } catch (e) {
        this.#fail(this.#lost(`write failed: ${(e as Error).message}`, e));
        throw this.#failure;
      }
    };
    const p = this.#writing.then(run);
    this.#writing = p.catch(() => {});
    return p;
  }

  /**
   * Hands back the payload of a received data frame once nothing reads it
   * any more, so the next frame of its size is read into it.
   */
  recycle(payload: Uint8Array): void {
    if (payload.byteLength >= SCRATCH_BYTES) this.#pool.give(payload);
  }

  /** Sends a heartbeat unless a write is already queued or happened within `idleMs`. */
  heartbeat(idleMs: number): void {
    if (this.#failure || performance.now() - this.lastSentAt < idleMs) return;
    this.lastSentAt = performance.now(); // one heartbeat per idle period even while blocked
    this.send(HEARTBEAT).catch(() => {});
  }

  /** Fails the connection with `error` (delivered to waiters) and closes the socket. */
  fail(error: Error): void {
    this.#fail(error);
  }

  /** Closes the socket; waiters reject, and `closed()` resolves once the reader stopped. */
  close(): Promise<void> {
    this.#fail(new FrameError(`Connection to ${this.label} closed locally`));
    return this.closed();
  }

  /** Resolves when the background reader has stopped (after a failure or close). */
  async closed(): Promise<void> {
    await this.#reader;
    await this.#writing;
  }

  #lost(reason: string, cause?: unknown): Error {
    return this.peerRank === undefined
      ? new FrameError(`Connection to ${this.label} lost before it identified itself: ${reason}`, {
        cause,
      })
      : new PeerLostError(this.peerRank, reason, { cause });
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    for (const w of this.#waiters.splice(0)) w.reject(error);
    for (const fn of this.#onFail.splice(0)) fn(error);
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#failure) {
        const header = await this.#readExact(FRAME_HEADER_BYTES, true);
        if (header === null) {
          this.#fail(this.#lost("connection closed by the peer"));
          return;
        }
        const view = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES);
        const magic = view.getUint32(0, true);
        if (magic !== FRAME_MAGIC) {
          throw new FrameError(
            `Bad frame magic from ${this.label}: expected 0x${FRAME_MAGIC.toString(16)}, ` +
              `received 0x${magic.toString(16).padStart(8, "0")}`,
          );
        }
        const version = view.getUint8(4);
        if (version !== FRAME_VERSION) {
          throw new FrameError(
            `Unsupported frame version from ${this.label}: expected ${FRAME_VERSION}, received ${version}`,
          );
        }
        const type = view.getUint8(5);
        if (type !== FrameType.control && type !== FrameType.data && type !== FrameType.heartbeat) {
          throw new FrameError(
            `Unknown frame type from ${this.label}: expected 1, 2 or 3, received ${type}`,
          );
        }
        const length = view.getUint32(8, true);
        const limit = type === FrameType.control
          ? Math.min(MAX_CONTROL_BYTES, this.maxFrameBytes)
          : type === FrameType.heartbeat
          ? 0
          : this.maxFrameBytes;
        if (length > limit) {
          throw new FrameError(
            `Frame from ${this.label} too large: expected at most ${limit} payload bytes for ` +
              `type ${type}, received a header announcing ${length}`,
          );
        }
        const payload = length === 0 ? EMPTY : (await this.#readExact(length, false))!;
        if (type === FrameType.heartbeat) continue;
        const frame: Frame = { type, payload };
        if (type === FrameType.control && this.intercept?.(frame)) continue;
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(frame);
        else this.#queue.push(frame);
      }
    } catch (e) {
      this.#fail(
        e instanceof FrameError || e instanceof PeerLostError
          ? e
          : this.#lost(`read failed: ${(e as Error).message}`, e),
      );
    }
  }

  /** Reads exactly `n` bytes; `null` on a clean EOF before the first byte when `eofOk`. */
  async #readExact(n: number, eofOk: boolean): Promise<Uint8Array | null> {
    const buffered = this.#end - this.#start;
    if (buffered >= n) {
      const out = this.#scratch.slice(this.#start, this.#start + n);
      this.#start += n;
      return out;
    }
    const out = n >= SCRATCH_BYTES ? this.#pool.take(n) : new Uint8Array(n);
    out.set(this.#scratch.subarray(this.#start, this.#end));
    let filled = buffered;
    this.#start = this.#end = 0;
    while (filled < n) {
      const direct = n - filled >= SCRATCH_BYTES;
      const got = await this.#conn.read(direct ? out.subarray(filled) : this.#scratch);
      if (this.#failure) throw this.#failure;
      if (got === null) {
        if (filled === 0 && eofOk) return null;
        const msg = `Truncated frame from ${this.label}: expected ${n} bytes, ` +
          `received ${filled} before EOF`;
        throw this.peerRank === undefined ? new FrameError(msg) : this.#lost(msg);
      }
      this.lastReceivedAt = performance.now();
      if (direct) {
        filled += got;
      } else {
        const take = Math.min(got, n - filled);
        out.set(this.#scratch.subarray(0, take), filled);
        filled += take;
        this.#start = take;
        this.#end = got;
      }
    }
    return out;
  }
}
