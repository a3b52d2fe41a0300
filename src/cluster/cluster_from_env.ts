/**
 * `clusterFromEnv()`: reads where this node sits in a multi-host cluster from
 * the environment a launcher sets: dtrain's own variables, torchrun/Kubeflow,
 * Kubernetes Indexed Jobs, or TensorFlow's `TF_CONFIG`.
 *
 * @module
 */
import { formatHostPort, parsePort } from "./_host_port.ts";
import { type ClusterSpec, validateClusterSpec } from "./cluster_spec.ts";

type Env = Record<string, string | undefined>; // inlined in the signature below

/** Variables whose presence selects the variable-per-field conventions. */
const TRIGGERS = [
  "DTRAIN_NNODES",
  "DTRAIN_NODE_RANK",
  "DTRAIN_COORDINATOR",
  "MASTER_ADDR",
  "MASTER_PORT",
  "WORLD_SIZE",
];

function get(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

function int(env: Env, name: string): number {
  const text = env[name]!;
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new TypeError(`${name} must be a non-negative integer, received ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** The first variable of `names` that is set, or a TypeError listing them all. */
function first(env: Env, names: string[], field: string): string {
  const name = names.find((n) => get(env, n) !== undefined);
  if (name === undefined) {
    throw new TypeError(
      `Cluster variables are set but ${field} is missing: expected one of ${names.join(", ")}, ` +
        `received none`,
    );
  }
  return name;
}

function fromVariables(env: Env): ClusterSpec {
  const nodesVar = first(env, ["DTRAIN_NNODES", "WORLD_SIZE"], "the node count");
  const rankVar = first(env, ["DTRAIN_NODE_RANK", "RANK", "JOB_COMPLETION_INDEX"], "the rank");
  const nodes = int(env, nodesVar);
  const rank = int(env, rankVar);
  if (nodes < 1) {
    throw new RangeError(`${nodesVar} must be >= 1, received ${JSON.stringify(env[nodesVar])}`);
  }
  if (rank >= nodes) {
    throw new RangeError(
      `${rankVar} must be < ${nodesVar} (${nodes}), received ${JSON.stringify(env[rankVar])}`,
    );
  }
  const local = get(env, "LOCAL_WORLD_SIZE");
  if (nodesVar === "WORLD_SIZE" && local !== undefined && local !== "1") {
    throw new RangeError(
      `dtrain runs one process per node: LOCAL_WORLD_SIZE must be 1 (WORLD_SIZE counts nodes), ` +
        `received ${JSON.stringify(local)}`,
    );
  }
  let coordinator: string;
  const own = get(env, "DTRAIN_COORDINATOR");
  if (own !== undefined) {
    coordinator = own;
    try {
      validateClusterSpec({ nodes, rank, coordinator });
    } catch (e) {
      const msg = (e as Error).message.replace(/^coordinator/, "DTRAIN_COORDINATOR");
      throw e instanceof RangeError ? new RangeError(msg) : new TypeError(msg);
    }
  } else {
    first(env, ["DTRAIN_COORDINATOR", "MASTER_ADDR"], "the coordinator address");
    const addr = get(env, "MASTER_ADDR")!;
    if (!/^[^\s/[\]]+$/.test(addr)) {
      throw new TypeError(
        `MASTER_ADDR must be a host name or IP, received ${JSON.stringify(addr)}`,
      );
    }
    const portText = get(env, "MASTER_PORT");
    if (portText === undefined) {
      throw new TypeError(
        "MASTER_ADDR is set but MASTER_PORT is missing: expected a port, received none",
      );
    }
    coordinator = formatHostPort(addr, parsePort(portText, "MASTER_PORT"));
  }
  return token(env, { nodes, rank, coordinator });
}

function token(env: Env, spec: ClusterSpec): ClusterSpec {
  const t = get(env, "DTRAIN_TOKEN");
  return validateClusterSpec(t === undefined ? spec : { ...spec, token: t });
}

function fromTfConfig(text: string): Omit<ClusterSpec, "token"> {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`TF_CONFIG must be JSON, received ${JSON.stringify(text.slice(0, 80))}`, {
      cause: e,
    });
  }
  const c = config as {
    cluster?: Record<string, unknown>;
    task?: { type?: unknown; index?: unknown };
  };
  const list = (key: string): string[] => {
    const v = c?.cluster?.[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw new TypeError(
        `TF_CONFIG cluster.${key} must be a list of "host:port" strings, received ${
          JSON.stringify(v)
        }`,
      );
    }
    return v;
  };
  const chief = list("chief");
  const workers = [...chief, ...list("worker")];
  if (workers.length === 0) {
    throw new TypeError(
      `TF_CONFIG must list cluster.worker (or cluster.chief), received ${
        JSON.stringify(c?.cluster)
      }`,
    );
  }
  const type = c?.task?.type ?? "worker";
  const index = c?.task?.index;
  if (type !== "worker" && type !== "chief") {
    throw new RangeError(
      `TF_CONFIG task.type must be "worker" or "chief" (dtrain has no ps/evaluator tasks), ` +
        `received ${JSON.stringify(type)}`,
    );
  }
  if (!Number.isSafeInteger(index) || (index as number) < 0) {
    throw new TypeError(
      `TF_CONFIG task.index must be a non-negative integer, received ${JSON.stringify(index)}`,
    );
  }
  const rank = (type === "chief" ? 0 : chief.length) + (index as number);
  if (rank >= workers.length) {
    throw new RangeError(
      `TF_CONFIG task.index must be < ${
        type === "chief" ? chief.length : workers.length - chief.length
      } ` +
        `(the ${type} list), received ${index}`,
    );
  }
  try {
    return validateClusterSpec({ nodes: workers.length, rank, coordinator: workers[0]! });
  } catch (e) {
    const msg = `TF_CONFIG cluster.${chief.length ? "chief" : "worker"}[0]: ${
      (e as Error).message
    }`;
    throw e instanceof RangeError ? new RangeError(msg) : new TypeError(msg);
  }
}

/**
 * Reads this node's {@linkcode ClusterSpec} from launcher variables, or returns
 * `undefined` when none are set (single-host training). Empty variables count
 * as unset. Field by field, the first variable set wins:
 *
 * 1. nodes: `DTRAIN_NNODES`, then `WORLD_SIZE` (torchrun/Kubeflow; one process
 *    per node, so `LOCAL_WORLD_SIZE`, when set, must be 1).
 * 2. rank: `DTRAIN_NODE_RANK`, then `RANK`, then `JOB_COMPLETION_INDEX`
 *    (Kubernetes Indexed Job).
 * 3. coordinator: `DTRAIN_COORDINATOR` (`"host:port"`), then
 *    `MASTER_ADDR` + `MASTER_PORT`.
 * 4. token: `DTRAIN_TOKEN` (every convention, `TF_CONFIG` included).
 *
 * These apply when any of `DTRAIN_NNODES`, `DTRAIN_NODE_RANK`,
 * `DTRAIN_COORDINATOR`, `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE` is set;
 * otherwise `TF_CONFIG` is read (`cluster.chief` then `cluster.worker` give the
 * ranks in order, `task.index` this node's place, the first entry is the
 * coordinator). `JOB_COMPLETION_INDEX` alone does not make a cluster.
 * Malformed values throw `TypeError` (not an integer, not JSON, missing field)
 * or `RangeError` (rank >= nodes, port outside 1..65535), naming the variable
 * and the received value.
 *
 * @param env The variables to read. @default Deno.env.toObject()
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clusterFromEnv } from "./cluster_from_env.ts";
 * assert.deepEqual(
 *   clusterFromEnv({ MASTER_ADDR: "trainer-0", MASTER_PORT: "29500", WORLD_SIZE: "4", RANK: "3" }),
 *   { nodes: 4, rank: 3, coordinator: "trainer-0:29500" },
 * );
 * assert.equal(clusterFromEnv({ HOME: "/root" }), undefined);
 * assert.throws(
 *   () => clusterFromEnv({ DTRAIN_NNODES: "2", DTRAIN_NODE_RANK: "2", DTRAIN_COORDINATOR: "h:1" }),
 *   { name: "RangeError", message: 'DTRAIN_NODE_RANK must be < DTRAIN_NNODES (2), received "2"' },
 * );
 * ```
 */
export function clusterFromEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): ClusterSpec | undefined {
  if (TRIGGERS.some((n) => get(env, n) !== undefined)) return fromVariables(env);
  const tf = get(env, "TF_CONFIG");
  if (tf !== undefined) return token(env, fromTfConfig(tf));
  return undefined;
}
