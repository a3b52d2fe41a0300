/**
 * The per-job event channels: what a job reports while it runs, numbered
 * from 1 so a listener can resume (`Last-Event-ID`), with the recent events
 * kept for replay.
 *
 * Who owns what: the job runner and the job manager `emit`; listeners (the
 * SSE endpoint) `subscribe` and never write. A listener that throws is
 * dropped, so a broken stream never reaches the training loop.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobEventBus } from "./job_events.ts";
 * const bus = new JobEventBus();
 * bus.emit("job_1", { type: "status", status: "running" });
 * const live: number[] = [];
 * const sub = bus.subscribe("job_1", 0, (e) => live.push(e.seq))!;
 * assert.deepEqual(sub.replay.map((e) => e.seq), [1]);
 * bus.emit("job_1", { type: "epoch", epoch: 1, epochs: 1, logs: { loss: 0.5 } });
 * assert.deepEqual(live, [2]);
 * assert.equal(bus.subscribe("job_2", 0, () => {}), null);
 * ```
 * @module
 */
import type { JobRecord, JobStatus } from "./types.ts";

/** What a job reports while it runs; `end` is always the last event. */
export type JobEvent =
  | { type: "status"; status: JobStatus }
  | { type: "batch"; epoch: number; step: number; steps: number; logs: Record<string, number> }
  | { type: "epoch"; epoch: number; epochs: number; logs: Record<string, number> }
  /** A remote worker joined or left; `attached` is how many are now. */
  | {
    type: "worker";
    change: "joined" | "left";
    attached: number;
    address?: string;
    worker?: number;
    reason?: string;
  }
  /** The job was taken over from a server that stopped and resumes after `epoch` epochs. */
  | { type: "resumed"; epoch: number; detail: string }
  /** A remote job has no worker attached and waits for one. */
  | { type: "waiting"; detail: string }
  | { type: "end"; job: JobRecord };

/** A job event with its position in the job's event sequence (1-based). */
export interface SequencedEvent {
  /** Position, for `Last-Event-ID`. */
  seq: number;
  /** The event. */
  event: JobEvent;
}

/** A listener's view of a job's events: what already happened, then live ones. */
export interface Subscription {
  /** Events after the requested position that already happened. */
  replay: SequencedEvent[];
  /** True when the job already ended: `replay` holds everything there will be. */
  ended: boolean;
  /** Stops live delivery. */
  unsubscribe(): void;
}

/** Options for {@linkcode JobEventBus}. */
export interface JobEventBusOptions {
  /**
   * Events kept per job for replay (the oldest are dropped).
   * @default 5000
   */
  buffer?: number;
  /**
   * Channels of ended jobs kept beyond those of live jobs.
   * @default 32
   */
  keepEnded?: number;
  /**
   * How many jobs are live now (their channels are never dropped).
   * @default () => 0
   */
  live?: () => number;
}

class Channel {
  events: SequencedEvent[] = [];
  listeners = new Set<(e: SequencedEvent) => void>();
  ended = false;
  #seq = 0;
  #buffer: number;

  constructor(buffer: number) {
    this.#buffer = buffer;
  }

  emit(event: JobEvent): void {
    const e = { seq: ++this.#seq, event };
    this.events.push(e);
    if (this.events.length > this.#buffer) this.events.shift();
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        // A listener's failure (a closed stream) must never reach the training loop.
        this.listeners.delete(l);
        console.error(`dtrain server: event listener failed: ${err}`);
      }
    }
    if (event.type === "end") {
      this.ended = true;
      this.listeners.clear();
    }
  }
}

/**
 * One event channel per job id, created by its first event; the channels of
 * live jobs and of the `keepEnded` most recently finished ones are kept.
 */
export class JobEventBus {
  #channels = new Map<string, Channel>();
  #buffer: number;
  #keepEnded: number;
  #live: () => number;

  /** Nothing is kept until the first `emit`. */
  constructor(options: JobEventBusOptions = {}) {
    this.#buffer = options.buffer ?? 5000;
    this.#keepEnded = options.keepEnded ?? 32;
    this.#live = options.live ?? (() => 0);
  }

  /** Appends `event` to job `id`'s channel and hands it to its listeners. */
  emit(id: string, event: JobEvent): void {
    this.#channel(id).emit(event);
  }

  #channel(id: string): Channel {
    let ch = this.#channels.get(id);
    if (ch === undefined) {
      ch = new Channel(this.#buffer);
      this.#channels.set(id, ch);
      // Keep the channels of live jobs and of the most recently finished ones.
      for (const [key, c] of this.#channels) {
        if (this.#channels.size <= this.#live() + this.#keepEnded) break;
        if (c.ended) this.#channels.delete(key);
      }
    }
    return ch;
  }

  /**
   * Events of job `id` after position `after`, then live ones through
   * `listener`. Null when there is no channel for the job.
   */
  subscribe(
    id: string,
    after: number,
    listener: (e: SequencedEvent) => void,
  ): Subscription | null {
    const ch = this.#channels.get(id);
    if (ch === undefined) return null;
    const replay = ch.events.filter((e) => e.seq > after);
    if (!ch.ended) ch.listeners.add(listener);
    return { replay, ended: ch.ended, unsubscribe: () => ch.listeners.delete(listener) };
  }
}
