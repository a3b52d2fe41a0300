/**
 * Multi-threaded tfjs WASM backend inside Deno.
 *
 * `@tensorflow/tfjs-backend-wasm@4.22.0` sees `process.versions.node` in Deno,
 * takes it for Node and never loads its threaded SIMD binary. Forcing the
 * binary is not enough either: Emscripten's Node path then spawns
 * `node:worker_threads` Workers from a `blob:` URL (Deno refuses), derives the
 * thread count from `os.cpus().length / 2`, and installs a
 * `process.on("unhandledRejection")` handler that rethrows.
 *
 * Who owns what: tfjs still loads and drives the Emscripten module. This file
 * only wraps the registered `"wasm"` backend factory so that, for the length of
 * that one initialisation,
 * - the global `Worker` Emscripten reads is a dispatcher that hands its pthread
 *   Workers to {@linkcode PthreadWorker} (a Node-style wrapper over a Deno
 *   module Worker running a small host script),
 * - `os.cpus()` reports twice the requested thread count (the C++ side halves
 *   it and caps the pool at 8),
 * - the process listeners Emscripten adds are removed again afterwards.
 * Everything is restored when the factory settles.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type BackendWasm, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import os from "node:os";
import process from "node:process";
import { type Transferable as NodeTransferable, Worker as NodeWorker } from "node:worker_threads";
import { EventEmitter } from "node:events";

/** The C++ side caps XNNPACK's pool at 8 threads (`max_num_threads`). */
const MAX_THREADS = 8;
/** tfjs-backend-wasm registers its factory with this priority. */
const WASM_PRIORITY = 2;
/** Name the pthread host gives the Emscripten main script. */
const MAIN_SCRIPT = "tfjs-backend-wasm-threaded-simd.js";

/**
 * Runs inside every pthread Worker. It evaluates Emscripten's worker script and
 * main script as if in a classic web Worker: `process` is hidden (so Emscripten
 * does not take its Node path), `importScripts` serves the pre-fetched main
 * script, and `self`/`postMessage` are bound to the Node-style parent port.
 */
const HOST_SOURCE = `
import { parentPort } from "node:worker_threads";
const port = parentPort;
const scripts = new Map();
const scope = {
  location: globalThis.location ?? { href: "data:" },
  onmessage: null,
  alert: (text) => console.error(text),
};
const post = (message, transfer) => port.postMessage(message, transfer);
const importScripts = (...names) => {
  for (const name of names) {
    const source = scripts.get(name);
    if (source === undefined) throw new Error("importScripts: unknown " + name);
    evaluate(source);
  }
};
const startWorker = (instance) => scope.startWorker(instance);
function evaluate(source) {
  new Function("process", "self", "postMessage", "importScripts", "startWorker", source)(
    undefined, scope, post, importScripts, startWorker,
  );
}
port.on("message", (data) => {
  if (data !== null && typeof data === "object" && "dtrainScripts" in data) {
    const { main, worker } = data.dtrainScripts;
    delete data.dtrainScripts;
    scripts.set(${JSON.stringify(MAIN_SCRIPT)}, main +
      "\\n;globalThis.WasmBackendModuleThreadedSimd = WasmBackendModuleThreadedSimd;");
    evaluate(worker);
  }
  scope.onmessage({ data });
});
`;
const HOST_URL = new URL(
  `data:text/javascript,${encodeURIComponent(HOST_SOURCE)}`,
);

type Message = Record<string, unknown>;

/** Every pthread wrapper created by the current initialisation, in order. */
const pool: PthreadWorker[] = [];
/** Main-script text per Blob, read once for all Workers. */
const blobTexts = new WeakMap<Blob, Promise<string>>();

const state: {
  /** tfjs-backend-wasm's own factory, while ours is registered instead. */
  stock: (() => tf.KernelBackend | Promise<tf.KernelBackend>) | null;
  /** Threads the current registration asks for. */
  threads: number;
  /** Fails the initialisation in progress, if any. */
  fail: ((error: unknown) => void) | null;
} = { stock: null, threads: 1, fail: null };

