/**
 * Shared-memory layouts agreed between the main thread and the replicas.
 *
 * Control (Int32): `[barrier (3) | stop | heartbeat per replica]`.
 * Fused all-reduce vector (Float32), one per step:
 * `[trainable gradients | non-trainable weights | loss | metrics | stop]`,
 * every entry pre-scaled by the replica's share of the batch except `stop`.
 *
 * @module
 */
import type * as tf from "../tf.ts";
import { BARRIER_SLOTS } from "../collective/barrier.ts";
import { weightSize } from "../core/weights.ts";

/** Index of the stop-request word in the control array. */
export const CONTROL_STOP = BARRIER_SLOTS;

/** Index of replica `r`'s heartbeat word in the control array. */
export function heartbeatIndex(r: number): number {
  return BARRIER_SLOTS + 1 + r;
}

/** Bytes of the control array for a group. */
export function controlBytes(replicas: number): number {
  return (BARRIER_SLOTS + 1 + replicas) * Int32Array.BYTES_PER_ELEMENT;
}

/** Offsets into the fused all-reduce vector. */
export interface FusedLayout {
  /** Sizes of the trainable weights, in `model.trainableWeights` order. */
  trainable: number[];
  /** Sizes of the non-trainable weights, in `model.nonTrainableWeights` order. */
  nonTrainable: number[];
  /** Index of the loss. */
  loss: number;
  /** Index of the first metric. */
  metrics: number;
  /** Number of metrics. */
  metricCount: number;
  /** Index of the stop flag. */
  stop: number;
  /** Total floats. */
  length: number;
}

/** Computes the fused layout from weight sizes and the metric count. */
export function fusedLayout(
  trainable: number[],
  nonTrainable: number[],
  metricCount: number,
): FusedLayout {
  const sum = (a: number[]) => a.reduce((s, v) => s + v, 0);
  const loss = sum(trainable) + sum(nonTrainable);
  return {
    trainable,
    nonTrainable,
    loss,
    metrics: loss + 1,
    metricCount,
    stop: loss + 1 + metricCount,
    length: loss + 2 + metricCount,
  };
}

/** The fused layout of a compiled model: its weights, and its loss and metrics. */
export function modelLayout(model: tf.LayersModel): FusedLayout {
  return fusedLayout(
    model.trainableWeights.map(weightSize),
    model.nonTrainableWeights.map(weightSize),
    Math.max(0, model.metricsNames.length - 1),
  );
}
