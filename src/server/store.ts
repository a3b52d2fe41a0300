/**
 * Persistence of the service in Deno KV: job records, their per-epoch
 * history, the model registry's metadata and the servers' leases. An
 * embedded KV file by default; a shared KV (by URL) lets several servers see
 * the same jobs and models.
 *
 * Keys:
 * ```
 * ["jobs", id]               JobRecord (without history)
 * ["job_active", id]         owner, while the job is queued or running
 * ["job_epochs", id, epoch]  that epoch's logs
 * ["models", id]             ModelRecord
 * ["datasets", id]           DatasetRecord (metadata; the samples are files)
 * ["servers", owner]         { startedAt, heartbeatAt } of a live server
 * ```
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Store } from "./store.ts";
 * const store = new Store(await Deno.openKv(":memory:"));
 * assert.ok((await store.getJob("job_00000000000000000")) === null);
 * store.close();
 * ```
 * @module
 */
import { TERMINAL_STATUSES } from "./schemas.ts";
import type { JobRecord, JobStatus, ModelRecord } from "./types.ts";

/** A job's History as stored: epochs and their logs. */
export interface StoredHistory {
  /** Epoch indices recorded. */
  epoch: number[];
  /** One array per log name. */
  history: Record<string, number[]>;
}

/** One page of jobs. */
export interface JobPage {
  /** Jobs, newest first. */
  jobs: JobRecord[];
  /** Cursor of the next page, null at the end. */
  cursor: string | null;
}

interface ServerLease {
  startedAt: number;
  heartbeatAt: number;
}

/**
 * Typed access to the service's Deno KV. Every method is one KV round trip
 * or one atomic commit.
 */
export class Store {
  #kv: Deno.Kv;
  #ownsKv: boolean;

  /** Wraps `kv`; `close()` closes it only when `ownsKv` is true. */
  constructor(kv: Deno.Kv, ownsKv = true) {
    this.#kv = kv;
    this.#ownsKv = ownsKv;
  }

  /** Stores what job `id`'s workers did, once it ended. */
  async putJobWorkers(id: string, workers: unknown): Promise<void> {
    await this.#kv.set(["job_workers", id], workers);
  }

