import { z } from "zod";
import { lazily } from "../../kernel/lazy.js";
import type { AddCronResult } from "../../core/api.js";
import { TERMINAL_STATUSES, type Job, type Run } from "../../core/jobs.js";
import { jobRowSchema, jobRow, notRunStatus, runOutcomeText, type RunRow } from "../../core/views.js";

export const jobRef = z.string().min(1).max(200).describe("Job id, name, or 8+ first characters of its id");
export const runRef = z.string().min(1).max(200).describe("Run id, or its first 8+ characters");
export const cursor = z.string().min(1).max(200).describe("next_cursor from the previous page");

/** How many next runs a change answer shows. */
const NEXT_SHOWN = 3;

/** What add_cron, update_cron, pause and resume answer: the job's row and when it runs next. */
export const jobChangeSchema = lazily(() =>
  z.object({
    job: jobRowSchema(),
    created: z.boolean().optional().describe("add_cron: false when a job of that name and definition already existed"),
    next_runs: z.array(z.string()).describe("The next 3 runs in the job's timezone"),
    next_runs_utc: z.array(z.string()).describe("The same in UTC"),
    warnings: z.array(z.string()).describe("Things to fix before the job can run well"),
    trigger_url: z.string().optional().describe('trigger "http": POST here on the HTTP daemon to start a run'),
    trigger_token: z.string().optional().describe('trigger "http": the Bearer token for trigger_url, shown only in this answer'),
  }),
);

export function jobChange(job: Job, next: { next_runs: string[]; next_runs_utc: string[] }, extra: Partial<Pick<AddCronResult, "created" | "warnings">> = {}) {
  return {
    job: jobRow(job),
    ...(extra.created === undefined ? {} : { created: extra.created }),
    next_runs: next.next_runs.slice(0, NEXT_SHOWN),
    next_runs_utc: next.next_runs_utc.slice(0, NEXT_SHOWN),
    warnings: extra.warnings ?? [],
  };
}

export function jobLabel(job: { id: string; name: string | null }): string {
  return job.name ? `"${job.name}"` : job.id;
}

/** `Scheduled "log-audit": at 09:00, Monday through Friday (Europe/Paris); next run 2026-12-02T09:00:00.000+01:00.` */
export function jobSentence(verb: string, job: Job, description: string, next: string | undefined): string {
  const when = job.state === "active" ? (next ? `next run ${next}` : "no run is due") : `it is ${job.state}`;
  return `${verb} ${jobLabel(job)}: ${description}; ${when}.`;
}

/** `Run 1b2c… of job "log-audit" completed in 42 s.` */
export function runSentence(run: Run, jobName?: string | null): string {
  const job = jobName ? `"${jobName}"` : run.job_id;
  if (!TERMINAL_STATUSES.has(run.status)) return `Run ${run.id} of job ${job} is running; get_run with this id gives the result.`;
  const took = run.duration_ms === null ? "" : run.duration_ms < 1000 ? ` in ${run.duration_ms} ms` : ` in ${Math.round(run.duration_ms / 100) / 10} s`;
  const said = run.status === "completed" && run.outcome ? `, ${run.outcome}${run.outcome_note ? `: ${run.outcome_note}` : ""}` : "";
  const after = run.after_run ? ` (started after run ${run.after_run})` : "";
  return `Run ${run.id} of job ${job}${after} ${run.status}${took}${said}${run.error ? `: ${run.error}` : ""}.`.replace(/\.\.$/, ".");
}

export function runLine(run: RunRow): string {
  const when = run.scheduled_for ?? run.started_at ?? "";
  return `${run.id} ${runOutcomeText({ ...run, outcome: run.outcome ?? null, outcome_note: run.outcome_note ?? null, after_run: run.after_run ?? null })} ${when}${run.error && !notRunStatus(run.status) ? ` — ${run.error}` : ""}`;
}
