// MirroredStrategy across hosts: separate processes on loopback are nodes of
// one synchronous job. Oracles: N nodes x R replicas == one process with
// N x R replicas == model.fit on the same global batch.
import assert from "node:assert/strict";
import { MirroredStrategy, tf } from "../../mod.ts";
import { classifier, dataset } from "../strategy/_models.ts";
import { freePort } from "./_loopback.ts";
import { HAS_OPENSSL, testCertificates } from "./_tls.ts";
import { latestCheckpoint } from "../../src/io/checkpoint.ts";

const NODE = new URL("../fixtures/mirrored_node.ts", import.meta.url).pathname;
const TOL = 1e-5;
const opts = { sanitizeOps: false, sanitizeResources: false };

interface NodeResult {
  rank: number;
  weights?: number[][];
  digests?: number[];
  history?: Record<string, number[]>;
  scores?: Record<string, number> | null;
  tensors?: number[];
  leaks?: { before: unknown; after: unknown } | null;
  stderr?: string;
  error?: { name: string; message: string; peer?: number };
}

interface Job {
  nodes: number;
  replicas: number;
  optimizer: "sgd" | "adam";
  samples: number;
  batchSize: number;
  epochs: number;
  validationSplit?: number;
  evaluate?: boolean;
  leakCheck?: boolean;
  bucketBytes?: number;
  /** Every cluster socket over TLS (certificates made by the test; skipped without openssl). */
  tls?: boolean;
  [key: string]: unknown;
}

