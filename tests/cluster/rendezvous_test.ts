import assert from "node:assert/strict";
import { rendezvous } from "../../src/cluster/rendezvous.ts";
import { FrameConn } from "../../src/cluster/_frames.ts";
import { authKey, clientHandshake } from "../../src/cluster/_handshake.ts";
import { controlFrame } from "../../src/cluster/_messages.ts";
import {
  ClusterAuthError,
  ClusterConfigMismatchError,
  ClusterJoinRefusedError,
  ClusterTimeoutError,
  PeerLostError,
} from "../../src/cluster/errors.ts";
import { formGroups } from "./_groups.ts";
import { freePort, readAll, writeAll } from "./_loopback.ts";
import { HAS_OPENSSL, testCertificates } from "./_tls.ts";

const local = { hostname: "127.0.0.1", rendezvousTimeoutMs: 15000 };
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sumCheck(groups: { allReduce(x: Float32Array): Promise<unknown>; rank: number }[]) {
  const data = groups.map((g) => new Float32Array([g.rank, 1, 2 * g.rank]));
  await Promise.all(groups.map((g, i) => g.allReduce(data[i]!)));
  const n = groups.length;
  const s = (n * (n - 1)) / 2;
  for (const d of data) assert.deepEqual([...d], [s, n, 2 * s]);
}

Deno.test("rendezvous() forms 2 and 3 node groups whatever the start order (coordinator last)", async () => {
  for (const [nodes, order] of [[2, [1, 0]], [3, [2, 1, 0]], [3, [0, 2, 1]]] as const) {
    const t0 = performance.now();
    const groups = await formGroups(nodes, { order: [...order], gapMs: 300 });
    try {
      assert.deepEqual(
        groups.map((g) => [g.rank, g.nodes]),
        [...Array(nodes).keys()].map((r) => [r, nodes]),
      );
      assert.ok(performance.now() - t0 >= 300 * (nodes - 1), "the late coordinator was waited for");
      await sumCheck(groups);
    } finally {
      await Promise.all(groups.map((g) => g.close()));
    }
  }
});

