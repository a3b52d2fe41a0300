/**
 * Private: a `ParallelMap`'s first failure. Whoever notices one (a map
 * Worker's error, a stopped heartbeat, `close()`) records it here; every
 * waiter (start-up, a slot's rows, scheduling) races against it, so all of
 * them reject with that one error. Later failures are ignored.
 *
 * @module
 */

/** The first failure of one pipeline. */
export class FirstFailure {
  #error: Error | undefined;
  #reject!: (error: Error) => void;
  readonly #rejected: Promise<never>;
  /** Resolves (never rejects) once a failure is recorded. */
  readonly recorded: Promise<void>;

  /** No failure yet. */
  constructor() {
    this.#rejected = new Promise<never>((_, reject) => (this.#reject = reject));
    this.recorded = this.#rejected.catch(() => {});
  }

  /** The failure, once there is one. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Records `error` unless a failure was recorded already; says whether it was the first. */
  record(error: Error): boolean {
    if (this.#error !== undefined) return false;
    this.#error = error;
    this.#reject(error);
    return true;
  }

  /** Throws the failure, if there is one. */
  throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }

  /** `promise`, or the failure if that comes first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.#rejected]);
  }
}