/**
 * Reports a pthread Worker failure: it rejects the initialisation in
 * progress, and afterwards goes to Emscripten (which treats it as fatal).
 */
function report(worker: EventEmitter, error: unknown): void {
  if (state.fail !== null) state.fail(error);
  else worker.emit("error", error);
}

function readBlob(blob: Blob): Promise<string> {
  let text = blobTexts.get(blob);
  if (text === undefined) {
    text = blob.text();
    blobTexts.set(blob, text);
  }
  return text;
}

/**
 * A Node `worker_threads`-style Worker (the interface Emscripten's Node path
 * drives) whose thread is a Deno module Worker running {@linkcode HOST_SOURCE}.
 *
 * Emscripten pre-allocates 8 Workers but the pool uses only `threads - 1` of
 * them (taken from the end). Those start at once; the others answer "loaded"
 * themselves and only start a Deno Worker if they are ever asked to run.
 * Once loaded, the Deno Workers are unref'd, so an idle pool never keeps the
 * process alive.
 */
class PthreadWorker extends EventEmitter {
  #workerScript: Promise<string>;
  #load: Message | null = null;
  #loading: Promise<void> | null = null;
  #thread: NodeWorker | null = null;
  #announced = false;
  #terminated = false;

  constructor(url: string) {
    super();
    this.#workerScript = fetch(url).then((r) => r.text()).finally(() => URL.revokeObjectURL(url));
    this.#workerScript.catch(() => {});
    pool.push(this);
  }

  postMessage(message: Message, transfer?: readonly unknown[]): void {
    if (this.#terminated) return;
    if (message.cmd === "load") {
      this.#loading = this.#prepare(message).catch((error: unknown) => report(this, error));
      return;
    }
    if (this.#load === null && this.#loading !== null) {
      // Still reading the scripts: send once they are ready (if ever).
      void this.#loading.then(() => {
        if (this.#load !== null) this.postMessage(message, transfer);
      });
      return;
    }
    this.#start().postMessage(
      message,
      transfer === undefined || transfer.length === 0
        ? undefined
        : transfer as readonly NodeTransferable[],
    );
  }

  async #prepare(load: Message): Promise<void> {
    const blob = load.urlOrBlob;
    const [worker, main] = await Promise.all([
      this.#workerScript,
      blob instanceof Blob ? readBlob(blob) : Promise.reject(
        new TypeError(
          `Cannot start a wasm pthread: expected the main script as a Blob, received ${typeof blob}`,
        ),
      ),
    ]);
    this.#load = {
      ...load,
      urlOrBlob: MAIN_SCRIPT,
      dtrainScripts: { worker, main },
    };
    if (this.#terminated) return;
    if (pool.indexOf(this) >= pool.length - (state.threads - 1)) {
      // Expected to run a pool thread: start now, so that a failure surfaces
      // while the main thread is not yet blocked waiting for it.
      this.#start();
    } else {
      this.#announced = true;
      this.emit("message", { cmd: "loaded" });
    }
  }

  #start(): NodeWorker {
    if (this.#thread !== null) return this.#thread;
    const load = this.#load;
    if (load === null) {
      throw new Error(
        "Cannot run a wasm pthread: expected a load message first, received none",
      );
    }
    const thread = new NodeWorker(HOST_URL);
    // Referenced until the Worker has loaded (the main thread may be awaiting
    // that), then unreferenced: an idle pool must not keep the process alive.
    let loaded = false;
    const announced = this.#announced;
    thread.on("message", (data: Message) => {
      if (!loaded && data?.cmd === "loaded") {
        loaded = true;
        thread.unref();
        if (announced) return;
      }
      this.emit("message", data);
    });
    thread.on("error", (error: unknown) => report(this, error));
    thread.postMessage(load);
    this.#thread = thread;
    return thread;
  }

  terminate(): Promise<number> {
    if (!this.#terminated) {
      this.#terminated = true;
      void this.#thread?.terminate();
      const index = pool.indexOf(this);
      if (index >= 0) pool.splice(index, 1);
    }
    return Promise.resolve(0);
  }

  /**
   * Ignored: Emscripten refs a Worker while it runs a pthread, but pool
   * threads live as long as the backend and the main thread only ever waits
   * on them synchronously, so they must not keep the process alive.
   */
  ref(): void {}

  unref(): void {}
}

