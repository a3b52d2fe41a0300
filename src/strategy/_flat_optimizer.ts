/**
 * The optimizer step of a replica group, applied by the replicas themselves
 * over one flat parameter vector in shared memory, each to its own chunk.
 *
 * Stock tfjs optimizers run a dozen element-wise kernels per variable per
 * step (Adam: ~14 passes over every weight), and under MirroredStrategy every
 * replica would repeat that same work on the same averaged gradient. For the
 * optimizers whose update rule is element-wise (`SGD`, `Momentum`, `Adam`),
 * the group instead keeps `[params | slot 0 | slot 1]` in one
 * `SharedArrayBuffer`: during the all-reduce every replica updates the
 * parameters and optimizer slots of the chunk it summed (one fused pass, the
 * same formulas as tfjs), and after the closing barrier every replica copies
 * the whole parameter vector into its variables. Weights stay bit-identical on
 * every replica because they are all read from one buffer.
 *
 * Between fits the tfjs optimizer stays the owner of the state:
 * {@linkcode FlatOptimizer.load} reads it at the start of a fit and
 * {@linkcode FlatOptimizer.store} writes it back (before a checkpoint and at
 * the end of a fit), through the optimizer's public `getWeights`/`setWeights`.
 *
 * @module
 */
import * as tf from "../tf.ts";
import { replaceOptimizerWeights } from "../io/optimizer_state.ts";
import type { GroupKernels } from "../collective/kernels.ts";

/** The update rules applied here, by tfjs optimizer class. */
type Rule = "sgd" | "momentum" | "adam";

/** Optimizer slots per parameter for each rule. */
const SLOTS: Record<Rule, number> = { sgd: 0, momentum: 1, adam: 2 };

/** Slot-variable name suffixes tfjs gives each rule's state, in order. */
const SUFFIXES: Record<Rule, string[]> = { sgd: [], momentum: ["momentum"], adam: ["m", "v"] };

function ruleOf(optimizer: tf.Optimizer | undefined): Rule | null {
  const cls = optimizer?.constructor;
  if (cls === tf.SGDOptimizer) return "sgd";
  if (cls === tf.MomentumOptimizer) return "momentum";
  if (cls === tf.AdamOptimizer) return "adam";
  return null;
}

/**
 * Bytes of the shared state for `optimizer` over `params` trainable floats,
 * or 0 when its update is not applied flat (any other optimizer class,
 * subclasses included, runs its own `applyGradients`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { flatStateBytes } from "./_flat_optimizer.ts";
 * assert.ok(flatStateBytes(tf.train.adam(), 10) === 120);
 * assert.ok(flatStateBytes(tf.train.rmsprop(0.1), 10) === 0);
 * ```
 */
export function flatStateBytes(optimizer: tf.Optimizer | undefined, params: number): number {
  const rule = ruleOf(optimizer);
  return rule === null ? 0 : (1 + SLOTS[rule]) * params * Float32Array.BYTES_PER_ELEMENT;
}

/** Where the state lives, and the kernels that may update it. */
export interface FlatOptions {
  /** Byte offset of `[params | slots]` in the buffer. @default 0 */
  byteOffset?: number;
  /** SIMD kernels bound to the buffer (see `groupKernels`). @default none */
  kernels?: GroupKernels | null;
}

/** Hyperparameters read from the tfjs optimizer's config at `load`. */
interface Hyper {
  lr: number;
  momentum: number;
  nesterov: boolean;
  beta1: number;
  beta2: number;
  epsilon: number;
}

function num(config: tf.serialization.ConfigDict, key: string, fallback: number): number {
  const v = config[key];
  return typeof v === "number" ? v : fallback;
}

/**
 * One replica's handle on the group's flat optimizer state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../tf.ts";
 * import { FlatOptimizer, flatStateBytes } from "./_flat_optimizer.ts";
 * const w = tf.variable(tf.tensor1d([1, 2]));
 * const sgd = tf.train.sgd(0.5);
 * const shared = new SharedArrayBuffer(flatStateBytes(sgd, 2));
 * const flat = FlatOptimizer.create(sgd, shared, [w])!;
 * await flat.load([w]);
 * flat.update(new Float32Array([1, 1]), 0, 2);
 * flat.advance(); // one step applied
 * flat.assignTo([w]);
 * assert.ok(w.dataSync()[0] === 0.5);
 * await flat.store([w]);
 * assert.ok(sgd.iterations === 1);
 * w.dispose();
 * ```
 */
