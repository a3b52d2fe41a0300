// Test helpers: cluster nodes as child processes (tests/fixtures/cluster_node.ts),
// their JSON event lines, bounded waits on them, and cleanup.

const FIXTURE = new URL("../fixtures/cluster_node.ts", import.meta.url).pathname;

/** One event line printed by the fixture. */
export interface NodeEvent {
  event: string;
  rank: number;
  t: number;
  [k: string]: unknown;
}

/** A running fixture process. */
export class NodeProcess {
  readonly events: NodeEvent[] = [];
  readonly child: Deno.ChildProcess;
  readonly stderr: Promise<string>;
  #reading: Promise<void>;
  #wake: (() => void)[] = [];
  /** The exit status, once the process has exited. */
  #exited: Deno.CommandStatus | undefined;

  /** `prefix` runs the process through another command (e.g. `ip netns exec NS`). */
  constructor(options: Record<string, unknown>, prefix: string[] = []) {
    const cmd = [...prefix, Deno.execPath(), "run", "-A", FIXTURE, JSON.stringify(options)];
    const child = new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.child = child;
    this.stderr = new Response(child.stderr).text();
    child.status.then((status) => (this.#exited = status));
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          try {
            this.events.push(JSON.parse(line));
          } catch {
            this.events.push({ event: "text", rank: -1, t: Date.now(), line });
          }
        }
        for (const w of this.#wake.splice(0)) w();
      }
      for (const w of this.#wake.splice(0)) w();
    })();
  }

  /** The first event matching `pred`, waiting at most `timeoutMs` (then an Error naming `what`). */
  async waitFor(
    pred: (e: NodeEvent) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<NodeEvent> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      const left = deadline - performance.now();
      if (left <= 0) {
        // A process that already exited says why on stderr (an uncaught error, say).
        const exited = this.#exited === undefined
          ? "still running"
          : `exited with code ${this.#exited.code}; stderr: ${(await this.stderr).slice(-2000)}`;
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for ${what}; events: ${
            JSON.stringify(this.events.slice(-5))
          }; the process ${exited}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake.push(r);
        timer = setTimeout(r, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
  }

  /** Sends `signal` if still running. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch { /* already exited */ }
  }

  /** Waits for exit (killing it after `timeoutMs`) and for its output to drain. */
  async stop(timeoutMs = 5000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    try {
      const status = await this.child.status;
      await this.#reading;
      await this.stderr;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }
}
