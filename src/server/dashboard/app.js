// The dtrain dashboard: plain browser JavaScript modules, served as is (no
// build step, no dependency but uPlot, which the app serves from its npm
// package as the global `uPlot`). This module starts the page; each section
// has its own module:
//
//   state.js      the one shared state (each section writes its own fields)
//   dom.js        element and formatting helpers
//   errors.js     ApiError, the error banner, the connection badge
//   api.js        the JSON API client (bearer token from sessionStorage)
//   token.js      the token dialog and what a 401 does
//   backends.js   the backends panel (GET /v1/backends)
//   job_form.js   the "New job" form, its choices from GET /v1/options
//   jobs.js       the job list (polled) and job selection
//   job_view.js   the job panel: stats and live charts from the job's events
//   sse.js        Server-Sent Events over fetch() (EventSource sends no token)
//   chart.js      one uPlot chart
//   models.js     the models panel
//   predict.js    the drawing pad and the prediction bars
import { loadBackends } from "./backends.js";
import { clearError, isUnauthorized, showError } from "./errors.js";
import { loadOptions, setUpJobForm } from "./job_form.js";
import { JOB_ENDED } from "./job_view.js";
import { loadJobs, selectJob, setUpJobList, startPolling } from "./jobs.js";
import { loadModels } from "./models.js";
import { setUpPredict } from "./predict.js";
import { state, TERMINAL } from "./state.js";
import { closeTokenDialog, setUpToken } from "./token.js";

/** Loads everything; on success closes the token dialog and starts polling. */
async function connect() {
  try {
    await Promise.all([loadOptions(), loadBackends(), loadJobs(), loadModels()]);
  } catch (e) {
    if (!isUnauthorized(e)) showError(e);
    return;
  }
  closeTokenDialog();
  clearError();
  startPolling();
  if (state.selected === null) {
    const first = state.jobs.find((j) => !TERMINAL.includes(j.status)) ?? state.jobs[0];
    if (first) selectJob(first.id);
  } else {
    selectJob(state.selected);
  }
}

// A job that ended changed the job list, and maybe the registry.
document.addEventListener(JOB_ENDED, (event) => {
  loadJobs().catch(() => {});
  if (event.detail.modelId) loadModels().catch((e) => showError(e));
});

setUpToken(connect);
setUpJobForm();
setUpJobList();
setUpPredict();

if (typeof uPlot !== "function") {
  showError(new Error("The chart library (assets/uPlot.iife.min.js) did not load."));
}
connect();
