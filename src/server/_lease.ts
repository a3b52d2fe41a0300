// Private: job ownership across servers. Each server holds a lease in the KV
// store, renewed every `leaseMs / 3`; on every renewal it marks `interrupted`
// the queued and running jobs of servers whose lease lapsed (see
// `Store.sweep`). The job manager starts the lease, stops renewing it before
// it stops its jobs, and releases it last.
import type { Store } from "./store.ts";

/**
 * This server's lease on its jobs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ServerLease } from "./_lease.ts";
 * import { Store } from "./store.ts";
 * const store = new Store(await Deno.openKv(":memory:"));
 * // A running job of a server that holds no lease (it is gone).
 * await store.putJob({ id: "job_1", status: "running", owner: "srv_gone" } as never);
 * const lease = new ServerLease(store, "srv_a", 15_000);
 * await lease.start(); // takes the lease, sweeps once
 * assert.equal((await store.getJob("job_1"))?.status, "interrupted");
 * await lease.stop();
 * await lease.release();
 * store.close();
 * ```
 */
export class ServerLease {
  #store: Store;
  #owner: string;
  #leaseMs: number;
  #startedAt = Date.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking: Promise<void> = Promise.resolve();

  #onClaimed: ((ids: string[]) => Promise<void>) | undefined;

  /**
   * `owner` is this server's id, `leaseMs` how long a lease lasts unrenewed.
   * With `onClaimed`, the jobs of dead servers are claimed and handed to it
   * (to resume) instead of marked `interrupted`.
   */
  constructor(
    store: Store,
    owner: string,
    leaseMs: number,
    onClaimed?: (ids: string[]) => Promise<void>,
  ) {
    this.#store = store;
    this.#owner = owner;
    this.#leaseMs = leaseMs;
    this.#onClaimed = onClaimed;
  }

  /** Takes the lease and sweeps once, then renews and sweeps every `leaseMs / 3`. */
  async start(): Promise<void> {
    await this.#tick();
    const timer = setInterval(() => {
      this.#ticking = this.#tick().catch((e) =>
        console.error(`dtrain server: lease renewal failed: ${e}`)
      );
    }, Math.max(50, Math.floor(this.#leaseMs / 3)));
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  async #tick(): Promise<void> {
    await this.#store.heartbeat(this.#owner, this.#startedAt);
    const ids = await this.#store.sweep(this.#owner, this.#leaseMs, this.#onClaimed !== undefined);
    if (ids.length > 0) await this.#onClaimed?.(ids);
  }

  /** Stops renewing; resolves once a renewal in flight is done. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking;
  }

  /** Gives the lease up (other servers then see no live owner); never rejects. */
  async release(): Promise<void> {
    await this.#store.removeServer(this.#owner).catch(() => {});
  }
}
