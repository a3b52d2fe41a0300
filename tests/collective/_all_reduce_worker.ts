// Fixture Worker for all_reduce_test.ts: one replica of a shared AllReduce.
// Each round it copies its planned contribution into its slot, reduces the
// planned range with its planned weight (NaN: no weight, the default), records
// the chunk `onChunk` gave it and `peek` over that chunk, and copies the
// result out.
/// <reference lib="deno.worker" />
import { AllReduce } from "../../src/collective/all_reduce.ts";
import { groupKernels } from "../../src/collective/kernels.ts";

/** What the test sends; every array is [round][replica]... flattened. */
export interface AllReduceJob {
  /** The all-reduce buffer, or a group memory to run the SIMD kernels on. */
  buffer: SharedArrayBuffer | WebAssembly.Memory;
  control: SharedArrayBuffer;
  replica: number;
  replicas: number;
  length: number;
  rounds: number;
  /** Float32 [rounds][replicas][length]: each replica's contribution. */
  inputs: SharedArrayBuffer;
  /** Float32 [rounds][replicas]: each replica's weight, NaN for none. */
  weights: SharedArrayBuffer;
  /** Int32 [rounds][2]: offset and length of each round's reduce. */
  ranges: SharedArrayBuffer;
  /** Float32 [rounds][replicas][length]: the result each replica saw. */
  results: SharedArrayBuffer;
  /** Int32 [rounds][replicas][2]: the chunk onChunk reported. */
  chunks: SharedArrayBuffer;
  /** Float32 [rounds][length]: peek() over each replica's own chunk. */
  peeks: SharedArrayBuffer;
}

/** What the Worker replies. */
export type AllReduceReply =
  | { type: "done"; kernels: boolean }
  | { type: "error"; name: string; message: string };

self.onmessage = (e: MessageEvent<AllReduceJob>) => {
  const job = e.data;
  const { replica, replicas, length, rounds } = job;
  try {
    const memory = job.buffer instanceof WebAssembly.Memory ? job.buffer : null;
    const buffer = (memory?.buffer ?? job.buffer) as SharedArrayBuffer;
    const kernels = memory === null ? null : groupKernels(memory);
    const ar = new AllReduce(buffer, new Int32Array(job.control), {
      replica,
      replicas,
      length,
      kernels,
    });
    const inputs = new Float32Array(job.inputs);
    const weights = new Float32Array(job.weights);
    const ranges = new Int32Array(job.ranges);
    const results = new Float32Array(job.results);
    const chunks = new Int32Array(job.chunks);
    const peeks = new Float32Array(job.peeks);
    for (let r = 0; r < rounds; r++) {
      const at = (r * replicas + replica) * length;
      ar.slot.set(inputs.subarray(at, at + length));
      const weight = weights[r * replicas + replica]!;
      ar.reduce(ranges[2 * r]!, ranges[2 * r + 1]!, {
        ...(Number.isNaN(weight) ? {} : { weight }),
        onChunk: (begin, end) => {
          chunks[2 * (r * replicas + replica)] = begin;
          chunks[2 * (r * replicas + replica) + 1] = end;
          for (let i = begin; i < end; i++) peeks[r * length + i] = ar.peek(i);
        },
      });
      results.set(ar.result, at);
    }
    self.postMessage({ type: "done", kernels: kernels !== null } satisfies AllReduceReply);
  } catch (err) {
    const { name, message } = err instanceof Error ? err : { name: "?", message: `${err}` };
    self.postMessage({ type: "error", name, message } satisfies AllReduceReply);
  }
};
