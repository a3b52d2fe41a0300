import assert from "node:assert/strict";
import { AllReduce, allReduceBytes } from "../../src/collective/all_reduce.ts";
import { BARRIER_SLOTS } from "../../src/collective/barrier.ts";
import { groupKernels, groupMemory } from "../../src/collective/kernels.ts";
import type { AllReduceJob, AllReduceReply } from "./_all_reduce_worker.ts";
import { TestWorker } from "./_test_worker.ts";

const FIXTURE = new URL("./_all_reduce_worker.ts", import.meta.url);
const SIMD = groupMemory(64) !== null;
const f = Math.fround;

/** One round of a group run: what each replica contributes, with which weight. */
interface Round {
  offset: number;
  length: number;
  /** One vector of `length` (the whole vector) per replica. */
  inputs: Float32Array[];
  /** Per replica; undefined: reduce() without a weight (the default, 1). */
  weights: (number | undefined)[];
}

interface GroupRun {
  /** [round][replica]: the full result vector that replica read after reduce(). */
  results: Float32Array[][];
  /** [round][replica]: the [begin, end) chunk onChunk reported. */
  chunks: [number, number][][];
  /** [round]: peek() of every index, from the replica whose chunk holds it (NaN elsewhere). */
  peeks: Float32Array[];
  kernels: boolean;
}

function random(n: number, seed: number, scale = 4): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * scale;
  });
}

/** Runs `rounds` on `replicas` Worker replicas sharing one AllReduce. */
async function runGroup(
  replicas: number,
  length: number,
  rounds: Round[],
  simd: boolean,
): Promise<GroupRun> {
  const bytes = allReduceBytes(replicas, length);
  const buffer = simd ? groupMemory(bytes)! : new SharedArrayBuffer(bytes);
  const R = rounds.length;
  const shared = (n: number) => new SharedArrayBuffer(4 * Math.max(1, n));
  const job = {
    buffer,
    control: shared(BARRIER_SLOTS),
    replicas,
    length,
    rounds: R,
    inputs: shared(R * replicas * length),
    weights: shared(R * replicas),
    ranges: shared(R * 2),
    results: shared(R * replicas * length),
    chunks: shared(R * replicas * 2),
    peeks: shared(R * length),
  };
  const inputs = new Float32Array(job.inputs);
  const weights = new Float32Array(job.weights);
  const ranges = new Int32Array(job.ranges);
  rounds.forEach((round, r) => {
    ranges[2 * r] = round.offset;
    ranges[2 * r + 1] = round.length;
    round.inputs.forEach((v, q) => inputs.set(v, (r * replicas + q) * length));
    round.weights.forEach((w, q) => (weights[r * replicas + q] = w ?? NaN));
  });
  new Float32Array(job.peeks).fill(NaN);
  const workers = Array.from({ length: replicas }, (_, q) => {
    const w = new TestWorker(FIXTURE, `all-reduce-${q}`);
    w.post({ ...job, replica: q } satisfies AllReduceJob);
    return w;
  });
  try {
    const replies = await Promise.all(
      workers.map((w, q) => w.next(`replica ${q} to finish`, 20_000)),
    ) as AllReduceReply[];
    for (const reply of replies) assert.equal(reply.type, "done", JSON.stringify(reply));
    const results = new Float32Array(job.results);
    const chunks = new Int32Array(job.chunks);
    const peeks = new Float32Array(job.peeks);
    return {
      kernels: replies.every((r) => r.type === "done" && r.kernels),
      results: rounds.map((_, r) =>
        Array.from({ length: replicas }, (_, q) => {
          const at = (r * replicas + q) * length;
          return results.slice(at, at + length);
        })
      ),
      chunks: rounds.map((_, r) =>
        Array.from({ length: replicas }, (_, q) => {
          const at = 2 * (r * replicas + q);
          return [chunks[at]!, chunks[at + 1]!] as [number, number];
        })
      ),
      peeks: rounds.map((_, r) => peeks.slice(r * length, (r + 1) * length)),
    };
  } finally {
    for (const w of workers) w[Symbol.dispose]();
  }
}

