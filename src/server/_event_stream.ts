// Private: GET /v1/jobs/{id}/events, a job's Server-Sent Events through
// Hono's `streamSSE`. Each event is `id: <seq>`, `event: <type>` and one
// `data:` line of JSON (`end` carries the job record); `Last-Event-ID`
// resumes after that id; a `: ping` comment every 15 s keeps proxies from
// closing an idle stream. The stream ends after `end`, when the client goes,
// or when the app closes (`streams` holds every open stream's stop).
import type { OpenAPIHono } from "@hono/zod-openapi";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import type { SequencedEvent, Subscription } from "./job_events.ts";
import type { JobManager } from "./jobs.ts";
import { ROUTES } from "./_routes.ts";
import { TERMINAL_STATUSES } from "./schemas.ts";
import type { JobRecord } from "./types.ts";

const PING_MS = 15_000;
const FOLLOW_MS = 1000;

/** The SSE message of `e`: its position as id, its type as event, its payload as JSON. */
function message(e: SequencedEvent): Parameters<SSEStreamingApi["writeSSE"]>[0] {
  const { type, ...data } = e.event;
  return {
    id: String(e.seq),
    event: type,
    data: JSON.stringify(type === "end" ? e.event.job : data),
  };
}

/**
 * Attaches GET `/v1/jobs/{id}/events` to `app`. A 404 for an unknown job is
 * answered before the stream starts.
 */
export function eventStreamHandler(
  app: OpenAPIHono,
  deps: { jobs: JobManager; streams: Set<() => void> },
): void {
  const { jobs, streams } = deps;
  app.openapi(ROUTES.events, async (c) => {
    const { id } = c.req.valid("param");
    const first = await jobs.get(id);
    const after = Number.parseInt(c.req.header("last-event-id") ?? "0", 10) || 0;
    c.header("x-accel-buffering", "no");
    const res = streamSSE(c, async (stream) => {
      // Writes are chained so they reach the client in order, whatever the
      // reader's pace; the callback returns (and the stream closes) once the
      // stream was stopped and everything written is read.
      let writes = Promise.resolve();
      const write = (step: () => Promise<unknown>) => {
        writes = writes.then(step).then(() => {});
      };
      let done = false;
      let poll: ReturnType<typeof setTimeout> | undefined;
      let sub: Subscription | null = null;
      let ended!: () => void;
      const stopped = new Promise<void>((r) => (ended = r));
      const ping = setInterval(() => write(() => stream.write(": ping\n\n")), PING_MS);
      const stop = () => {
        if (done) return;
        done = true;
        clearInterval(ping);
        clearTimeout(poll);
        sub?.unsubscribe();
        streams.delete(stop);
        ended();
      };
      streams.add(stop);
      stream.onAbort(stop);
      const send = (e: SequencedEvent) => {
        if (done) return;
        write(() => stream.writeSSE(message(e)));
        if (e.event.type === "end") stop();
      };
      sub = jobs.subscribe(id, after, send);
      if (sub !== null) {
        for (const e of sub.replay) send(e);
        if (sub.ended) stop();
      } else {
        // A job this server has no events of (finished before a restart, or
        // running on another server of a shared KV): follow its record.
        let seq = 0;
        let last: JobRecord = first;
        const emit = (job: JobRecord) => {
          if (TERMINAL_STATUSES.includes(job.status)) {
            send({ seq: ++seq, event: { type: "end", job } });
          } else if (seq === 0 || job.status !== last.status) {
            send({ seq: ++seq, event: { type: "status", status: job.status } });
          }
          last = job;
        };
        const follow = async () => {
          try {
            emit(await jobs.get(id));
          } catch {
            stop();
          }
          if (!done) poll = setTimeout(follow, FOLLOW_MS);
        };
        emit(first);
        if (!done) poll = setTimeout(follow, FOLLOW_MS);
      }
      await stopped;
      await writes;
    });
    // The headers this endpoint always sent: a charset, no hop-by-hop headers.
    res.headers.set("content-type", "text/event-stream; charset=utf-8");
    res.headers.delete("transfer-encoding");
    res.headers.delete("connection");
    return res;
  });
}