type WorkerLike = new (...args: unknown[]) => unknown;

/**
 * The constructor Emscripten finds as the global `Worker` during init: its own
 * calls (`new Worker(blobUrl)`) get a {@linkcode PthreadWorker}; anything else
 * falls through to the runtime's Worker.
 */
function dispatchingWorker(fallback: WorkerLike): WorkerLike {
  return function Worker(this: unknown, ...args: unknown[]): unknown {
    const [url] = args;
    if (
      args.length === 1 && typeof url === "string" && url.startsWith("blob:")
    ) {
      return new PthreadWorker(url);
    }
    return Reflect.construct(fallback, args);
  } as unknown as WorkerLike;
}

const LISTENED = ["uncaughtException", "unhandledRejection"] as const;
/** `process` as a plain emitter (its typings overload `listeners` per event). */
const processEvents = process as unknown as Pick<
  EventEmitter,
  "listeners" | "removeListener"
>;

/** Applies the init-time patches and returns a function that undoes them. */
function patchRuntime(threads: number): () => void {
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus();
    return Array.from(
      { length: 2 * threads },
      (_, i) => real[i % Math.max(real.length, 1)]!,
    );
  };

  const descriptor = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  const dispatcher = dispatchingWorker(
    (descriptor?.value ?? descriptor?.get?.call(globalThis)) as WorkerLike,
  );
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    enumerable: descriptor?.enumerable ?? false,
    get: () => dispatcher,
    // Emscripten assigns `global.Worker = require("worker_threads").Worker`.
    set: () => {},
  });

  const before = new Map(
    LISTENED.map((event) => [event, new Set(processEvents.listeners(event))]),
  );

  return () => {
    os.cpus = cpus;
    if (descriptor === undefined) {
      delete (globalThis as Record<string, unknown>).Worker;
    } else {
      Object.defineProperty(globalThis, "Worker", descriptor);
    }
    for (const event of LISTENED) {
      const known = before.get(event)!;
      for (const listener of processEvents.listeners(event)) {
        if (!known.has(listener)) {
          processEvents.removeListener(
            event,
            listener as (...args: unknown[]) => void,
          );
        }
      }
    }
  };
}

function terminatePool(): void {
  for (const worker of [...pool]) void worker.terminate();
}

function replaceFactory(
  factory: () => tf.KernelBackend | Promise<tf.KernelBackend>,
): void {
  const registered = tf.engine().registryFactory["wasm"];
  const priority = registered?.priority ?? WASM_PRIORITY;
  if (registered !== undefined) tf.removeBackend("wasm");
  tf.registerBackend("wasm", factory, priority);
}

function restoreStock(): void {
  if (state.stock === null) return;
  replaceFactory(state.stock);
  state.stock = null;
  state.threads = 1;
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  setThreadsCount(-1);
}

function isThreaded(backend: BackendWasm): boolean {
  return backend.wasm != null && "PThread" in backend.wasm;
}

/**
 * Arranges for the tfjs WASM backend to load its threaded SIMD binary inside
 * Deno with `threads` threads (the calling thread plus `threads - 1` pthread
 * Workers). Call it before the wasm backend is first initialised
 * (`tf.setBackend("wasm")`); it works on the main thread and inside a Deno
 * module Worker. `threads === 1` keeps the stock single-threaded SIMD build.
 *
 * Resolves with the number of threads that will run: `threads` capped at 8
 * (the limit compiled into tfjs-backend-wasm), or 1 when the runtime lacks
 * WebAssembly SIMD or `SharedArrayBuffer`. The count is not capped at the
 * number of cores. Check {@linkcode wasmThreadsRunning} after initialisation,
 * and call {@linkcode shutdownWasmThreads} to stop the pool.
 *
 * @param threads Threads to run, an integer >= 1.
 * @returns The number of threads the wasm backend will run.
 * @throws {TypeError} When `threads` is not a number.
 * @throws {RangeError} When `threads` is not an integer >= 1.
 * @throws {Error} When the wasm backend is already initialised.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import {
 *   enableWasmThreads,
 *   shutdownWasmThreads,
 *   wasmThreadsRunning,
 * } from "./_threads.ts";
 *
 * const planned = await enableWasmThreads(2);
 * assert.ok(planned === 2);
 * await tf.setBackend("wasm");
 * assert.ok(wasmThreadsRunning() === planned);
 * tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dispose();
 * shutdownWasmThreads();
 * ```
 */