/**
 * What the result must hold after each round, computed here: inside the
 * round's range `sum_q w_q * x_q` with the weights, every product and every
 * partial sum rounded to float32, in replica order (the documented arithmetic); outside it, what
 * the previous rounds left.
 */
function expectedResults(length: number, rounds: Round[]): Float32Array[] {
  const out = new Float32Array(length);
  return rounds.map((round) => {
    // Weights live in a Float32Array: 3/7 is summed as fround(3/7).
    const w = round.weights.map((v) => f(v ?? 1));
    for (let i = round.offset; i < round.offset + round.length; i++) {
      const x = round.inputs.map((v) => v[i]!);
      if (x.length === 1) out[i] = w[0] === 1 ? x[0]! : f(w[0]! * x[0]!);
      else {
        let acc = f(f(w[0]! * x[0]!) + f(w[1]! * x[1]!));
        for (let q = 2; q < x.length; q++) acc = f(acc + f(w[q]! * x[q]!));
        out[i] = acc;
      }
    }
    return out.slice();
  });
}

function assertSameVector(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}[${i}]: ${got[i]} !== ${want[i]}`);
  }
}

/** Every replica read the expected result; onChunk's chunks tile the range; peek() agreed. */
function assertGroupRun(run: GroupRun, length: number, rounds: Round[]): void {
  const want = expectedResults(length, rounds);
  rounds.forEach((round, r) => {
    run.results[r]!.forEach((got, q) => assertSameVector(got, want[r]!, `round ${r} replica ${q}`));
    const chunks = run.chunks[r]!;
    let next = round.offset;
    for (const [q, [begin, end]] of chunks.entries()) {
      assert.equal(begin, next, `round ${r}: replica ${q}'s chunk starts where the last ended`);
      assert.ok(end >= begin, `round ${r}: replica ${q}'s chunk [${begin}, ${end})`);
      const size = end - begin;
      assert.ok(
        Math.abs(size - round.length / chunks.length) < 1,
        `round ${r}: replica ${q}'s chunk of ${size} is not an even share of ${round.length}`,
      );
      next = end;
    }
    assert.equal(next, round.offset + round.length, `round ${r}: the chunks cover the range`);
    for (let i = 0; i < length; i++) {
      const inside = i >= round.offset && i < round.offset + round.length;
      const peeked = run.peeks[r]![i]!;
      if (inside) assert.ok(Object.is(peeked, want[r]![i]), `round ${r}: peek(${i}) ${peeked}`);
      else assert.ok(Number.isNaN(peeked), `round ${r}: index ${i} outside the range was peeked`);
    }
  });
}

/** Three steps of a 4-replica group: uneven shares, an idle replica, no weights. */
function unevenRounds(length: number): Round[] {
  const replicas = 4;
  // A replica with no samples in a step keeps last step's gradient in its slot:
  // only its weight of 0 keeps it out of the sum.
  const stale = (seed: number) => random(length, seed, 1e6);
  const shares = (samples: number[]) => {
    const total = samples.reduce((a, b) => a + b, 0);
    return samples.map((s) => s / total);
  };
  return [
    {
      offset: 0,
      length,
      inputs: Array.from({ length: replicas }, (_, q) => q === 1 ? stale(99) : random(length, q)),
      weights: shares([5, 0, 2, 1]),
    },
    {
      offset: 0,
      length,
      inputs: Array.from(
        { length: replicas },
        (_, q) => q === 0 ? stale(98) : random(length, 10 + q),
      ),
      weights: shares([0, 3, 3, 1]),
    },
    {
      offset: 0,
      length,
      inputs: Array.from({ length: replicas }, (_, q) => random(length, 20 + q)),
      weights: [undefined, undefined, undefined, undefined],
    },
  ];
}

