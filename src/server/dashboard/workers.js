// The workers table of a WorkerStrategy job: each worker (local or remote),
// where it runs, what it applied, its staleness and when it was last seen,
// and what the job's remote workers did (joins, losses, refusals). Read from
// GET /v1/jobs/{id}/workers when the job's events say a worker came or went,
// at every epoch, at the end, and every few seconds while it runs.
import { api } from "./api.js";
import { $, fmt } from "./dom.js";

const REFRESH_MS = 3000;

/** The workers table of job `id`, refreshed until `signal` aborts. */
export class WorkersTable {
  constructor(id, signal) {
    this.id = id;
    this.signal = signal;
    this.pending = false;
    $("#job-workers").hidden = false;
    $("#job-workers-body").replaceChildren();
    $("#job-workers-remote").textContent = "";
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    signal.addEventListener("abort", () => clearInterval(this.timer), { once: true });
  }

  /** Stops the periodic refresh (the job ended); a last refresh still runs. */
  stop() {
    clearInterval(this.timer);
  }

  async refresh() {
    if (this.pending || this.signal.aborted) return;
    this.pending = true;
    try {
      const body = await api("GET", `v1/jobs/${encodeURIComponent(this.id)}/workers`);
      if (!this.signal.aborted) this.render(body);
    } catch {
      // The job panel reports errors; a missed refresh is retried.
    } finally {
      this.pending = false;
    }
  }

  render({ workers, remote, batches }) {
    const rows = workers.map((w) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = w.kind;
      const where = w.kind === "remote"
        ? `${w.name ?? ""}${w.name ? " · " : ""}${w.address ?? ""}`
        : "this server";
      const seen = w.lastSeen ? new Date(w.lastSeen).toLocaleTimeString() : "–";
      const cells = [
        String(w.id),
        w.kind,
        where,
        w.backend ?? w.requested,
        w.error ? `${w.status}: ${w.error}` : w.status,
        String(w.applied),
        fmt(w.meanStaleness, 3),
        fmt(w.stepMs, 3),
        seen,
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    $("#job-workers-body").replaceChildren(...rows);
    const parts = [];
    if (remote) {
      const refused = Object.entries(remote.refused)
        .filter(([, n]) => n > 0)
        .map(([reason, n]) => `${n} ${reason}`);
      parts.push(
        `remote: ${remote.joined} joined, ${remote.lost} lost, ${remote.reassigned} batches ` +
          `reassigned, refused: ${refused.length > 0 ? refused.join(", ") : "none"}`,
      );
    }
    if (batches) parts.push(`batches applied ${batches.applied}, repeated ${batches.repeated}`);
    $("#job-workers-remote").textContent = parts.join(" · ");
  }
}
