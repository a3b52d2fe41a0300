/**
 * `rendezvous()`: forms a {@linkcode ClusterGroup} from N processes on N hosts.
 *
 * Who owns what: rank 0 is the coordinator and listens on the coordinator
 * port; every node (rank 0 included) listens on an ephemeral data port for
 * its ring neighbour rank-1. Nodes connect to the coordinator (any start
 * order: connects retry with backoff until `rendezvousTimeoutMs`), pass the
 * mutual token challenge, and send their data address and config. Once all
 * ranks joined, the coordinator compares every config with rank 0's and
 * either sends everyone the peer list or fails everyone with
 * `ClusterConfigMismatchError`. Each node then links to rank+1 (token checked
 * again, rank claimed and verified), reports ready, and the coordinator says
 * go. Control sockets and listeners are then closed; only the ring links stay.
 * Strangers (wrong token, garbage, silence) are refused and closed without
 * disturbing the group. Every wait is bounded by the rendezvous deadline.
 *
 * @module
 */
import { FrameConn, MAX_CONTROL_BYTES } from "./_frames.ts";
import { authKey, clientHandshake, receive, serverHandshake } from "./_handshake.ts";
import { parseHostPort } from "./_host_port.ts";
import {
  checkConfig,
  controlFrame,
  type ControlMessage,
  errorMessage,
  type NodeConfig,
} from "./_messages.ts";
import {
  type ClusterTlsOptions,
  connect,
  listen,
  loadTls,
  type TlsMaterial,
} from "./_transport.ts";
import { ClusterGroup, type ClusterGroupOptions, groupOptions } from "./cluster_group.ts";
import { type ClusterSpec, validateClusterSpec } from "./cluster_spec.ts";
import {
  ClusterConfigMismatchError,
  ClusterJoinRefusedError,
  ClusterTimeoutError,
  type ConfigMismatch,
  FrameError,
  PeerLostError,
} from "./errors.ts";

export type { ClusterTlsOptions } from "./_transport.ts";
export type { ConfigValue, NodeConfig } from "./_messages.ts";

/** Options of {@linkcode rendezvous}; the group options apply to the formed group. */
export interface RendezvousOptions extends ClusterGroupOptions {
  /**
   * What every node must agree on, as a flat record (dtrain version, model
   * topology digest, optimizer, dataset size, seed, batch size, replicas per
   * node, ...). Compared field by field with rank 0's; `nodes` is always compared.
   * @default {}
   */
  config?: NodeConfig;
  /** Deadline for the whole rendezvous, connect retries included. @default 60000 */
  rendezvousTimeoutMs?: number;
  /** Deadline for one connection's token handshake. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Address the coordinator and data listeners bind to. @default "0.0.0.0" */
  hostname?: string;
  /** Host peers use to reach this node's data port. @default the address the coordinator sees */
  advertiseHost?: string;
  /** Largest frame accepted on a ring link once authenticated. @default 4 * chunkBytes + 4096 */
  maxFrameBytes?: number;
  /** TLS for every cluster socket. @default plain TCP */
  tls?: ClusterTlsOptions;
}

/** How long past the deadline a node waits for the coordinator's own timeout verdict. */
const VERDICT_GRACE_MS = 1000;

interface Resolved extends Required<ClusterGroupOptions> {
  config: NodeConfig;
  rendezvousTimeoutMs: number;
  handshakeTimeoutMs: number;
  hostname: string;
  advertiseHost: string | null;
  maxFrameBytes: number;
  tls: ClusterTlsOptions | undefined;
}

const KNOWN = new Set([
  "config",
  "rendezvousTimeoutMs",
  "handshakeTimeoutMs",
  "hostname",
  "advertiseHost",
  "maxFrameBytes",
  "tls",
  "peerTimeoutMs",
  "collectiveTimeoutMs",
  "chunkBytes",
]);

