/**
 * A Chrome-trace timeline of a fit (Horovod's timeline idea), openable in
 * Perfetto or `chrome://tracing`: for each step of replica 0, the time it
 * spent computing gradients, in the all-reduce (summing, waiting for the
 * other replicas and hosts, its chunk of the optimizer step) and applying the
 * result; across hosts, each cross-host sum on the host's network track.
 * One process per host (its rank), one track per kind of work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Trace } from "./trace.ts";
 * const trace = new Trace(0);
 * trace.step({ epoch: 0, step: 0, startedAt: 1000, gradMs: 2, reduceMs: 1, totalMs: 4 });
 * const { traceEvents } = trace.toJSON();
 * assert.deepEqual(traceEvents.filter((e) => e.ph === "X").map((e) => e.name), [
 *   "gradients",
 *   "all-reduce",
 *   "apply",
 * ]);
 * ```
 * @module
 */

/** One event of the Chrome trace format. */
export interface TraceEvent {
  /** What happened. */
  name: string;
  /** `"X"` a span, `"M"` metadata (process and track names). */
  ph: "X" | "M";
  /** Start, microseconds since the Unix epoch (spans). */
  ts?: number;
  /** Duration, microseconds (spans). */
  dur?: number;
  /** The host (rank). */
  pid: number;
  /** The track: 0 replica 0, 1 the host's network. */
  tid: number;
  /** Details shown on selection. */
  args?: Record<string, unknown>;
}

const REPLICA = 0;
const NETWORK = 1;

/** The timeline of one host's fit. */
export class Trace {
  readonly #rank: number;
  #events: TraceEvent[];

  /** `rank` is the host (0 on one host). */
  constructor(rank: number) {
    this.#rank = rank;
    this.#events = [
      { name: "process_name", ph: "M", pid: rank, tid: REPLICA, args: { name: `host ${rank}` } },
      { name: "thread_name", ph: "M", pid: rank, tid: REPLICA, args: { name: "replica 0" } },
      { name: "thread_name", ph: "M", pid: rank, tid: NETWORK, args: { name: "network" } },
    ];
  }

  #span(tid: number, name: string, startMs: number, durMs: number, args?: Record<string, unknown>) {
    this.#events.push({
      name,
      ph: "X",
      ts: Math.round(startMs * 1000),
      dur: Math.max(0, Math.round(durMs * 1000)),
      pid: this.#rank,
      tid,
      args,
    });
  }

  /** One step of replica 0 (times in ms; `startedAt` since the Unix epoch). */
  step(s: {
    epoch: number;
    step: number;
    startedAt: number;
    gradMs: number;
    reduceMs: number;
    totalMs: number;
  }): void {
    const args = { epoch: s.epoch, step: s.step };
    this.#span(REPLICA, "gradients", s.startedAt, s.gradMs, args);
    this.#span(REPLICA, "all-reduce", s.startedAt + s.gradMs, s.reduceMs, args);
    const applied = s.gradMs + s.reduceMs;
    this.#span(REPLICA, "apply", s.startedAt + applied, s.totalMs - applied, args);
  }

  /** One cross-host sum on this host's network track. */
  exchange(startedAt: number, ms: number, bytesSent: number, bytesReceived: number): void {
    this.#span(NETWORK, "cross-host sum", startedAt, ms, { bytesSent, bytesReceived });
  }

  /** The trace as Chrome's JSON object format. */
  toJSON(): { traceEvents: TraceEvent[]; displayTimeUnit: "ms" } {
    return { traceEvents: [...this.#events], displayTimeUnit: "ms" };
  }
}
