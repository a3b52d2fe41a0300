import assert from "node:assert/strict";
import { clusterFromEnv } from "../../src/cluster/cluster_from_env.ts";
import { validateClusterSpec } from "../../src/cluster/cluster_spec.ts";

Deno.test("clusterFromEnv() returns undefined when no launcher variable is set", () => {
  assert.equal(clusterFromEnv({ PATH: "/usr/bin", HOME: "/root" }), undefined);
  assert.equal(clusterFromEnv({ JOB_COMPLETION_INDEX: "3" }), undefined);
  assert.equal(clusterFromEnv({ DTRAIN_NNODES: "", MASTER_ADDR: "" }), undefined);
});

Deno.test("clusterFromEnv() reads dtrain's own variables", () => {
  assert.deepEqual(
    clusterFromEnv({
      DTRAIN_NNODES: "4",
      DTRAIN_NODE_RANK: "2",
      DTRAIN_COORDINATOR: "trainer-0.trainer:29400",
      DTRAIN_TOKEN: "s3cret",
    }),
    { nodes: 4, rank: 2, coordinator: "trainer-0.trainer:29400", token: "s3cret" },
  );
  assert.deepEqual(
    clusterFromEnv({ DTRAIN_NNODES: "2", DTRAIN_NODE_RANK: "0", DTRAIN_COORDINATOR: "[::1]:9" }),
    { nodes: 2, rank: 0, coordinator: "[::1]:9" },
  );
});

Deno.test("clusterFromEnv() reads torchrun/Kubeflow variables (one process per node)", () => {
  assert.deepEqual(
    clusterFromEnv({ MASTER_ADDR: "10.0.0.5", MASTER_PORT: "29500", WORLD_SIZE: "3", RANK: "1" }),
    { nodes: 3, rank: 1, coordinator: "10.0.0.5:29500" },
  );
  assert.deepEqual(
    clusterFromEnv({ MASTER_ADDR: "fd00::5", MASTER_PORT: "1", WORLD_SIZE: "2", RANK: "0" }),
    { nodes: 2, rank: 0, coordinator: "[fd00::5]:1" },
  );
  assert.throws(
    () =>
      clusterFromEnv({
        MASTER_ADDR: "h",
        MASTER_PORT: "29500",
        WORLD_SIZE: "8",
        RANK: "1",
        LOCAL_WORLD_SIZE: "4",
      }),
    {
      name: "RangeError",
      message:
        'dtrain runs one process per node: LOCAL_WORLD_SIZE must be 1 (WORLD_SIZE counts nodes), received "4"',
    },
  );
});

Deno.test("clusterFromEnv() takes JOB_COMPLETION_INDEX as the rank of a Kubernetes Indexed Job", () => {
  assert.deepEqual(
    clusterFromEnv({
      JOB_COMPLETION_INDEX: "3",
      DTRAIN_NNODES: "4",
      DTRAIN_COORDINATOR: "job-0.svc:29400",
    }),
    { nodes: 4, rank: 3, coordinator: "job-0.svc:29400" },
  );
  assert.deepEqual(
    clusterFromEnv({
      JOB_COMPLETION_INDEX: "1",
      MASTER_ADDR: "job-0.svc",
      MASTER_PORT: "29500",
      WORLD_SIZE: "2",
    }),
    { nodes: 2, rank: 1, coordinator: "job-0.svc:29500" },
  );
});

Deno.test("clusterFromEnv() reads TF_CONFIG: worker list, task.index, chief first", () => {
  const tf = (config: unknown) => ({ TF_CONFIG: JSON.stringify(config), DTRAIN_TOKEN: "t" });
  assert.deepEqual(
    clusterFromEnv(
      tf({
        cluster: { worker: ["w0:2222", "w1:2222", "w2:2222"] },
        task: { type: "worker", index: 2 },
      }),
    ),
    { nodes: 3, rank: 2, coordinator: "w0:2222", token: "t" },
  );
  assert.deepEqual(
    clusterFromEnv(
      tf({
        cluster: { chief: ["c:1"], worker: ["w0:2", "w1:2"] },
        task: { type: "worker", index: 0 },
      }),
    ),
    { nodes: 3, rank: 1, coordinator: "c:1", token: "t" },
  );
  assert.throws(
    () => clusterFromEnv(tf({ cluster: { worker: ["w0:1"] }, task: { type: "ps", index: 0 } })),
    { name: "RangeError", message: /task\.type must be "worker" or "chief".*received "ps"/ },
  );
  assert.throws(
    () => clusterFromEnv(tf({ cluster: { worker: ["w0:1"] }, task: { type: "worker", index: 1 } })),
    {
      name: "RangeError",
      message: "TF_CONFIG task.index must be < 1 (the worker list), received 1",
    },
  );
  assert.throws(
    () => clusterFromEnv(tf({ cluster: { worker: ["w0"] }, task: { index: 0 } })),
    {
      name: "TypeError",
      message: /TF_CONFIG cluster\.worker\[0\]: coordinator must be "host:port".*received "w0"/,
    },
  );
  assert.throws(() => clusterFromEnv({ TF_CONFIG: "{not json" }), {
    name: "TypeError",
    message: 'TF_CONFIG must be JSON, received "{not json"',
  });
});

