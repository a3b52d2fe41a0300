/**
 * `deno task serve`: runs the dtrain HTTP service. The only module that calls
 * `Deno.serve`.
 *
 * ```
 * deno task serve [--host 127.0.0.1] [--port 8787] [--data-dir ./.dtrain]
 *   [--max-body-bytes N] [--max-dataset-bytes N] [--max-jobs N] [--max-queue N] [--replicas N]
 *   [--predict-workers N] [--predict-backend cpu|wasm] [--cors-origin ORIGIN]...
 * env: DTRAIN_TOKEN (bearer token; required for a non-loopback --host),
 *      DTRAIN_KV (KV file path or URL; default <data-dir>/dtrain.kv)
 * ```
 *
 * SIGTERM or SIGINT: stop accepting, mark queued and running jobs
 * `interrupted`, close the replica Workers, exit 0. `dtrain serve` (the
 * CLI) runs {@linkcode main}.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type AppOptions, createApp } from "./app.ts";

/** Settings of {@linkcode serve}: where to listen, plus the app's options. */
export interface ServeOptions extends AppOptions {
  /**
   * Interface to listen on. Anything but loopback needs a `token`.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Port; 0 picks a free one (printed on start).
   * @default 8787
   */
  port?: number;
}

const USAGE = `Usage: deno task serve [options]
  --host HOST            interface (default 127.0.0.1; non-loopback requires DTRAIN_TOKEN)
  --port PORT            port, 0 for any free one (default 8787)
  --data-dir DIR         KV file and models (default ./.dtrain)
  --max-body-bytes N     largest request body (default 33554432)
  --max-jobs N           jobs trained at once (default 1)
  --max-queue N          jobs waiting at most (default 16)
  --replicas N           replicas of a job that does not say (default: cores)
  --lease-ms MS          a server silent this long is dead: its jobs resume here (default 15000)
  --predict-workers N    inference Workers, 0 to predict on the main thread (default 1)
  --predict-backend B    backend predict runs on: cpu or wasm (default wasm)
  --max-dataset-bytes N  largest POST /v1/datasets upload (default 536870912)
  --cors-origin ORIGIN   allow a browser origin (repeatable; * for any)
Environment: DTRAIN_TOKEN (bearer token), DTRAIN_KV (KV path or URL)`;

function intFlag(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(
      `--${name} must be an integer >= ${min}, received ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/**
 * Parses `deno task serve` arguments and environment into {@linkcode ServeOptions}.
 * Throws `RangeError`/`TypeError` naming the bad flag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseServeArgs } from "./serve.ts";
 * const o = parseServeArgs(["--port", "9000"], { DTRAIN_TOKEN: "t" });
 * assert.ok(o.port === 9000 && o.host === "127.0.0.1" && o.token === "t");
 * ```
 */
export function parseServeArgs(
  args: string[],
  env: Record<string, string | undefined> = {},
): ServeOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "8787" },
        "data-dir": { type: "string", default: "./.dtrain" },
        "max-body-bytes": { type: "string" },
        "max-dataset-bytes": { type: "string" },
        "max-jobs": { type: "string" },
        "max-queue": { type: "string" },
        replicas: { type: "string" },
        "lease-ms": { type: "string" },
        "predict-workers": { type: "string" },
        "predict-backend": { type: "string" },
        "cors-origin": { type: "string", multiple: true },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new TypeError(`${e instanceof Error ? e.message : e}\n${USAGE}`);
  }
  const port = intFlag(parsed.port, "port", 0)!;
  if (port > 65535) throw new RangeError(`--port must be <= 65535, received ${port}`);
  const predictBackend = parsed["predict-backend"];
  if (predictBackend !== undefined && predictBackend !== "cpu" && predictBackend !== "wasm") {
    throw new TypeError(
      `--predict-backend must be cpu or wasm, received ${JSON.stringify(predictBackend)}`,
    );
  }
  return {
    host: parsed.host,
    port,
    dataDir: parsed["data-dir"],
    maxBodyBytes: intFlag(parsed["max-body-bytes"], "max-body-bytes", 1),
    maxDatasetBytes: intFlag(parsed["max-dataset-bytes"], "max-dataset-bytes", 1),
    maxConcurrentJobs: intFlag(parsed["max-jobs"], "max-jobs", 1),
    maxQueuedJobs: intFlag(parsed["max-queue"], "max-queue", 0),
    defaultReplicas: intFlag(parsed.replicas, "replicas", 1),
    leaseMs: intFlag(parsed["lease-ms"], "lease-ms", 1),
    // Only when given: the app's defaults apply otherwise.
    ...(parsed["predict-workers"] === undefined
      ? {}
      : { predictWorkers: intFlag(parsed["predict-workers"], "predict-workers", 0) }),
    ...(predictBackend === undefined ? {} : { predictBackend }),
    corsOrigins: parsed["cors-origin"] ?? [],
    token: env.DTRAIN_TOKEN || undefined,
    kv: env.DTRAIN_KV || undefined,
  };
}

/**
 * Whether `host` only accepts connections from this machine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback } from "./serve.ts";
 * assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && !isLoopback("0.0.0.0"));
 * ```
 */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Starts the service and installs SIGTERM/SIGINT handlers that shut it down
 * gracefully and exit the process with 0. Refuses (TypeError) a non-loopback
 * host without a token. Resolves once listening, with the address and a
 * promise that settles when the server stops.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./serve.ts";
 * const { url } = await serve({ port: 0, dataDir: "./.dtrain" });
 * console.log(`listening on ${url}`);
 * ```
 */
export async function serve(
  options: ServeOptions = {},
): Promise<{ url: string; finished: Promise<void> }> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopback(host) && !options.token) {
    throw new TypeError(
      `Refusing to listen on ${host} without a token: expected DTRAIN_TOKEN to be set ` +
        "(bearer authentication), or a loopback --host such as 127.0.0.1",
    );
  }
  const app = await createApp(options);
  let resolveUrl!: (url: string) => void;
  const listening = new Promise<string>((r) => (resolveUrl = r));
  const server = Deno.serve({
    hostname: host,
    port: options.port ?? 8787,
    onListen: ({ hostname, port }) => {
      const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
      resolveUrl(`http://${shown}:${port}`);
    },
  }, app.fetch);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`dtrain server: ${signal}: shutting down`);
    const force = setTimeout(() => {
      console.error("dtrain server: shutdown took too long, exiting");
      Deno.exit(1);
    }, 30_000);
    try {
      await Promise.all([server.shutdown(), app.close()]);
    } catch (e) {
      console.error(`dtrain server: error during shutdown: ${e}`);
    }
    clearTimeout(force);
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }
  const url = await listening;
  return { url, finished: server.finished };
}

/**
 * `deno task serve` / `dtrain serve`: parses `args` and the environment,
 * starts the service, prints where it listens, and resolves only when the
 * server has stopped (a signal handler exits the process first). Throws
 * `RangeError`/`TypeError` for bad flags or a non-loopback host without a
 * token.
 *
 * @example
 * ```ts ignore
 * import { main } from "./serve.ts";
 * await main(["--port", "8787", "--data-dir", "./.dtrain"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const options = parseServeArgs(args, Deno.env.toObject());
  const { url, finished } = await serve(options);
  console.log(
    `dtrain server listening on ${url} (data dir ${options.dataDir}` +
      `${options.token ? ", bearer token required" : ""})`,
  );
  await finished;
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`dtrain server: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
}
