// Private test helper: a module Worker whose replies the test awaits with a
// deadline, terminated when the test's `using` scope ends (also on failure).

/** A started fixture Worker. `using w = new TestWorker(url)` terminates it. */
export class TestWorker implements Disposable {
  #worker: Worker;
  #queue: unknown[] = [];
  #waiters: ((message: unknown) => void)[] = [];

  constructor(url: URL, name?: string) {
    this.#worker = new Worker(url, { type: "module", name });
    this.#worker.onmessage = (e: MessageEvent<unknown>) => this.#deliver(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#deliver({ type: "uncaught", message: e.message });
    };
  }

  #deliver(message: unknown): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(message);
    else this.#queue.push(message);
  }

  /** Sends `message` (shared buffers are shared, not copied). */
  post(message: unknown): void {
    this.#worker.postMessage(message);
  }

  /** The next message, or a rejection naming `what` after `ms` milliseconds. */
  async next(what: string, ms = 10_000): Promise<unknown> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return queued;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let waiter: ((message: unknown) => void) | undefined;
    try {
      return await Promise.race([
        new Promise<unknown>((resolve) => {
          waiter = resolve;
          this.#waiters.push(resolve);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
            ms,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
    }
  }

  [Symbol.dispose](): void {
    this.#worker.terminate();
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` every few ms until it holds; rejects naming `what` after `ms`. */
export async function until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(2);
  }
}
