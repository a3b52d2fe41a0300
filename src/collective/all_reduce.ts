/**
 * Shared-memory all-reduce (sum) for a fixed group of replicas.
 *
 * One `SharedArrayBuffer` holds `replicas` input slots of `length` floats and
 * one result vector: `[slot 0 | slot 1 | ... | slot N-1 | result]`. A replica
 * writes its contribution into its own slot, then {@linkcode AllReduce.reduce}
 * runs a reduce-scatter (replica r sums chunk r of every slot into the
 * result) and a barrier, after which every replica reads the same full sum.
 * Every replica therefore sees bit-identical results.
 *
 * @module
 */
import { Barrier } from "./barrier.ts";

/** Bytes of the shared buffer an all-reduce over `length` floats needs. */
export function allReduceBytes(replicas: number, length: number): number {
  return (replicas + 1) * length * Float32Array.BYTES_PER_ELEMENT;
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
    this.slot = this.#slots[replica]!;
    this.#barrier = new Barrier(control, replicas, options.heartbeat ?? -1);
    this.#replica = replica;
    this.#replicas = replicas;
  }

  /**
   * Sums `[offset, offset + length)` of every slot into the result. Blocks
   * until every replica has called it; throws `CollectiveAbortedError` when the
   * group is aborted.
   */
  reduce(offset = 0, length = this.result.length - offset): void {
    const n = this.#replicas;
    this.#barrier.arrive(); // every slot is written
    const begin = offset + Math.floor((this.#replica * length) / n);
    const end = offset + Math.floor(((this.#replica + 1) * length) / n);
    const out = this.result;
    const first = this.#slots[0]!;
    if (n === 1) {
      out.set(first.subarray(begin, end), begin);
    } else {
      const second = this.#slots[1]!;
      for (let i = begin; i < end; i++) out[i] = first[i]! + second[i]!;
      for (let r = 2; r < n; r++) {
        const s = this.#slots[r]!;
        for (let i = begin; i < end; i++) out[i] = out[i]! + s[i]!;
      }
    }
    this.#barrier.arrive(); // every chunk is summed
  }

  /** Waits for every replica without reducing. */
  barrier(): void {
    this.#barrier.arrive();
  }
}
