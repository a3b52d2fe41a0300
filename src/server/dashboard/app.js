// The dtrain dashboard: plain browser JavaScript, served as is (no build step).
//
// It talks to the JSON API under `v1/` with the bearer token the user typed,
// kept for the tab in sessionStorage. Job events are read with fetch() and a
// small Server-Sent Events parser, because EventSource cannot send an
// Authorization header. Charts are uPlot (served by the app from its npm
// package, loaded before this module as the global `uPlot`).

const TOKEN_KEY = "dtrain.token";
const TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];
const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
const JOBS_POLL_MS = 2000;

/** An error answer of the API, or a failed request. */
class ApiError extends Error {
  constructor(request, status, code, message, details) {
    super(message);
    this.name = "ApiError";
    this.request = request;
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  report: null,
  jobs: [],
  models: [],
  selected: null,
  view: null,
  pollTimer: undefined,
  predictModel: "",
  /** Model ids seen in job records: a new one means the registry grew. */
  seenModelIds: new Set(),
  modelsLoaded: false,
};

// ---------------------------------------------------------------- helpers

const $ = (selector) => {
  const found = document.querySelector(selector);
  if (found === null) throw new Error(`dashboard: missing element ${selector}`);
  return found;
};

/** Creates an element; strings become text nodes (never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function fmt(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return Math.abs(value) >= 1000 ? value.toFixed(0) : value.toPrecision(digits);
}

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 4)}…${id.slice(-6)}` : id;
}

/** A readable, one-paragraph description of an error. */
function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  const where = error.request ? `${error.request} failed` : "Request failed";
  const status = error.status ? `HTTP ${error.status} ${error.code}` : error.code;
  let text = `${where} (${status}): ${error.message}`;
  const issues = error.details?.issues;
  if (Array.isArray(issues) && issues.length > 1) {
    text += "\n" + issues.map((i) => `• ${i.path || "(body)"}: ${i.message}`).join("\n");
  }
  return text;
}

function showError(error) {
  $("#error-text").textContent = describe(error);
  $("#error").hidden = false;
}

function clearError() {
  $("#error").hidden = true;
  $("#error-text").textContent = "";
}

function setConnection(text, ok) {
  const node = $("#connection");
  node.textContent = text;
  node.className = `connection ${ok ? "ok" : "bad"}`;
}

// ---------------------------------------------------------------- API

function authHeaders() {
  return state.token === "" ? {} : { Authorization: `Bearer ${state.token}` };
}

async function errorOf(request, res) {
  const text = await res.text().catch(() => "");
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const e = body?.error;
  return new ApiError(
    request,
    res.status,
    e?.code ?? `http_${res.status}`,
    e?.message ?? (text.slice(0, 300) || res.statusText || "no message"),
    e?.details,
  );
}

/** Calls the API; resolves with the JSON answer, rejects with an ApiError. */
async function api(method, path, body) {
  const request = `${method} /${path}`;
  const sent = state.token;
  const init = { method, headers: { ...authHeaders() } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    setConnection("server unreachable", false);
    throw new ApiError(request, 0, "network_error", `cannot reach the server: ${e.message}`);
  }
  if (!res.ok) {
    const error = await errorOf(request, res);
    if (res.status === 401) unauthorized(error, sent);
    throw error;
  }
  setConnection("connected", true);
  if (res.status === 204) return null;
  return await res.json();
}

// ---------------------------------------------------------------- token

function askToken(message, isError) {
  const dialog = $("#token-dialog");
  const note = $("#token-message");
  note.textContent = message;
  note.className = isError ? "error" : "";
  $("#token-input").value = "";
  if (!dialog.open) dialog.showModal();
  $("#token-input").focus();
}

