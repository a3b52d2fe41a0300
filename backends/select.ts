/**
 * Runtime backend selection: walks an ordered list of candidates, records why
 * each was taken or refused, activates the first that fits and checks that
 * tfjs really switched to it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { BackendUnavailableError } from "./errors.ts";
import { cpuBackend } from "./cpu.ts";
import {
  type Backend,
  BACKEND_NAMES,
  type BackendName,
  type BlasReport,
  type ProbeResult,
} from "./types.ts";
import { parseBlasRequest, wasmBackend } from "./wasm/mod.ts";
import { webgpuBackend } from "./webgpu.ts";

const IMPLEMENTATIONS: Record<BackendName, Backend> = {
  webgpu: webgpuBackend,
  wasm: wasmBackend,
  cpu: cpuBackend,
};

/** Options for {@linkcode selectBackend}. */
export interface SelectBackendOptions {
  /**
   * Backends to try first, in this order; the others follow in auto order.
   * A preferred software WebGPU adapter is taken.
   * @default [] (auto order: webgpu, wasm, cpu)
   */
  prefer?: BackendName | BackendName[];
  /**
   * The only backend allowed: throws `BackendUnavailableError` when it cannot run.
   * @default undefined
   */
  require?: BackendName;
  /**
   * Threads for the WASM backend (fixed once it has initialised in a process).
   * @default all cores
   */
  threads?: number;
  /**
   * Let auto selection take a software WebGPU adapter over WASM.
   * @default false
   */
  allowSoftwareGpu?: boolean;
  /**
   * The host's BLAS for the WASM backend's matrix products: `"auto"`,
   * `"off"`, or a CBLAS library path (see {@linkcode BlasReport}).
   * @default Deno.env.get("DTRAIN_BLAS") ?? "auto"
   */
  blas?: string;
  /**
   * Value of the override, normally read from the `DTRAIN_BACKEND` environment
   * variable; `"auto"` or empty means no override. An override acts like
   * `require` and wins over `prefer` and `require`.
   * @default Deno.env.get("DTRAIN_BACKEND")
   */
  override?: string;
}

/** One candidate in a {@linkcode BackendReport}. */
export interface CandidateReport extends ProbeResult {
  /** The backend name. */
  name: BackendName;
  /** Whether this candidate became the active backend. */
  selected: boolean;
}

/** What {@linkcode selectBackend} chose and why. */
export interface BackendReport {
  /** The active tfjs backend. */
  name: BackendName;
  /** Why it was chosen. */
  reason: string;
  /** Threads it actually runs. */
  threads: number;
  /** Whether the chosen backend is a software GPU adapter. */
  software: boolean;
  /** Every candidate, in auto order, with why it was or was not taken. */
  candidates: CandidateReport[];
  /** WASM: whether its matrix products run on the host's BLAS, and why. */
  blas?: BlasReport;
}

function readEnv(name: string): string | undefined {
  try {
    return (globalThis as { Deno?: typeof Deno }).Deno?.env.get(name);
  } catch {
    return undefined; // no env permission: no override
  }
}

function readOverride(): string | undefined {
  return readEnv("DTRAIN_BACKEND");
}

function checkName(value: unknown, what: string): BackendName {
  if (
    typeof value === "string" &&
    (BACKEND_NAMES as readonly string[]).includes(value)
  ) {
    return value as BackendName;
  }
  throw new TypeError(
    `${what} must be one of ${BACKEND_NAMES.join(", ")}, received ${JSON.stringify(value)}`,
  );
}

/**
 * Probes every backend, activates the best one that fits the options and
 * returns a report of the choice. Auto order is WebGPU (hardware adapters
 * only), WASM, CPU. Throws `BackendUnavailableError` listing every candidate
 * when none fits; throws `TypeError`/`RangeError` for bad options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectBackend } from "./select.ts";
 * const report = await selectBackend({ require: "cpu" });
 * assert.ok(report.name === "cpu");
 * ```
 */
export async function selectBackend(
  options: SelectBackendOptions = {},
): Promise<BackendReport> {
  const prefer = (options.prefer === undefined ? [] : [options.prefer].flat())
    .map((p) => checkName(p, "prefer"));
  const required = options.require === undefined
    ? undefined
    : checkName(options.require, "require");
  if (
    options.threads !== undefined &&
    (!Number.isInteger(options.threads) || options.threads < 1)
  ) {
    throw new RangeError(
      `threads must be an integer >= 1, received ${options.threads}`,
    );
  }
  // A malformed blas option or DTRAIN_BLAS is refused before any work, not
  // turned into a failed WASM initialisation.
  if (options.blas !== undefined) parseBlasRequest(options.blas, "blas");
  else parseBlasRequest(readEnv("DTRAIN_BLAS"), "DTRAIN_BLAS");
  const rawOverride = "override" in options ? options.override : readOverride();
  const override = rawOverride === undefined || rawOverride === "" || rawOverride === "auto"
    ? undefined
    : checkName(rawOverride, "DTRAIN_BACKEND");

  const candidates: CandidateReport[] = [];
  for (const name of BACKEND_NAMES) {
    candidates.push({
      name,
      selected: false,
      ...await IMPLEMENTATIONS[name].probe(),
    });
  }
  const byName = (n: BackendName) => candidates.find((c) => c.name === n)!;

  let order: BackendName[];
  let why: string;
  if (override !== undefined) {
    order = [override];
    why = `required by DTRAIN_BACKEND=${override}` +
      (required !== undefined && required !== override ? ` (overrides require: ${required})` : "");
  } else if (required !== undefined) {
    order = [required];
    why = "required by options";
  } else {
    order = [...prefer, ...BACKEND_NAMES.filter((n) => !prefer.includes(n))];
    why = "";
  }

  for (const name of order) {
    const c = byName(name);
    if (!c.available) continue;
    const explicit = override !== undefined || required !== undefined ||
      prefer.includes(name);
    if (c.software && !explicit && !options.allowSoftwareGpu) {
      c.reason += '; skipped by auto (pass prefer: "webgpu" or allowSoftwareGpu: true)';
      continue;
    }
    try {
      const { threads, blas } = await IMPLEMENTATIONS[name].activate({
        threads: options.threads,
        ...(options.blas === undefined ? {} : { blas: options.blas }),
      });
      c.selected = true;
      const reason = why !== ""
        ? why
        : prefer.includes(name)
        ? "preferred by options"
        : `first available in auto order (${BACKEND_NAMES.join(" > ")})`;
      return {
        name,
        reason,
        threads,
        software: Boolean(c.software),
        candidates,
        ...(blas === undefined ? {} : { blas }),
      };
    } catch (cause) {
      c.available = false;
      c.reason = `initialisation failed: ${cause instanceof Error ? cause.message : cause}`;
    }
  }

  const tried = order.map(byName);
  throw new BackendUnavailableError(
    `No backend could be activated (${why || "auto"}); tried ` +
      tried.map((c) => `${c.name}: ${c.reason}`).join("; ") +
      `. Active tfjs backend is still ${tf.getBackend() ?? "none"}`,
    {
      tried: tried.map(({ name, available, reason }) => ({
        name,
        available,
        reason,
      })),
    },
  );
}
