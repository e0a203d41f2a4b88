import { withScheduleHistory } from "./ledger.js";
import { maxRunsReached, type Job, type JobState, type Run, type RunStatus, type RunTrigger } from "./jobs.js";
import { toIsoInZone } from "../kernel/time.js";
import type { CatchUpPlan } from "./planner.js";

/**
 * A job's state transitions, decided in one place. `enabled` is derived from `state` (only an
 * active job is scheduled) when a job is stored, never set by hand; a job's ending (a
 * one-shot's turn, max_runs) is decided here for runs that ran and for occurrences that did
 * not.
 */

/** The job as stored: `enabled` follows `state`. */
export function withDerivedFields(job: Job): Job {
  const enabled = job.state === "active";
  return withScheduleHistory(job.enabled === enabled ? job : { ...job, enabled });
}

/**
 * The job once its occurrence `at` is taken: handled up to `at`, and `next_run_at` as the App
 * armed it when it fired (`armed`), unless the schedule changed since (then the App writes it
 * after the run). Written with the take, it saves every occurrence a second write of its job.
 */
export function takenFields(stored: Job, at: number, now: number, armed: Job, nextRunAt: string | null | undefined): Job {
  const sameSchedule = stored.schedule === armed.schedule && stored.timezone === armed.timezone && stored.schedule_from === armed.schedule_from;
  return withDerivedFields({
    ...stored,
    last_scheduled_for: toIsoInZone(new Date(at), stored.timezone),
    ...(nextRunAt !== undefined && sameSchedule ? { next_run_at: nextRunAt } : {}),
    updated_at: toIsoInZone(new Date(now), stored.timezone),
  });
}

/** What a taken catch-up plan changes on its job: handled up to its newest occurrence, and what is next after it. */
export function caughtUpFields(plan: CatchUpPlan, timezone: string): Pick<Job, "last_scheduled_for" | "next_run_at"> {
  return {
    last_scheduled_for: toIsoInZone(new Date(plan.newest), timezone),
    next_run_at: plan.next === null ? null : toIsoInZone(new Date(plan.next), timezone),
  };
}

/** Moves a job to a state that is not scheduled: nothing is next. */
export function stopped(state: Exclude<JobState, "active">): Pick<Job, "state" | "next_run_at"> {
  return { state, next_run_at: null };
}

/** A one-shot has had its turn once its own occurrence ran or was given up; a manual run does not count. */
function oneShotTurn(job: Job, trigger: RunTrigger): boolean {
  return job.run_at !== null && trigger !== "manual";
}

/** The job fields that change when one of its runs ends. */
export function afterRun(job: Job, run: Run): Partial<Job> {
  const failed = run.status === "failed" || run.status === "timed_out";
  const consecutive = failed ? job.consecutive_failures + 1 : run.status === "completed" ? 0 : job.consecutive_failures;
  const change: Partial<Job> = {
    last_status: run.status,
    // A paused job keeps why it was paused (say, by its own run's pause_me) past a run that completes.
    last_error: run.status === "completed" ? (job.state === "paused" ? job.last_error : null) : run.error,
    consecutive_failures: consecutive,
  };
  if (job.state !== "active") return change;
  if (oneShotTurn(job, run.trigger) || maxRunsReached(job)) return { ...change, ...stopped("completed") };
  if (failed && job.pause_after_failures > 0 && consecutive >= job.pause_after_failures) {
    return {
      ...change,
      ...stopped("paused"),
      last_error: `Paused after ${consecutive} failed runs in a row; last error: ${run.error ?? "unknown"}. Fix the cause, then resume the job.`,
    };
  }
  return change;
}

/**
 * The job fields that change when an occurrence ends without running its agent: `missed`
 * (catch-up), `interrupted` (the process went away), `skipped` (overlap, budget). A one-shot
 * whose occurrence was missed or interrupted has had its turn; a skipped one has not.
 */
export function afterNotRun(job: Job, trigger: RunTrigger, status: RunStatus): Partial<Job> {
  const change: Partial<Job> = { last_status: status };
  if (job.state === "active" && (status === "missed" || status === "interrupted") && oneShotTurn(job, trigger)) {
    return { ...change, ...stopped("completed") };
  }
  return change;
}

/**
 * Why an occurrence taken while its job was active does not run now, or null when it runs
 * (SPEC §18: it still gets its record). `declined` when the job has since gone back to a person
 * for approval (an agent's change, SPEC §20): it is not run on an approval no longer in force.
 * `skipped` when the job was paused, completed or given a new schedule (which counts from its
 * change) before it could start.
 */
export function whyNotRun(job: Job, scheduledFor: number | null): { status: "declined" | "skipped"; why: string } | null {
  const name = job.name ?? job.id;
  if (job.state === "pending_approval") {
    return {
      status: "declined",
      why: `The job went back for a person's approval before this occurrence could start, so it was not run; they approve it with: agent-cron approve ${name}.`,
    };
  }
  // Completed at its expires_at while this occurrence, due before then, was on its way (a
  // fleet's worker may start it seconds late): it runs, as it would have on time.
  const dueBeforeEnd = job.state === "completed" && scheduledFor !== null && job.expires_at !== null && scheduledFor <= Date.parse(job.expires_at);
  if (job.state !== "active" && !dueBeforeEnd) return { status: "skipped", why: `The job was ${job.state} before this occurrence could start.` };
  if (scheduledFor !== null && Date.parse(job.schedule_from ?? "") > scheduledFor)
    return { status: "skipped", why: "The job's schedule changed before this occurrence could start." };
  return null;
}
