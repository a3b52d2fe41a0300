// The backends panel: GET /v1/backends as a table (available or not, and
// why), which backend `auto` picks, and the same facts on the job form's
// backend choices.
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { annotateBackends } from "./job_form.js";
import { state } from "./state.js";

/** Loads and shows the backend report. */
export async function loadBackends() {
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
  annotateBackends();
}