function resolve(o: RendezvousOptions): Resolved {
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k)) {
      throw new TypeError(
        `Unknown rendezvous option: expected one of ${[...KNOWN].join(", ")}, received "${k}"`,
      );
    }
  }
  const g = groupOptions(o);
  const r: Resolved = {
    ...g,
    config: checkConfig(o.config ?? {}),
    rendezvousTimeoutMs: o.rendezvousTimeoutMs ?? 60000,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10000,
    hostname: o.hostname ?? "0.0.0.0",
    advertiseHost: o.advertiseHost ?? null,
    maxFrameBytes: o.maxFrameBytes ?? 4 * g.chunkBytes + 4096,
    tls: o.tls,
  };
  for (const k of ["rendezvousTimeoutMs", "handshakeTimeoutMs"] as const) {
    if (!Number.isSafeInteger(r[k]) || r[k] < 1 || r[k] > 2 ** 31 - 1) {
      throw new RangeError(`${k} must be an integer in 1..2147483647, received ${r[k]}`);
    }
  }
  if (!Number.isSafeInteger(r.maxFrameBytes) || r.maxFrameBytes < g.chunkBytes + 64) {
    throw new RangeError(
      `maxFrameBytes must be an integer >= chunkBytes + 64 (${
        g.chunkBytes + 64
      }), received ${r.maxFrameBytes}`,
    );
  }
  for (const k of ["hostname", "advertiseHost"] as const) {
    const v = r[k];
    if (v !== null && (typeof v !== "string" || !/^[^\s/[\]]+$/.test(v))) {
      throw new TypeError(`${k} must be a host name or IP, received ${JSON.stringify(v)}`);
    }
  }
  if (
    r.tls !== undefined && (typeof r.tls.certFile !== "string" || typeof r.tls.keyFile !== "string")
  ) {
    throw new TypeError(
      `tls must give certFile and keyFile paths, received ${JSON.stringify(r.tls)}`,
    );
  }
  return r;
}

/** Everything opened during a rendezvous, closed on the way out. */
class Scope {
  conns = new Set<FrameConn>();
  listeners = new Set<Deno.Listener>();
  tasks: Promise<unknown>[] = [];
  timers = new Set<ReturnType<typeof setTimeout>>();
  add(c: FrameConn): FrameConn {
    this.conns.add(c);
    return c;
  }
  task(p: Promise<unknown>): void {
    this.tasks.push(p.catch(() => {}));
  }
  sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        r();
      }, ms);
      this.timers.add(t);
    });
  }
  closeListeners(): void {
    for (const l of this.listeners) {
      try {
        l.close();
      } catch { /* closed */ }
    }
    this.listeners.clear();
  }
  async close(keep: FrameConn[] = []): Promise<void> {
    this.closeListeners();
    for (const t of this.timers) clearTimeout(t);
    const closing = [...this.conns].filter((c) => !keep.includes(c)).map((c) => c.close());
    await Promise.all([...closing, ...this.tasks]);
  }
}

class Deferred<T> {
  promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: Error) => void;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => {}); // observed by whoever awaits it
  }
}

interface Peer {
  rank: number;
  hostname: string;
  port: number;
}

interface Member {
  rank: number;
  conn: FrameConn | null; // null: rank 0 itself
  hostname: string;
  port: number;
  config: NodeConfig;
  ready: boolean;
}

function compareConfigs(members: Member[]): ConfigMismatch[] {
  const ref = members.find((m) => m.rank === 0)!;
  const out: ConfigMismatch[] = [];
  for (const m of members.filter((x) => x.rank !== 0).sort((a, b) => a.rank - b.rank)) {
    const fields = new Set([...Object.keys(ref.config), ...Object.keys(m.config)]);
    for (const field of fields) {
      const expected = Object.hasOwn(ref.config, field) ? ref.config[field] : undefined;
      const received = Object.hasOwn(m.config, field) ? m.config[field] : undefined;
      if (!Object.is(expected, received)) {
        out.push({ field, expectedRank: 0, expected, receivedRank: m.rank, received });
      }
    }
  }
  return out.sort((a, b) =>
    a.field < b.field ? -1 : a.field > b.field ? 1 : a.receivedRank - b.receivedRank
  );
}

