// The models panel: the registry's models (shape, size, last epoch's
// metrics), with Predict for 28×28 image models and Delete.
import { api } from "./api.js";
import { $, el, fmt, shortId, when } from "./dom.js";
import { isUnauthorized, showError } from "./errors.js";
import { choosePredictModel, fillPredictModels, isImageModel } from "./predict.js";
import { state } from "./state.js";

/** Loads and shows the registry's models; refreshes the predict panel's choice. */
export async function loadModels() {
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
    if (!isUnauthorized(e)) showError(e);
  }
}
