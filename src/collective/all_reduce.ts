/**
 * Shared-memory all-reduce (sum) for a fixed group of replicas.
 *
 * One `SharedArrayBuffer` holds `replicas` input slots of `length` floats, one
 * result vector and one weight per replica:
 * `[slot 0 | ... | slot N-1 | result | weights]`. A replica writes its raw
 * contribution into its own slot, then {@linkcode AllReduce.reduce} runs a
 * reduce-scatter (replica r computes chunk r of `sum_q weight_q * slot_q`) and
 * a barrier, after which every replica reads the same full result. Weighting
 * inside the reduction saves every replica a scaling pass over its slot; every
 * replica sees bit-identical results. Sums are float32 (`w * x` rounded, then
 * added and rounded), in SIMD when the buffer is a group memory with
 * kernels, else in JavaScript with the same rounding.
 *
 * Across hosts (hierarchical all-reduce) a {@linkcode HostLink} joins in:
 * once the host's sum of the range is complete, the host's leader sums it
 * across hosts in place, and only then does each replica run its chunk's
 * `onChunk` on the global sum.
 *
 * @module
 */
import { Barrier } from "./barrier.ts";
import type { HostLink } from "./host_link.ts";
import type { GroupKernels } from "./kernels.ts";

/** Bytes of the shared buffer an all-reduce over `length` floats needs. */
export function allReduceBytes(replicas: number, length: number): number {
  return ((replicas + 1) * slotStride(length) + replicas) * Float32Array.BYTES_PER_ELEMENT;
}

/**
 * Floats from one slot (or the result) to the next: `length` rounded up to a
 * multiple of 4, so that every slot and the result start 16-byte aligned.
 * Copies between them and plain buffers (gradients out of a backend, chunks
 * to and from the network) then stay aligned: V8 copies between a shared and
 * a plain buffer 6-8x slower when the two addresses differ modulo 8.
 */
export function slotStride(length: number): number {
  return Math.ceil(length / 4) * 4;
}

/** Byte offset of the reduced result in an all-reduce buffer. */
export function resultByteOffset(replicas: number, length: number): number {
  return replicas * slotStride(length) * Float32Array.BYTES_PER_ELEMENT;
}

/**
 * One replica's handle on a shared all-reduce.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllReduce, allReduceBytes } from "./all_reduce.ts";
 * import { BARRIER_SLOTS } from "./barrier.ts";
 * const buf = new SharedArrayBuffer(allReduceBytes(1, 4));
 * const ctrl = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * const ar = new AllReduce(buf, ctrl, { replica: 0, replicas: 1, length: 4 });
 * ar.slot.set([1, 2, 3, 4]);
 * ar.reduce();
 * assert.ok(ar.result[3] === 4);
 * ```
 */
export class AllReduce {
  /** This replica's input slot. */
  readonly slot: Float32Array;
  /** The reduced sum, valid after {@linkcode AllReduce.reduce} returns. */
  readonly result: Float32Array;
  #slots: Float32Array[];
  #weights: Float32Array;
  #barrier: Barrier;
  #replica: number;
  #replicas: number;
  #kernels: GroupKernels | null;
  #hostLink: HostLink | null;

