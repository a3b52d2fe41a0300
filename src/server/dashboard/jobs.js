// The job list: GET /v1/jobs polled every 2 s, a click selects a job (the
// job panel follows it), the cancel button of the selected job. A model id
// not seen before in the list means the registry grew: the models reload.
import { api } from "./api.js";
import { $, el, shortId, when } from "./dom.js";
import { describe, isUnauthorized, setConnection, showError } from "./errors.js";
import { JobView } from "./job_view.js";
import { loadModels } from "./models.js";
import { state } from "./state.js";

const JOBS_POLL_MS = 2000;

function progressText(job) {
  const p = job.progress;
  if (job.status === "queued") return "waiting";
  if (p.epoch === 0) return `0/${p.epochs} epochs`;
  return `epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps}`;
}

/** Loads and shows the newest 50 jobs. */
export async function loadJobs() {
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

/** Reloads the job list every JOBS_POLL_MS until a 401 or `stopPolling()`. */
export function startPolling() {
  stopPolling();
  const tick = async () => {
    try {
      await loadJobs();
    } catch (e) {
      if (!isUnauthorized(e)) setConnection(describe(e), false);
      if (isUnauthorized(e)) return;
    }
    state.pollTimer = setTimeout(tick, JOBS_POLL_MS);
  };
  state.pollTimer = setTimeout(tick, JOBS_POLL_MS);
}

/** Stops polling the job list. */
export function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = undefined;
}

/** Shows job `id`: its record, then its live events. */
export function selectJob(id) {
  state.view?.close();
  state.selected = id;
  for (const row of document.querySelectorAll("#jobs tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  state.view = new JobView(id);
  state.view.open();
}

/** Wires the selected job's cancel button. */
export function setUpJobList() {
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
      if (!isUnauthorized(e)) showError(e);
    } finally {
      button.disabled = false;
    }
  });
}
