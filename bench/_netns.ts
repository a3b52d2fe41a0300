// Private: two network namespaces joined by a rate-limited veth pair, for
// the benchmarks that cross a (simulated) network: `tc tbf` limits the rate;
// this kernel has no `netem`, so latency is not added.

/** Where each side of a benchmark runs: a command prefix and an address. */
export interface Placement {
  /** Command prefix of node `rank` (e.g. `ip netns exec NS`), and its address. */
  prefix: (rank: number) => string[];
  host: (rank: number) => string;
  link: string;
}

/** Runs a command quietly; whether it succeeded. */
export async function sh(...cmd: string[]): Promise<boolean> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "null",
    stderr: "null",
  })
    .output().catch(() => ({ success: false }));
  return out.success;
}

function bitsPerSecond(rate: string): number {
  const m = rate.match(/^(\d+)(k|m|g)bit$/);
  if (m === null) throw new RangeError(`a tc rate like 10gbit, received ${rate}`);
  return Number(m[1]) * { k: 1e3, m: 1e6, g: 1e9 }[m[2] as "k" | "m" | "g"];
}

/** Two namespaces joined by a veth pair at `rate`; undefined when namespaces cannot be made. */
export async function namespaces(
  rate: string,
): Promise<(Placement & { close: () => Promise<void> }) | undefined> {
  const id = `dtb${Deno.pid % 10000}`;
  const ns = [`${id}a`, `${id}b`], ips = ["10.231.77.1", "10.231.77.2"];
  const close = async () => {
    for (const n of ns) await sh("ip", "netns", "del", n);
  };
  try {
    for (const n of ns) if (!await sh("ip", "netns", "add", n)) throw new Error("netns");
    if (!await sh("ip", "link", "add", `${id}0`, "type", "veth", "peer", "name", `${id}1`)) {
      throw new Error("veth");
    }
    for (let i = 0; i < 2; i++) {
      const dev = `${id}${i}`;
      if (!await sh("ip", "link", "set", dev, "netns", ns[i]!)) throw new Error("move");
      const inNs = (...a: string[]) => sh("ip", "netns", "exec", ns[i]!, ...a);
      await inNs("ip", "addr", "add", `${ips[i]}/24`, "dev", dev);
      await inNs("ip", "link", "set", dev, "up");
      await inNs("ip", "link", "set", "lo", "up");
      // A bucket of 1/250 s at the rate (the kernel's minimum at HZ 250), so the
      // rate holds within a step, not only on average.
      const burst = `${Math.max(64, Math.round(bitsPerSecond(rate) / 8 / 250 / 1024))}kb`;
      const tbf = ["tbf", "rate", rate, "burst", burst, "latency", "50ms"];
      if (!await inNs("tc", "qdisc", "add", "dev", dev, "root", ...tbf)) {
        throw new Error("tc");
      }
    }
    return {
      prefix: (r) => ["ip", "netns", "exec", ns[r]!],
      host: (r) => ips[r]!,
      link: `veth tbf ${rate}`,
      close,
    };
  } catch {
    await close();
    return undefined;
  }
}

/**
 * One namespace joined to this one by a veth pair at `rate`: side 0 (a
 * server) stays here on the pair's near address, side 1 (its clients) runs
 * in the namespace. Undefined when namespaces cannot be made.
 */
export async function oneNamespace(
  rate: string,
): Promise<(Placement & { close: () => Promise<void> }) | undefined> {
  const id = `dte${Deno.pid % 10000}`;
  const ns = `${id}n`, near = `${id}0`, far = `${id}1`;
  const ips = ["10.231.78.1", "10.231.78.2"];
  const close = async () => {
    await sh("ip", "link", "del", near);
    await sh("ip", "netns", "del", ns);
  };
  try {
    if (!await sh("ip", "netns", "add", ns)) throw new Error("netns");
    if (!await sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)) {
      throw new Error("veth");
    }
    if (!await sh("ip", "link", "set", far, "netns", ns)) throw new Error("move");
    const inNs = (...a: string[]) => sh("ip", "netns", "exec", ns, ...a);
    await sh("ip", "addr", "add", `${ips[0]}/24`, "dev", near);
    await sh("ip", "link", "set", near, "up");
    await inNs("ip", "addr", "add", `${ips[1]}/24`, "dev", far);
    await inNs("ip", "link", "set", far, "up");
    await inNs("ip", "link", "set", "lo", "up");
    const burst = `${Math.max(64, Math.round(bitsPerSecond(rate) / 8 / 250 / 1024))}kb`;
    const tbf = ["tbf", "rate", rate, "burst", burst, "latency", "50ms"];
    if (!await sh("tc", "qdisc", "add", "dev", near, "root", ...tbf)) throw new Error("tc");
    if (!await inNs("tc", "qdisc", "add", "dev", far, "root", ...tbf)) throw new Error("tc");
    return {
      prefix: (side) => side === 0 ? [] : ["ip", "netns", "exec", ns],
      host: (side) => ips[side]!,
      link: `veth tbf ${rate}`,
      close,
    };
  } catch {
    await close();
    return undefined;
  }
}