/** Handles a 401 to a request sent with token `sent` ("" for none). */
function unauthorized(error, sent) {
  // A late answer to a token that was already replaced says nothing about the new one.
  if (state.token !== "" && state.token !== sent) return;
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stopPolling();
  state.view?.close();
  setConnection("token needed", false);
  if (sent !== "") {
    askToken(
      `The server refused this token: ${error.message} (HTTP 401 ${error.code}). ` +
        "Check DTRAIN_TOKEN and try again.",
      true,
    );
  } else {
    askToken("This server requires a bearer token: enter the value of its DTRAIN_TOKEN.", false);
  }
}

$("#token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#token-input").value.trim();
  if (token === "") return;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token-submit").disabled = true;
  try {
    await connect();
  } finally {
    $("#token-submit").disabled = false;
  }
});

// Without a token the page can do nothing: Escape does not close the dialog.
$("#token-dialog").addEventListener("cancel", (event) => {
  if (state.token === "") event.preventDefault();
});

$("#token-change").addEventListener("click", () => {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  askToken("Enter the server's token (DTRAIN_TOKEN).", false);
});

$("#error-close").addEventListener("click", clearError);

/** Loads everything; on success closes the token dialog and starts polling. */
async function connect() {
  try {
    await Promise.all([loadBackends(), loadJobs(), loadModels()]);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
    return;
  }
  const dialog = $("#token-dialog");
  if (dialog.open) dialog.close();
  clearError();
  startPolling();
  if (state.selected === null) {
    const first = state.jobs.find((j) => !TERMINAL.includes(j.status)) ?? state.jobs[0];
    if (first) selectJob(first.id);
  } else {
    selectJob(state.selected);
  }
}

// ---------------------------------------------------------------- backends

async function loadBackends() {
  const report = await api("GET", "v1/backends");
  state.report = report;
  const rows = report.backends.map((b) =>
    el(
      "tr",
      { dataset: { backend: b.name } },
      el("td", {}, el("code", {}, b.name), b.auto ? el("span", { class: "badge" }, "auto") : null),
      el(
        "td",
        { class: b.available ? "yes" : "no" },
        b.available ? (b.software ? "yes (software)" : "yes") : "no",
      ),
      el(
        "td",
        {},
        b.reason,
        b.description && !b.reason.includes(b.description)
          ? el("div", { class: "hint" }, b.description)
          : null,
      ),
    )
  );
  $("#backends tbody").replaceChildren(...rows);
  const notes = [`auto picks ${report.auto ?? "nothing"}`, `predict runs on ${report.predict}`];
  if (report.override) notes.push(`DTRAIN_BACKEND=${report.override}`);
  $("#backends-note").textContent = notes.join(" · ");
  for (const option of $("#job-form [name=backend]").options) {
    if (option.value === "auto") {
      option.textContent = report.auto ? `auto (${report.auto})` : "auto";
      continue;
    }
    const b = report.backends.find((x) => x.name === option.value);
    option.disabled = b !== undefined && !b.available;
    option.title = b?.reason ?? "";
  }
}

// ---------------------------------------------------------------- jobs

function progressText(job) {
  const p = job.progress;
  if (job.status === "queued") return "waiting";
  if (p.epoch === 0) return `0/${p.epochs} epochs`;
  return `epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps}`;
}

async function loadJobs() {
  const { jobs } = await api("GET", "v1/jobs?limit=50");
  state.jobs = jobs;
  const rows = jobs.map((job) =>
    el(
      "tr",
      {
        dataset: { id: job.id, status: job.status },
        class: job.id === state.selected ? "selected" : "",
        onclick: () => selectJob(job.id),
      },
      el("td", { title: job.id }, job.name ?? el("code", {}, shortId(job.id))),
      el("td", {}, el("span", { class: `status ${job.status}` }, job.status)),
      el("td", {}, progressText(job)),
      el("td", {}, job.spec.model),
      el("td", {}, job.spec.data),
      el("td", {}, when(job.createdAt)),
    )
  );
  $("#jobs tbody").replaceChildren(...rows);
  $("#jobs-empty").hidden = jobs.length > 0;
  const fresh = jobs.filter((j) => j.modelId && !state.seenModelIds.has(j.modelId));
  for (const job of fresh) state.seenModelIds.add(job.modelId);
  if (fresh.length > 0 && state.modelsLoaded) loadModels().catch(() => {});
}

