/**
 * Finds and opens the host's CBLAS library through Deno FFI, fixes OpenBLAS's
 * core type where it misdetects the CPU, and sets its thread count.
 *
 * Who owns what: this file owns the library handle of the thread it runs in
 * (each Worker opens its own; the operating system shares one copy of the
 * library per process). `_blas_kernels.ts` owns the products; `mod.ts`
 * decides, at activation, whether they run here.
 *
 * Order of candidates: `DTRAIN_BLAS=/path/lib` alone when given; otherwise
 * OpenBLAS (`libopenblas.so.0`), BLIS (`libblis.so.4`), MKL (`libmkl_rt.so`)
 * on Linux, Accelerate then Homebrew's OpenBLAS on macOS. `DTRAIN_BLAS=off`
 * refuses them all.
 *
 * OpenBLAS 0.3.21 (Debian 12) picks its kernels from the CPU model it knows:
 * an AVX-512 CPU it does not know runs as "Haswell" (AVX2) or "Prescott"
 * (SSE3) at half speed or less. After opening the library this file compares
 * `openblas_get_corename()` with the CPU's own flags (`/proc/cpuinfo`) and,
 * when the library chose a lesser instruction set than the CPU has, sets
 * `OPENBLAS_CORETYPE` to the best core type those flags allow and reopens the
 * library (OpenBLAS reads it when it loads). A user's `OPENBLAS_CORETYPE` is
 * kept, unless it needs instructions the CPU lacks: the library is refused
 * then, before it is opened.
 *
 * @module
 */

/** CBLAS enum values (`cblas.h`). */
export const CBLAS_ROW_MAJOR = 101;
/** `CblasNoTrans`. */
export const CBLAS_NO_TRANS = 111;
/** `CblasTrans`. */
export const CBLAS_TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "pointer", // A
      "i32", // lda
      "pointer", // B
      "i32", // ldb
      "f32", // beta
      "pointer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  bli_thread_set_num_threads: { parameters: ["i64"], result: "void", optional: true },
  bli_info_get_version_str: { parameters: [], result: "pointer", optional: true },
  MKL_Set_Num_Threads: { parameters: ["i32"], result: "void", optional: true },
} as const;

type Library = Deno.DynamicLibrary<typeof SYMBOLS>;

/** `cblas_sgemm`, row-major, with raw pointers (into wasm memories or typed arrays). */
export type Sgemm = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Deno.PointerValue,
  lda: number,
  b: Deno.PointerValue,
  ldb: number,
  beta: number,
  c: Deno.PointerValue,
  ldc: number,
) => void;

/** An opened CBLAS library. */
export interface HostBlas {
  /** The file it was opened from (as given to `dlopen`). */
  readonly path: string;
  /** `openblas_get_config()` or BLIS' version, when the library says. */
  readonly version?: string;
  /** `openblas_get_corename()` (after any fix), when the library says. */
  readonly coreName?: string;
  /** What OpenBLAS chose on its own, when dtrain replaced it. */
  readonly detectedCore?: string;
  /** The `OPENBLAS_CORETYPE` dtrain set, when it set one. */
  readonly coreTypeSet?: string;
  /** `OPENBLAS_CORETYPE` as the environment gave it (kept), when it gave one. */
  readonly coreTypeFromEnv?: string;
  /** The best core type the CPU's flags allow, when it is better than what runs. */
  readonly betterCoreType?: string;
  /** The product. */
  readonly sgemm: Sgemm;
  /** Sets the library's own threads; returns whether it has a call for that. */
  setThreads(n: number): boolean;
  /** Closes the handle (the library stays loaded while other threads hold it). */
  close(): void;
}

/** Why the library is not opened. */
export interface BlasRefusal {
  reason: string;
  path?: string;
}

/** What `DTRAIN_BLAS` (or the `blas` option) asks for. */
export type BlasRequest = { kind: "auto" } | { kind: "off" } | { kind: "path"; path: string };

/**
 * Parses a `DTRAIN_BLAS` value: `""`/`"auto"`/undefined, `"off"`, or a
 * library path. Throws a `TypeError` for anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBlasRequest } from "./_blas_library.ts";
 * assert.deepEqual(parseBlasRequest("off"), { kind: "off" });
 * assert.throws(() => parseBlasRequest("fast"), TypeError);
 * ```
 */
export function parseBlasRequest(value: unknown, what = "DTRAIN_BLAS"): BlasRequest {
  if (value === undefined || value === "" || value === "auto") return { kind: "auto" };
  if (value === "off") return { kind: "off" };
  if (typeof value === "string" && /[\\/]|\.(so|dylib|dll)(\.|$)/.test(value)) {
    return { kind: "path", path: value };
  }
  throw new TypeError(
    `${what} must be "auto", "off" or a path to a CBLAS library (e.g. ` +
      `/usr/lib/x86_64-linux-gnu/libopenblas.so.0), received ${JSON.stringify(value)}`,
  );
}

function denoOrNull(): typeof Deno | null {
  return (globalThis as { Deno?: typeof Deno }).Deno ?? null;
}

