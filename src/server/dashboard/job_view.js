// The job panel: one job's record, stats and live charts, fed by its event
// stream (resumed with Last-Event-ID after a drop). It only shows: when the
// job ends it dispatches JOB_ENDED on the document and app.js reloads the
// job list and the models.
import { api, authHeaders, errorOf, unauthorized } from "./api.js";
import { Chart } from "./chart.js";
import { $, duration, fmt, sleep } from "./dom.js";
import { isUnauthorized, showError } from "./errors.js";
import { readEvents } from "./sse.js";
import { state, TERMINAL } from "./state.js";
import { WorkersTable } from "./workers.js";

/** The document event a JobView dispatches when its job ended (`detail`: the record). */
export const JOB_ENDED = "dtrain:job-ended";

/** The panel of one job: record, stats, charts fed by its event stream. */
export class JobView {
  constructor(id) {
    this.id = id;
    this.abort = new AbortController();
    this.job = null;
    this.metric = null;
    this.samples = [];
    this.lastStep = 0;
    this.ended = false;
    this.loss = new Chart($("#chart-loss"), "loss");
    this.acc = new Chart($("#chart-metric"), "accuracy");
  }

  async open() {
    const panel = $("#job-panel");
    panel.hidden = false;
    $("#job-title").textContent = this.id;
    $("#job-error").hidden = true;
    $("#job-stream").textContent = "";
    $("#job-workers").hidden = true;
    for (const id of ["epoch", "step", "rate", "eta", "loss", "metric", "backend"]) {
      $(`#stat-${id}`).textContent = "–";
    }
    try {
      this.render(await api("GET", `v1/jobs/${encodeURIComponent(this.id)}`));
      if (this.job.spec.strategy.kind === "worker") {
        this.workers = new WorkersTable(this.id, this.signal);
        this.workers.refresh();
        if (TERMINAL.includes(this.job.status)) this.workers.stop();
      }
    } catch (e) {
      if (this.abort.signal.aborted) return;
      if (!isUnauthorized(e)) showError(e);
      return;
    }
    this.follow();
  }

  close() {
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    this.loss.destroy();
    this.acc.destroy();
  }

  get signal() {
    return this.abort.signal;
  }

  /** Follows the event stream, resuming with Last-Event-ID after a drop. */
  async follow() {
    let lastId = 0;
    for (let attempt = 0; !this.signal.aborted && !this.ended; attempt++) {
      const path = `v1/jobs/${encodeURIComponent(this.id)}/events`;
      try {
        const sent = state.token;
        const headers = { ...authHeaders(), accept: "text/event-stream" };
        if (lastId > 0) headers["last-event-id"] = String(lastId);
        const res = await fetch(path, { headers, signal: this.signal });
        if (!res.ok) {
          const error = await errorOf(`GET /${path}`, res);
          if (res.status === 401) unauthorized(error, sent);
          else showError(error);
          return;
        }
        $("#job-stream").textContent = "following live events";
        attempt = 0;
        await readEvents(res.body, (events) => {
          for (const e of events) {
            lastId = e.id || lastId;
            this.onEvent(e);
          }
          this.#sample();
          this.renderStats();
        });
      } catch (e) {
        if (this.signal.aborted) return;
        $("#job-stream").textContent = `event stream lost (${e.message}); reconnecting…`;
      }
      if (this.ended || this.signal.aborted) break;
      await sleep(Math.min(5000, 500 * (attempt + 1)));
    }
    if (this.ended) $("#job-stream").textContent = "";
  }

  onEvent({ event, data }) {
    if (this.signal.aborted) return;
    const job = this.job;
    if (event === "status") {
      job.status = data.status;
      this.render(job);
    } else if (event === "batch") {
      job.progress.epoch = data.epoch;
      job.progress.step = data.step;
      job.progress.steps = data.steps;
      job.status = "running";
      const x = data.epoch - 1 + data.step / data.steps;
      this.metric ??= pickMetric(data.logs);
      this.loss.addBatch(x, data.logs.loss);
      if (this.metric) this.acc.addBatch(x, data.logs[this.metric]);
      this.lastLogs = data.logs;
    } else if (event === "epoch") {
      this.metric ??= pickMetric(data.logs);
      this.loss.addEpoch(data.epoch, data.logs.loss, data.logs.val_loss);
      if (this.metric) {
        this.acc.addEpoch(data.epoch, data.logs[this.metric], data.logs[`val_${this.metric}`]);
      }
      // Until the next batch, the epoch's means are the latest train values.
      this.epochLogs = this.lastLogs = data.logs;
      this.workers?.refresh();
    } else if (event === "worker") {
      this.workers?.refresh();
    } else if (event === "waiting" || event === "resumed") {
      $("#job-stream").textContent = data.detail;
    } else if (event === "end") {
      this.ended = true;
      this.workers?.stop();
      this.workers?.refresh();
      // A job this server has no events of (e.g. after a restart): chart its History.
      if (this.loss.epochPoints === 0 && data.history) this.#history(data.history);
      this.render(data);
      // The job list and the registry changed: app.js reloads them.
      document.dispatchEvent(new CustomEvent(JOB_ENDED, { detail: data }));
    }
  }

