import assert from "node:assert/strict";
import { NodeProcess } from "./_nodes.ts";
import { freePort } from "./_loopback.ts";

const PEER_TIMEOUT_MS = 1000;
const MARGIN_MS = 2000;

function start(nodes: number, extra: (rank: number) => Record<string, unknown> = () => ({})) {
  const coordinator = `127.0.0.1:${freePort()}`;
  return Array.from({ length: nodes }, (_, rank) =>
    new NodeProcess({
      rank,
      nodes,
      coordinator,
      token: "fault-token",
      hostname: "127.0.0.1",
      peerTimeoutMs: PEER_TIMEOUT_MS,
      length: 50_000,
      iterations: 1_000_000,
      maxMs: 30_000,
      ...extra(rank),
    }));
}

async function stopAll(procs: NodeProcess[]) {
  for (const p of procs) p.kill();
  await Promise.all(procs.map((p) => p.stop()));
}

Deno.test("allReduce() rejects with PeerLostError naming the killed rank on every survivor of 4 (relayed to non-neighbours)", async () => {
  const procs = start(4);
  try {
    for (const p of procs) {
      await p.waitFor((e) => e.event === "step" && (e.i as number) >= 5, 30000, "5 steps");
    }
    const killedAt = Date.now();
    procs[2]!.kill("SIGKILL");
    for (const r of [0, 1, 3]) {
      const e = await procs[r]!.waitFor(
        (e) => e.event === "error" || e.event === "done",
        PEER_TIMEOUT_MS + MARGIN_MS,
        `rank ${r}'s error`,
      );
      assert.equal(e.event, "error", JSON.stringify(e));
      assert.equal(e.name, "PeerLostError", JSON.stringify(e));
      assert.equal(e.lost, 2, JSON.stringify(e));
      if (r === 0) {
        assert.match(e.message as string, /reported by rank [13]/, "rank 0 is no neighbour of 2");
      }
      assert.ok(
        e.t - killedAt <= PEER_TIMEOUT_MS + MARGIN_MS,
        `detected after ${e.t - killedAt} ms`,
      );
      const status = await procs[r]!.stop(5000);
      assert.equal(status.code, 0, `rank ${r} exits cleanly: ${await procs[r]!.stderr}`);
    }
  } finally {
    await stopAll(procs);
  }
});

Deno.test("allReduce() rejects with PeerLostError when a peer stalls with its sockets open", async () => {
  const procs = start(3, (rank) => rank === 2 ? { mode: "stall", stallAfter: 5 } : {});
  try {
    const stall = await procs[2]!.waitFor((e) => e.event === "stalling", 30000, "rank 2 stalling");
    for (const r of [0, 1]) {
      const e = await procs[r]!.waitFor(
        (e) => e.event === "error",
        PEER_TIMEOUT_MS + MARGIN_MS + 1000,
        `rank ${r}'s error`,
      );
      assert.equal(e.name, "PeerLostError", JSON.stringify(e));
      assert.equal(e.lost, 2, JSON.stringify(e));
      const after = e.t - stall.t;
      assert.ok(
        after >= PEER_TIMEOUT_MS * 0.9 && after <= PEER_TIMEOUT_MS + MARGIN_MS,
        `detected after ${after} ms`,
      );
    }
    assert.ok(
      !procs[2]!.events.some((e) => e.event === "error"),
      "the stalled node is still stalled",
    );
  } finally {
    await stopAll(procs);
  }
});

Deno.test("a ClusterGroup made with an already failed link is failed and leaves the process free to exit", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../fixtures/failed_group.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, 10000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(killed, false, `the process did not exit by itself: ${text}`);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(text.trim()), { failure: "PeerLostError", rank: 1 });
});