function startPolling() {
  stopPolling();
  const tick = async () => {
    try {
      await loadJobs();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) setConnection(describe(e), false);
      if (e instanceof ApiError && e.status === 401) return;
    }
    state.pollTimer = setTimeout(tick, JOBS_POLL_MS);
  };
  state.pollTimer = setTimeout(tick, JOBS_POLL_MS);
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = undefined;
}

function formJob(form) {
  const f = new FormData(form);
  const num = (name) => {
    const v = String(f.get(name) ?? "").trim();
    return v === "" ? undefined : Number(v);
  };
  const preset = f.get("preset");
  const model = preset === "mlp"
    ? {
      preset: "mlp",
      hidden: String(f.get("hidden") ?? "").split(",").map((s) => s.trim()).filter((s) => s)
        .map(Number),
    }
    : { preset: "cnn" };
  const name = String(f.get("name") ?? "").trim();
  return {
    ...(name === "" ? {} : { name }),
    model,
    compile: { optimizer: "adam", loss: "categoricalCrossentropy", metrics: ["accuracy"] },
    data: { dataset: f.get("dataset"), limit: num("limit") },
    fit: {
      epochs: num("epochs"),
      batchSize: num("batchSize"),
      validationSplit: num("validationSplit") ?? 0,
    },
    strategy: { kind: f.get("strategy"), replicas: num("replicas"), backend: f.get("backend") },
  };
}

$("#job-form [name=preset]").addEventListener("change", (event) => {
  $("#job-form [data-for=mlp]").hidden = event.target.value !== "mlp";
});

$("#job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = $("#job-form-error");
  errorBox.hidden = true;
  const button = $("#job-submit");
  button.disabled = true;
  try {
    const accepted = await api("POST", "v1/jobs", formJob(event.target));
    await loadJobs();
    selectJob(accepted.id);
  } catch (e) {
    errorBox.textContent = describe(e);
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
});

/** Shows job `id`: its record, then its live events. */
function selectJob(id) {
  state.view?.close();
  state.selected = id;
  for (const row of document.querySelectorAll("#jobs tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  state.view = new JobView(id);
  state.view.open();
}

/**
 * Reads a `text/event-stream` body; calls `onEvents([{ id, event, data }])`
 * with the events of each network read (comments such as pings are skipped).
 */
async function readEvents(body, onEvents) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    const batch = [];
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: 0, event: "message", data: [] };
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const text = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") event.id = Number(text);
        else if (field === "event") event.event = text;
        else if (field === "data") event.data.push(text);
      }
      if (event.data.length > 0) batch.push({ ...event, data: JSON.parse(event.data.join("\n")) });
    }
    if (batch.length > 0) onEvents(batch);
  }
}

/** A chart of one quantity: train per batch, train per epoch, validation per epoch. */
class Chart {
  constructor(container, label) {
    this.container = container;
    this.x = [];
    this.batch = [];
    this.epoch = [];
    this.val = [];
    this.pending = false;
    this.destroyed = false;
    /** Epochs of the job: the x axis always spans the whole run. */
    this.epochs = 1;
    container.replaceChildren();
    container.dataset.points = "0";
    const width = Math.max(300, container.clientWidth || 480);
    this.plot = new uPlot(
      {
        width,
        height: 240,
        scales: {
          x: { time: false, range: (_u, _min, max) => [0, Math.max(max ?? 0, this.epochs)] },
        },
        axes: [
          { label: "epoch", size: 40 },
          { label, size: 56 },
        ],
        series: [
          { label: "epoch", value: (_u, v) => (v == null ? "–" : v.toFixed(2)) },
          {
            label: "train, batch",
            stroke: "#8fb2dc",
            width: 1,
            points: { show: false },
            value: (_u, v) => fmt(v),
          },
          {
            label: "train, epoch",
            stroke: "#1f5fa8",
            width: 2,
            spanGaps: true,
            points: { show: true, size: 7 },
            value: (_u, v) => fmt(v),
          },
          {
            label: "validation",
            stroke: "#d9480f",
            width: 2,
            dash: [6, 4],
            spanGaps: true,
            points: { show: true, size: 7 },
            value: (_u, v) => fmt(v),
          },
        ],
        legend: { live: true },
      },
      [[], [], [], []],
      container,
    );
    this.resize = new ResizeObserver(() => {
      const w = container.clientWidth;
      if (w > 0 && w !== this.plot.width) this.plot.setSize({ width: w, height: 240 });
    });
    this.resize.observe(container);
  }