  #history(history) {
    const h = history.history ?? {};
    this.metric ??= pickMetric(h);
    history.epoch.forEach((epoch, i) => {
      this.loss.addEpoch(epoch + 1, h.loss?.[i], h.val_loss?.[i]);
      if (this.metric) {
        this.acc.addEpoch(epoch + 1, h[this.metric]?.[i], h[`val_${this.metric}`]?.[i]);
      }
    });
    const last = history.epoch.length - 1;
    if (last >= 0) {
      this.epochLogs = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v[last]]));
    }
  }

  /** One timing sample per network read, so a replayed burst does not count as speed. */
  #sample() {
    const p = this.job.progress;
    if (p.epoch === 0) return;
    const step = (p.epoch - 1) * p.steps + p.step;
    if (step === this.lastStep) return;
    this.lastStep = step;
    this.samples.push({ t: performance.now(), step });
    if (this.samples.length > 30) this.samples.shift();
  }

  render(job) {
    this.job = job;
    this.loss.epochs = this.acc.epochs = Math.max(1, job.progress.epochs);
    const badge = $("#job-status");
    badge.textContent = job.status;
    badge.className = `status ${job.status}`;
    $("#job-panel").dataset.status = job.status;
    $("#job-title").textContent = job.name ? `${job.name} (${job.id})` : job.id;
    const s = job.spec;
    const unit = "workers" in s.strategy ? "workers" : "replicas";
    const count = s.strategy[unit] ?? "default";
    $("#job-spec").textContent = `${s.model} on ${s.data} · ${s.strategy.kind} × ${count} ` +
      `${unit}, backend ${s.strategy.backend} · ${s.fit.epochs} epochs, batch ` +
      `${s.fit.batchSize}, validation ${s.fit.validationSplit}`;
    $("#job-cancel").hidden = TERMINAL.includes(job.status);
    $("#job-use-model").hidden = !job.modelId;
    const error = $("#job-error");
    error.hidden = !job.error;
    error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
    this.renderStats();
  }

  renderStats() {
    const job = this.job;
    if (job === null) return;
    const p = job.progress;
    $("#stat-epoch").textContent = p.epoch > 0 ? `${p.epoch} / ${p.epochs}` : `– / ${p.epochs}`;
    $("#stat-step").textContent = p.epoch > 0 ? `${p.step} / ${p.steps}` : "–";
    const blas = job.blas?.used
      ? ` + ${job.blas.library?.split("/").pop() ?? "BLAS"}${
        job.blas.coreName ? ` (${job.blas.coreName})` : ""
      }`
      : "";
    $("#stat-backend").textContent = (job.backend ?? job.spec.strategy.backend) + blas;
    $("#stat-backend").title = job.blas ? `host BLAS: ${job.blas.reason}` : "";
    const metric = this.metric ?? "acc";
    $("#stat-metric-name").textContent = metric === "acc" ? "accuracy" : metric;
    $("#chart-metric-caption").textContent = metric === "acc" ? "Accuracy" : metric;
    const logs = this.epochLogs ?? this.lastLogs ?? {};
    const latest = this.lastLogs ?? logs;
    $("#stat-loss").textContent = withVal(latest.loss, logs.val_loss);
    $("#stat-metric").textContent = withVal(latest[metric], logs[`val_${metric}`]);
    const perStep = samplesPerStep(job);
    if (TERMINAL.includes(job.status)) {
      const seconds = (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000;
      const steps = Math.max(0, (p.epoch - 1) * p.steps + p.step);
      const rate = seconds > 0 && steps > 0 ? (steps * perStep) / seconds : NaN;
      $("#stat-rate").textContent = Number.isFinite(rate) ? `${fmt(rate, 3)} (avg)` : "–";
      $("#stat-eta").textContent = job.status === "succeeded" ? "done" : "–";
      return;
    }
    const first = this.samples.find((x) => x.t >= performance.now() - 10_000) ?? this.samples[0];
    const last = this.samples.at(-1);
    if (first && last && last.t - first.t >= 300 && last.step > first.step) {
      const stepsPerSecond = ((last.step - first.step) * 1000) / (last.t - first.t);
      const remaining = (p.epochs - p.epoch) * p.steps + (p.steps - p.step);
      $("#stat-rate").textContent = fmt(stepsPerSecond * perStep, 3);
      $("#stat-eta").textContent = duration(remaining / stepsPerSecond);
    } else {
      $("#stat-rate").textContent = job.status === "running" ? "measuring…" : "–";
      $("#stat-eta").textContent = "–";
    }
  }
}

function withVal(train, val) {
  const t = fmt(train);
  return typeof val === "number" ? `${t} (val ${fmt(val)})` : t;
}

/** The accuracy-like metric of a job's logs: acc, else the first non-loss key. */
function pickMetric(logs) {
  const keys = Object.keys(logs ?? {}).filter((k) => k !== "loss" && !k.startsWith("val_"));
  return keys.includes("acc") ? "acc" : (keys[0] ?? null);
}

/** Training samples per step: the data's size less the validation share, over the steps. */
function samplesPerStep(job) {
  const m = /:\s*(\d+) samples/.exec(job.spec.data);
  const steps = job.progress.steps;
  if (!m || steps < 1) return job.spec.fit.batchSize;
  const train = Math.floor(Number(m[1]) * (1 - (job.spec.fit.validationSplit ?? 0)));
  return train / steps;
}