for (const simd of [false, true]) {
  Deno.test({
    name:
      `AllReduce.reduce() sums every replica's share by its weight when shares are uneven and one ` +
      `replica has no samples (${simd ? "SIMD kernels" : "JavaScript"})`,
    ignore: simd && !SIMD,
    fn: async () => {
      const length = 1027; // not a multiple of 4 replicas, nor of the SIMD width
      const rounds = unevenRounds(length);
      const run = await runGroup(4, length, rounds, simd);
      assert.equal(run.kernels, simd, "the replicas ran the intended arithmetic");
      assertGroupRun(run, length, rounds);
      // Independently of the float32 rounding: the weighted mean of the shares.
      rounds.forEach((round, r) => {
        for (let i = 0; i < length; i++) {
          const exact = round.inputs.reduce((s, v, q) => s + (round.weights[q] ?? 1) * v[i]!, 0);
          const got = run.results[r]![0]![i]!;
          assert.ok(Math.abs(got - exact) <= 1e-5 * (1 + Math.abs(exact)), `round ${r}[${i}]`);
        }
      });
    },
  });
}

Deno.test(
  "AllReduce.reduce() touches only [offset, offset + length) when it reduces part of the vector",
  async () => {
    const replicas = 3, length = 10;
    const round = (offset: number, n: number, seed: number): Round => ({
      offset,
      length: n,
      inputs: Array.from({ length: replicas }, (_, q) => random(length, seed + q)),
      weights: [0.5, 0.25, 0.25],
    });
    // Ranges shorter than the group leave some replicas an empty chunk.
    const rounds = [
      round(0, 10, 1),
      round(2, 5, 4),
      round(9, 1, 7),
      round(3, 2, 10),
      round(4, 0, 13),
    ];
    const run = await runGroup(replicas, length, rounds, false);
    assertGroupRun(run, length, rounds);
  },
);

Deno.test("AllReduce.reduce() of a single replica returns its slot scaled by its weight", () => {
  const length = 37;
  const x = random(length, 5);
  const memory = SIMD ? groupMemory(allReduceBytes(1, length)) : null;
  const buffers = [new SharedArrayBuffer(allReduceBytes(1, length))];
  if (memory !== null) buffers.push(memory.buffer as SharedArrayBuffer);
  for (const buffer of buffers) {
    const kernels = memory !== null && buffer === memory.buffer ? groupKernels(memory) : null;
    const control = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
    const ar = new AllReduce(buffer, control, { replica: 0, replicas: 1, length, kernels });
    ar.slot.set(x);
    ar.reduce();
    assertSameVector(ar.result, x, "weight 1");
    ar.reduce(0, length, { weight: 0.3 });
    assertSameVector(ar.result, x.map((v) => f(f(0.3) * v)), "weight 0.3");
    ar.reduce(0, length, { weight: 0 });
    assert.ok(ar.result.every((v) => v === 0), "weight 0");
  }
});

Deno.test("AllReduce() throws RangeError when the buffer is smaller than allReduceBytes()", () => {
  // Slots and the result are 12 floats apart: 10 rounded up to a multiple of 4.
  assert.equal(allReduceBytes(3, 10), ((3 + 1) * 12 + 3) * 4);
  const control = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
  assert.throws(
    () =>
      new AllReduce(new SharedArrayBuffer(allReduceBytes(3, 10) - 4), control, {
        replica: 0,
        replicas: 3,
        length: 10,
      }),
    {
      name: "RangeError",
      message: "All-reduce buffer too small: expected 204 bytes, received 200",
    },
  );
});

Deno.test("AllReduce() starts every slot and the result 16-byte aligned, whatever the length", () => {
  const control = new Int32Array(new SharedArrayBuffer(4 * BARRIER_SLOTS));
  for (const length of [1, 5, 10, 669_709]) {
    const buffer = new SharedArrayBuffer(allReduceBytes(3, length));
    for (let replica = 0; replica < 3; replica++) {
      const ar = new AllReduce(buffer, control, { replica, replicas: 3, length });
      assert.equal(ar.slot.byteOffset % 16, 0, `length ${length} replica ${replica} slot`);
      assert.equal(ar.result.byteOffset % 16, 0, `length ${length} result`);
      assert.equal(ar.slot.length, length);
      assert.equal(ar.result.length, length);
    }
  }
});