  /** Adds a batch value at x (epochs done, fractional). */
  addBatch(x, value) {
    this.x.push(x);
    this.batch.push(value ?? null);
    this.epoch.push(null);
    this.val.push(null);
    this.#schedule();
  }

  /** Adds the epoch values at x = epoch (on the epoch's last batch when there is one). */
  addEpoch(x, train, val) {
    const last = this.x.length - 1;
    if (last < 0 || this.x[last] !== x) {
      this.x.push(x);
      this.batch.push(null);
      this.epoch.push(null);
      this.val.push(null);
    }
    const i = this.x.length - 1;
    this.epoch[i] = train ?? null;
    this.val[i] = val ?? null;
    this.#schedule();
  }

  get epochPoints() {
    return this.epoch.filter((v) => v !== null).length;
  }

  #schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      if (this.destroyed) return;
      this.plot.setData([this.x, this.batch, this.epoch, this.val]);
      this.container.dataset.points = String(this.x.length);
    });
  }

  destroy() {
    this.destroyed = true;
    this.resize.disconnect();
    this.plot.destroy();
  }
}

/** The panel of one job: record, stats, charts fed by its event stream. */
class JobView {
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
    for (const id of ["epoch", "step", "rate", "eta", "loss", "metric", "backend"]) {
      $(`#stat-${id}`).textContent = "–";
    }
    try {
      this.render(await api("GET", `v1/jobs/${encodeURIComponent(this.id)}`));
    } catch (e) {
      if (this.abort.signal.aborted) return;
      if (!(e instanceof ApiError && e.status === 401)) showError(e);
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
    } else if (event === "end") {
      this.ended = true;
      // A job this server has no events of (e.g. after a restart): chart its History.
      if (this.loss.epochPoints === 0 && data.history) this.#history(data.history);
      this.render(data);
      loadJobs().catch(() => {});
      if (data.modelId) loadModels().catch((e) => showError(e));
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
    const replicas = s.strategy.replicas ?? "default";
    $("#job-spec").textContent = `${s.model} on ${s.data} · ${s.strategy.kind} × ${replicas} ` +
      `replicas, backend ${s.strategy.backend} · ${s.fit.epochs} epochs, batch ` +
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
    $("#stat-backend").textContent = job.backend ?? job.spec.strategy.backend;
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

$("#job-cancel").addEventListener("click", async () => {
  const id = state.selected;
  if (id === null) return;
  const button = $("#job-cancel");
  button.disabled = true;
  try {
    const job = await api("DELETE", `v1/jobs/${encodeURIComponent(id)}`);
    if (state.view?.id === id) state.view.render(job);
    await loadJobs();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  } finally {
    button.disabled = false;
  }
});

$("#job-use-model").addEventListener("click", () => {
  const modelId = state.view?.job?.modelId;
  if (!modelId) return;
  choosePredictModel(modelId);
  $("#predict-panel").scrollIntoView({ behavior: "smooth" });
});

// ---------------------------------------------------------------- models

function isImageModel(model) {
  const shape = model.inputShape.slice(1);
  const size = shape.reduce((a, b) => a * (b ?? 1), 1);
  return size === 784 && (shape.length === 1 || (shape[0] === 28 && shape[1] === 28));
}

async function loadModels() {
  const { models } = await api("GET", "v1/models");
  state.models = models;
  state.modelsLoaded = true;
  const rows = models.map((m) => {
    const metrics = Object.entries(m.metrics).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(", ");
    return el(
      "tr",
      { dataset: { id: m.id } },
      el("td", { title: m.id }, el("code", {}, shortId(m.id))),
      el("td", {}, m.jobId ? el("code", { title: m.jobId }, shortId(m.jobId)) : "–"),
      el("td", {}, `${JSON.stringify(m.inputShape)} → ${JSON.stringify(m.outputShape)}`),
      el("td", {}, m.params.toLocaleString()),
      el("td", {}, metrics || "–"),
      el("td", {}, when(m.createdAt)),
      el(
        "td",
        { class: "actions" },
        isImageModel(m)
          ? el("button", {
            type: "button",
            class: "secondary",
            onclick: () => choosePredictModel(m.id),
          }, "Predict")
          : null,
        el(
          "button",
          { type: "button", class: "danger", onclick: () => deleteModel(m.id) },
          "Delete",
        ),
      ),
    );
  });
  $("#models tbody").replaceChildren(...rows);
  $("#models-empty").hidden = models.length > 0;
  fillPredictModels();
}

async function deleteModel(id) {
  if (!confirm(`Delete model ${id}? Its files are removed from the server.`)) return;
  try {
    await api("DELETE", `v1/models/${encodeURIComponent(id)}`);
    await loadModels();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  }
}

// ---------------------------------------------------------------- predict

function fillPredictModels() {
  const select = $("#predict-model");
  const images = state.models.filter(isImageModel);
  const options = state.models.map((m) => {
    const job = state.jobs.find((j) => j.id === m.jobId);
    const what = job ? `${job.spec.model}, ${job.spec.data}` : JSON.stringify(m.inputShape);
    return el(
      "option",
      { value: m.id, disabled: !isImageModel(m) },
      `${shortId(m.id)} · ${what}${isImageModel(m) ? "" : " (not a 28×28 model)"}`,
    );
  });
  select.replaceChildren(...options);
  if (!images.some((m) => m.id === state.predictModel)) state.predictModel = images[0]?.id ?? "";
  select.value = state.predictModel;
  $("#predict-run").disabled = state.predictModel === "";
  $("#predict-status").textContent = state.predictModel === ""
    ? "Train a 28×28 image model (mnist or fashion-mnist), then draw."
    : "Draw in the black square.";
}

function choosePredictModel(id) {
  state.predictModel = id;
  $("#predict-model").value = id;
  $("#bars").replaceChildren();
  if (!padEmpty()) predict();
}

$("#predict-model").addEventListener("change", (event) => choosePredictModel(event.target.value));

const pad = $("#pad");
const padContext = pad.getContext("2d", { willReadFrequently: true });

function clearPad() {
  padContext.fillStyle = "#000";
  padContext.fillRect(0, 0, pad.width, pad.height);
  const preview = $("#pad-preview").getContext("2d");
  preview.fillStyle = "#000";
  preview.fillRect(0, 0, 28, 28);
  $("#bars").replaceChildren();
}
clearPad();

function padEmpty() {
  const data = padContext.getImageData(0, 0, pad.width, pad.height).data;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 0) return false;
  return true;
}

let drawing = null;
pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  drawing = padPoint(event);
  stroke(drawing, drawing);
});
pad.addEventListener("pointermove", (event) => {
  if (drawing === null) return;
  const next = padPoint(event);
  stroke(drawing, next);
  drawing = next;
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (drawing === null) return;
    drawing = null;
    predict();
  });
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

