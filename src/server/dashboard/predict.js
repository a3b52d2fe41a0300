// The predict panel: a drawing pad whose strokes are scaled and centred
// like MNIST digits (28×28, values in [0, 1]), sent to the chosen model;
// the answer is shown as one bar per class (softmax applied when the model
// gives logits).
import { api } from "./api.js";
import { $, el, shortId } from "./dom.js";
import { describe } from "./errors.js";
import { state } from "./state.js";

/** Whether `model` takes 28×28 images (784 values, flat or 28×28×1). */
export function isImageModel(model) {
  const shape = model.inputShape.slice(1);
  const size = shape.reduce((a, b) => a * (b ?? 1), 1);
  return size === 784 && (shape.length === 1 || (shape[0] === 28 && shape[1] === 28));
}

/** Fills the model choice: every model, only 28×28 image models enabled. */
export function fillPredictModels() {
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

/** Sends the drawing to model `id` from now on (and at once if something is drawn). */
export function choosePredictModel(id) {
  state.predictModel = id;
  $("#predict-model").value = id;
  $("#bars").replaceChildren();
  if (!padEmpty()) predict();
}

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

function padEmpty() {
  const data = padContext.getImageData(0, 0, pad.width, pad.height).data;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 0) return false;
  return true;
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
  // The server's class names (GET /v1/options); digits for anything else.
  const names = state.options?.classNames ?? {};
  const dataset = job?.spec.data.startsWith("fashion-mnist") ? "fashion-mnist" : "mnist";
  return names[dataset] ?? Array.from({ length: 10 }, (_, i) => String(i));
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

/** Wires the pad, its buttons, the model choice and the job panel's "Try the model". */
export function setUpPredict() {
  clearPad();
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
  $("#pad-clear").addEventListener("click", () => {
    clearPad();
    $("#predict-status").textContent = "Draw in the black square.";
  });
  $("#predict-run").addEventListener("click", () => predict());
  $("#predict-model").addEventListener("change", (event) => choosePredictModel(event.target.value));
  $("#job-use-model").addEventListener("click", () => {
    const modelId = state.view?.job?.modelId;
    if (!modelId) return;
    choosePredictModel(modelId);
    $("#predict-panel").scrollIntoView({ behavior: "smooth" });
  });
}
