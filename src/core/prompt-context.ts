import { createHash } from "node:crypto";
import type { Job, Run } from "./jobs.js";
import { toIsoInZone } from "../kernel/time.js";
import { describeJob } from "./views.js";

/**
 * The one line of context before a run's prompt (SPEC §13): an unattended agent does not
 * know which job it is, which occurrence (in the job's own timezone, so "today" is right),
 * what the schedule is, or how the last run ended; runs that act on the wrong date start
 * there. For example:
 *
 *   [agent-cron] Job "log-audit", occurrence Tuesday 2026-12-01 09:00 +01:00 (Europe/Paris);
 *   schedule: At 09:00 AM, Monday through Friday; previous run: completed at 2026-11-30 09:00 +01:00.
 */
export function contextLine(job: Job, run: Pick<Run, "scheduled_for" | "trigger" | "started_at">, previous: Run | undefined): string {
  const name = job.name ? `"${job.name}"` : job.id;
  const when = run.scheduled_for ?? run.started_at;
  const occurrence = when ? wallTime(Date.parse(when), job.timezone) : "now";
  const what =
    run.trigger === "manual" ? `run by hand at ${occurrence}` : run.trigger === "event" ? `started by an event at ${occurrence}` : `occurrence ${occurrence}`;
  const last = previous
    ? `previous run: ${previous.status} at ${previous.finished_at ? wallTime(Date.parse(previous.finished_at), job.timezone) : "?"}${previous.status !== "completed" && previous.error ? ` (${clip(previous.error, 120)})` : ""}`
    : "no previous run";
  return `[agent-cron] Job ${name}, ${what} (${job.timezone}); schedule: ${describeJob(job, false)}; ${last}.`;
}

/** "Tuesday 2026-12-01 09:00 +01:00": the weekday, date, time and offset in the zone. */
export function wallTime(ms: number, timezone: string): string {
  const iso = toIsoInZone(new Date(ms), timezone);
  const weekday = new Intl.DateTimeFormat("en-US", { weekday: "long", timeZone: timezone }).format(new Date(ms));
  return `${weekday} ${iso.slice(0, 10)} ${iso.slice(11, 16)} ${iso.slice(23)}`;
}

function clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/**
 * The delay before an occurrence of a job with `jitter_seconds`: pseudo-random, spread
 * evenly over [0, jitter), and stable for a job and occurrence (a restart or another process
 * computes the same), so a fleet of jobs at 09:00 does not start in the same second.
 */
export function jitterDelayMs(jobId: string, occurrence: number, jitterSeconds: number): number {
  if (jitterSeconds <= 0) return 0;
  const h = createHash("sha256").update(`${jobId}:${occurrence}`).digest();
  return Math.floor((h.readUInt32BE(0) / 2 ** 32) * jitterSeconds * 1000);
}