Deno.test("clusterFromEnv() precedence: DTRAIN_* over torchrun over Indexed Job, variables over TF_CONFIG", () => {
  const env = {
    DTRAIN_NNODES: "10",
    DTRAIN_NODE_RANK: "1",
    DTRAIN_COORDINATOR: "own:1",
    MASTER_ADDR: "torch",
    MASTER_PORT: "2",
    WORLD_SIZE: "8",
    RANK: "5",
    JOB_COMPLETION_INDEX: "6",
    TF_CONFIG: JSON.stringify({ cluster: { worker: ["tf:3"] }, task: { index: 0 } }),
  };
  assert.deepEqual(clusterFromEnv(env), { nodes: 10, rank: 1, coordinator: "own:1" });
  const { DTRAIN_NODE_RANK: _r, ...noOwnRank } = env;
  assert.equal(clusterFromEnv(noOwnRank)?.rank, 5);
  const { RANK: _k, ...indexed } = noOwnRank;
  assert.equal(clusterFromEnv(indexed)?.rank, 6); // JOB_COMPLETION_INDEX
  const { DTRAIN_COORDINATOR: _c, DTRAIN_NNODES: _n, ...torch } = indexed;
  assert.deepEqual(clusterFromEnv(torch), { nodes: 8, rank: 6, coordinator: "torch:2" });
  assert.deepEqual(clusterFromEnv({ TF_CONFIG: env.TF_CONFIG }), {
    nodes: 1,
    rank: 0,
    coordinator: "tf:3",
  });
});

Deno.test("clusterFromEnv() names the variable and the received value for malformed input", () => {
  const base = { DTRAIN_NNODES: "2", DTRAIN_NODE_RANK: "1", DTRAIN_COORDINATOR: "h:1" };
  const cases: [Record<string, string>, string, string | RegExp][] = [
    [
      { ...base, DTRAIN_NODE_RANK: "2" },
      "RangeError",
      'DTRAIN_NODE_RANK must be < DTRAIN_NNODES (2), received "2"',
    ],
    [
      { ...base, DTRAIN_NODE_RANK: "1.5" },
      "TypeError",
      'DTRAIN_NODE_RANK must be a non-negative integer, received "1.5"',
    ],
    [
      { ...base, DTRAIN_NNODES: "two" },
      "TypeError",
      'DTRAIN_NNODES must be a non-negative integer, received "two"',
    ],
    [{ ...base, DTRAIN_NNODES: "0" }, "RangeError", 'DTRAIN_NNODES must be >= 1, received "0"'],
    [
      { ...base, DTRAIN_NODE_RANK: "-1" },
      "TypeError",
      'DTRAIN_NODE_RANK must be a non-negative integer, received "-1"',
    ],
    [
      { ...base, DTRAIN_COORDINATOR: "h:70000" },
      "RangeError",
      'DTRAIN_COORDINATOR must hold a port in 1..65535, received "70000"',
    ],
    [
      { ...base, DTRAIN_COORDINATOR: "h" },
      "TypeError",
      /^DTRAIN_COORDINATOR must be "host:port".*received "h"$/,
    ],
    [
      { MASTER_ADDR: "h", MASTER_PORT: "0", WORLD_SIZE: "2", RANK: "0" },
      "RangeError",
      'MASTER_PORT must hold a port in 1..65535, received "0"',
    ],
    [
      { MASTER_ADDR: "h", MASTER_PORT: "x1", WORLD_SIZE: "2", RANK: "0" },
      "RangeError",
      'MASTER_PORT must hold a port in 1..65535, received "x1"',
    ],
    [{ MASTER_ADDR: "h", WORLD_SIZE: "2", RANK: "0" }, "TypeError", /MASTER_PORT is missing/],
    [
      { MASTER_ADDR: "h", MASTER_PORT: "1", WORLD_SIZE: "2", RANK: "2" },
      "RangeError",
      'RANK must be < WORLD_SIZE (2), received "2"',
    ],
    [
      { MASTER_ADDR: "h", MASTER_PORT: "1", RANK: "0" },
      "TypeError",
      /the node count is missing: expected one of DTRAIN_NNODES, WORLD_SIZE/,
    ],
    [
      { DTRAIN_NNODES: "2", DTRAIN_COORDINATOR: "h:1" },
      "TypeError",
      /the rank is missing: expected one of DTRAIN_NODE_RANK, RANK, JOB_COMPLETION_INDEX/,
    ],
    [
      { DTRAIN_NNODES: "2", DTRAIN_NODE_RANK: "0" },
      "TypeError",
      /the coordinator address is missing/,
    ],
  ];
  for (const [env, name, message] of cases) {
    assert.throws(() => clusterFromEnv(env), { name, message }, JSON.stringify(env));
  }
});

Deno.test("validateClusterSpec() refuses bad fields with the received value", () => {
  assert.throws(() => validateClusterSpec({ nodes: 0, rank: 0, coordinator: "h:1" }), {
    name: "RangeError",
    message: "nodes must be an integer >= 1, received 0",
  });
  assert.throws(() => validateClusterSpec({ nodes: 2, rank: -1, coordinator: "h:1" }), {
    name: "RangeError",
    message: "rank must be in 0..1, received -1",
  });
  assert.throws(() => validateClusterSpec({ nodes: 2, rank: 0, coordinator: "h:1", token: "" }), {
    name: "TypeError",
    message: 'token must be a non-empty string when given, received ""',
  });
  assert.throws(() => validateClusterSpec({ nodes: 2, rank: 0, coordinator: "[::1]" }), {
    name: "TypeError",
    message: /coordinator must be "host:port".*received "\[::1\]"/,
  });
});
