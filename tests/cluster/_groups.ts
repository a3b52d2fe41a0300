// Test helpers: N rendezvous() calls in this process on 127.0.0.1, an
// in-memory ring for the algorithm alone, and the ring-order oracle.
import { rendezvous, type RendezvousOptions } from "../../src/cluster/rendezvous.ts";
import type { ClusterGroup } from "../../src/cluster/cluster_group.ts";
import type { Ring } from "../../src/cluster/ring_all_reduce.ts";
import { freePort } from "./_loopback.ts";

/** Forms `nodes` groups on loopback; `order` is the start order of the ranks. */
export async function formGroups(
  nodes: number,
  options: RendezvousOptions & { token?: string; order?: number[]; gapMs?: number } = {},
): Promise<ClusterGroup[]> {
  const { token = "test-token", order = [...Array(nodes).keys()], gapMs = 0, ...rest } = options;
  const coordinator = `127.0.0.1:${freePort()}`;
  const joins: Promise<ClusterGroup>[] = new Array(nodes);
  for (const rank of order) {
    joins[rank] = rendezvous({ nodes, rank, coordinator, token }, {
      hostname: "127.0.0.1",
      rendezvousTimeoutMs: 20000,
      ...rest,
    });
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  const settled = await Promise.allSettled(joins);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(
      settled.map((s) => s.status === "fulfilled" ? s.value.close() : Promise.resolve()),
    );
    const reasons = settled.map((s, r) => s.status === "rejected" ? `rank ${r}: ${s.reason}` : "");
    throw new Error(`formGroups failed: ${reasons.filter(Boolean).join("; ")}`, {
      cause: (failed as PromiseRejectedResult).reason,
    });
  }
  return settled.map((s) => (s as PromiseFulfilledResult<ClusterGroup>).value);
}

class Channel {
  #queue: Uint8Array[] = [];
  #waiter: { resolve: (p: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;
  push(p: Uint8Array) {
    if (this.#waiter) {
      this.#waiter.resolve(p);
      this.#waiter = undefined;
    } else this.#queue.push(p);
  }
  take(): Promise<Uint8Array> {
    const p = this.#queue.shift();
    if (p) return Promise.resolve(p);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiter = { resolve, reject });
  }
  fail(e: Error) {
    this.#failure ??= e;
    this.#waiter?.reject(e);
    this.#waiter = undefined;
  }
}

/** `nodes` in-memory rings (no sockets); failing one fails every channel. */
export function memoryRings(nodes: number): { rings: Ring[]; fails: Error[] } {
  const inbox = Array.from({ length: nodes }, () => new Channel());
  const fails: Error[] = [];
  const rings = inbox.map((_, rank): Ring => ({
    rank,
    nodes,
    frameOverhead: 12,
    payload: (n) => new Uint8Array(n),
    send: (p) => {
      inbox[(rank + 1) % nodes]!.push(p);
      return Promise.resolve();
    },
    receive: () => inbox[rank]!.take(),
    fail: (e) => {
      fails.push(e);
      for (const c of inbox) c.fail(e);
    },
  }));
  return { rings, fails };
}

/**
 * The sum the ring computes, in its order: segment s (owned by rank s) starts
 * at rank s+1 and adds each next rank's value, rank s last, in float32; with
 * fp16 each partial sum is rounded to fp16 on the wire and the final sum too.
 */
export function ringOracle(inputs: Float32Array[], fp16 = false): Float32Array {
  const n = inputs.length;
  const length = inputs[0]!.length;
  const out = new Float32Array(length);
  const h = (v: number) => fp16 ? Math.f16round(v) : v;
  for (let s = 0; s < n; s++) {
    // Segments start on multiples of 4 floats (aligned copies).
    const start = (k: number) => k === n ? length : Math.floor((k * length) / (4 * n)) * 4;
    const lo = start(s);
    const hi = start(s + 1);
    for (let i = lo; i < hi; i++) {
      let acc = inputs[(s + 1) % n]![i]!;
      for (let k = 2; k <= n; k++) acc = Math.fround(h(acc) + inputs[(s + k) % n]![i]!);
      out[i] = h(acc);
    }
  }
  return out;
}

/** Deterministic pseudo-random floats in [lo, hi). */
export function randomFloats(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (s / 2 ** 32) * (hi - lo);
  }
  return out;
}