Deno.test("rendezvous() refuses a node with the wrong token; the real nodes still form the group", async () => {
  const coordinator = `127.0.0.1:${freePort()}`;
  const spec = (rank: number, token: string) => ({ nodes: 2, rank, coordinator, token });
  const c = rendezvous(spec(0, "right"), local);
  const intruder = rendezvous(spec(1, "wrong"), local);
  await assert.rejects(() => intruder, (e) => {
    assert.ok(e instanceof ClusterAuthError, String(e));
    assert.match(e.message, /coordinator 127\.0\.0\.1:\d+ failed the token check/);
    return true;
  });
  const real = rendezvous(spec(1, "right"), local);
  const groups = await Promise.all([c, real]);
  try {
    await sumCheck(groups);
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("rendezvous() never sends the token: a fake coordinator records every byte", async () => {
  const token = "Zebra-Token-0123456789";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const recorded = (async () => {
    const conn = await listener.accept();
    const fake = new FrameConn(conn);
    const hello = await fake.next(5000); // a well-formed challenge with a made-up proof
    await fake.send(
      controlFrame({ type: "challenge", nonce: "ab".repeat(32), proof: "cd".repeat(32) }),
    );
    await fake.close();
    return hello.payload;
  })();
  try {
    await assert.rejects(
      () =>
        rendezvous(
          { nodes: 2, rank: 1, coordinator: `127.0.0.1:${listener.addr.port}`, token },
          local,
        ),
      { name: "ClusterAuthError", message: /failed the token check/ },
    );
    const text = new TextDecoder().decode(await recorded);
    const hex = Array.from(new TextEncoder().encode(token), (b) => b.toString(16).padStart(2, "0"))
      .join("");
    assert.match(text, /"type":"hello"/);
    for (const form of [token, hex, btoa(token), token.slice(0, 8)]) {
      assert.ok(!text.includes(form), `the token (as ${form}) reached the coordinator: ${text}`);
    }
    assert.ok(
      !text.includes('"auth"'),
      "no proof is sent to a coordinator that failed its own proof",
    );
  } finally {
    listener.close();
  }
});

Deno.test("rendezvous() ignores garbage, silent and forged clients on the coordinator port", async () => {
  const port = freePort();
  const coordinator = `127.0.0.1:${port}`;
  const spec = (rank: number) => ({ nodes: 3, rank, coordinator, token: "tok" });
  const joins = [rendezvous(spec(0), local), rendezvous(spec(1), local)];
  await delay(100);
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port });
  const garbage = await connect();
  await writeAll(garbage, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const silent = await connect();
  const forged = new FrameConn(await connect(), { peerRank: 0 });
  const forging = clientHandshake(forged, await authKey("not-tok"), {
    purpose: "join",
    rank: 2,
    nodes: 3,
  }, 5000);
  await assert.rejects(() => forging, ClusterAuthError);
  await forged.close();
  joins.push(rendezvous(spec(2), local));
  const t0 = performance.now();
  const groups = await Promise.all(joins);
  try {
    assert.ok(performance.now() - t0 < 5000, "the silent client did not hold up the rendezvous");
    await sumCheck(groups);
    // The coordinator closed the strangers' sockets.
    assert.equal((await readAll(garbage, 3000)).byteLength, 0);
    assert.equal((await readAll(silent, 3000)).byteLength, 0);
  } finally {
    garbage.close();
    silent.close();
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("rendezvous() fails every node with ClusterConfigMismatchError naming the field, values and ranks", async () => {
  const coordinator = `127.0.0.1:${freePort()}`;
  const config = { dtrain: "0.1.0", model: "sha256:aa", batch: 32, seed: 7 };
  const results = await Promise.allSettled(
    [0, 1, 2].map((rank) =>
      rendezvous({ nodes: 3, rank, coordinator, token: "t" }, {
        ...local,
        config: rank === 2 ? { ...config, batch: 64 } : config,
      })
    ),
  );
  for (const [rank, r] of results.entries()) {
    assert.equal(r.status, "rejected", `rank ${rank}`);
    const e = (r as PromiseRejectedResult).reason;
    assert.ok(e instanceof ClusterConfigMismatchError, `rank ${rank}: ${e}`);
    assert.equal(e.field, "batch");
    assert.equal(e.message, 'Cluster config mismatch on "batch": rank 0 has 32, rank 2 has 64');
    assert.deepEqual(e.mismatches, [{
      field: "batch",
      expectedRank: 0,
      expected: 32,
      receivedRank: 2,
      received: 64,
    }]);
  }
  // A node that thinks the cluster is bigger disagrees on "nodes".
  const c2 = `127.0.0.1:${freePort()}`;
  const r2 = await Promise.allSettled([
    rendezvous({ nodes: 2, rank: 0, coordinator: c2 }, local),
    rendezvous({ nodes: 3, rank: 1, coordinator: c2 }, local),
  ]);
  for (const r of r2) {
    assert.match(
      String((r as PromiseRejectedResult).reason),
      /mismatch on "nodes": rank 0 has 2, rank 1 has 3/,
    );
  }
});

Deno.test("rendezvous() refuses a duplicate or out-of-range rank and carries on", async () => {
  const coordinator = `127.0.0.1:${freePort()}`;
  const spec = (rank: number, nodes = 3) => ({ nodes, rank, coordinator, token: "t" });
  const c = rendezvous(spec(0), local);
  const first = rendezvous(spec(1), local);
  await delay(300);
  await assert.rejects(() => rendezvous(spec(1), local), (e) => {
    assert.ok(e instanceof ClusterJoinRefusedError, String(e));
    assert.equal(e.message, "Coordinator refused rank 1: rank 1 already joined");
    return true;
  });
  await assert.rejects(() => rendezvous(spec(5, 6), local), {
    name: "ClusterJoinRefusedError",
    message: /rank 5 is out of range 1\.\.2 .*coordinator has nodes=3, the node says nodes=6/,
  });
  const groups = await Promise.all([c, first, rendezvous(spec(2), local)]);
  try {
    await sumCheck(groups);
  } finally {
    await Promise.all(groups.map((g) => g.close()));
  }
});

Deno.test("rendezvous() times out on every node, naming the missing rank", async () => {
  const coordinator = `127.0.0.1:${freePort()}`;
  const t0 = performance.now();
  const results = await Promise.allSettled(
    [0, 1].map((rank) =>
      rendezvous({ nodes: 3, rank, coordinator }, { ...local, rendezvousTimeoutMs: 600 })
    ),
  );
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < 600 + 1500, `took ${elapsed} ms`);
  for (const r of results) {
    const e = (r as PromiseRejectedResult).reason;
    assert.ok(e instanceof ClusterTimeoutError, String(e));
    assert.match(
      e.message,
      /^rendezvous timed out after 600 ms: ranks 0, 1 of 3 joined; waiting for rank 2$/,
    );
  }
  // No coordinator at all: the retrying client gives up at its deadline.
  await assert.rejects(
    () =>
      rendezvous({ nodes: 2, rank: 1, coordinator: `127.0.0.1:${freePort()}` }, {
        ...local,
        rendezvousTimeoutMs: 400,
      }),
    { name: "ClusterTimeoutError", message: /coordinator at 127\.0\.0\.1:\d+ not reachable/ },
  );
});

Deno.test("rendezvous() fails every node with PeerLostError when a joined node leaves", async () => {
  const port = freePort();
  const coordinator = `127.0.0.1:${port}`;
  const joins = [0, 1].map((rank) =>
    rendezvous({ nodes: 3, rank, coordinator, token: "t" }, local)
  );
  await delay(200);
  // Rank 2 joins properly by hand, then its process "dies".
  const conn = new FrameConn(await Deno.connect({ hostname: "127.0.0.1", port }), { peerRank: 0 });
  await clientHandshake(conn, await authKey("t"), { purpose: "join", rank: 2, nodes: 3 }, 5000);
  await conn.send(controlFrame({ type: "join", dataHost: null, dataPort: 9, config: {} }));
  await delay(100);
  await conn.close();
  for (const r of await Promise.allSettled(joins)) {
    const e = (r as PromiseRejectedResult).reason;
    assert.ok(e instanceof PeerLostError, String(e));
    assert.equal(e.rank, 2);
    assert.match(e.reason, /left during rendezvous/);
  }
});

Deno.test("rendezvous() validates its arguments before opening any socket", async () => {
  await assert.rejects(() => rendezvous({ nodes: 2, rank: 2, coordinator: "127.0.0.1:1" }), {
    name: "RangeError",
    message: "rank must be in 0..1, received 2",
  });
  await assert.rejects(
    () => rendezvous({ nodes: 2, rank: 0, coordinator: "127.0.0.1:1" }, { peerTimeoutMs: 0 }),
    {
      name: "RangeError",
      message: "peerTimeoutMs must be an integer in 1..2147483647, received 0",
    },
  );
  await assert.rejects(
    () =>
      rendezvous({ nodes: 2, rank: 0, coordinator: "127.0.0.1:1" }, {
        config: { w: [1] as unknown as number },
      }),
    {
      name: "TypeError",
      message: "config.w must be a string, finite number, boolean or null, received [1]",
    },
  );
  await assert.rejects(
    () => rendezvous({ nodes: 2, rank: 0, coordinator: "127.0.0.1:1" }, { timeout: 5 } as never),
    {
      name: "TypeError",
      message: /^Unknown rendezvous option: expected one of .*, received "timeout"$/,
    },
  );
});

Deno.test({
  name: "rendezvous() over TLS forms the group and sums (a throwaway CA, a leaf for 127.0.0.1; " +
    "skipped without openssl)",
  ignore: !HAS_OPENSSL,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtrain_tls_" });
    try {
      const tls = await testCertificates(dir);
      const groups = await formGroups(2, { tls });
      try {
        await sumCheck(groups);
      } finally {
        await Promise.all(groups.map((g) => g.close()));
      }
      // A plain-TCP node cannot join a TLS coordinator.
      const coordinator = `127.0.0.1:${freePort()}`;
      const results = await Promise.allSettled([
        rendezvous({ nodes: 2, rank: 0, coordinator }, {
          ...local,
          tls,
          rendezvousTimeoutMs: 1500,
        }),
        rendezvous({ nodes: 2, rank: 1, coordinator }, { ...local, rendezvousTimeoutMs: 1500 }),
      ]);
      assert.ok(results.every((r) => r.status === "rejected"), JSON.stringify(results));
      // A node that does not trust the coordinator's certificate says so.
      const c3 = `127.0.0.1:${freePort()}`;
      const r3 = await Promise.allSettled([
        rendezvous({ nodes: 2, rank: 0, coordinator: c3 }, {
          ...local,
          tls,
          rendezvousTimeoutMs: 1500,
        }),
        rendezvous({ nodes: 2, rank: 1, coordinator: c3 }, {
          ...local,
          tls: { ...tls, caFile: undefined },
          rendezvousTimeoutMs: 1500,
        }),
      ]);
      assert.match(
        String((r3[1] as PromiseRejectedResult).reason),
        /^ClusterAuthError: TLS handshake with coordinator .* failed: .*UnknownIssuer/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
