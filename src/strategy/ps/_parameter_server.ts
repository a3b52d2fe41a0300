/**
 * The parameter server's core: owns the model's variables and optimizer on
 * the main thread, publishes the weights as numbered versions, and applies
 * the gradients workers hand over in their slots, with the staleness rule.
 * No Workers here: tests drive it with slots they fill themselves.
 *
 * Staleness of a gradient = server version when it is applied minus the
 * version it was computed on (the number of other gradients applied in
 * between). Within the bound (`<= staleness`) it is applied as is. Beyond it,
 * policy `"drop"` discards it and policy `"scale"` applies it multiplied by
 * `(staleness + 1) / (s + 1)`, which is 1 at the bound and falls like 1/s.
 *
 * @module
 */
import * as tf from "../../tf.ts";
import { packWeights } from "../../core/weights.ts";
import type { GradientSlot } from "../../collective/gradient_slot.ts";
import { VersionedBuffer } from "../../collective/versioned_buffer.ts";
import { type FusedLayout, modelLayout } from "../_layout.ts";
import { writeNonTrainable } from "../_model.ts";
import { FlatOptimizer, flatStateBytes } from "../_flat_optimizer.ts";
import { type GroupKernels, groupKernels, groupMemory } from "../../collective/kernels.ts";

/** What happens to a gradient beyond the staleness bound. */
export type StalePolicy = "drop" | "scale";

/** What the server did with one gradient. */
export interface ApplyOutcome {
  /**
   * `applied` (within the bound), `scaled` (beyond it, applied down-weighted),
   * `dropped` (beyond it, discarded) or `nonFinite` (its loss is NaN or
   * infinite and `terminateOnNaN` is set: discarded).
   */
  kind: "applied" | "scaled" | "dropped" | "nonFinite";
  /** Server version minus the gradient's base version. */
  staleness: number;
  /** Factor the gradient was multiplied by (0 when not applied). */
  scale: number;
  /** Samples in the gradient's batch. */
  samples: number;
  /** Index of the batch in the run's batch stream. */
  batch: number;
  /** Mean loss of the batch (computed by the worker on the base weights). */
  loss: number;
  /** Mean metrics of the batch, in `metricsNames` order after the loss. */
  metrics: number[];
}

/** Running totals over a server's life. */
export interface ServerCounts {
  /** Gradients received (every outcome). */
  received: number;
  /** Gradients that changed the weights (fresh and scaled). */
  applied: number;
  /** Applied gradients that were beyond the bound and down-weighted. */
  scaled: number;
  /** Gradients beyond the bound that were discarded. */
  dropped: number;
  /** Largest staleness seen. */
  maxStaleness: number;
  /** Sum of the staleness of every received gradient. */
  stalenessSum: number;
}

/** Options of {@linkcode ParameterServer}. */
export interface ParameterServerOptions {
  /** Largest staleness applied as is. */
  staleness: number;
  /** What to do beyond it. */
  stalePolicy: StalePolicy;
  /** Discard (and report) a gradient whose loss is not finite. */
  terminateOnNaN: boolean;
}

/**
 * Serves one compiled model: `publish()` writes its weights as the next
 * version, `apply(slot)` applies the gradient waiting in a slot with the
 * model's own optimizer, publishes, and hands the slot back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "../../tf.ts";
 * import { ParameterServer } from "./_parameter_server.ts";
 * import { GradientSlot } from "../../collective/gradient_slot.ts";
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1], useBias: false })] });
 * model.compile({ optimizer: tf.train.sgd(1), loss: "meanSquaredError" });
 * const server = new ParameterServer(model, { staleness: 0, stalePolicy: "drop", terminateOnNaN: true });
 * server.publish();
 * const slot = new GradientSlot(new SharedArrayBuffer(GradientSlot.bytes(server.layout.length)), server.layout.length);
 * slot.payload[0] = 0.5; // d loss / d kernel
 * slot.push({ base: 0, batch: 0, samples: 1, ticket: 0 });
 * assert.ok(server.apply(slot).kind === "applied" && server.version === 1);
 * ```
 */
export class ParameterServer {
  /** Layout of a gradient slot's payload. */
  readonly layout: FusedLayout;
  /** The shared buffer the versions are published into. */
  readonly weightsBuffer: SharedArrayBuffer;
  /** Running totals. */
  readonly counts: ServerCounts = {
    received: 0,
    applied: 0,
    scaled: 0,
    dropped: 0,
    maxStaleness: 0,
    stalenessSum: 0,
  };
  #model: tf.LayersModel;
  #options: ParameterServerOptions;
  #weights: VersionedBuffer;
  #vars: tf.Variable[];
  #version = -1;
  /**
   * The optimizer step over flat parameters (SGD, Momentum, Adam), or null
   * for the model optimizer's own `applyGradients`. While it serves, the
   * flat parameters are the truth and the model's variables catch up at
   * {@linkcode ParameterServer.sync}.
   */
  #flat: FlatOptimizer | null = null;
  /** Scratch gradient in the flat step's memory. */
  #grad: Float32Array | null = null;
  #kernels: GroupKernels | null = null;
  /** `begin` has loaded the flat state. */
  #serving = false;
  /** The model's variables lag the flat parameters. */
  #dirty = false;

