/**
 * The hand-off between a host's replicas and its leader (the main thread)
 * inside a hierarchical all-reduce: when the replicas have summed the host's
 * share of a range, replica 0 posts it, and the leader sums that range across
 * hosts and writes the global sum back in place. Up to
 * {@linkcode HOST_LINK_QUEUE} ranges may be posted before the first is done,
 * so the replicas go on computing (the rest of a backward pass) while the
 * leader exchanges what is ready; ranges are summed in the order posted.
 *
 * Control (Int32, {@linkcode HOST_LINK_SLOTS} words):
 * `[request generation | done generation | 2 reserved | offset, length per queue slot]`;
 * generation g uses queue slot `g % HOST_LINK_QUEUE`. Every replica counts
 * its own requests, so all know which generation they wait for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BARRIER_SLOTS } from "./barrier.ts";
 * import { HOST_LINK_SLOTS, HostLink, serveHostLink } from "./host_link.ts";
 * const words = new Int32Array(new SharedArrayBuffer(4 * HOST_LINK_SLOTS));
 * const barrier = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * const stop = new AbortController();
 * const summed: number[][] = [];
 * // The leader serves requests until stopped; replicas post from their Workers.
 * const served = serveHostLink(words, (offset, length) => {
 *   summed.push([offset, length]);
 *   return Promise.resolve();
 * }, stop.signal);
 * const link = new HostLink(words, barrier, { leader: true });
 * link.post(10, 5);
 * link.post(0, 10);
 * assert.equal(link.pending, 2);
 * await new Promise((r) => setTimeout(r, 50)); // the leader serves both, in order
 * assert.deepEqual(summed, [[10, 5], [0, 10]]);
 * assert.equal(link.pending, 0);
 * stop.abort();
 * // A timer keeps the event loop alive while the leader's Atomics.waitAsync wakes.
 * const alive = setTimeout(() => {}, 1000);
 * await served;
 * clearTimeout(alive);
 * ```
 * @module
 */
import { CollectiveAbortedError, isAbortedShared } from "./barrier.ts";

/** Ranges a host link holds posted and not yet summed. */
export const HOST_LINK_QUEUE = 16;

const HEAD = 4;

/** Int32 words of a host link's control array. */
export const HOST_LINK_SLOTS = HEAD + 2 * HOST_LINK_QUEUE;

const REQUEST = 0;
const DONE = 1;
const slotOf = (generation: number) => HEAD + 2 * (generation % HOST_LINK_QUEUE);

/** A replica's side of the host link. */
export class HostLink {
  #words: Int32Array;
  #barrier: Int32Array;
  #leader: boolean;
  #heartbeat: number;
  #count = 0;

  /**
   * `words` is the link's control array, `barrier` the group's barrier
   * control (its abort flag ends a wait); the replica with `leader: true`
   * (replica 0) posts the requests. `heartbeat` is a word of `barrier` bumped
   * while waiting (-1 for none).
   */
  constructor(
    words: Int32Array,
    barrier: Int32Array,
    options: { leader: boolean; heartbeat?: number },
  ) {
    if (words.length < HOST_LINK_SLOTS) {
      throw new RangeError(
        `A host link needs ${HOST_LINK_SLOTS} Int32 words, received ${words.length}`,
      );
    }
    this.#words = words;
    this.#barrier = barrier;
    this.#leader = options.leader;
    this.#heartbeat = options.heartbeat ?? -1;
    this.#count = Atomics.load(words, DONE);
  }

  /** Requests this replica has made and the leader has not answered. */
  get pending(): number {
    return this.#count - Atomics.load(this.#words, DONE);
  }

  /**
   * Posts `[offset, offset + length)` to be summed across hosts (written by
   * the leader replica; every replica calls it, in the same order, once the
   * host's sum of the range is complete) and returns its generation for
   * {@linkcode HostLink.wait}. Blocks only while the queue is full.
   */
  post(offset: number, length: number): number {
    const w = this.#words;
    const generation = ++this.#count;
    if (generation - HOST_LINK_QUEUE > 0) this.wait(generation - HOST_LINK_QUEUE);
    if (this.#leader) {
      const at = slotOf(generation);
      Atomics.store(w, at, offset);
      Atomics.store(w, at + 1, length);
      Atomics.store(w, REQUEST, generation);
      Atomics.notify(w, REQUEST);
    }
    return generation;
  }

  /**
   * Blocks until the range of `generation` (and every one posted before it)
   * holds the global sum. Throws `CollectiveAbortedError` when the group is
   * aborted meanwhile.
   */
  wait(generation: number = this.#count): void {
    const w = this.#words;
    for (let i = 0; i < 2000; i++) {
      if (Atomics.load(w, DONE) >= generation) return;
    }
    for (;;) {
      const done = Atomics.load(w, DONE);
      if (done >= generation) return;
      if (isAbortedShared(this.#barrier)) throw new CollectiveAbortedError();
      Atomics.wait(w, DONE, done, 250);
      if (this.#heartbeat >= 0) Atomics.add(this.#barrier, this.#heartbeat, 1);
    }
  }

  /** {@linkcode HostLink.post} then {@linkcode HostLink.wait}: the range's global sum. */
  exchange(offset: number, length: number): void {
    this.wait(this.post(offset, length));
  }
}

/**
 * The leader's side: answers every request, in the order posted, with
 * `exchange(offset, length)` (which sums the range across hosts in place),
 * until `signal` aborts.
 * Resolves when stopped; rejects with the first error of `exchange` (the
 * caller then aborts the replica group, so no replica waits for ever).
 */
export async function serveHostLink(
  words: Int32Array,
  exchange: (offset: number, length: number) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  let served = Atomics.load(words, DONE);
  const wake = () => Atomics.notify(words, REQUEST);
  signal.addEventListener("abort", wake, { once: true });
  try {
    while (!signal.aborted) {
      const request = Atomics.load(words, REQUEST);
      if (request === served) {
        const wait = Atomics.waitAsync(words, REQUEST, served);
        if (wait.async) await wait.value;
        continue;
      }
      const next = served + 1;
      const at = slotOf(next);
      await exchange(Atomics.load(words, at), Atomics.load(words, at + 1));
      served = next;
      Atomics.store(words, DONE, served);
      Atomics.notify(words, DONE);
    }
  } finally {
    signal.removeEventListener("abort", wake);
  }
}
