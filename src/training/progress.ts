/**
 * A Keras-style progress bar:
 * `Epoch 1/10` then ` 120/235 [=======>......] - ETA: 3s - loss: 0.4321 - acc: 0.8812`.
 *
 * @module
 */
import type { Logs } from "./callbacks.ts";

const encoder = new TextEncoder();

function isTerminal(): boolean {
  try {
    return (globalThis as { Deno?: typeof Deno }).Deno?.stderr.isTerminal() ?? false;
  } catch {
    return false;
  }
}

function defaultWrite(text: string): void {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno !== undefined) deno.stderr.writeSync(encoder.encode(text));
}

function formatLogs(logs: Logs): string {
  return Object.entries(logs).map(([k, v]) => ` - ${k}: ${v.toFixed(4)}`).join(
    "",
  );
}

function formatSeconds(s: number): string {
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${
      String(Math.round(s) % 60).padStart(2, "0")
    }`;
  }
  if (s >= 60) {
    return `${Math.floor(s / 60)}:${String(Math.round(s) % 60).padStart(2, "0")}`;
  }
  return `${Math.round(s)}s`;
}

/**
 * Renders per-epoch progress to a terminal (stderr by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProgressBar } from "./progress.ts";
 * let out = "";
 * const bar = new ProgressBar({ epochs: 1, steps: 2, write: (t) => (out += t) });
 * bar.epochBegin(0);
 * bar.step(1, { loss: 1 }, 256);
 * bar.epochEnd({ loss: 1 });
 * assert.ok(out.includes("2/2"));
 * ```
 */
export class ProgressBar {
  #epochs: number;
  #steps: number;
  #write: (text: string) => void;
  #start = 0;
  #samples = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #interactive: boolean;

  /**
   * `epochs` and `steps` per epoch size the display; `write` defaults to
   * stderr. `interactive` (default: stderr is a terminal) redraws the bar in
   * place during an epoch; otherwise (logs, CI) only the epoch's final line is
   * written.
   */
  constructor(
    options: {
      epochs: number;
      steps: number;
      write?: (text: string) => void;
      interactive?: boolean;
    },
  ) {
    this.#epochs = options.epochs;
    this.#steps = options.steps;
    this.#write = options.write ?? defaultWrite;
    this.#interactive = options.interactive ?? isTerminal();
  }

  /** Starts an epoch's line. */
  epochBegin(epoch: number): void {
    this.#start = performance.now();
    this.#samples = 0;
    this.#lastDraw = Number.NEGATIVE_INFINITY;
    this.#write(`Epoch ${epoch + 1}/${this.#epochs}\n`);
  }

  /** Redraws after `done` steps (throttled to 10 per second). */
  step(done: number, logs: Logs, samples: number): void {
    this.#samples += samples;
    if (!this.#interactive) return;
    const now = performance.now();
    if (done < this.#steps && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const elapsed = (now - this.#start) / 1000;
    const eta = (elapsed / done) * (this.#steps - done);
    this.#write(
      `\r${this.#bar(done)} - ETA: ${formatSeconds(eta)}${formatLogs(logs)}\x1b[K`,
    );
  }

  /** Finishes the epoch's line with time, throughput and final logs. */
  epochEnd(logs: Logs): void {
    const elapsed = (performance.now() - this.#start) / 1000;
    const rate = Math.round(this.#samples / Math.max(elapsed, 1e-9));
    const line = `${this.#bar(this.#steps)} - ${formatSeconds(elapsed)} ${rate} samples/s${
      formatLogs(logs)
    }`;
    this.#write(this.#interactive ? `\r${line}\x1b[K\n` : `${line}\n`);
  }

  #bar(done: number): string {
    const width = 30;
    const filled = Math.floor((width * done) / this.#steps);
    const arrow = done < this.#steps ? ">" : "=";
    const bar = "=".repeat(Math.max(0, filled - 1)) +
      (filled > 0 ? arrow : "") +
      ".".repeat(width - filled);
    const digits = String(this.#steps).length;
    return `${String(done).padStart(digits)}/${this.#steps} [${bar}]`;
  }
}