  /** What job `id`'s workers did, or null. */
  async jobWorkers<T>(id: string): Promise<T | null> {
    return (await this.#kv.get<T>(["job_workers", id])).value;
  }

  /** Stores the SHA-256 (hex) of job `id`'s worker token. */
  async putWorkerTokenHash(id: string, hash: string): Promise<void> {
    await this.#kv.set(["job_worker_token", id], hash);
  }

  /** The SHA-256 (hex) of job `id`'s worker token, or null when it has none. */
  async workerTokenHash(id: string): Promise<string | null> {
    return (await this.#kv.get<string>(["job_worker_token", id])).value;
  }

  /** Stores a new or changed job record (its `history` field is not stored). */
  async putJob(record: JobRecord): Promise<void> {
    const { history: _history, ...rest } = record;
    const op = this.#kv.atomic().set(["jobs", record.id], rest);
    if (TERMINAL_STATUSES.includes(record.status)) op.delete(["job_active", record.id]);
    else op.set(["job_active", record.id], record.owner);
    const res = await op.commit();
    if (!res.ok) throw new Error(`KV commit of job ${record.id} failed`);
  }

  /** The job record, without history; null when unknown. */
  async getJob(id: string): Promise<JobRecord | null> {
    return (await this.#kv.get<JobRecord>(["jobs", id])).value;
  }

  /** Newest first, optionally only those in `status`. */
  async listJobs(
    options: { limit: number; cursor?: string; status?: JobStatus },
  ): Promise<JobPage> {
    const iter = this.#kv.list<JobRecord>({ prefix: ["jobs"] }, {
      reverse: true,
      cursor: options.cursor,
    });
    const jobs: JobRecord[] = [];
    for await (const entry of iter) {
      if (options.status === undefined || entry.value.status === options.status) {
        jobs.push(entry.value);
        if (jobs.length === options.limit) {
          const cursor = iter.cursor;
          // Peek: a cursor is only useful when something follows it.
          const next = this.#kv.list({ prefix: ["jobs"] }, { reverse: true, cursor, limit: 1 });
          for await (const _ of next) return { jobs, cursor };
          return { jobs, cursor: null };
        }
      }
    }
    return { jobs, cursor: null };
  }

  /** Records one epoch's logs of job `id`. */
  async appendEpoch(id: string, epoch: number, logs: Record<string, number>): Promise<void> {
    await this.#kv.set(["job_epochs", id, epoch], logs);
  }

  /** The History recorded for job `id`. */
  async history(id: string): Promise<StoredHistory> {
    const out: StoredHistory = { epoch: [], history: {} };
    for await (
      const entry of this.#kv.list<Record<string, number>>({ prefix: ["job_epochs", id] })
    ) {
      out.epoch.push(entry.key[2] as number);
      for (const [k, v] of Object.entries(entry.value)) (out.history[k] ??= []).push(v);
    }
    return out;
  }

  /** Stores a model's metadata. */
  async putModel(record: ModelRecord): Promise<void> {
    await this.#kv.set(["models", record.id], record);
  }

  /** A model's metadata; null when unknown. */
  async getModel(id: string): Promise<ModelRecord | null> {
    return (await this.#kv.get<ModelRecord>(["models", id])).value;
  }

  /** Every model, newest first. */
  async listModels(): Promise<ModelRecord[]> {
    const out: ModelRecord[] = [];
    for await (const e of this.#kv.list<ModelRecord>({ prefix: ["models"] }, { reverse: true })) {
      out.push(e.value);
    }
    return out;
  }

  /** Removes a model's metadata; false when it was not there. */
  async deleteModel(id: string): Promise<boolean> {
    const entry = await this.#kv.get(["models", id]);
    if (entry.versionstamp === null) return false;
    const res = await this.#kv.atomic().check(entry).delete(["models", id]).commit();
    return res.ok;
  }

  /**
   * Stores an uploaded dataset's metadata (a `DatasetRecord`; typed by
   * `DatasetLibrary` in `datasets.ts`, which owns the files).
   */
  async putDataset<T extends { id: string }>(record: T): Promise<void> {
    await this.#kv.set(["datasets", record.id], record);
  }

  /** An uploaded dataset's metadata; null when unknown. */
  async getDataset<T = unknown>(id: string): Promise<T | null> {
    return (await this.#kv.get<T>(["datasets", id])).value;
  }

  /** Every uploaded dataset, newest first. */
  async listDatasets<T = unknown>(): Promise<T[]> {
    const out: T[] = [];
    const iter = this.#kv.list<T>({ prefix: ["datasets"] }, { reverse: true });
    for await (const e of iter) out.push(e.value);
    return out;
  }

  /** Removes an uploaded dataset's metadata; false when it was not there. */
  async deleteDataset(id: string): Promise<boolean> {
    const entry = await this.#kv.get(["datasets", id]);
    if (entry.versionstamp === null) return false;
    const res = await this.#kv.atomic().check(entry).delete(["datasets", id]).commit();
    return res.ok;
  }

  /** Renews the lease of server `owner`. */
  async heartbeat(owner: string, startedAt: number): Promise<void> {
    const lease: ServerLease = { startedAt, heartbeatAt: Date.now() };
    await this.#kv.set(["servers", owner], lease);
  }

  /** Drops the lease of server `owner` (on shutdown). */
  async removeServer(owner: string): Promise<void> {
    await this.#kv.delete(["servers", owner]);
  }

  /**
   * Takes over every queued or running job whose server is gone (no lease,
   * or a lease not renewed for `leaseMs`), except those of `self`: with
   * `claim`, the job's owner becomes `self` and its status is kept (the
   * caller resumes it); without, it is marked `interrupted`. Each job is
   * updated only if nobody changed it meanwhile. Resolves with the ids.
   */
  async sweep(self: string, leaseMs: number, claim = false): Promise<string[]> {
    const marked: string[] = [];
    const leases = new Map<string, ServerLease | null>();
    const now = Date.now();
    for await (const active of this.#kv.list<string>({ prefix: ["job_active"] })) {
      const owner = active.value;
      if (owner === self) continue;
      if (!leases.has(owner)) {
        leases.set(owner, (await this.#kv.get<ServerLease>(["servers", owner])).value);
      }
      const lease = leases.get(owner);
      if (lease !== null && lease !== undefined && now - lease.heartbeatAt < leaseMs) continue;
      const id = active.key[1] as string;
      const entry = await this.#kv.get<JobRecord>(["jobs", id]);
      if (entry.value === null) {
        await this.#kv.atomic().check(active).delete(active.key).commit();
        continue;
      }
      if (TERMINAL_STATUSES.includes(entry.value.status)) continue;
      if (claim) {
        const claimed = await this.#kv.atomic().check(entry).check(active)
          .set(["jobs", id], { ...entry.value, owner: self }).set(active.key, self).commit();
        if (claimed.ok) marked.push(id);
        continue;
      }
      const record: JobRecord = {
        ...entry.value,
        status: "interrupted",
        finishedAt: new Date(now).toISOString(),
        error: {
          code: "server_lost",
          message: `The server running this job (${owner}) stopped while the job was ` +
            `${entry.value.status}; submit it again to retrain`,
        },
      };
      const res = await this.#kv.atomic().check(entry).check(active)
        .set(["jobs", id], record).delete(active.key).commit();
      if (res.ok) marked.push(id);
    }
    return marked;
  }

  /** Closes the KV when this store opened it. */
  close(): void {
    if (this.#ownsKv) this.#kv.close();
  }
}