function permitted(name: "ffi" | "read" | "env"): boolean {
  const deno = denoOrNull();
  if (deno === null) return false;
  try {
    return deno.permissions.querySync({ name }).state === "granted";
  } catch {
    return false;
  }
}

/** The environment variable, or undefined where it cannot be read. */
export function readEnv(name: string): string | undefined {
  try {
    return denoOrNull()?.env.get(name);
  } catch {
    return undefined;
  }
}

const LINUX_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
];
const LINUX_NAMES = ["libopenblas.so.0", "libblis.so.4", "libmkl_rt.so.2", "libmkl_rt.so"];
const DARWIN_PATHS = [
  "/System/Library/Frameworks/Accelerate.framework/Accelerate",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
];

/** Library files to try, in order: existing absolute paths first, then loader-path names. */
export function candidatePaths(os: string): string[] {
  if (os === "darwin") return DARWIN_PATHS;
  if (os !== "linux") return [];
  const out: string[] = [];
  for (const name of LINUX_NAMES) {
    const found = LINUX_DIRS.map((d) => `${d}/${name}`).find(exists);
    out.push(found ?? name);
  }
  return out;
}

function exists(path: string): boolean {
  try {
    return denoOrNull()?.statSync(path) !== undefined;
  } catch {
    return false;
  }
}

function cString(p: Deno.PointerValue): string | undefined {
  return p === null ? undefined : new Deno.UnsafePointerView(p).getCString();
}