export async function enableWasmThreads(threads: number): Promise<number> {
  if (typeof threads !== "number") {
    throw new TypeError(
      `Cannot enable wasm threads: expected threads to be a number, received ${typeof threads}`,
    );
  }
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(
      `Cannot enable wasm threads: expected threads to be an integer >= 1, received ${
        String(threads)
      }`,
    );
  }
  if (tf.engine().registry["wasm"] !== undefined) {
    throw new Error(
      "Cannot enable wasm threads: expected the wasm backend not to be initialised yet, " +
        `received one already running ${wasmThreadsRunning()} thread(s); ` +
        'call enableWasmThreads() before tf.setBackend("wasm")',
    );
  }
  const stock = state.stock ?? tf.findBackendFactory("wasm");
  if (stock === null || stock === undefined) {
    throw new Error(
      "Cannot enable wasm threads: expected @tensorflow/tfjs-backend-wasm to have " +
        "registered the wasm backend, received no factory",
    );
  }
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") as boolean;
  if (threads === 1 || !simd || typeof SharedArrayBuffer !== "function") {
    restoreStock();
    return 1;
  }
  const planned = Math.min(threads, MAX_THREADS);
  state.stock = stock;
  state.threads = planned;
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  setThreadsCount(planned);
  replaceFactory(async () => {
    terminatePool();
    const restore = patchRuntime(planned);
    const failed = new Promise<never>((_, reject) => {
      state.fail = reject;
    });
    try {
      return await Promise.race([stock(), failed]);
    } catch (error) {
      terminatePool();
      throw error;
    } finally {
      state.fail = null;
      restore();
    }
  });
  return planned;
}

/**
 * The number of threads the initialised wasm backend actually runs: the size
 * of XNNPACK's thread pool, bounded by the pthread Workers Emscripten has
 * running plus the calling thread. 1 for the single-threaded build, 0 when the
 * wasm backend is not initialised (or was shut down).
 *
 * @returns Threads running, counting the calling thread.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { wasmThreadsRunning } from "./_threads.ts";
 *
 * await tf.setBackend("wasm");
 * assert.ok(wasmThreadsRunning() >= 1);
 * ```
 */
export function wasmThreadsRunning(): number {
  const backend = tf.engine().registry["wasm"] as BackendWasm | undefined;
  if (backend === undefined || backend.wasm == null) return 0;
  // Asks XNNPACK's pool itself (what tfjs's getThreadsCount() caches).
  const pooled = Math.max(1, backend.wasm.tfjs.getThreadsCount());
  if (!isThreaded(backend)) return 1;
  const pthread = (backend.wasm as unknown as {
    PThread: { runningWorkers: unknown[] };
  }).PThread;
  return Math.min(pooled, pthread.runningWorkers.length + 1);
}

/**
 * Stops the wasm pthread Workers so that the process (or the Worker) can end
 * on its own. When a threaded wasm backend is initialised it is disposed and
 * removed (its tensors are gone), and the stock single-threaded factory is
 * registered again, so a later `tf.setBackend("wasm")` gets one thread. Safe
 * to call twice, or when threads were never enabled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shutdownWasmThreads, wasmThreadsRunning } from "./_threads.ts";
 *
 * shutdownWasmThreads();
 * shutdownWasmThreads();
 * assert.ok(wasmThreadsRunning() <= 1);
 * ```
 */
export function shutdownWasmThreads(): void {
  const backend = tf.engine().registry["wasm"] as BackendWasm | undefined;
  if (backend !== undefined && isThreaded(backend)) {
    tf.removeBackend("wasm");
  }
  terminatePool();
  restoreStock();
}
