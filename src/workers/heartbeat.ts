/**
 * The one heartbeat watchdog: a Worker bumps a shared counter while it
 * works; the main thread declares it dead when the counter stands still for
 * longer than a timeout while the Worker owes a reply (a Worker that closed
 * or exited sends no event, so nothing else would notice).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Heartbeat } from "./heartbeat.ts";
 * const beats = new Int32Array(1);
 * const hb = new Heartbeat(() => Atomics.load(beats, 0), 0);
 * assert.equal(hb.silentFor(100), 100); // no beat since t=0
 * Atomics.add(beats, 0, 1);
 * assert.equal(hb.silentFor(150), 0); // a beat resets the clock
 * assert.equal(hb.silentFor(170), 20);
 * ```
 * @module
 */

/** One Worker's heartbeat as the main thread sees it. */
export class Heartbeat {
  #read: () => number;
  #beat: number;
  #at: number;

  /** `read` returns the Worker's counter; `now` starts the clock. */
  constructor(read: () => number, now: number = performance.now()) {
    this.#read = read;
    this.#beat = read();
    this.#at = now;
  }

  /** Starts the clock again from the current counter (the Worker is idle or new). */
  reset(now: number = performance.now()): void {
    this.#beat = this.#read();
    this.#at = now;
  }

  /** How long the counter has stood still at `now`, ms (0 right after a beat). */
  silentFor(now: number = performance.now()): number {
    const beat = this.#read();
    if (beat !== this.#beat) {
      this.#beat = beat;
      this.#at = now;
    }
    return now - this.#at;
  }
}

/** How often a watchdog with `timeoutMs` looks at the heartbeats, ms. */
export function checkInterval(timeoutMs: number): number {
  return Math.max(10, Math.min(500, timeoutMs / 4));
}

/** Runs `check` every {@linkcode checkInterval} while `work` is pending. */
export async function watching<T>(
  work: () => Promise<T>,
  timeoutMs: number,
  check: () => void,
): Promise<T> {
  const timer = setInterval(check, checkInterval(timeoutMs));
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The crash detail of a Worker whose heartbeat stopped, naming the option that set the bound. */
export function silentDetail(silentMs: number, option: string, timeoutMs: number): string {
  return `no heartbeat for ${Math.round(silentMs)} ms (the Worker died or hangs; ` +
    `${option} is ${timeoutMs})`;
}
