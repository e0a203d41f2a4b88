import { errorMessage } from "../kernel/errors.js";
import type { Job } from "./jobs.js";
import { latestOccurrenceBetween, nextOccurrences, occurrencesBetween, scheduleOfJob, type ParsedSchedule } from "./schedule.js";
import { isValidTimezone } from "../kernel/time.js";
import { wasDue } from "./ledger.js";

/**
 * What to run and when, as pure functions of a job, its schedule and the clock: no I/O, no
 * timers, so every decision is tested without a data dir (test/core/planner.test.ts) and
 * every backend makes the same one.
 */

/** Occurrences recorded as `missed` per job and catch-up, at most. */
export const MAX_MISSED_RECORDS = 20;
/** Occurrences run by one catch-up with catch_up: all, at most. */
export const MAX_CATCH_UP_RUNS = 1000;
const SCAN_LIMIT = 10_000;
/** An occurrence this late is treated as missed (the machine slept or the clock jumped). */
export const LATE_MS = 5_000;

/** Occurrences at or before this instant are done with (run, recorded, or skipped on purpose). */
export function handledUntil(job: Job): number {
  return Math.max(job.last_scheduled_for ? Date.parse(job.last_scheduled_for) : -Infinity, job.schedule_from ? Date.parse(job.schedule_from) : -Infinity);
}

/**
 * Whether a take of the occurrence at `at` goes ahead: it is not handled yet (no take of it or
 * of a later one), and the job still schedules it, or it came due before the job was paused or
 * given a new schedule. Such an occurrence is taken anyway so that it gets its record
 * (skipped, when its run finds the job changed): the ledger has no hole where a take was slower
 * than a person's change (SPEC §18).
 */
export function takeable(job: Job, at: number): boolean {
  if (job.last_scheduled_for && Date.parse(job.last_scheduled_for) >= at) return false;
  if (job.state === "active" && handledUntil(job) < at) return true;
  return wasDue(job, at);
}

/** The job's next occurrences after `from`, never at or before the last one handled, within expires_at and max_runs. */
export function nextRuns(job: Job, sched: ParsedSchedule, count: number, from: number): Date[] {
  if (job.state !== "active") return [];
  const after = new Date(Math.max(from, handledUntil(job), Date.parse(job.created_at)));
  let runs = nextOccurrences(sched, after, count, new Date(job.created_at));
  const expires = job.expires_at ? Date.parse(job.expires_at) : Infinity;
  runs = runs.filter((d) => d.getTime() <= expires);
  if (job.max_runs !== null) runs = runs.slice(0, Math.max(0, job.max_runs - job.run_count));
  return runs;
}

/**
 * Whether two copies of a job schedule the same occurrences once `a`'s are handled: what moved
 * between them is bookkeeping (a take's last_scheduled_for, a run's counts), not when it runs.
 */
export function sameTimeline(a: Job, b: Job): boolean {
  return (
    a.state === b.state &&
    a.schedule === b.schedule &&
    a.timezone === b.timezone &&
    a.run_at === b.run_at &&
    a.schedule_from === b.schedule_from &&
    a.expires_at === b.expires_at &&
    a.max_runs === null &&
    b.max_runs === null
  );
}

export interface CatchUpPlan {
  /** The newest missed occurrence: the job's last_scheduled_for once the plan is taken. */
  newest: number;
  /** Occurrences to run, oldest first. */
  run: number[];
  /** Occurrences only recorded `missed` (the newest MAX_MISSED_RECORDS of those not run). */
  record: number[];
  /** More were missed than are recorded. */
  truncated: boolean;
  /**
   * The first occurrence after the plan (null when none is left): the job's next_run_at once
   * the plan is taken, written with it, so that the job does not show a next run in the past
   * until its next occurrence fires (an hourly job's, for up to an hour).
   */
  next: number | null;
}

/**
 * Occurrences between the job's last handled one and `now`, per its catch_up policy; null
 * when nothing was missed. Only occurrences inside the window (`windowSeconds` back from now)
 * may run; older ones are recorded, and only the newest few, so a laptop closed for a month
 * does not write a month of records.
 */
export function planCatchUp(job: Job, sched: ParsedSchedule, now: number, windowSeconds: number): CatchUpPlan | null {
  // next_run_at is the first occurrence after the last one handled: if it is still ahead,
  // nothing was missed (the common case at start-up, and cheap to check for 100,000 jobs).
  if (job.next_run_at && Date.parse(job.next_run_at) > now) return null;
  const anchor = new Date(job.created_at);
  const expires = job.expires_at ? Date.parse(job.expires_at) : Infinity;
  const until = Math.min(now, expires);
  const since = Math.max(handledUntil(job), Date.parse(job.created_at));
  const newest = latestOccurrenceBetween(sched, new Date(since), new Date(until), anchor)?.getTime();
  if (newest === undefined) return null;
  const windowStart = Math.max(since, now - windowSeconds * 1000);
  const inWindow =
    newest >= windowStart ? occurrencesBetween(sched, new Date(windowStart), new Date(until), MAX_CATCH_UP_RUNS, anchor).map((d) => d.getTime()) : [];
  const run = job.catch_up === "none" ? [] : job.catch_up === "latest" ? [newest].filter((t) => t >= windowStart) : inWindow;
  const running = new Set(run);
  let before = occurrencesBetween(sched, new Date(since), new Date(until), SCAN_LIMIT, anchor).map((d) => d.getTime());
  if (before.length === SCAN_LIMIT) {
    // Too many to list from the start: a regular schedule's last SCAN_LIMIT occurrences
    // span about as long as its first ones.
    const span = before[SCAN_LIMIT - 1] - before[0];
    before = occurrencesBetween(sched, new Date(newest - span), new Date(until), SCAN_LIMIT, anchor).map((d) => d.getTime());
  }
  const record = before.filter((t) => !running.has(t)).slice(-MAX_MISSED_RECORDS);
  const next = nextRuns(job, sched, 1, Math.max(now, newest))[0]?.getTime() ?? null;
  return { newest, run, record, truncated: record.length === MAX_MISSED_RECORDS, next };
}

/** Why a stored job cannot be scheduled, or null when it can. */
export function brokenJobProblem(job: Job): string | null {
  if (!isValidTimezone(job.timezone)) return `timezone "${job.timezone}" is not known to this system's time zone data`;
  for (const field of ["created_at", "updated_at", "last_scheduled_for", "schedule_from", "run_at", "expires_at"] as const) {
    const v = job[field];
    if (v !== null && !Number.isFinite(Date.parse(v))) return `${field} "${v}" is not a date`;
  }
  try {
    scheduleOfJob(job);
  } catch (err) {
    return `schedule "${job.schedule}": ${errorMessage(err).replace(/\.$/, "")}`;
  }
  return null;
}