/** Rank 0's side: accepts, authenticates and orders the other nodes. */
class Coordinator {
  readonly peers = new Deferred<Peer[]>();
  readonly go = new Deferred<void>();
  #members = new Map<number, Member>();
  #failure: Error | undefined;
  #finished = false;
  #nodes: number;
  #key: CryptoKey;
  #o: Resolved;
  #scope: Scope;
  #left: () => number;
  /** Connections refused so far (strangers, wrong tokens, bad ranks). */
  refused = 0;

  constructor(
    listener: Deno.Listener,
    key: CryptoKey,
    nodes: number,
    o: Resolved,
    scope: Scope,
    left: () => number,
  ) {
    this.#nodes = nodes;
    this.#key = key;
    this.#o = o;
    this.#scope = scope;
    this.#left = left;
    scope.listeners.add(listener);
    scope.task(this.#accept(listener));
  }

  joinLocal(m: Omit<Member, "conn" | "ready" | "rank">): void {
    this.#members.set(0, { ...m, rank: 0, conn: null, ready: false });
    this.#maybePeers();
  }

  readyLocal(): void {
    this.#members.get(0)!.ready = true;
    this.#maybeGo();
  }

  /** Missing ranks, for timeout messages. */
  describe(): string {
    const joined = [...this.#members.keys()].sort((a, b) => a - b);
    const missing = Array.from({ length: this.#nodes }, (_, r) => r).filter((r) =>
      !this.#members.has(r)
    );
    if (missing.length > 0) {
      return `ranks ${joined.join(", ")} of ${this.#nodes} joined; waiting for rank${
        missing.length > 1 ? "s" : ""
      } ${missing.join(", ")}`;
    }
    const unready = [...this.#members.values()].filter((m) => !m.ready).map((m) => m.rank);
    return `all ${this.#nodes} ranks joined; waiting for rank${unready.length > 1 ? "s" : ""} ${
      unready.join(", ")
    } to link the ring`;
  }

  /** Fails every node: each connected member gets the error, then its socket closes. */
  fail(error: Error): void {
    if (this.#failure || this.#finished) return;
    this.#failure = error;
    this.#scope.closeListeners();
    const msg = controlFrame(errorMessage(error));
    for (const m of this.#members.values()) {
      if (m.conn && !m.conn.failure) {
        const c = m.conn;
        this.#scope.task(c.send(msg).catch(() => {}).finally(() => c.close()));
      }
    }
    this.peers.reject(error);
    this.go.reject(error);
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#failure || this.#finished) {
          conn.close();
          continue;
        }
        this.#scope.task(this.#handle(conn));
      }
    } catch { /* listener closed */ }
  }

  async #handle(raw: Deno.Conn): Promise<void> {
    const conn = this.#scope.add(new FrameConn(raw, { maxFrameBytes: MAX_CONTROL_BYTES }));
    let member: Member | undefined;
    try {
      const hello = await serverHandshake(
        conn,
        this.#key,
        "join",
        Math.min(this.#o.handshakeTimeoutMs, this.#left()),
      );
      const rank = hello.rank;
      const refuse = (reason: string) => new ClusterJoinRefusedError(rank, reason);
      if (rank === 0 || rank >= this.#nodes) {
        throw refuse(
          `rank ${rank} is out of range 1..${this.#nodes - 1} (rank 0 is the coordinator; ` +
            `the coordinator has nodes=${this.#nodes}, the node says nodes=${hello.nodes})`,
        );
      }
      if (this.#members.has(rank)) throw refuse(`rank ${rank} already joined`);
      const join = await receive(
        conn,
        Math.min(this.#o.handshakeTimeoutMs, this.#left()),
        "rendezvous",
      );
      if (join.type !== "join") {
        throw new FrameError(
          `Expected a "join" message from ${conn.label}, received "${join.type}"`,
        );
      }
      if (this.#members.has(rank)) throw refuse(`rank ${rank} already joined`);
      conn.peerRank = rank;
      member = {
        rank,
        conn,
        hostname: join.dataHost ?? conn.remoteHostname,
        port: join.dataPort,
        config: { nodes: hello.nodes, ...join.config },
        ready: false,
      };
      this.#members.set(rank, member);
      conn.onFail((e) => {
        if (!this.#finished) {
          this.fail(new PeerLostError(rank, `left during rendezvous (${e.message})`, { cause: e }));
        }
      });
      this.#maybePeers();
      // The deadline timer fails the rendezvous with the better message; this bound is a backstop.
      const ready = await receive(conn, this.#left() + VERDICT_GRACE_MS, "rendezvous");
      if (ready.type !== "ready") {
        throw new FrameError(
          `Expected a "ready" message from rank ${rank}, received "${ready.type}"`,
        );
      }
      member.ready = true;
      this.#maybeGo();
    } catch (e) {
      if (member) {
        // A joined node that breaks the protocol or leaves fails the rendezvous.
        this.fail(
          e instanceof PeerLostError || e instanceof ClusterTimeoutError
            ? e
            : new PeerLostError(member.rank, `${(e as Error).name}: ${(e as Error).message}`),
        );
        return;
      }
      // A stranger: refused and closed; the group does not notice.
      this.refused++;
      if (e instanceof ClusterJoinRefusedError) {
        await conn.send(controlFrame(errorMessage(e))).catch(() => {});
      }
      await conn.close();
      this.#scope.conns.delete(conn);
    }
  }

  #maybePeers(): void {
    if (this.#failure || this.#members.size !== this.#nodes) return;
    const members = [...this.#members.values()];
    const mismatches = compareConfigs(members);
    if (mismatches.length > 0) {
      this.fail(new ClusterConfigMismatchError(mismatches));
      return;
    }
    const peers = members.map(({ rank, hostname, port }) => ({ rank, hostname, port }))
      .sort((a, b) => a.rank - b.rank);
    const msg = controlFrame({ type: "peers", peers });
    for (const m of members) if (m.conn) m.conn.send(msg).catch(() => {});
    this.peers.resolve(peers);
  }

  #maybeGo(): void {
    if (this.#failure || this.#finished || this.#members.size !== this.#nodes) return;
    if (![...this.#members.values()].every((m) => m.ready)) return;
    this.#finished = true;
    const msg = controlFrame({ type: "go" });
    for (const m of this.#members.values()) {
      const c = m.conn;
      if (c) this.#scope.task(c.send(msg).catch(() => {}).finally(() => c.close()));
    }
    this.go.resolve();
  }
}

/** Accepts on the data port until rank `prev` links in with the token; strangers are refused. */
function acceptRing(
  listener: Deno.Listener,
  key: CryptoKey,
  me: { rank: number; prev: number; nodes: number },
  o: Resolved,
  scope: Scope,
  left: () => number,
): Promise<FrameConn> {
  const result = new Deferred<FrameConn>();
  const handle = async (raw: Deno.Conn) => {
    const conn = scope.add(new FrameConn(raw, { maxFrameBytes: MAX_CONTROL_BYTES }));
    try {
      const hello = await serverHandshake(
        conn,
        key,
        "ring",
        Math.min(o.handshakeTimeoutMs, left()),
      );
      if (hello.rank !== me.prev || hello.nodes !== me.nodes) {
        throw new ClusterJoinRefusedError(
          hello.rank,
          `rank ${me.rank}'s data port takes rank ${me.prev} of ${me.nodes} nodes, ` +
            `received rank ${hello.rank} of ${hello.nodes}`,
        );
      }
      conn.peerRank = me.prev;
      conn.maxFrameBytes = o.maxFrameBytes;
      scope.closeListeners(); // only one inbound link; the coordinator listener is closed too, later
      result.resolve(conn);
    } catch (e) {
      if (e instanceof ClusterJoinRefusedError) {
        await conn.send(controlFrame(errorMessage(e))).catch(() => {});
      }
      await conn.close();
      scope.conns.delete(conn);
    }
  };
  scope.task((async () => {
    try {
      for await (const raw of listener) scope.task(handle(raw));
    } catch { /* listener closed */ }
  })());
  return result.promise;
}

/** Connects to `hostname:port` until the deadline, backing off from 50 ms to 1 s. */
async function connectRetry(
  hostname: string,
  port: number,
  tls: TlsMaterial | undefined,
  scope: Scope,
  left: () => number,
  timeoutMs: number,
  what: string,
): Promise<Deno.Conn> {
  let delay = 50;
  let last: unknown;
  while (left() > 1) {
    try {
      return await connect(hostname, port, tls, Math.min(left(), 5000));
    } catch (e) {
      last = e;
      await scope.sleep(Math.min(delay, left()));
      delay = Math.min(delay * 2, 1000);
    }
  }
  throw new ClusterTimeoutError(
    "rendezvous",
    timeoutMs,
    `${what} at ${hostname}:${port} not reachable (${
      (last as Error | undefined)?.message ?? "no attempt"
    })`,
    { cause: last },
  );
}

/**
 * Joins the cluster `spec` describes and returns the formed group once every
 * node is linked. `nodes === 1` returns at once without any socket.
 *
 * Rejects with `ClusterConfigMismatchError` (on every node) when configs
 * differ, `ClusterAuthError` when the coordinator does not know this node's
 * token, `ClusterJoinRefusedError` for a duplicate or out-of-range rank,
 * `PeerLostError` when a node leaves mid-rendezvous, `ClusterTimeoutError`
 * at the deadline (naming the missing ranks).
 *
 * @param spec This node's place (see `clusterFromEnv()`).
 * @param options Config to agree on, deadlines, addresses, TLS, group options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rendezvous } from "./rendezvous.ts";
 * const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const coordinator = `127.0.0.1:${probe.addr.port}`;
 * probe.close();
 * const join = (rank: number) =>
 *   rendezvous({ nodes: 3, rank, coordinator, token: "t0ken" }, {
 *     hostname: "127.0.0.1",
 *     config: { model: "sha256:abc", batch: 32 },
 *   });
 * // Start order does not matter: the coordinator comes last here.
 * const groups = await Promise.all([join(2), join(1), join(0)]);
 * assert.deepEqual(groups.map((g) => g.rank), [2, 1, 0]);
 * await Promise.all(groups.map((g) => g.close()));
 * ```
 */
export async function rendezvous(
  spec: ClusterSpec,
  options: RendezvousOptions = {},
): Promise<ClusterGroup> {
  validateClusterSpec(spec);
  const o = resolve(options);
  const { rank, nodes } = spec;
  if (nodes === 1) return new ClusterGroup({ rank, nodes }, o);
  const coord = parseHostPort(spec.coordinator, "coordinator");
  const t0 = performance.now();
  const left = () => Math.max(0, o.rendezvousTimeoutMs - (performance.now() - t0));
  const [key, tls] = await Promise.all([authKey(spec.token), o.tls ? loadTls(o.tls) : undefined]);
  const scope = new Scope();
  const next = (rank + 1) % nodes;
  const prev = (rank + nodes - 1) % nodes;
  let links: FrameConn[] = [];
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    const dataListener = listen(o.hostname, 0, tls);
    scope.listeners.add(dataListener);
    const dataPort = (dataListener.addr as Deno.NetAddr).port;
    const inbound = acceptRing(dataListener, key, { rank, prev, nodes }, o, scope, left);

    let peers: Promise<Peer[]>;
    let ready: () => Promise<void>;
    let failed: Promise<never>;
    if (rank === 0) {
      const c = new Coordinator(listen(o.hostname, coord.port, tls), key, nodes, o, scope, left);
      const timedOut = new Deferred<never>();
      deadline = setTimeout(() => {
        const e = new ClusterTimeoutError("rendezvous", o.rendezvousTimeoutMs, c.describe());
        c.fail(e);
        timedOut.reject(e);
      }, o.rendezvousTimeoutMs);
      c.joinLocal({
        hostname: o.advertiseHost ?? coord.hostname,
        port: dataPort,
        config: { nodes, ...o.config },
      });
      peers = c.peers.promise;
      failed = Promise.race([
        c.go.promise.then(() => new Promise<never>(() => {})),
        timedOut.promise,
      ]);
      failed.catch(() => {});
      ready = () => {
        c.readyLocal();
        return c.go.promise;
      };
    } else {
      const raw = await connectRetry(
        coord.hostname,
        coord.port,
        tls,
        scope,
        left,
        o.rendezvousTimeoutMs,
        "coordinator",
      );
      const control = scope.add(
        new FrameConn(raw, { peerRank: 0, label: `coordinator ${spec.coordinator}` }),
      );
      await clientHandshake(
        control,
        key,
        { purpose: "join", rank, nodes },
        Math.min(o.handshakeTimeoutMs, left()),
      );
      await control.send(
        controlFrame({ type: "join", dataHost: o.advertiseHost, dataPort, config: o.config }),
      );
      const expectNext = async (type: ControlMessage["type"]) => {
        const wait = left() + VERDICT_GRACE_MS; // the coordinator's verdict names the missing ranks
        try {
          const m = await receive(control, Math.max(1, wait), "coordinator reply");
          if (m.type !== type) {
            throw new FrameError(
              `Expected a "${type}" message from the coordinator, received "${m.type}"`,
            );
          }
          return m;
        } catch (e) {
          if (e instanceof ClusterTimeoutError && e.operation === "coordinator reply") {
            throw new ClusterTimeoutError(
              "rendezvous",
              o.rendezvousTimeoutMs,
              `no "${type}" from the coordinator in time`,
            );
          }
          throw e;
        }
      };
      peers = expectNext("peers").then((m) => (m as ControlMessage & { type: "peers" }).peers);
      let go: Promise<unknown> | undefined;
      const goOnce = () => go ??= expectNext("go");
      // After "peers" the coordinator sends only "go" or an error: watching for it catches failures early.
      failed = peers.then(() => goOnce().then(() => new Promise<never>(() => {})));
      failed.catch(() => {});
      ready = async () => {
        await control.send(controlFrame({ type: "ready" }));
        await goOnce();
      };
    }

    const all = await Promise.race([peers, failed]);
    const target = all.find((p) => p.rank === next);
    if (!target || all.length !== nodes) {
      throw new FrameError(
        `Expected a peer list of ${nodes} ranks with rank ${next}, received ${all.length} entries`,
      );
    }
    const outbound = (async () => {
      const raw = await connectRetry(
        target.hostname,
        target.port,
        tls,
        scope,
        left,
        o.rendezvousTimeoutMs,
        `rank ${next}`,
      );
      const conn = scope.add(
        new FrameConn(raw, {
          peerRank: next,
          label: `rank ${next} (${target.hostname}:${target.port})`,
        }),
      );
      await clientHandshake(
        conn,
        key,
        { purpose: "ring", rank, nodes },
        Math.min(o.handshakeTimeoutMs, left()),
      );
      conn.maxFrameBytes = o.maxFrameBytes;
      return conn;
    })();
    outbound.catch(() => {});
    const ringTimeout = new Promise<never>((_, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new ClusterTimeoutError(
              "rendezvous",
              o.rendezvousTimeoutMs,
              `rank ${rank} could not link rank ${prev} and rank ${next} in time`,
            ),
          ),
        Math.max(1, left()),
      );
      scope.timers.add(t);
    });
    ringTimeout.catch(() => {});
    links = await Promise.race([Promise.all([outbound, inbound]), failed, ringTimeout]);
    await Promise.race([ready(), ringTimeout]);
    const [out, inn] = links as [FrameConn, FrameConn];
    await scope.close([out, inn]);
    return new ClusterGroup({ rank, nodes, next: out, prev: inn }, o);
  } catch (e) {
    await scope.close();
    for (const l of links) await l.close();
    throw e;
  } finally {
    if (deadline !== undefined) clearTimeout(deadline);
  }
}
