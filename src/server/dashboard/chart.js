// Live charts: one uPlot chart per quantity (loss, the accuracy-like
// metric), with train values per batch, train and validation per epoch.
// uPlot is the global the page loads before the modules (assets/uPlot.iife.min.js).
import { fmt } from "./dom.js";

/** A chart of one quantity: train per batch, train per epoch, validation per epoch. */
export class Chart {
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
