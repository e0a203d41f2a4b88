import type { IncomingMessage, ServerResponse } from "node:http";
import type { AppEventBus } from "../core/events.js";
import type { Job, Run } from "../core/jobs.js";

/** Open event streams at most; past it the oldest is closed (a browser reconnects by itself). */
const MAX_STREAMS = 64;
/** A comment this often keeps proxies and idle timers from closing a quiet stream. */
const HEARTBEAT_MS = 20_000;
/** A stream whose reader has taken nothing for this long is cut: its buffer would grow without end. */
const STALL_MS = 30_000;

/** What a page learns of a change: ids and states only. The page fetches what it shows. */
export interface ChangeEvent {
  kind: "job" | "run";
  change: string;
  job_id: string;
  run_id?: string;
  status?: string;
  state?: string;
  /** When the server sent it (ms since the epoch): the page measures the delay. */
  at: number;
}

/**
 * Server-sent events at /events: one `change` event per job or run event of the API's bus,
 * whether this process owns the data dir or forwards to the owner.
 */
export class EventStreams {
  private readonly streams = new Map<ServerResponse, { stalledSince: number | null }>();
  private readonly offs: (() => void)[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(events: AppEventBus) {
    const onJob = (job: Job, change: string) => this.send({ kind: "job", change, job_id: job.id, state: job.state, at: Date.now() });
    const onRun = (run: Run, change: string) => this.send({ kind: "run", change, job_id: run.job_id, run_id: run.id, status: run.status, at: Date.now() });
    events.on("job", onJob);
    events.on("run", onRun);
    this.offs.push(
      () => events.off("job", onJob),
      () => events.off("run", onRun),
    );
    this.timer = setInterval(() => this.heartbeat(), Math.min(HEARTBEAT_MS, STALL_MS / 2));
    this.timer.unref();
  }

  open(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    if (this.streams.size >= MAX_STREAMS) {
      const oldest = this.streams.keys().next().value;
      if (oldest) this.drop(oldest);
    }
    res.writeHead(200, {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
    // A browser reconnects after this long when the stream drops (the daemon restarted).
    res.write("retry: 2000\n\n");
    this.streams.set(res, { stalledSince: null });
    const drop = () => this.streams.delete(res);
    req.once("close", drop);
    res.once("close", drop);
  }

  private send(event: ChangeEvent): void {
    const frame = `event: change\ndata: ${JSON.stringify(event)}\n\n`;
    for (const res of this.streams.keys()) res.write(frame);
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const [res, state] of this.streams) {
      if (!res.writableNeedDrain) state.stalledSince = null;
      else if (state.stalledSince === null) state.stalledSince = now;
      else if (now - state.stalledSince > STALL_MS) {
        this.drop(res);
        continue;
      }
      res.write(": keep-alive\n\n");
    }
  }

  private drop(res: ServerResponse): void {
    this.streams.delete(res);
    res.destroy();
  }

  get size(): number {
    return this.streams.size;
  }

  close(): void {
    clearInterval(this.timer);
    for (const off of this.offs) off();
    for (const res of [...this.streams.keys()]) {
      this.streams.delete(res);
      res.end();
    }
  }
}
