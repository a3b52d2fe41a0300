// Sockets for the cluster: TCP listeners and connections, or TLS over them
// when certificate files are given. The only place in src/cluster that opens
// sockets. Connects are bounded (AbortSignal on the TCP connect; the TLS
// handshake is bounded by the first frame read). Private to src/cluster.
import { ClusterTimeoutError } from "./errors.ts";

/** TLS material (PEM files). With it, every cluster socket is TLS; the token check still runs inside. */
export interface ClusterTlsOptions {
  /** Certificate chain presented by this node's listeners. */
  certFile: string;
  /** Private key of `certFile`. */
  keyFile: string;
  /** Extra CA that signs the peers' certificates (e.g. a cluster's own CA). @default system roots */
  caFile?: string;
  /**
   * Name the peers' certificates are checked against. Peers are reached by IP,
   * so a cluster-wide certificate names one host name and every node sets it.
   * @default the address connected to
   */
  serverName?: string;
}

/** Loaded TLS material. */
export interface TlsMaterial {
  cert: string;
  key: string;
  caCerts: string[] | undefined;
  serverName: string | undefined;
}

/** Reads the PEM files; a missing file is a TypeError naming it. */
export async function loadTls(tls: ClusterTlsOptions): Promise<TlsMaterial> {
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new TypeError(
        `tls.${what} must be a readable PEM file, received ${JSON.stringify(path)}`,
        {
          cause: e,
        },
      );
    }
  };
  return {
    cert: await read("certFile", tls.certFile),
    key: await read("keyFile", tls.keyFile),
    caCerts: tls.caFile === undefined ? undefined : [await read("caFile", tls.caFile)],
    serverName: tls.serverName,
  };
}

/** Listens on `hostname:port` (port 0: ephemeral), TLS when `tls` is given. */
export function listen(
  hostname: string,
  port: number,
  tls: TlsMaterial | undefined,
): Deno.Listener {
  return tls
    ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key })
    : Deno.listen({ hostname, port });
}

/** Connects within `timeoutMs`, TLS when `tls` is given. */
export async function connect(
  hostname: string,
  port: number,
  tls: TlsMaterial | undefined,
  timeoutMs: number,
): Promise<Deno.Conn> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port, signal: abort.signal });
  } catch (e) {
    if (abort.signal.aborted) {
      throw new ClusterTimeoutError("connect", timeoutMs, `no answer from ${hostname}:${port}`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
  conn.setNoDelay(true);
  if (!tls) return conn;
  return await Deno.startTls(conn, {
    hostname: tls.serverName ?? hostname,
    caCerts: tls.caCerts,
  });
}
