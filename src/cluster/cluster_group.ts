/**
 * `ClusterGroup`: one node's handle on a formed multi-host group (made by
 * `rendezvous()`). It owns the two authenticated ring links (send to rank+1,
 * receive from rank-1), the heartbeat/watchdog timer that detects a silent
 * peer, the failure state (first failure wins, is relayed to the neighbours
 * as an `abort`, and closes every socket), and `allReduce()`.
 *
 * @module
 */
import {
  allocFrame,
  BufferPool,
  FRAME_HEADER_BYTES,
  type FrameConn,
  FrameType,
} from "./_frames.ts";
import { controlFrame, parseControl } from "./_messages.ts";
import { ClusterTimeoutError, FrameError, PeerLostError } from "./errors.ts";
import {
  type AllReduceOptions,
  type AllReduceStats,
  noStats,
  type Ring,
  ringAllReduce,
} from "./ring_all_reduce.ts";

/** Options of a {@linkcode ClusterGroup} (given to `rendezvous()`). */
export interface ClusterGroupOptions {
  /**
   * A neighbour silent (no data, no heartbeat) for longer than this is lost:
   * every node's pending and later `allReduce` calls reject with
   * `PeerLostError`. Heartbeats go out every quarter of it. The thread that
   * owns the group must not block its event loop this long.
   * @default 30000
   */
  peerTimeoutMs?: number;
  /** Longest wait for the next all-reduce chunk (a peer slow to call `allReduce`). @default 300000 */
  collectiveTimeoutMs?: number;
  /** Wire bytes per all-reduce chunk (sub-chunks pipeline sending and receiving). @default 1048576 */
  chunkBytes?: number;
}

/** The resolved group options. */
export type ResolvedGroupOptions = Required<ClusterGroupOptions>;

/** Checks and fills {@linkcode ClusterGroupOptions}. */
export function groupOptions(o: ClusterGroupOptions): ResolvedGroupOptions {
  const r = {
    peerTimeoutMs: o.peerTimeoutMs ?? 30000,
    collectiveTimeoutMs: o.collectiveTimeoutMs ?? 300000,
    chunkBytes: o.chunkBytes ?? 1 << 20,
  };
  for (const [k, v] of Object.entries(r)) {
    const min = k === "chunkBytes" ? 64 : 1;
    const max = k === "chunkBytes" ? 1 << 26 : 2 ** 31 - 1;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new RangeError(`${k} must be an integer in ${min}..${max}, received ${v}`);
    }
  }
  return r;
}

/**
 * One node of a formed cluster. `allReduce` sums a vector in place across all
 * nodes (bit-identical everywhere). A lost peer fails the group for good:
 * every pending and later call rejects with the same `PeerLostError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rendezvous } from "./rendezvous.ts";
 * // One node is a cluster of one: no sockets, allReduce is a no-op.
 * await using group = await rendezvous({ nodes: 1, rank: 0, coordinator: "127.0.0.1:1" });
 * const grad = new Float32Array([1, 2]);
 * await group.allReduce(grad);
 * assert.deepEqual([...grad], [1, 2]);
 * assert.equal(group.nodes, 1);
 * ```
 */
export class ClusterGroup implements AsyncDisposable {
  /** This node's rank. */
  readonly rank: number;
  /** Number of nodes. */
  readonly nodes: number;
  #next: FrameConn | undefined;
  #prev: FrameConn | undefined;
  #sendPool = new BufferPool();
  #options: ResolvedGroupOptions;
  #failure: Error | undefined;
  #closing: Promise<void>[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #sequence = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #wakeClose: (() => void) | undefined;