  /** Serves `model`, which must be compiled (its optimizer applies the gradients). */
  constructor(model: tf.LayersModel, options: ParameterServerOptions) {
    this.#model = model;
    this.#options = options;
    this.layout = modelLayout(model);
    this.weightsBuffer = new SharedArrayBuffer(VersionedBuffer.bytes(this.layout.loss));
    this.#weights = new VersionedBuffer(this.weightsBuffer, this.layout.loss);
    this.#vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const params = this.#vars.reduce((sum, v) => sum + v.size, 0);
    const stateBytes = flatStateBytes(model.optimizer, params);
    if (stateBytes > 0) {
      const bytes = params * 4 + stateBytes;
      const memory = groupMemory(bytes);
      const buffer = memory === null
        ? new SharedArrayBuffer(bytes)
        : memory.buffer as SharedArrayBuffer;
      this.#kernels = memory === null ? null : groupKernels(memory);
      this.#flat = FlatOptimizer.create(model.optimizer, buffer, this.#vars, {
        byteOffset: params * 4,
        kernels: this.#kernels,
      });
      this.#grad = new Float32Array(buffer, 0, params);
    }
  }

  /**
   * Loads the model's weights and optimizer state into the flat step (a
   * no-op for other optimizers). Call before serving, and again after
   * anything outside the server may have changed the model (callbacks).
   */
  async begin(): Promise<void> {
    if (this.#flat === null) return;
    await this.sync();
    await this.#flat.load(this.#vars);
    this.#serving = true;
  }

  /**
   * Brings the model's variables and optimizer state up to date with the
   * flat step, so that callbacks, validation and the caller see the
   * weights the server publishes.
   */
  async sync(): Promise<void> {
    if (this.#flat === null || !this.#dirty) return;
    this.#flat.assignTo(this.#vars);
    await this.#flat.store(this.#vars);
    this.#dirty = false;
  }

  /** Latest published version (-1 before the first `publish`). */
  get version(): number {
    return this.#version;
  }

  /** Publishes the model's current weights as the next version. */
  publish(): number {
    const flat = this.#serving ? this.#flat : null;
    const weights = flat === null
      ? [...this.#model.trainableWeights, ...this.#model.nonTrainableWeights]
      : this.#model.nonTrainableWeights;
    this.#version = this.#weights.publish((into) => {
      let offset = 0;
      if (flat !== null) {
        into.set(flat.params);
        offset = flat.params.length;
      }
      packWeights(weights, into, offset);
    });
    return this.#version;
  }

  /**
   * Applies (or drops) the gradient waiting in `slot`, publishes the new
   * weights, then releases the slot, so a worker that sees its slot empty
   * reads weights that include its own gradient.
   */
  apply(slot: GradientSlot): ApplyOutcome {
    const { layout } = this;
    const info = slot.info();
    const payload = slot.payload;
    const staleness = this.#version - info.base;
    const loss = payload[layout.loss]!;
    const metrics = Array.from(
      payload.subarray(layout.metrics, layout.metrics + layout.metricCount),
    );
    const c = this.counts;
    c.received++;
    c.stalenessSum += staleness;
    c.maxStaleness = Math.max(c.maxStaleness, staleness);
    const outcome: ApplyOutcome = {
      kind: "applied",
      staleness,
      scale: 1,
      samples: info.samples,
      batch: info.batch,
      loss,
      metrics,
    };
    const bound = this.#options.staleness;
    if (!Number.isFinite(loss) && this.#options.terminateOnNaN) {
      outcome.kind = "nonFinite";
      outcome.scale = 0;
    } else if (staleness > bound && this.#options.stalePolicy === "drop") {
      outcome.kind = "dropped";
      outcome.scale = 0;
      c.dropped++;
    } else {
      if (staleness > bound) {
        outcome.kind = "scaled";
        outcome.scale = (bound + 1) / (staleness + 1);
        c.scaled++;
      }
      c.applied++;
      this.#applyPayload(payload, outcome.scale);
      this.publish();
    }
    slot.release();
    return outcome;
  }

  #applyPayload(payload: Float32Array, scale: number): void {
    const model = this.#model;
    const flat = this.#serving ? this.#flat : null;
    const params = this.layout.trainable.reduce((n, size) => n + size, 0);
    if (flat !== null) {
      const g = this.#grad!;
      g.set(payload.subarray(0, params));
      if (scale !== 1) {
        if (this.#kernels !== null) {
          this.#kernels.wscale(g.byteOffset, g.byteOffset, scale, params);
        } else for (let i = 0; i < params; i++) g[i]! *= scale;
      }
      flat.update(g, 0, params);
      flat.advance();
      this.#dirty = true;
    } else {
      tf.tidy(() => {
        let offset = 0;
        const grads = this.#vars.map((v) => {
          const g = payload.slice(offset, offset + v.size);
          if (scale !== 1) { for (let i = 0; i < g.length; i++) g[i]! *= scale; }
          offset += v.size;
          return { name: v.name, tensor: tf.tensor(g, v.shape) };
        });
        model.optimizer.applyGradients(grads);
      });
    }
    // Non-trainable weights (batch-norm statistics): the applied worker's values.
    writeNonTrainable(model, payload, params);
  }
}
