// "host:port" parsing and formatting for coordinator and peer addresses
// (IPv6 literals in brackets: "[::1]:29500"). Private to src/cluster.

/** A parsed address. `hostname` has no brackets. */
export interface HostPort {
  hostname: string;
  port: number;
}

/**
 * Parses `"host:port"` (or `"[v6]:port"`); `what` names the source in errors.
 * Port 0 is accepted only when `allowZero` (listeners picking an ephemeral port).
 */
export function parseHostPort(value: string, what: string, allowZero = false): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):([0-9]+)$/.exec(value);
  if (m === null) {
    throw new TypeError(
      `${what} must be "host:port" (IPv6 as "[addr]:port"), received ${JSON.stringify(value)}`,
    );
  }
  const hostname = (m[1] ?? m[2])!;
  const port = parsePort(m[3]!, what, allowZero);
  return { hostname, port };
}

/** Parses a decimal TCP port; `what` names the source in errors. */
export function parsePort(text: string, what: string, allowZero = false): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  const min = allowZero ? 0 : 1;
  if (!(port >= min && port <= 65535)) {
    throw new RangeError(
      `${what} must hold a port in ${min}..65535, received ${JSON.stringify(text)}`,
    );
  }
  return port;
}

/** Formats an address as `"host:port"`, bracketing IPv6 literals. */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