  /**
   * Made by `rendezvous()`: `next` is the authenticated link to rank+1,
   * `prev` the one from rank-1 (both absent when `nodes` is 1).
   */
  constructor(
    ring: { rank: number; nodes: number; next?: FrameConn; prev?: FrameConn },
    options: ClusterGroupOptions = {},
  ) {
    this.rank = ring.rank;
    this.nodes = ring.nodes;
    this.#options = groupOptions(options);
    this.#next = ring.next;
    this.#prev = ring.prev;
    const links = this.#links();
    if (links.length === 0) return;
    for (const link of links) {
      link.intercept = (frame) => {
        try {
          const m = parseControl(frame);
          if (m.type === "bye") {
            // The neighbour finished: what it sent before is still delivered.
            link.end(new PeerLostError(link.peerRank!, "closed its group"));
            this.#wakeClose?.();
            return true;
          }
          if (m.type !== "abort") {
            throw new FrameError(
              `Expected only "abort" control messages on a ring link, received "${m.type}"`,
            );
          }
          this.#fail(
            new PeerLostError(m.rank, `${m.reason} (reported by rank ${link.peerRank})`),
            link,
          );
        } catch (e) {
          this.#fail(e as Error, link);
        }
        return true;
      };
      // After its goodbye a neighbour's EOF is expected; a call still needing it fails on its own.
      link.onFail((e) => {
        if (!link.ended) this.#fail(e, link);
        this.#wakeClose?.();
      });
    }
    // A link that had already failed failed the group above: nothing to watch.
    if (this.#failure) return;
    const tick = Math.max(1, Math.floor(this.#options.peerTimeoutMs / 4));
    this.#timer = setInterval(() => this.#watch(tick), tick);
  }

  /** The failure that ended the group, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Sums `data` in place across every node (ring reduce-scatter + all-gather),
   * bit-identical on every node. Calls are serialized; every node must make the
   * same calls in the same order with the same length and compression.
   * Rejects with `PeerLostError` when a node is lost (the group is then closed),
   * `ClusterTimeoutError` when rank-1 sends nothing for `timeoutMs`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { rendezvous } from "./rendezvous.ts";
   * const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * const coordinator = `127.0.0.1:${probe.addr.port}`;
   * probe.close();
   * const join = (rank: number) =>
   *   rendezvous({ nodes: 2, rank, coordinator, token: "s3cret" }, { hostname: "127.0.0.1" });
   * const [a, b] = await Promise.all([join(0), join(1)]);
   * const x = new Float32Array([1, 2, 3]);
   * const y = new Float32Array([4, 5, 6]);
   * await Promise.all([a.allReduce(x), b.allReduce(y)]);
   * assert.deepEqual([...x], [5, 7, 9]);
   * assert.deepEqual([...y], [5, 7, 9]);
   * await Promise.all([a.close(), b.close()]);
   * ```
   */
  allReduce(data: Float32Array, options: AllReduceOptions = {}): Promise<AllReduceStats> {
    const timeoutMs = options.timeoutMs ?? this.#options.collectiveTimeoutMs;
    const run = async (): Promise<AllReduceStats> => {
      if (this.#failure) throw this.#failure;
      if (this.nodes === 1) {
        // Same argument checks as the ring, no work.
        await ringAllReduce(this.#ring(timeoutMs), data, { ...options, timeoutMs, chunkBytes: 64 });
        return noStats();
      }
      try {
        return await ringAllReduce(this.#ring(timeoutMs), data, {
          ...options,
          timeoutMs,
          chunkBytes: this.#options.chunkBytes,
          sequence: this.#sequence++,
        });
      } catch (e) {
        if (e instanceof TypeError || e instanceof RangeError) throw e;
        this.#fail(e as Error);
        throw this.#failure;
      }
    };
    const p = this.#chain.then(run);
    this.#chain = p.catch(() => {});
    return p;
  }

  /**
   * Says goodbye to both neighbours, waits (at most `min(peerTimeoutMs, 10 s)`)
   * for theirs so that no chunk still in flight to a slower neighbour is cut
   * off, then closes the links and stops the heartbeats. Waits for a running
   * `allReduce` first. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.push(this.#goodbye());
    }
    await Promise.all(this.#closing);
  }

  async #goodbye(): Promise<void> {
    await this.#chain;
    const links = this.#links();
    if (!this.#failure && links.length > 0) {
      this.#failure = new FrameError(`Cluster group of rank ${this.rank} is closed`);
      const bye = controlFrame({ type: "bye" });
      for (const link of links) link.send(bye).catch(() => {});
      const deadline = performance.now() + Math.min(this.#options.peerTimeoutMs, 10000);
      while (links.some((l) => !l.ended && !l.failure) && performance.now() < deadline) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((r) => {
          this.#wakeClose = r;
          timer = setTimeout(r, Math.max(1, deadline - performance.now()));
        });
        clearTimeout(timer);
      }
      this.#wakeClose = undefined;
    }
    this.#stop();
    this.#failure ??= new FrameError(`Cluster group of rank ${this.rank} is closed`);
    await Promise.all(links.map((l) => l.close()));
  }

  /** Same as {@linkcode ClusterGroup.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #links(): FrameConn[] {
    return [...new Set([this.#next, this.#prev].filter((l): l is FrameConn => l !== undefined))];
  }

  #ring(timeoutMs: number): Ring {
    const next = this.#next;
    const prev = this.#prev;
    return {
      rank: this.rank,
      nodes: this.nodes,
      frameOverhead: FRAME_HEADER_BYTES,
      payload: (bytes) => allocFrame(FrameType.data, bytes, this.#sendPool).payload,
      send: async (payload) => {
        const frame = new Uint8Array(
          payload.buffer,
          payload.byteOffset - FRAME_HEADER_BYTES,
          payload.byteLength + FRAME_HEADER_BYTES,
        );
        await next!.send(frame);
        this.#sendPool.give(new Uint8Array(frame.buffer)); // written: reusable
      },
      release: (payload) => prev!.recycle(payload),
      receive: async () => {
        try {
          return (await prev!.next(timeoutMs, "allReduce")).payload;
        } catch (e) {
          if (e instanceof ClusterTimeoutError) {
            throw new ClusterTimeoutError(
              "allReduce",
              timeoutMs,
              `no chunk from rank ${prev!.peerRank}; is every node calling allReduce alike?`,
            );
          }
          throw e;
        }
      },
      fail: (e) => this.#fail(e),
    };
  }

  #watch(tick: number): void {
    const now = performance.now();
    for (const link of this.#links()) {
      if (link.ended) continue;
      link.heartbeat(tick);
      const silent = now - link.lastReceivedAt;
      if (silent > this.#options.peerTimeoutMs) {
        this.#fail(
          new PeerLostError(
            link.peerRank!,
            `silent for ${Math.round(silent)} ms (peerTimeoutMs ${this.#options.peerTimeoutMs})`,
          ),
          link,
        );
        return;
      }
    }
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** First failure wins: tell the neighbours (except `source`) who was lost, then close. */
  #fail(error: Error, source?: FrameConn): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#stop();
    const lost = error instanceof PeerLostError
      ? error
      : new PeerLostError(source?.peerRank ?? this.rank, `${error.name}: ${error.message}`);
    const abort = controlFrame({ type: "abort", rank: lost.rank, reason: lost.reason });
    for (const link of this.#links()) {
      if (link === source || link.failure) {
        this.#closing.push(link.close());
        continue;
      }
      // Best effort, bounded: a stalled neighbour must not keep the socket open.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const sent = Promise.race([
        link.send(abort).catch(() => {}),
        new Promise<void>((r) => timer = setTimeout(r, 500)),
      ]).finally(() => clearTimeout(timer));
      // Then read on until the neighbour, told, closes its end (bounded): closing with its
      // data unread resets the connection, and its next write would blame this node.
      this.#closing.push(sent.then(() => drained(link)).then(() => link.close()));
    }
  }
}

/** How long a failed group keeps reading from a neighbour it told, waiting for its close. */
const DRAIN_MS = 500;

/** Resolves once `link`'s reader has ended (the peer closed), or after {@linkcode DRAIN_MS}. */
function drained(link: FrameConn): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    link.closed(),
    new Promise<void>((r) => timer = setTimeout(r, DRAIN_MS)),
  ]).finally(() => clearTimeout(timer));
}
