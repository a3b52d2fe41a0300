/**
 * Shared-memory layout of one WorkerStrategy run, agreed between the
 * parameter server (main thread) and its workers.
 *
 * Control (Int32): `[stop, cursor, doorbell, ticket]`.
 * - `stop`: the server sets it to end the run; workers finish their step.
 * - `cursor`: the next batch of the run's batch stream; a worker claims a
 *   batch with `Atomics.add(cursor, 1)`.
 * - `doorbell`: bumped (and notified) by a worker after each push; the server
 *   waits on it with `Atomics.waitAsync`.
 * - `ticket`: arrival counter; gradients waiting together are applied in
 *   ticket order.
 *
 * Weights (see `VersionedBuffer`): `[trainable | non-trainable]`, each in the
 * model's order. A gradient slot's payload (see `GradientSlot`) uses
 * `fusedLayout`: `[trainable gradients | non-trainable values | loss |
 * metrics | (unused)]`.
 *
 * @module
 */

/** Index of the stop word in the run control array. */
export const PS_STOP = 0;
/** Index of the batch cursor. */
export const PS_CURSOR = 1;
/** Index of the doorbell the server waits on. */
export const PS_DOORBELL = 2;
/** Index of the arrival ticket counter. */
export const PS_TICKET = 3;
/** Int32 words of the run control array. */
export const PS_CONTROL_INTS = 4;
