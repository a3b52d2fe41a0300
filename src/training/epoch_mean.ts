/**
 * The epoch logs of every strategy: the sample-weighted mean of each step's
 * loss and metrics over the epoch, as Keras' `model.fit` reports them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EpochMean } from "./epoch_mean.ts";
 * const mean = new EpochMean(["loss"]);
 * mean.add([1], 3); // a step of 3 samples
 * mean.add([3], 1); // an uneven last step
 * assert.deepEqual(mean.logs(), { loss: 1.5 });
 * ```
 * @module
 */
import type { Logs } from "./callbacks.ts";

/** Sample-weighted sums of named values over an epoch. */
export class EpochMean {
  readonly #names: readonly string[];
  #sums: number[];
  #samples = 0;

  /** `names` are the logs' keys, in the order `add` gets their values. */
  constructor(names: readonly string[]) {
    this.#names = names;
    this.#sums = new Array(names.length).fill(0);
  }

  /** Starts again from nothing, or from a {@linkcode EpochMean.snapshot} (a resumed epoch). */
  reset(from?: { sums: readonly number[]; samples: number }): void {
    this.#sums = from === undefined ? new Array(this.#names.length).fill(0) : [...from.sums];
    this.#samples = from?.samples ?? 0;
  }

  /** Adds one step: `values[i]` is the mean of `names[i]` over its `samples`. */
  add(values: ArrayLike<number>, samples: number): void {
    for (let i = 0; i < this.#names.length; i++) this.#sums[i]! += values[i]! * samples;
    this.#samples += samples;
  }

  /** The means so far (0 before any sample). */
  logs(): Logs {
    const logs: Logs = {};
    this.#names.forEach((name, i) => (logs[name] = this.#sums[i]! / Math.max(1, this.#samples)));
    return logs;
  }

  /** The sums and sample count, to resume the epoch from (checkpoints). */
  snapshot(): { sums: number[]; samples: number } {
    return { sums: [...this.#sums], samples: this.#samples };
  }
}
