// Private: entry point of an inference Worker of the HTTP service (the main
// thread's side is `_predict_pool.ts`, which also holds the protocol). It
// activates its backend once (`init`: WASM on one thread where asked, which
// routes its matrix products to the host's BLAS when one is found), loads
// models from the registry's folder by path on first use and keeps the
// `cacheSize` most recently used, and runs each `predict` batch in one
// `tf.tidy`. Requests are handled one at a time, in arrival order (an
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
  inShape: number[];
  inSize: number;
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
    const inShape = model.inputs[0]!.shape.slice(1).map((d) => d ?? 1);
    return { model, inShape, inSize: inShape.reduce((a, b) => a * b, 1) };
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
  const { model, inShape, inSize } = await load(req.model, req.path);
  if (req.x.length !== req.rows * inSize) {
    throw new RangeError(
      `Model ${req.model} takes rows of ${inSize} values (input shape [${inShape.join(", ")}]), ` +
        `received ${req.x.length} values for ${req.rows} rows`,
    );
  }
  const y = tf.tidy(() => {
    const out = model.predict(tf.tensor(req.x, [req.rows, ...inShape]));
    return Array.isArray(out) ? out[0]! : out;
  });
  try {
    const data = await y.data() as Float32Array;
    return { type: "predicted", id: req.id, data, width: data.length / req.rows };
  } finally {
    y.dispose();
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
