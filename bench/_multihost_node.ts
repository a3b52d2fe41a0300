// One node of a multi-host benchmark run (`bench/multihost.ts` starts them):
// `deno run -A bench/_multihost_node.ts JSON` with
// { model, nodes, rank, port, host, replicas, globalBatch, steps, compression, bucketBytes?,
// trace? }.
// Trains the bench model on synthetic data (a warm-up epoch, then the timed
// four-epoch fit) and prints one JSON line: samples/s, step and exchange ms,
// and the bytes each cross-host exchange put on the wire.
import { MirroredStrategy, tf } from "../mod.ts";
import { buildModel, data, EpochClock } from "./_run.ts";

const o = JSON.parse(Deno.args[0]!);
await tf.setBackend("cpu");
const n = o.globalBatch * o.steps;
const model = buildModel(o.model);
const { x, y } = data(o.model, n);
await using strategy = new MirroredStrategy({
  replicas: o.replicas,
  backend: "wasm",
  threadsPerReplica: 1,
  ...(o.nodes > 1
    ? {
      cluster: {
        nodes: o.nodes,
        rank: o.rank,
        coordinator: `${o.coordinatorHost ?? "127.0.0.1"}:${o.port}`,
        token: "bench",
        hostname: o.host ?? "127.0.0.1",
        compression: o.compression ?? "none",
        ...(o.bucketBytes === undefined ? {} : { bucketBytes: o.bucketBytes }),
      },
    }
    : {}),
});
const fit = { batchSize: o.globalBatch, shuffle: false, seed: 1 };
await strategy.fit(model, x, y, { ...fit, epochs: 1 }); // warm-up
const clock = new EpochClock(o.steps);
await strategy.fit(model, x, y, {
  ...fit,
  epochs: EpochClock.epochs,
  callbacks: { onBatchEnd: () => clock.batchEnd() },
  ...(o.trace ? { trace: o.trace } : {}),
});
const st = strategy.stats!;
const cross = st.crossHost;
console.log(JSON.stringify({
  rank: o.rank,
  ...clock.result(n),
  exchangeMs: st.exchangeMs,
  computeMs: st.computeMs,
  // Per step: with gradient buckets a step makes several cross-host sums.
  crossHostMs: cross === undefined || cross.exchanges === 0 ? null : cross.ms / st.steps,
  bytesPerStep: cross === undefined || cross.exchanges === 0
    ? 0
    : Math.round(cross.bytesSent / st.steps),
}));
tf.dispose([x, y]);
model.dispose();
