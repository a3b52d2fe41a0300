/**
 * The one way the CLI and the HTTP service build a strategy: from a plain
 * spec `{ kind, ...options }`, where the options are those of the kind's
 * class. Unknown kinds and unknown options are refused with the names that
 * would have worked.
 *
 * @module
 */
import { MirroredStrategy, type MirroredStrategyOptions } from "./mirrored.ts";
import { isStrategyKind, type Strategy, STRATEGY_KINDS, type StrategyKind } from "./strategy.ts";
import { WorkerStrategy, type WorkerStrategyOptions } from "./worker.ts";

/** The options of each kind's class. */
export interface StrategyOptionsOf {
  /** {@linkcode MirroredStrategy}'s options. */
  mirrored: MirroredStrategyOptions;
  /** {@linkcode WorkerStrategy}'s options. */
  worker: WorkerStrategyOptions;
}

/** The class of each kind. */
export interface StrategyClassOf {
  /** Synchronous replicas. */
  mirrored: MirroredStrategy;
  /** The asynchronous parameter server. */
  worker: WorkerStrategy;
}

/** A strategy as plain data: its kind and the options of its class. */
export type StrategySpec<K extends StrategyKind = StrategyKind> = K extends StrategyKind
  ? { kind: K } & StrategyOptionsOf[K]
  : never;

/**
 * Builds the strategy a spec describes. Workers start on the first `fit`
 * or `evaluate`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createStrategy } from "./create_strategy.ts";
 * await using strategy = createStrategy({ kind: "worker", workers: 2, backend: "cpu" });
 * assert.equal(strategy.kind, "worker");
 * assert.equal(strategy.parallelism, 2);
 * assert.throws(() => createStrategy({ kind: "ring" } as never), /kind must be one of mirrored, worker/);
 * ```
 */
export function createStrategy<K extends StrategyKind>(spec: StrategySpec<K>): StrategyClassOf[K] {
  if (typeof spec !== "object" || spec === null) {
    throw new TypeError(`A strategy spec must be an object, received ${spec}`);
  }
  const { kind, ...options } = spec;
  if (!isStrategyKind(kind)) {
    throw new TypeError(
      `kind must be one of ${Object.keys(STRATEGY_KINDS).join(", ")}, received ${
        JSON.stringify(kind)
      }`,
    );
  }
  return BUILDERS[kind](options) as StrategyClassOf[K];
}

/** One constructor per kind: a kind missing here is a type error. */
const BUILDERS: Record<StrategyKind, (options: object) => Strategy> = {
  mirrored: (options) => new MirroredStrategy(options as MirroredStrategyOptions),
  worker: (options) => new WorkerStrategy(options as WorkerStrategyOptions),
};
