import { EventEmitter } from "node:events";
import type { Job, Run } from "./jobs.js";

export type JobChange = "added" | "updated" | "removed";
export type RunChange = "started" | "finished";

/** What the MCP layer, webhooks and logs listen to. Listeners must never throw into the core. */
export interface AppEvents {
  job: [job: Job, change: JobChange];
  run: [run: Run, change: RunChange, job: Job | undefined];
  notice: [level: "info" | "warning" | "error", message: string, data: Record<string, unknown>];
}

export class AppEventBus extends EventEmitter<AppEvents> {}