function stroke(from, to) {
  padContext.strokeStyle = "#fff";
  padContext.lineWidth = 20;
  padContext.lineCap = "round";
  padContext.lineJoin = "round";
  padContext.beginPath();
  padContext.moveTo(from.x, from.y);
  padContext.lineTo(to.x + 0.01, to.y);
  padContext.stroke();
}

/**
 * The drawing as MNIST sees digits: the strokes' bounding box scaled to fit
 * 20×20, centred by its centre of mass in 28×28, values in [0, 1].
 */
function padPixels() {
  const { data, width, height } = padContext.getImageData(0, 0, pad.width, pad.height);
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[(y * width + x) * 4] > 0) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const scale = 20 / Math.max(w, h);
  const small = document.createElement("canvas");
  small.width = 28;
  small.height = 28;
  const ctx = small.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  const draw = (dx, dy) => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, 28, 28);
    ctx.drawImage(pad, x0, y0, w, h, dx, dy, w * scale, h * scale);
    return ctx.getImageData(0, 0, 28, 28).data;
  };
  let dx = (28 - w * scale) / 2, dy = (28 - h * scale) / 2;
  let pixels = draw(dx, dy);
  let mass = 0, mx = 0, my = 0;
  for (let i = 0; i < 784; i++) {
    const v = pixels[i * 4];
    mass += v;
    mx += v * (i % 28);
    my += v * Math.floor(i / 28);
  }
  if (mass > 0) {
    dx += 13.5 - mx / mass;
    dy += 13.5 - my / mass;
    pixels = draw(Math.round(dx), Math.round(dy));
  }
  $("#pad-preview").getContext("2d").drawImage(small, 0, 0);
  return Array.from({ length: 784 }, (_, i) => Math.round((pixels[i * 4] / 255) * 1e4) / 1e4);
}