  constructor(
    buffer: SharedArrayBuffer,
    control: Int32Array,
    options: {
      replica: number;
      replicas: number;
      length: number;
      heartbeat?: number;
      /** SIMD kernels bound to `buffer` (see `groupKernels`). @default none */
      kernels?: GroupKernels | null;
      /** The link to the host's leader, when the group spans hosts. @default none */
      hostLink?: HostLink | null;
    },
  ) {
    const { replica, replicas, length } = options;
    if (buffer.byteLength < allReduceBytes(replicas, length)) {
      throw new RangeError(
        `All-reduce buffer too small: expected ${allReduceBytes(replicas, length)} bytes, ` +
          `received ${buffer.byteLength}`,
      );
    }
    const stride = slotStride(length);
    this.#slots = Array.from(
      { length: replicas },
      (_, r) => new Float32Array(buffer, r * stride * 4, length),
    );
    this.result = new Float32Array(buffer, resultByteOffset(replicas, length), length);
    this.#weights = new Float32Array(buffer, (replicas + 1) * stride * 4, replicas);
    this.slot = this.#slots[replica]!;
    this.#barrier = new Barrier(control, replicas, options.heartbeat ?? -1);
    this.#replica = replica;
    this.#replicas = replicas;
    const k = options.kernels ?? null;
    this.#kernels = k !== null && k.buffer === buffer ? k : null;
    this.#hostLink = options.hostLink ?? null;
  }

  /**
   * Computes `sum_q weight_q * slot_q` over `[offset, offset + length)` into
   * the result, where `weight` is this replica's weight. Blocks until every
   * replica has called it; throws `CollectiveAbortedError` when the group is
   * aborted.
   *
   * `onChunk(begin, end)` runs once this replica has summed its chunk
   * `[begin, end)` of the result and before the closing barrier: the place
   * for work on the chunk that every replica must see done when `reduce`
   * returns (a sharded optimizer step). Inside it, {@linkcode AllReduce.peek}
   * reads any reduced value early.
   */
  reduce(
    offset = 0,
    length: number = this.result.length - offset,
    options: { weight?: number; onChunk?: (begin: number, end: number) => void } = {},
  ): void {
    this.#weights[this.#replica] = options.weight ?? 1;
    this.#barrier.arrive(); // every slot and weight is written
    const [begin, end] = this.#share(offset, length);
    this.#sum(begin, end);
    if (this.#hostLink !== null) {
      this.#barrier.arrive(); // the host's sum is complete
      this.#hostLink.exchange(offset, length); // the leader sums it across hosts
    }
    options.onChunk?.(begin, end);
    this.#barrier.arrive(); // every chunk is summed
  }

  /**
   * Starts a bucketed reduction (one step's vector summed range by range, as
   * each range of the slots becomes final): sets this replica's weight for
   * the {@linkcode AllReduce.reduceBucket} calls that follow and the
   * {@linkcode AllReduce.finishBuckets} that ends them. Every replica makes
   * the same calls with the same ranges, in the same order.
   */
  beginBuckets(weight = 1): void {
    this.#weights[this.#replica] = weight;
  }

  /**
   * Sums `[offset, offset + length)` of the slots into the result (weighted
   * as in {@linkcode AllReduce.reduce}) once every replica has written that
   * range, then, across hosts, posts the range to the host's leader without
   * waiting for it: the replica goes on (with the rest of its backward pass)
   * while the leader sums it across hosts. Blocks until every replica of the
   * host has reached the same bucket.
   */
  reduceBucket(offset: number, length: number): void {
    this.#barrier.arrive(); // every replica wrote this range of its slot
    const [begin, end] = this.#share(offset, length);
    this.#sum(begin, end);
    this.#barrier.arrive(); // the host's sum of the range is complete
    this.#hostLink?.post(offset, length);
  }

  /**
   * Ends a bucketed reduction over `[0, length)` (every range of it reduced
   * by {@linkcode AllReduce.reduceBucket}): waits until the leader has summed
   * every posted range across hosts, runs `onChunk` on this replica's chunk,
   * as {@linkcode AllReduce.reduce} does, and waits for every replica.
   */
  finishBuckets(
    length: number = this.result.length,
    onChunk?: (begin: number, end: number) => void,
  ): void {
    this.#hostLink?.wait();
    const [begin, end] = this.#share(0, length);
    onChunk?.(begin, end);
    this.#barrier.arrive();
  }

  /** This replica's chunk of `[offset, offset + length)`. */
  #share(offset: number, length: number): [number, number] {
    const n = this.#replicas;
    return [
      offset + Math.floor((this.#replica * length) / n),
      offset + Math.floor(((this.#replica + 1) * length) / n),
    ];
  }

  /** `result[begin, end) = sum_q weight_q * slot_q[begin, end)`. */
  #sum(begin: number, end: number): void {
    const n = this.#replicas;
    const out = this.result;
    const first = this.#slots[0]!;
    const w0 = this.#weights[0]!;
    const k = this.#kernels;
    if (k !== null) {
      const at = (a: Float32Array) => a.byteOffset + begin * 4;
      const count = end - begin;
      if (n === 1) k.wscale(at(out), at(first), w0, count);
      else {
        k.wsum2(at(out), at(first), at(this.#slots[1]!), w0, this.#weights[1]!, count);
        for (let r = 2; r < n; r++) k.waxpy(at(out), at(this.#slots[r]!), this.#weights[r]!, count);
      }
    } else if (n === 1) {
      if (w0 === 1) out.set(first.subarray(begin, end), begin);
      else for (let i = begin; i < end; i++) out[i] = w0 * first[i]!;
    } else {
      const second = this.#slots[1]!;
      const w1 = this.#weights[1]!;
      const f = Math.fround;
      for (let i = begin; i < end; i++) out[i] = f(w0 * first[i]!) + f(w1 * second[i]!);
      for (let r = 2; r < n; r++) {
        const s = this.#slots[r]!;
        const w = this.#weights[r]!;
        for (let i = begin; i < end; i++) out[i] = out[i]! + f(w * s[i]!);
      }
    }
  }

  /**
   * The reduced value at `index`, computed from the slots with the same
   * arithmetic as {@linkcode AllReduce.reduce} (so bit-identical to what the
   * result will hold). Only valid inside `reduce`'s `onChunk`, when every
   * slot is written. Across hosts the global sum is already in the result.
   */
  peek(index: number): number {
    if (this.#hostLink !== null) return this.result[index]!;
    const n = this.#replicas;
    const f = Math.fround;
    const w0 = this.#weights[0]!;
    const s0 = this.#slots[0]![index]!;
    if (n === 1) return w0 === 1 ? s0 : f(w0 * s0);
    let acc = f(f(w0 * s0) + f(this.#weights[1]! * this.#slots[1]![index]!));
    for (let r = 2; r < n; r++) {
      acc = f(acc + f(this.#weights[r]! * this.#slots[r]![index]!));
    }
    return acc;
  }

  /** Waits for every replica without reducing. */
  barrier(): void {
    this.#barrier.arrive();
  }
}
