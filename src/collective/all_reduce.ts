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
 * replica sees bit-identical results.
 *
 * @module
 */
import { Barrier } from "./barrier.ts";

/** Bytes of the shared buffer an all-reduce over `length` floats needs. */
export function allReduceBytes(replicas: number, length: number): number {
  return ((replicas + 1) * length + replicas) * Float32Array.BYTES_PER_ELEMENT;
}

/**
 * One replica's handle on a shared all-reduce.
 *
 * @example
 * ```ts
 * import { AllReduce, allReduceBytes } from "./all_reduce.ts";
 * import { BARRIER_SLOTS } from "./barrier.ts";
 * const buf = new SharedArrayBuffer(allReduceBytes(1, 4));
 * const ctrl = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
 * const ar = new AllReduce(buf, ctrl, { replica: 0, replicas: 1, length: 4 });
 * ar.slot.set([1, 2, 3, 4]);
 * ar.reduce();
 * console.assert(ar.result[3] === 4);
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

  constructor(
    buffer: SharedArrayBuffer,
    control: Int32Array,
    options: {
      replica: number;
      replicas: number;
      length: number;
      heartbeat?: number;
    },
  ) {
    const { replica, replicas, length } = options;
    if (buffer.byteLength < allReduceBytes(replicas, length)) {
      throw new RangeError(
        `All-reduce buffer too small: expected ${allReduceBytes(replicas, length)} bytes, ` +
          `received ${buffer.byteLength}`,
      );
    }
    this.#slots = Array.from(
      { length: replicas },
      (_, r) => new Float32Array(buffer, r * length * 4, length),
    );
    this.result = new Float32Array(buffer, replicas * length * 4, length);
    this.#weights = new Float32Array(buffer, (replicas + 1) * length * 4, replicas);
    this.slot = this.#slots[replica]!;
    this.#barrier = new Barrier(control, replicas, options.heartbeat ?? -1);
    this.#replica = replica;
    this.#replicas = replicas;
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
    const n = this.#replicas;
    this.#weights[this.#replica] = options.weight ?? 1;
    this.#barrier.arrive(); // every slot and weight is written
    const begin = offset + Math.floor((this.#replica * length) / n);
    const end = offset + Math.floor(((this.#replica + 1) * length) / n);
    const out = this.result;
    const first = this.#slots[0]!;
    const w0 = this.#weights[0]!;
    if (n === 1) {
      if (w0 === 1) out.set(first.subarray(begin, end), begin);
      else for (let i = begin; i < end; i++) out[i] = w0 * first[i]!;
    } else {
      const second = this.#slots[1]!;
      const w1 = this.#weights[1]!;
      for (let i = begin; i < end; i++) out[i] = w0 * first[i]! + w1 * second[i]!;
      for (let r = 2; r < n; r++) {
        const s = this.#slots[r]!;
        const w = this.#weights[r]!;
        for (let i = begin; i < end; i++) out[i] = out[i]! + w * s[i]!;
      }
    }
    options.onChunk?.(begin, end);
    this.#barrier.arrive(); // every chunk is summed
  }

  /**
   * The reduced value at `index`, computed from the slots with the same
   * arithmetic as {@linkcode AllReduce.reduce} (so bit-identical to what the
   * result will hold). Only valid inside `reduce`'s `onChunk`, when every
   * slot is written.
   */
  peek(index: number): number {
    const n = this.#replicas;
    const w0 = this.#weights[0]!;
    const s0 = this.#slots[0]![index]!;
    if (n === 1) return w0 === 1 ? s0 : Math.fround(w0 * s0);
    let acc = Math.fround(w0 * s0 + this.#weights[1]! * this.#slots[1]![index]!);
    for (let r = 2; r < n; r++) {
      acc = Math.fround(acc + this.#weights[r]! * this.#slots[r]![index]!);
    }
    return acc;
  }

  /** Waits for every replica without reducing. */
  barrier(): void {
    this.#barrier.arrive();
  }
}