export class FlatOptimizer {
  /** The trainable parameters, in trainable-weight order. */
  readonly params: Float32Array;
  #slots: Float32Array[];
  #rule: Rule;
  #optimizer: tf.Optimizer;
  #kernels: GroupKernels | null;
  #hyper: Hyper = { lr: 0, momentum: 0, nesterov: false, beta1: 0, beta2: 0, epsilon: 0 };
  /** Updates applied so far (tfjs' `iterations`). */
  #iterations = 0;

  private constructor(
    rule: Rule,
    optimizer: tf.Optimizer,
    buffer: SharedArrayBuffer,
    n: number,
    options: FlatOptions,
  ) {
    this.#rule = rule;
    this.#optimizer = optimizer;
    const base = options.byteOffset ?? 0;
    this.params = new Float32Array(buffer, base, n);
    this.#slots = Array.from(
      { length: SLOTS[rule] },
      (_, s) => new Float32Array(buffer, base + (s + 1) * n * 4, n),
    );
    const k = options.kernels ?? null;
    this.#kernels = k !== null && k.buffer === buffer ? k : null;
  }

  /**
   * The flat optimizer for `optimizer` over `vars`, or `null` when its class
   * is not applied flat or `buffer` is smaller than
   * {@linkcode flatStateBytes} says (the caller then uses `applyGradients`).
   */
  static create(
    optimizer: tf.Optimizer | undefined,
    buffer: SharedArrayBuffer,
    vars: tf.Variable[],
    options: FlatOptions = {},
  ): FlatOptimizer | null {
    const rule = ruleOf(optimizer);
    const n = vars.reduce((s, v) => s + v.size, 0);
    const base = options.byteOffset ?? 0;
    if (rule === null || n === 0 || buffer.byteLength - base < flatStateBytes(optimizer, n)) {
      return null;
    }
    return new FlatOptimizer(rule, optimizer!, buffer, n, options);
  }

  /**
   * Reads the hyperparameters and iteration count of the tfjs optimizer, and
   * copies the variables' values and the optimizer's slots (zeros where it
   * has none yet) into the shared state. One replica loads; the group then
   * meets at a barrier before the first update.
   */
  async load(vars: tf.Variable[]): Promise<void> {
    this.readConfig();
    let offset = 0;
    for (const v of vars) {
      this.params.set(await v.data() as Float32Array, offset);
      offset += v.size;
    }
    const saved = await this.#optimizer.getWeights();
    try {
      const slots = saved.slice(1);
      for (let s = 0; s < this.#slots.length; s++) {
        const target = this.#slots[s]!;
        offset = 0;
        for (let i = 0; i < vars.length; i++) {
          const size = vars[i]!.size;
          const t = slots[s * vars.length + i]?.tensor;
          if (t !== undefined && t.size === size) {
            target.set(await t.data() as Float32Array, offset);
          } else target.fill(0, offset, offset + size);
          offset += size;
        }
      }
    } finally {
      for (const { tensor } of saved) if (!(tensor instanceof tf.Variable)) tensor.dispose();
    }
  }

  /**
   * Reads the hyperparameters and iteration count only (every replica but
   * the loading one calls this instead of `load`).
   */
  readConfig(): void {
    const c = this.#optimizer.getConfig();
    this.#hyper = {
      lr: num(c, "learningRate", 0.001),
      momentum: num(c, "momentum", 0),
      nesterov: c.useNesterov === true,
      beta1: num(c, "beta1", 0.9),
      beta2: num(c, "beta2", 0.999),
      epsilon: num(c, "epsilon", 1e-7),
    };
    this.#iterations = this.#optimizer.iterations;
  }

  /**
   * Applies one update to `params[begin, end)` from the gradient `grad`
   * (indexed like `params`), with the same formulas as the tfjs optimizer.
   * Call {@linkcode FlatOptimizer.advance} once per step on every replica.
   */
  update(grad: Float32Array, begin: number, end: number): void {
    if (end <= begin) return;
    const k = this.#kernels;
    if (k !== null && grad.buffer === k.buffer) return this.#updateSimd(k, grad, begin, end);
    const w = this.params;
    const { lr } = this.#hyper;
    if (this.#rule === "sgd") {
      for (let i = begin; i < end; i++) w[i] = w[i]! - lr * grad[i]!;
      return;
    }
    if (this.#rule === "momentum") {
      const acc = this.#slots[0]!;
      const mu = this.#hyper.momentum;
      if (this.#hyper.nesterov) {
        for (let i = begin; i < end; i++) {
          const g = grad[i]!;
          const a = mu * acc[i]! + g;
          acc[i] = a;
          w[i] = w[i]! - lr * (g + mu * a);
        }
      } else {
        for (let i = begin; i < end; i++) {
          const a = mu * acc[i]! + grad[i]!;
          acc[i] = a;
          w[i] = w[i]! - lr * a;
        }
      }
      return;
    }
    const m = this.#slots[0]!;
    const v = this.#slots[1]!;
    const { beta1, beta2, epsilon } = this.#hyper;
    const [c1, c2] = this.#corrections();
    const g1 = 1 - beta1;
    const g2 = 1 - beta2;
    for (let i = begin; i < end; i++) {
      const g = grad[i]!;
      const m1 = beta1 * m[i]! + g1 * g;
      const v1 = beta2 * v[i]! + g2 * g * g;
      m[i] = m1;
      v[i] = v1;
      w[i] = w[i]! - lr * (m1 * c1) / (Math.sqrt(v1 * c2) + epsilon);
    }
  }

  /** `update` in the group memory's SIMD kernels (float32 arithmetic). */
  #updateSimd(k: GroupKernels, grad: Float32Array, begin: number, end: number): void {
    const at = (a: Float32Array) => a.byteOffset + begin * 4;
    const n = end - begin;
    const h = this.#hyper;
    if (this.#rule === "sgd") return k.sgd(at(this.params), at(grad), n, h.lr);
    if (this.#rule === "momentum") {
      return k.momentum(
        at(this.params),
        at(this.#slots[0]!),
        at(grad),
        n,
        h.lr,
        h.momentum,
        h.nesterov ? 1 : 0,
      );
    }
    const [c1, c2] = this.#corrections();
    k.adam(
      at(this.params),
      at(this.#slots[0]!),
      at(this.#slots[1]!),
      at(grad),
      n,
      h.lr,
      h.beta1,
      h.beta2,
      c1,
      c2,
      h.epsilon,
    );
  }

  /** Adam's bias corrections `1 / (1 - beta^t)` for the coming step. */
  #corrections(): [number, number] {
    // tfjs keeps beta^(t+1) as a float32 scalar and corrects with 1 - it.
    const t = this.#iterations + 1;
    return [
      1 / (1 - Math.fround(Math.pow(this.#hyper.beta1, t))),
      1 / (1 - Math.fround(Math.pow(this.#hyper.beta2, t))),
    ];
  }

  /** Counts one applied step (every replica, after every update). */
  advance(): void {
    this.#iterations++;
  }

  /** Copies the shared parameters into `vars` (new tensors, so kernel caches stay valid). */
  assignTo(vars: tf.Variable[]): void {
    const copy = tf.getBackend() !== "wasm";
    let offset = 0;
    for (const v of vars) {
      const view = this.params.subarray(offset, offset + v.size);
      // The wasm backend copies into its heap; others may keep the array.
      const t = tf.tensor(copy ? view.slice() : view, v.shape);
      v.assign(t);
      t.dispose();
      offset += v.size;
    }
  }

  /**
   * Writes the iteration count and slots back into the tfjs optimizer, so
   * that checkpoints, `evaluate` and the next fit see the state the flat
   * updates reached.
   */
  async store(vars: tf.Variable[]): Promise<void> {
    const named: { name: string; tensor: tf.Tensor }[] = [{
      name: "iter",
      tensor: tf.scalar(this.#iterations, "int32"),
    }];
    for (let s = 0; s < this.#slots.length; s++) {
      let offset = 0;
      for (const v of vars) {
        named.push({
          name: `${v.name}/${SUFFIXES[this.#rule][s]}`,
          tensor: tf.tensor(this.#slots[s]!.slice(offset, offset + v.size), v.shape),
        });
        offset += v.size;
      }
    }
    try {
      await replaceOptimizerWeights(this.#optimizer, named);
    } finally {
      tf.dispose(named.map((w) => w.tensor));
    }
  }
}