/** Starts one process per node; resolves with every node's result line. */
function startNodes(
  job: Job,
  per: (rank: number) => Record<string, unknown> = () => ({}),
  options: { only?: number[] } = {},
) {
  const port = (job.port as number | undefined) ?? freePort();
  const ranks = options.only ?? Array.from({ length: job.nodes }, (_, r) => r);
  const children = ranks.map(
    (rank) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", NODE, JSON.stringify({ ...job, rank, port, ...per(rank) })],
        stdout: "piped",
        stderr: "piped",
      }).spawn(),
  );
  // A broken implementation must fail the test, not hang it.
  const deadline = setTimeout(() => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
    }
  }, 90_000);
  void Promise.allSettled(children.map((c) => c.status)).then(() => clearTimeout(deadline));
  const results = children.map(async (child) => {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout).trim();
    const line = text.split("\n").at(-1) ?? "";
    try {
      return { ...JSON.parse(line), stderr: new TextDecoder().decode(out.stderr) } as NodeResult;
    } catch {
      throw new Error(
        `a node printed no result (exit ${out.code}): ${text}\n${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
  });
  return { children, results, port };
}

async function oneProcess(job: Job): Promise<{ mirrored: number[][]; fit: number[][] }> {
  await tf.setBackend("cpu");
  const optimizer = job.optimizer === "sgd" ? () => tf.train.sgd(0.1) : () => tf.train.adam(0.01);
  const { x, y } = dataset(job.samples);
  const a = classifier(optimizer);
  await using strategy = new MirroredStrategy({
    replicas: job.nodes * job.replicas,
    backend: "cpu",
  });
  await strategy.fit(a, x, y, {
    epochs: job.epochs,
    batchSize: job.batchSize,
    seed: 7,
    validationSplit: job.validationSplit,
  });
  const b = classifier(optimizer);
  // model.fit shuffles with its own order: compare it on unshuffled data... the
  // strategies' own order is seeded, so the oracle is MirroredStrategy with one replica.
  await using single = new MirroredStrategy({ replicas: 1, backend: "cpu" });
  await single.fit(b, x, y, {
    epochs: job.epochs,
    batchSize: job.batchSize,
    seed: 7,
    validationSplit: job.validationSplit,
  });
  const out = {
    mirrored: a.getWeights().map((w) => Array.from(w.dataSync())),
    fit: b.getWeights().map((w) => Array.from(w.dataSync())),
  };
  tf.dispose([x, y]);
  a.dispose();
  b.dispose();
  return out;
}

function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((w, i) => w.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i]![j]!)))));
  return m;
}

for (
  const job of [
    // A bucket per weight: each goes across hosts as the backward pass produces it.
    {
      nodes: 2,
      replicas: 1,
      optimizer: "sgd",
      samples: 90,
      batchSize: 16,
      epochs: 2,
      bucketBytes: 4,
    },
    {
      nodes: 2,
      replicas: 1,
      optimizer: "adam",
      samples: 64,
      batchSize: 16,
      epochs: 1,
      leakCheck: true,
    },
    {
      nodes: 2,
      replicas: 2,
      optimizer: "adam",
      samples: 90,
      batchSize: 20,
      epochs: 2,
      validationSplit: 0.2,
      evaluate: true,
      bucketBytes: 64, // three buckets, reduced by both replicas of each host
    },
    // Every cluster socket over TLS, with three buckets in flight.
    {
      nodes: 2,
      replicas: 1,
      optimizer: "adam",
      samples: 90,
      batchSize: 16,
      epochs: 2,
      bucketBytes: 64,
      tls: true,
    },
    // No buckets: the whole vector after the backward pass.
    {
      nodes: 3,
      replicas: 1,
      optimizer: "adam",
      samples: 70,
      batchSize: 12,
      epochs: 1,
      bucketBytes: 0,
    },
  ] satisfies Job[]
) {
  Deno.test({
    name: `MirroredStrategy with cluster: ${job.nodes} nodes x ${job.replicas} replicas ` +
      `(${job.optimizer}${job.validationSplit ? ", validation" : ""}, ` +
      `${job.bucketBytes === undefined ? "" : `bucketBytes ${job.bucketBytes}, `}` +
      `${job.tls ? "TLS, " : ""}uneven last batch) equals one process with ` +
      `${job.nodes * job.replicas} replicas and one replica` +
      `${job.tls ? " (skipped without openssl)" : ""}`,
    ...opts,
    ignore: job.tls === true && !HAS_OPENSSL,
    fn: async () => {
      const dir = job.tls ? await Deno.makeTempDir({ prefix: "dtrain_cluster_tls_" }) : null;
      const tls = dir === null ? undefined : await testCertificates(dir);
      const nodes = await Promise.all(startNodes(job, () => ({ tls })).results);
      if (dir !== null) await Deno.remove(dir, { recursive: true });
      for (const n of nodes) assert.equal(n.error, undefined, JSON.stringify(n.error));
      const digests = nodes.flatMap((n) => n.digests!);
      assert.equal(new Set(digests).size, 1, `every replica of every node: ${digests}`);
      const oracle = await oneProcess(job);
      for (const n of nodes) {
        const d = maxDiff(n.weights!, oracle.mirrored);
        assert.ok(d <= TOL, `node ${n.rank} vs one process: max |dw| ${d}`);
        const e = maxDiff(n.weights!, oracle.fit);
        assert.ok(e <= TOL, `node ${n.rank} vs one replica: max |dw| ${e}`);
        assert.deepEqual(n.history, nodes[0]!.history, "every node reports the same History");
        assert.equal(n.history!.loss!.length, job.epochs);
        if (job.validationSplit) assert.equal(n.history!.val_loss!.length, job.epochs);
        if (job.evaluate) assert.deepEqual(n.scores, nodes[0]!.scores);
        if (job.leakCheck) assert.deepEqual(n.leaks!.after, n.leaks!.before, "no tensor leaks");
      }
    },
  });
}

Deno.test(
  "MirroredStrategy with cluster: fit({ trace }) puts each host's cross-host sums on its network track",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtrain_cluster_trace_" });
    try {
      const job = {
        nodes: 2,
        replicas: 1,
        optimizer: "sgd",
        samples: 90,
        batchSize: 16,
        epochs: 2,
      };
      const nodes = await Promise.all(
        startNodes(job as Job, (rank) => ({ trace: `${dir}/rank${rank}.json` })).results,
      );
      for (const n of nodes) assert.equal(n.error, undefined, JSON.stringify(n.error));
      for (const rank of [0, 1]) {
        const { traceEvents } = JSON.parse(await Deno.readTextFile(`${dir}/rank${rank}.json`));
        const spans = traceEvents.filter((e: { ph: string }) => e.ph === "X");
        const net = spans.filter((e: { name: string }) => e.name === "cross-host sum");
        const steps = spans.filter((e: { name: string }) => e.name === "gradients");
        assert.equal(steps.length, 2 * 6, "2 epochs of ceil(90 / 16) steps");
        assert.ok(net.length >= steps.length, `a sum per step at least: ${net.length}`);
        assert.ok(
          net.every((e: { pid: number; args: { bytesSent: number } }) =>
            e.pid === rank && e.args.bytesSent > 0
          ),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "MirroredStrategy with cluster: nodes that disagree on the batch size fail with the field named",
  opts,
  async () => {
    const job = { nodes: 2, replicas: 1, optimizer: "sgd", samples: 64, batchSize: 16, epochs: 1 };
    const nodes = await Promise.all(
      startNodes(job as Job, (rank) => (rank === 1 ? { batchSize: 32 } : {})).results,
    );
    for (const n of nodes) {
      assert.equal(n.error?.name, "ClusterConfigMismatchError", JSON.stringify(n));
      assert.match(n.error!.message, /batchSize/);
      assert.match(n.error!.message, /16/);
      assert.match(n.error!.message, /32/);
    }
  },
);

Deno.test(
  "MirroredStrategy with cluster: a node with the wrong token is refused and no node trains",
  opts,
  async () => {
    const job = {
      nodes: 2,
      replicas: 1,
      optimizer: "sgd",
      samples: 64,
      batchSize: 16,
      epochs: 1,
      rendezvousTimeoutMs: 4000,
    };
    const nodes = await Promise.all(
      startNodes(job as Job, (rank) => (rank === 1 ? { token: "not-the-token" } : {})).results,
    );
    for (const n of nodes) {
      assert.ok(n.error !== undefined, `node ${n.rank} must not train: ${JSON.stringify(n)}`);
      assert.match(n.error.name, /^Cluster(Auth|Timeout)Error$/, JSON.stringify(n.error));
    }
    assert.equal(nodes[1]!.error!.name, "ClusterAuthError", "the stranger learns why");
  },
);

// One bucket (the default for this small model), and a bucket per weight,
// so that sums of the step's first buckets are in flight when the peer dies.
for (const bucketBytes of [undefined, 4]) {
  Deno.test(
    "MirroredStrategy with cluster: a node killed mid-epoch makes the other reject with " +
      `PeerLostError${bucketBytes === undefined ? "" : ` (bucketBytes ${bucketBytes})`}`,
    opts,
    async () => {
      const job = {
        nodes: 2,
        replicas: 1,
        optimizer: "sgd",
        samples: 512,
        batchSize: 16,
        epochs: 50,
        slowStepMs: 20,
        peerTimeoutMs: 3000,
        bucketBytes,
      };
      const { children, results } = startNodes(job as Job);
      const lost = results[1]!.catch(() => {}); // the killed node prints nothing
      // Let training start, then kill node 1 outright.
      await new Promise((r) => setTimeout(r, 6000));
      const t0 = performance.now();
      children[1]!.kill("SIGKILL");
      const first = await results[0]!;
      const waited = performance.now() - t0;
      assert.equal((await children[1]!.status).signal, "SIGKILL", "node 1 was killed");
      await lost;
      assert.equal(first!.error?.name, "PeerLostError", JSON.stringify(first));
      assert.equal(first!.error?.peer, 1, "the error names the lost rank");
      assert.ok(waited < 3000 + 10_000, `rejected after ${Math.round(waited)} ms`);
    },
  );
}

Deno.test(
  "MirroredStrategy with cluster.maxRestarts: a killed node restarts, the group re-forms and " +
    "ends where an uninterrupted run ends",
  opts,
  async () => {
    const dirs = await Promise.all(
      [0, 1, 2, 3].map(() => Deno.makeTempDir({ prefix: "dtrain_elastic_" })),
    );
    try {
      const job = {
        nodes: 2,
        replicas: 1,
        optimizer: "adam",
        samples: 256,
        batchSize: 16,
        epochs: 4,
        slowStepMs: 40,
        peerTimeoutMs: 3000,
        maxRestarts: 1,
      };
      // The uninterrupted run.
      const reference = await Promise.all(
        startNodes(job as Job, (rank) => ({ checkpointDir: dirs[rank] })).results,
      );
      for (const n of reference) assert.equal(n.error, undefined, JSON.stringify(n.error));
      // The interrupted one: kill node 1 once it has a checkpoint, then start it again.
      const per = (rank: number) => ({ checkpointDir: dirs[2 + rank] });
      const first = startNodes(job as Job, per);
      const lost = first.results[1]!.catch(() => {});
      const deadline = Date.now() + 60_000;
      while ((await latestCheckpoint(dirs[3]!)) === undefined) {
        assert.ok(Date.now() < deadline, "node 1 wrote no checkpoint within 60 s");
        await new Promise((r) => setTimeout(r, 100));
      }
      first.children[1]!.kill("SIGKILL");
      await lost;
      const port = first.port;
      const again = startNodes({ ...job, port } as Job, (rank) => ({ ...per(rank) }), {
        only: [1],
      });
      const [node0, node1] = [await first.results[0]!, await again.results[0]!];
      for (const n of [node0, node1]) {
        assert.equal(
          n.error,
          undefined,
          JSON.stringify([node0.error, node1.error, node0.stderr, node1.stderr]),
        );
      }
      for (const n of [node0, node1]) {
        const d = maxDiff(n.weights!, reference[0]!.weights!);
        assert.ok(d <= TOL, `node ${n.rank} vs the uninterrupted run: max |dw| ${d}`);
      }
      assert.deepEqual(node0.history, reference[0]!.history, "History has every epoch once");
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
);
