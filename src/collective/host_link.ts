/**
 * The hand-off between a host's replicas and its leader (the main thread)
 * inside a hierarchical all-reduce: when the replicas have summed the host's
 * share of a range, replica 0 asks the leader to sum that range across hosts
 * and every replica waits until the leader has written the global sum back.
 *
 * Control (Int32, {@linkcode HOST_LINK_SLOTS} words):
 * `[request generation | done generation | offset | length]`. Every replica
 * counts its own requests, so all know which generation they wait for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BARRIER_SLOTS } from "./barrier.ts";
 * import { HOST_LINK_SLOTS, HostLink, serveHostLink } from "./host_link.ts";
 * const words = new Int32Array(new SharedArrayBuffer(4 * HOST_LINK_SLOTS));
 * const barrier = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * const stop = new AbortController();
 * // The leader serves requests until stopped; replicas call exchange() from their Workers.
 * const served = serveHostLink(words, () => Promise.resolve(), stop.signal);
 * assert.equal(new HostLink(words, barrier, { leader: true }).pending, 0);
 * stop.abort();
 * await served;
 * ```
 * @module
 */
import { CollectiveAbortedError, isAbortedShared } from "./barrier.ts";

/** Int32 words of a host link's control array. */
export const HOST_LINK_SLOTS = 4;

const REQUEST = 0;
const DONE = 1;
const OFFSET = 2;
const LENGTH = 3;

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

  /** Requests this replica has made and the leader has not answered (0 or 1). */
  get pending(): number {
    return this.#count - Atomics.load(this.#words, DONE);
  }

  /**
   * Asks for `[offset, offset + length)` to be summed across hosts (posted
   * by the leader replica; every replica calls it, after the host's sum of
   * the range is complete) and blocks until the global sum is written back.
   * Throws `CollectiveAbortedError` when the group is aborted meanwhile.
   */
  exchange(offset: number, length: number): void {
    const w = this.#words;
    const generation = ++this.#count;
    if (this.#leader) {
      Atomics.store(w, OFFSET, offset);
      Atomics.store(w, LENGTH, length);
      Atomics.store(w, REQUEST, generation);
      Atomics.notify(w, REQUEST);
    }
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
}

/**
 * The leader's side: answers every request with `exchange(offset, length)`
 * (which sums the range across hosts in place), until `signal` aborts.
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
      await exchange(Atomics.load(words, OFFSET), Atomics.load(words, LENGTH));
      served = request;
      Atomics.store(words, DONE, served);
      Atomics.notify(words, DONE);
    }
  } finally {
    signal.removeEventListener("abort", wake);
  }
}
