// Private: entry point of an inference Worker of the HTTP service (the main
// thread's side is `_predict_pool.ts`, which also holds the protocol). It
// activates its backend once (`init`: WASM on one thread where asked, which
// routes its matrix products to the host's BLAS when one is found), loads
// models from the registry's folder by path on first use and keeps the
// `cacheSize` most recently used, and runs each `predict` batch (one array of
// rows per model input in, one per model output back) in one `tf.tidy`.
// Requests are handled one at a time, in arrival order (an
// `evict` never disposes a model a batch is using); the runtime's request
// loop (`serveRequests`) answers each exactly once.
/// <reference lib="deno.worker" />
import { join } from "node:path";
import * as tf from "../tf.ts";
import { selectBackend } from "../../backends/select.ts";
import { fileHandler } from "../io/file_handler.ts";
import { closeWorker, serveRequests } from "../workers/worker_loop.ts";
import { ModelFilesMissingError } from "./_domain_errors.ts";
import {
  type FaultKind,
  parsePredictRequest,
  type PredictReply,
  type PredictRequest,
} from "./_predict_pool.ts";

interface Loaded {
  model: tf.LayersModel;
  /** Per-sample shape (unknown dimensions as 1) and size of each input. */
  inputs: { shape: number[]; size: number }[];
}

let cacheSize = 8;
const cache = new Map<string, Promise<Loaded>>();
let fault: FaultKind | undefined;

function load(id: string, path: string): Promise<Loaded> {
  let entry = cache.get(id);
  if (entry !== undefined) {
    cache.delete(id); // re-insert: most recently used last
    cache.set(id, entry);
    return entry;
  }
  entry = tf.loadLayersModel(fileHandler(join(path, "model.json"))).then((model) => {
    const inputs = model.inputs.map((t) => {
      const shape = t.shape.slice(1).map((d) => d ?? 1);
      return { shape, size: shape.reduce((a, b) => a * b, 1) };
    });
    return { model, inputs };
  }, (e) => {
    throw e instanceof Deno.errors.NotFound
      ? new ModelFilesMissingError(`Model ${id} is registered but ${e.message}`, { cause: e })
      : e;
  });
  cache.set(id, entry);
  entry.catch(() => {
    if (cache.get(id) === entry) cache.delete(id);
  });
  while (cache.size > cacheSize) evict(cache.keys().next().value!);
  return entry;
}

function evict(id: string): void {
  const entry = cache.get(id);
  if (entry === undefined) return;
  cache.delete(id);
  entry.then((m) => m.model.dispose(), () => {});
}

/** Fails this batch the way a test asked: the reply never comes. */
function trip(kind: FaultKind): Promise<never> {
  if (kind === "hang") { for (;;) { /* a Worker stuck in a loop */ } }
  if (kind === "exit") self.close();
  else {setTimeout(() => {
      throw new Error("injected fault: the inference Worker crashed");
    }, 0);}
  return new Promise<never>(() => {});
}

async function predict(req: Extract<PredictRequest, { type: "predict" }>): Promise<PredictReply> {
  if (fault !== undefined) {
    const kind = fault;
    fault = undefined;
    return await trip(kind);
  }
  const { model, inputs } = await load(req.model, req.path);
  if (
    req.xs.length !== inputs.length ||
    req.xs.some((x, k) => x.length !== req.rows * inputs[k]!.size)
  ) {
    const shapes = inputs.map((p) => `[${p.shape.join(", ")}]`).join(", ");
    throw new RangeError(
      `Model ${req.model} takes rows of [${inputs.map((p) => p.size).join(", ")}] values ` +
        `(input shapes ${shapes}), received [${req.xs.map((x) => x.length).join(", ")}] ` +
        `values for ${req.rows} rows`,
    );
  }
  const ys = tf.tidy(() => {
    const xs = req.xs.map((x, k) => tf.tensor(x, [req.rows, ...inputs[k]!.shape]));
    const out = model.predict(xs.length === 1 ? xs[0]! : xs);
    return Array.isArray(out) ? out : [out];
  });
  try {
    const outputs = await Promise.all(ys.map((y) => y.data() as Promise<Float32Array>));
    return { type: "predicted", id: req.id, outputs };
  } finally {
    tf.dispose(ys);
  }
}

async function handle(req: PredictRequest): Promise<PredictReply> {
  switch (req.type) {
    case "init": {
      cacheSize = req.cacheSize;
      // `override: ""`: the backend the server was told, not DTRAIN_BACKEND
      // (that one is for training jobs).
      const report = await selectBackend({ require: req.backend, threads: 1, override: "" });
      return {
        type: "ready",
        id: req.id,
        backend: report.name,
        reason: report.reason,
        blas: report.blas ?? null,
      };
    }
    case "predict":
      return await predict(req);
    case "evict":
      evict(req.model);
      return { type: "evicted", id: req.id };
    case "stats":
      // Loads in flight settle first: their tensors are counted.
      await Promise.allSettled(cache.values());
      return {
        type: "stats",
        id: req.id,
        tensors: tf.memory().numTensors,
        loaded: [...cache.keys()],
      };
    case "fault":
      fault = req.kind;
      return { type: "armed", id: req.id };
    case "close":
      for (const id of [...cache.keys()]) evict(id);
      return closeWorker(req.id, undefined);
  }
}

// One request at a time, in arrival order.
let chain: Promise<unknown> = Promise.resolve();
serveRequests(parsePredictRequest, (req) => {
  const reply = chain.then(() => handle(req));
  chain = reply.catch(() => {});
  return reply;
});