/** Instruction-set tier of OpenBLAS x86 core names: 3 AVX-512, 2 AVX2, 1 AVX, 0 less. */
const CORE_TIERS: Record<string, number> = {
  skylakex: 3,
  cooperlake: 3,
  sapphirerapids: 3,
  haswell: 2,
  zen: 2,
  excavator: 2,
  sandybridge: 1,
  bulldozer: 1,
  piledriver: 1,
  steamroller: 1,
};
/** CPU flags each tier's kernels use. */
const TIER_FLAGS: [number, string[]][] = [
  [3, ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma"]],
  [2, ["avx2", "fma"]],
  [1, ["avx"]],
];

/** The tier a core name needs (0 for names dtrain does not rank). */
export function coreTier(name: string): number {
  return CORE_TIERS[name.toLowerCase()] ?? 0;
}

/** The highest tier the CPU flags allow, and the flags that prove it. */
export function flagTier(flags: ReadonlySet<string>): { tier: number; proof: string[] } {
  for (const [tier, need] of TIER_FLAGS) {
    if (need.every((f) => flags.has(f))) return { tier, proof: need };
  }
  return { tier: 0, proof: [] };
}

/** The OpenBLAS core type to force for a tier (`OPENBLAS_CORETYPE` value). */
export function coreTypeFor(tier: number, vendor: string): string | undefined {
  if (tier >= 3) return "SKYLAKEX";
  if (tier === 2) return vendor === "AuthenticAMD" ? "ZEN" : "HASWELL";
  if (tier === 1) return "SANDYBRIDGE";
  return undefined;
}

/** x86 CPU flags and vendor from `/proc/cpuinfo`, or null where they cannot be read. */
export function cpuFlags(): CpuInfo | null {
  const deno = denoOrNull();
  if (deno === null || deno.build.os !== "linux" || deno.build.arch !== "x86_64") return null;
  try {
    const text = deno.readTextFileSync("/proc/cpuinfo");
    const flags = text.match(/^flags\s*:(.*)$/m)?.[1];
    if (flags === undefined) return null;
    const vendor = text.match(/^vendor_id\s*:\s*(\S+)/m)?.[1] ?? "";
    return { flags: new Set(flags.trim().split(/\s+/)), vendor };
  } catch {
    return null;
  }
}

function open(path: string): Library {
  return Deno.dlopen(path, SYMBOLS);
}

function wrap(
  path: string,
  lib: Library,
  fix: {
    detectedCore?: string;
    coreTypeSet?: string;
    coreTypeFromEnv?: string;
    betterCoreType?: string;
  },
): HostBlas {
  const s = lib.symbols;
  const version = cString(s.openblas_get_config?.() ?? null) ??
    (s.bli_info_get_version_str ? `BLIS ${cString(s.bli_info_get_version_str())}` : undefined);
  const coreName = cString(s.openblas_get_corename?.() ?? null);
  const sgemm = s.cblas_sgemm as unknown as Sgemm;
  return {
    path,
    ...(version === undefined ? {} : { version }),
    ...(coreName === undefined ? {} : { coreName }),
    ...fix,
    sgemm,
    setThreads(n: number): boolean {
      if (s.openblas_set_num_threads) s.openblas_set_num_threads(n);
      else if (s.bli_thread_set_num_threads) s.bli_thread_set_num_threads(BigInt(n));
      else if (s.MKL_Set_Num_Threads) s.MKL_Set_Num_Threads(n);
      else return false;
      return true;
    },
    close: () => lib.close(),
  };
}

/** CPU flags and vendor, as `cpuFlags()` reads them. */
export type CpuInfo = { flags: ReadonlySet<string>; vendor: string };

/**
 * Why a user's `OPENBLAS_CORETYPE` cannot run on this CPU (it needs
 * instructions the flags lack), or null where it can or cannot be judged.
 */
export function userCoreProblem(userCore: string | undefined, cpu: CpuInfo | null): string | null {
  if (userCore === undefined || userCore === "" || cpu === null) return null;
  const have = flagTier(cpu.flags).tier;
  if (coreTier(userCore) <= have) return null;
  return `OPENBLAS_CORETYPE=${userCore} needs instructions this CPU lacks ` +
    `(its flags allow ${coreTypeFor(have, cpu.vendor) ?? "none of the ranked core types"})`;
}

/** What to do about the core type OpenBLAS chose. */
export type CoreDecision =
  | { action: "keep" }
  | { action: "keep-user"; better: string }
  | { action: "reload"; coreType: string };

/**
 * Keeps the core OpenBLAS `detected` unless the CPU's flags allow a higher
 * instruction set: then reload with the best core type they allow, or, where
 * the user set `OPENBLAS_CORETYPE`, keep it and name the better one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideCore } from "./_blas_library.ts";
 * const cpu = { vendor: "GenuineIntel", flags: new Set(["avx", "avx2", "fma"]) };
 * assert.deepEqual(decideCore("Prescott", cpu, undefined), { action: "reload", coreType: "HASWELL" });
 * assert.deepEqual(decideCore("Haswell", cpu, undefined), { action: "keep" });
 * ```
 */
export function decideCore(
  detected: string | undefined,
  cpu: CpuInfo | null,
  userCore: string | undefined,
): CoreDecision {
  if (detected === undefined || cpu === null) return { action: "keep" };
  const { tier } = flagTier(cpu.flags);
  const target = coreTypeFor(tier, cpu.vendor);
  if (target === undefined || coreTier(detected) >= tier) return { action: "keep" };
  if (userCore !== undefined && userCore !== "") return { action: "keep-user", better: target };
  return { action: "reload", coreType: target };
}

/**
 * Opens one library file, fixing OpenBLAS' core type where it chose less
 * than the CPU has. Throws where `dlopen` fails or `cblas_sgemm` is missing.
 */
function openOne(path: string): HostBlas | BlasRefusal {
  const cpu = cpuFlags();
  const userCore = readEnv("OPENBLAS_CORETYPE");
  const problem = userCoreProblem(userCore, cpu);
  if (problem !== null) return { path, reason: problem };
  const lib = open(path);
  const blas = wrap(path, lib, {});
  const decision = decideCore(blas.coreName, cpu, userCore);
  if (decision.action === "keep") return blas;
  if (decision.action === "keep-user") {
    return wrap(path, lib, { coreTypeFromEnv: userCore, betterCoreType: decision.better });
  }
  // The library runs a lesser instruction set than the CPU has: reload it
  // with the core type the flags allow (OpenBLAS reads it when it loads; the
  // reload takes effect where no other thread holds the library open).
  try {
    Deno.env.set("OPENBLAS_CORETYPE", decision.coreType);
  } catch {
    return blas; // no env permission: keep what the library chose
  }
  lib.close();
  return wrap(path, open(path), { detectedCore: blas.coreName, coreTypeSet: decision.coreType });
}

/**
 * The reason `Deno.dlopen` gave, short: "not installed" for a missing file,
 * else its first line without the repeated "Could not open library:" prefix.
 */
function openFailure(message: string): string {
  const line = message.split("\n")[0]!.replace(/^(Could not open library: )+/, "");
  return /cannot open shared object file: No such file/.test(line) ? "not installed" : line;
}

/**
 * Opens the first CBLAS library that loads, per `request`, or says why none
 * did. Never throws for a missing library or a refused permission.
 */
export function openHostBlas(request: BlasRequest): HostBlas | BlasRefusal {
  const deno = denoOrNull();
  if (request.kind === "off") return { reason: "refused by DTRAIN_BLAS=off" };
  if (deno === null || typeof deno.dlopen !== "function") {
    return { reason: "this runtime has no Deno FFI (Deno.dlopen)" };
  }
  if (!permitted("ffi")) {
    return { reason: "FFI is not permitted (run with --allow-ffi to use the host's BLAS)" };
  }
  const paths = request.kind === "path" ? [request.path] : candidatePaths(deno.build.os);
  if (paths.length === 0) return { reason: `no CBLAS library is known for ${deno.build.os}` };
  const failures: string[] = [];
  for (const path of paths) {
    try {
      const opened = openOne(path);
      if ("sgemm" in opened || request.kind === "path") return opened;
      failures.push(`${path}: ${opened.reason}`);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      if (request.kind === "path") {
        return { path, reason: `DTRAIN_BLAS=${path} could not be opened: ${message}` };
      }
      failures.push(`${path}: ${openFailure(message)}`);
    }
  }
  const install = deno.build.os === "darwin"
    ? "brew install openblas, or use macOS' Accelerate"
    : "apt-get install libopenblas0";
  return {
    reason: `no CBLAS library found (${install} for the speed-up); tried ${failures.join("; ")}`,
  };
}
