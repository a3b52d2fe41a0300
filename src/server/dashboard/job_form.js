// The "New job" form. Its choices (strategy kinds, backends, presets,
// datasets, optimizers, losses, metrics) come from GET /v1/options, built by
// the server from the constants that validate a job, so the form offers
// exactly what the server accepts. The Workers count field is named after
// the chosen kind's count option (`replicas` for mirrored, `workers` for
// worker), and so is the strategy field it sends.
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { describe } from "./errors.js";
import { loadJobs, selectJob } from "./jobs.js";
import { state } from "./state.js";

/** What the form picks before the user does. */
const DEFAULTS = {
  preset: "mlp",
  dataset: "mnist",
  strategy: "mirrored",
  backend: "auto",
  optimizer: "adam",
  loss: "categoricalCrossentropy",
  metric: "accuracy",
};

const form = () => $("#job-form");
const field = (name) => $(`#job-form [name=${name}]`);

/** Replaces the choices of select `name` with `values`, keeping the current pick. */
function fill(name, values, { none, title } = {}) {
  const select = field(name);
  const current = select.value || DEFAULTS[name];
  const options = values.map((v) => el("option", { value: v, title: title?.(v) }, v));
  if (none !== undefined) options.unshift(el("option", { value: "" }, none));
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === current)
    ? current
    : (select.options[0]?.value ?? "");
}

/** The chosen strategy kind's entry of GET /v1/options. */
function chosenKind() {
  const kind = field("strategy").value;
  return state.options?.strategies.find((s) => s.kind === kind);
}

/** Names the count field after the chosen kind's option (replicas or workers). */
function showCountOption() {
  const option = chosenKind()?.countOption ?? "replicas";
  const input = $("#job-count");
  input.name = option;
  $("#job-count-label").textContent = option[0].toUpperCase() + option.slice(1);
  $("#job-strategy-hint").textContent = chosenKind()?.description ?? "";
}

/** Loads GET /v1/options and fills the form's choices from it. */
export async function loadOptions() {
  const options = await api("GET", "v1/options");
  state.options = options;
  const describeKind = (kind) => options.strategies.find((s) => s.kind === kind)?.description;
  fill("preset", options.presets);
  fill("dataset", options.datasets);
  fill("strategy", options.strategies.map((s) => s.kind), { title: describeKind });
  fill("backend", options.backends);
  fill("optimizer", options.optimizers);
  fill("loss", options.losses);
  fill("metric", options.metrics, { none: "(none)" });
  showCountOption();
  annotateBackends();
}

/** Marks the backend choices with what GET /v1/backends said (once both loaded). */
export function annotateBackends() {
  const report = state.report;
  if (report === null) return;
  for (const option of field("backend").options) {
    if (option.value === "auto") {
      option.textContent = report.auto ? `auto (${report.auto})` : "auto";
      continue;
    }
    const b = report.backends.find((x) => x.name === option.value);
    option.disabled = b !== undefined && !b.available;
    option.title = b?.reason ?? "";
  }
}

/** The job request the form describes. */
function formJob(formElement) {
  const f = new FormData(formElement);
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
    : { preset };
  const name = String(f.get("name") ?? "").trim();
  const metric = String(f.get("metric") ?? "");
  const count = chosenKind()?.countOption ?? "replicas";
  return {
    ...(name === "" ? {} : { name }),
    model,
    compile: {
      optimizer: f.get("optimizer"),
      loss: f.get("loss"),
      metrics: metric === "" ? [] : [metric],
    },
    data: { dataset: f.get("dataset"), limit: num("limit") },
    fit: {
      epochs: num("epochs"),
      batchSize: num("batchSize"),
      validationSplit: num("validationSplit") ?? 0,
    },
    strategy: { kind: f.get("strategy"), [count]: num(count), backend: f.get("backend") },
  };
}

/** Wires the form: preset-dependent fields, the count field, submit. */
export function setUpJobForm() {
  field("preset").addEventListener("change", (event) => {
    $("#job-form [data-for=mlp]").hidden = event.target.value !== "mlp";
  });
  field("strategy").addEventListener("change", showCountOption);

  form().addEventListener("submit", async (event) => {
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
}
