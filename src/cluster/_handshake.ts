// Mutual challenge-response on the shared token, for both coordinator joins
// and ring links. HMAC-SHA256 (crypto.subtle) over fresh random nonces from
// both sides; the token itself never crosses the wire. The server proves
// itself first, so a stranger posing as a server learns no client proof.
// Private to src/cluster.
//
//   client -> server  hello     { purpose, rank, nodes, nonce: Nc }
//   server -> client  challenge { nonce: Ns, proof: HMAC(k, "server" Nc Ns purpose rank) }
//   client -> server  auth      { proof: HMAC(k, "client" Ns Nc purpose rank) }
//   server -> client  welcome
import type { FrameConn } from "./_frames.ts";
import {
  controlFrame,
  type ControlMessage,
  errorFrom,
  parseControl,
  type Purpose,
} from "./_messages.ts";
import { ClusterAuthError, FrameError } from "./errors.ts";

/** The HMAC key derived from the shared token (a fixed label when there is none). */
export function authKey(token: string | undefined): Promise<CryptoKey> {
  const material = new TextEncoder().encode(`dtrain-cluster-token:${token ?? ""}`);
  return crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** 32 random bytes as hex. */
export function nonce(): string {
  return hex(crypto.getRandomValues(new Uint8Array(32)));
}

function transcript(role: "server" | "client", a: string, b: string, p: Purpose, rank: number) {
  return new TextEncoder().encode(`dtrain/1 ${role} ${a} ${b} ${p} ${rank}`);
}

async function sign(key: CryptoKey, data: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.sign("HMAC", key, data)));
}

function verify(key: CryptoKey, data: Uint8Array<ArrayBuffer>, proof: string): Promise<boolean> {
  return crypto.subtle.verify("HMAC", key, unhex(proof), data);
}

/** The next control message, or the named error an `error` message carries. */
export async function receive(
  conn: FrameConn,
  timeoutMs: number,
  what: string,
): Promise<ControlMessage> {
  const m = parseControl(await conn.next(timeoutMs, what));
  if (m.type === "error") throw errorFrom(m);
  return m;
}

function expect<T extends ControlMessage["type"]>(
  m: ControlMessage,
  type: T,
  from: string,
): ControlMessage & { type: T } {
  if (m.type !== type) {
    throw new FrameError(`Expected a "${type}" message from ${from}, received "${m.type}"`);
  }
  return m as ControlMessage & { type: T };
}

/** Client side: proves this node knows the token and checks the server does. */
export async function clientHandshake(
  conn: FrameConn,
  key: CryptoKey,
  me: { purpose: Purpose; rank: number; nodes: number },
  timeoutMs: number,
): Promise<void> {
  const nc = nonce();
  let ch: ControlMessage & { type: "challenge" };
  try {
    await conn.send(controlFrame({ type: "hello", proto: 1, ...me, nonce: nc }));
    ch = expect(await receive(conn, timeoutMs, "handshake"), "challenge", conn.label);
  } catch (e) {
    const cause = (e as Error).cause;
    if (cause instanceof Deno.errors.InvalidData) {
      // A TLS certificate the CA does not vouch for (or a TLS/plain mix-up).
      throw new ClusterAuthError(`TLS handshake with ${conn.label} failed: ${cause.message}`, {
        cause: e,
      });
    }
    throw e;
  }
  if (!await verify(key, transcript("server", nc, ch.nonce, me.purpose, me.rank), ch.proof)) {
    throw new ClusterAuthError(
      `${conn.label} failed the token check: its proof does not match this node's token ` +
        `(expected both sides to share DTRAIN_TOKEN)`,
    );
  }
  const proof = await sign(key, transcript("client", ch.nonce, nc, me.purpose, me.rank));
  await conn.send(controlFrame({ type: "auth", proof }));
  expect(await receive(conn, timeoutMs, "handshake"), "welcome", conn.label);
}

/** Server side: returns the client's hello once it has proven it knows the token. */
export async function serverHandshake(
  conn: FrameConn,
  key: CryptoKey,
  purpose: Purpose,
  timeoutMs: number,
): Promise<ControlMessage & { type: "hello" }> {
  const hello = expect(await receive(conn, timeoutMs, "handshake"), "hello", conn.label);
  if (hello.purpose !== purpose) {
    throw new FrameError(
      `Expected a "${purpose}" hello from ${conn.label}, received "${hello.purpose}"`,
    );
  }
  const ns = nonce();
  const proof = await sign(key, transcript("server", hello.nonce, ns, purpose, hello.rank));
  await conn.send(controlFrame({ type: "challenge", nonce: ns, proof }));
  const auth = expect(await receive(conn, timeoutMs, "handshake"), "auth", conn.label);
  if (!await verify(key, transcript("client", ns, hello.nonce, purpose, hello.rank), auth.proof)) {
    const err = new ClusterAuthError(
      `${conn.label} (claiming rank ${hello.rank}) failed the token check`,
    );
    await conn.send(controlFrame({ type: "error", name: err.name, message: "token check failed" }))
      .catch(() => {});
    throw err;
  }
  await conn.send(controlFrame({ type: "welcome" }));
  return hello;
}
