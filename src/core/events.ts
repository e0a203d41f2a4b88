import { EventEmitter } from "node:events";
import type { Delivery, Job, Run } from "./jobs.js";

export type JobChange = "added" | "updated" | "removed";
export type RunChange = "started" | "finished";

/** What the MCP layer, webhooks and logs listen to. Listeners must never throw into the core. */
export interface AppEvents {
  job: [job: Job, change: JobChange];
  /** `elsewhere`: another process of a Postgres fleet runs it (this one heard its record). */
  run: [run: Run, change: RunChange, job: Job | undefined, elsewhere?: boolean];
  notice: [level: "info" | "warning" | "error", message: string, data: Record<string, unknown>];
  /** Delivery attempts just recorded on a run (metrics count them by channel and outcome). */
  delivery: [run: Run, attempts: Delivery[]];
  /** A write of the store took this long; this process's own writes only, never forwarded. */
  store_write: [store: "jobs" | "runs", seconds: number];
}

export class AppEventBus extends EventEmitter<AppEvents> {}