function softmax(values) {
  const max = Math.max(...values);
  const exp = values.map((v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
}

let predicting = 0;
async function predict() {
  const id = state.predictModel;
  const status = $("#predict-status");
  if (id === "") {
    status.textContent = "No 28×28 image model yet: train one first.";
    return;
  }
  const inputs = padPixels();
  if (inputs === null) {
    status.textContent = "Draw something first.";
    return;
  }
  const ticket = ++predicting;
  status.textContent = "predicting…";
  try {
    const { outputs } = await api("POST", `v1/models/${encodeURIComponent(id)}/predict`, {
      inputs: [inputs],
    });
    if (ticket !== predicting) return;
    let probs = outputs[0];
    const sum = probs.reduce((a, b) => a + b, 0);
    const isDistribution = probs.every((p) => p >= 0) && Math.abs(sum - 1) < 1e-3;
    if (!isDistribution) probs = softmax(probs);
    renderBars(id, probs);
    const best = probs.indexOf(Math.max(...probs));
    status.textContent = `Prediction: ${labelsFor(id)[best] ?? best} ` +
      `(${(probs[best] * 100).toFixed(1)}%)${isDistribution ? "" : " · softmax applied"}`;
  } catch (e) {
    if (ticket !== predicting) return;
    status.textContent = describe(e);
  }
}

function labelsFor(modelId) {
  const model = state.models.find((m) => m.id === modelId);
  const job = state.jobs.find((j) => j.id === model?.jobId);
  return job?.spec.data.startsWith("fashion-mnist") ? FASHION : DIGITS;
}

function renderBars(modelId, probs) {
  const labels = labelsFor(modelId);
  const best = probs.indexOf(Math.max(...probs));
  const items = probs.map((p, i) =>
    el(
      "li",
      { class: i === best ? "best" : "", dataset: { p: String(p), label: labels[i] ?? String(i) } },
      el("span", { class: "label" }, labels[i] ?? String(i)),
      el(
        "span",
        { class: "track" },
        el("span", {
          class: "fill",
          style: { display: "block", width: `${(p * 100).toFixed(2)}%` },
        }),
      ),
      el("span", { class: "value" }, `${(p * 100).toFixed(1)}%`),
    )
  );
  $("#bars").replaceChildren(...items);
}

$("#pad-clear").addEventListener("click", () => {
  clearPad();
  $("#predict-status").textContent = "Draw in the black square.";
});
$("#predict-run").addEventListener("click", () => predict());

// ---------------------------------------------------------------- start

if (typeof uPlot !== "function") {
  showError(new Error("The chart library (assets/uPlot.iife.min.js) did not load."));
}
connect();
