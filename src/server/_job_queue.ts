// Private: the job queue's admission and concurrency. A bounded FIFO of jobs
// waiting, at most `maxConcurrent` of them running; it knows nothing of what
// a job is. The job manager pushes, removes (a cancelled queued job) and
// closes; `run` (the job runner) is handed each job in turn.
import { QueueFullError, ShuttingDownError } from "./_domain_errors.ts";

/** Options for {@linkcode JobQueue}. */
export interface JobQueueOptions<T> {
  /** Items run at the same time. */
  maxConcurrent: number;
  /** Items waiting at most; one more is refused with `QueueFullError`. */
  maxQueued: number;
  /** Runs one item; must not reject (it reports its own failures). */
  run(item: T): Promise<void>;
}

/**
 * A bounded FIFO with a concurrency limit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobQueue } from "./_job_queue.ts";
 * const ran: number[] = [];
 * const queue = new JobQueue<number>({
 *   maxConcurrent: 1,
 *   maxQueued: 1,
 *   run: (n) => Promise.resolve(void ran.push(n)),
 * });
 * queue.push(1); // starts at once
 * queue.admit();
 * queue.push(2); // waits
 * assert.throws(() => queue.admit(), { name: "QueueFullError" });
 * await new Promise((r) => setTimeout(r, 0));
 * assert.deepEqual(ran, [1, 2]);
 * ```
 */
export class JobQueue<T> {
  #o: JobQueueOptions<T>;
  #waiting: T[] = [];
  #running = 0;
  #closed = false;

  /** Nothing runs until the first `push`. */
  constructor(options: JobQueueOptions<T>) {
    this.#o = options;
  }

  /** Items running now. */
  get running(): number {
    return this.#running;
  }

  /** Items waiting now, oldest first (a copy). */
  get waiting(): T[] {
    return [...this.#waiting];
  }

  /**
   * Throws what `push` would: `ShuttingDownError` once closed,
   * `QueueFullError` when `maxQueued` items wait.
   */
  admit(): void {
    if (this.#closed) throw new ShuttingDownError();
    if (this.#waiting.length >= this.#o.maxQueued) {
      throw new QueueFullError(this.#waiting.length, this.#o.maxQueued);
    }
  }

  /**
   * Queues `item` and starts what may start. Call `admit` first: `push`
   * does not check again (a job admitted before its record was stored is
   * not refused after).
   */
  push(item: T): void {
    this.#waiting.push(item);
    this.#pump();
  }

  /** Takes `item` out of the queue; false when it was not waiting. */
  remove(item: T): boolean {
    const i = this.#waiting.indexOf(item);
    if (i === -1) return false;
    this.#waiting.splice(i, 1);
    return true;
  }

  /** From now on `admit` refuses, and a finished item starts no waiting one. */
  close(): void {
    this.#closed = true;
  }

  #pump(): void {
    while (this.#running < this.#o.maxConcurrent && this.#waiting.length > 0) {
      const item = this.#waiting.shift()!;
      this.#running++;
      this.#o.run(item).finally(() => {
        this.#running--;
        if (!this.#closed) this.#pump();
      });
    }
  }
}
