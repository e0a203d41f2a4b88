import { z } from "zod";
import { DELIVERY_STATES, JOB_STATES, RUN_OUTCOMES, RUN_STATUSES, RUN_TRIGGERS, type Job, type Run } from "./jobs.js";
import { cutUtf8 } from "./output.js";
import { describeSchedule, scheduleOfJob } from "./schedule.js";
import { lazily } from "../kernel/lazy.js";

/**
 * What a model reads. Claude Code and Codex hand the model only `structuredContent`, and
 * Claude Code swaps a long answer for a 2 KB preview, so lists carry compact rows and the
 * whole records stay in get_cron, get_run and the resources (SPEC §10).
 */

export const ROW_PROMPT_CHARS = 120;
export const ROW_RESPONSE_CHARS = 500;
/** get_run and a waited run_now cut the output here. */
export const RUN_OUTPUT_CAP_BYTES = 32 * 1024;

const nullableText = (description: string) => z.string().nullable().describe(description);

/** The row schemas only describe answers (tools/list, built ahead): made when first asked for. */
export const jobRowSchema = lazily(() =>
  z.object({
    id: z.string(),
    name: nullableText("Unique name, usable wherever a job id is taken"),
    schedule: z.string(),
    description: z.string().describe("The schedule in words"),
    timezone: z.string(),
    state: z.enum(JOB_STATES),
    next_run_at: nullableText("ISO time of the next run; null when none is due"),
    last_run_at: nullableText("ISO time the last run started"),
    last_status: z.enum(RUN_STATUSES).nullable().describe("How the last run ended"),
    prompt: z.string().describe(`The first ${ROW_PROMPT_CHARS} characters of the prompt`),
  }),
);
export type JobRow = z.infer<ReturnType<typeof jobRowSchema>>;

/** The fields a list_crons row may leave out, and `fields` may ask for. */
export const ROW_OPTIONAL_FIELDS = ["name", "description", "timezone", "state", "next_run_at", "last_run_at", "last_status"] as const;
export type RowField = (typeof ROW_OPTIONAL_FIELDS)[number];

/**
 * list_crons' row as a model reads it (SPEC §10, round 3): the job row without what says
 * nothing, so that 50 rows with 100-character prompts fit in 12 KB: fields that are null, the
 * state when it is "active", the timezone when it is the server's (the answer names it once),
 * and the schedule in words when it only restates a nickname or an interval ("@daily",
 * "@every 15m"). `keep` names fields to give whatever their value.
 */
export const listRowSchema = lazily(() => jobRowSchema().partial().required({ id: true, schedule: true, prompt: true }));
export type ListRow = z.infer<ReturnType<typeof listRowSchema>>;

export function listRow(row: JobRow, serverTimezone: string | undefined, keep: ReadonlySet<RowField> = new Set()): ListRow {
  const dropped: Record<RowField, boolean> = {
    name: row.name === null,
    description: row.schedule.startsWith("@"),
    timezone: serverTimezone !== undefined && row.timezone === serverTimezone,
    state: row.state === "active",
    next_run_at: row.next_run_at === null,
    last_run_at: row.last_run_at === null,
    last_status: row.last_status === null,
  };
  // In the row's own order: id, name, schedule, when, state, the prompt last.
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    if (!(dropped[key as RowField] ?? false) || keep.has(key as RowField)) out[key] = value;
  }
  return out as ListRow;
}

export const runRowSchema = lazily(() =>
  z.object({
    id: z.string(),
    job_id: z.string(),
    job_name: nullableText("The job's name, if it has one"),
    status: z.enum(RUN_STATUSES),
    trigger: z.enum(RUN_TRIGGERS),
    scheduled_for: nullableText("The occurrence this run is for; null for a manual run"),
    started_at: nullableText("ISO time the run started"),
    duration_ms: z.number().nullable().describe("How long it took; null while running"),
    error: nullableText("Why it did not complete"),
    response: nullableText(`The first ${ROW_RESPONSE_CHARS} characters of the answer`),
    response_truncated: z.boolean().describe("true when the answer is longer: get_run has all of it"),
    uri: z.string().describe("The run's resource, cron://runs/{id}"),
    delivery: z
      .enum(DELIVERY_STATES)
      .optional()
      .describe("Present when the run owed channels or webhooks its result: pending, delivered or failed (get_run lists each attempt)"),
    after_run: z.string().optional().describe("trigger after: the upstream run that started this one"),
    outcome: z.enum(RUN_OUTCOMES).optional().describe("quiet: the agent reported nothing to do; needs_attention: it asked a person (outcome_note)"),
    outcome_note: z.string().optional().describe("Why it was quiet, or the agent's question for a person"),
  }),
);
export type RunRow = z.infer<ReturnType<typeof runRowSchema>>;

/** Describing a schedule in words (cronstrue) is costly next to everything else in a list. */
const descriptions = new Map<string, string>();

export function describeJob(job: Job, withZone = true): string {
  const key = `${job.schedule}\u0000${job.timezone}\u0000${job.run_at}\u0000${withZone}`;
  let text = descriptions.get(key);
  if (text === undefined) {
    if (descriptions.size > 10_000) descriptions.clear();
    try {
      text = describeSchedule(scheduleOfJob(job), withZone);
    } catch {
      // A stored schedule that no longer parses (say, a timezone gone from tzdata).
      text = `"${job.schedule}" (cannot be read)`;
    }
    descriptions.set(key, text);
  }
  return text;
}

/** The first `max` characters, on a code point boundary, with "…" when cut. */
export function clipChars(text: string, max: number): { text: string; cut: boolean } {
  const chars = Array.from(text);
  if (chars.length <= max) return { text, cut: false };
  return { text: chars.slice(0, max - 1).join("") + "…", cut: true };
}

export function jobRow(job: Job): JobRow {
  return {
    id: job.id,
    name: job.name,
    schedule: job.schedule,
    // The row has the timezone in a field of its own.
    description: describeJob(job, false),
    timezone: job.timezone,
    state: job.state,
    next_run_at: job.next_run_at,
    last_run_at: job.last_run_at,
    last_status: job.last_status,
    prompt: clipChars(job.prompt, ROW_PROMPT_CHARS).text,
  };
}

export function runRow(run: Run, jobName: string | null): RunRow {
  const response = run.response === null ? null : clipChars(run.response, ROW_RESPONSE_CHARS);
  return {
    id: run.id,
    job_id: run.job_id,
    job_name: jobName,
    status: run.status,
    trigger: run.trigger,
    scheduled_for: run.scheduled_for,
    started_at: run.started_at,
    duration_ms: run.duration_ms,
    error: run.error,
    response: response?.text ?? null,
    response_truncated: (response?.cut ?? false) || run.output_truncated,
    uri: `cron://runs/${run.id}`,
    ...(run.delivery ? { delivery: run.delivery } : {}),
    ...(run.after_run ? { after_run: run.after_run } : {}),
    ...(run.outcome ? { outcome: run.outcome } : {}),
    ...(run.outcome_note ? { outcome_note: clipChars(run.outcome_note, ROW_RESPONSE_CHARS).text } : {}),
  };
}

/** Statuses of an occurrence recorded without running: their error is the reason, shown as part of the status. */
export const notRunStatus = (status: string): boolean => status === "skipped" || status === "declined";

/**
 * A run's ending in words, as people read it: `completed`, `quiet: nothing new`,
 * `needs_attention: may I delete build/?`, `skipped: check: nothing to do`, and
 * `, after run 1a2b3c4d` for a chained run.
 */
export function runOutcomeText(run: Pick<Run, "status" | "outcome" | "outcome_note" | "error" | "after_run">): string {
  let text: string = run.status;
  if (run.status === "completed" && run.outcome) text = run.outcome_note ? `${run.outcome}: ${run.outcome_note}` : run.outcome;
  else if (notRunStatus(run.status) && run.error) text = `${run.status}: ${run.error}`;
  return run.after_run ? `${text}, after run ${run.after_run.slice(0, 8)}` : text;
}

/** A run's whole output as get_run gives it: text cut at 32 KiB, or the parsed JSON when it fits. */
export function cappedOutput(output: unknown): { output: string | null; output_truncated: boolean } {
  if (output === null || output === undefined) return { output: null, output_truncated: false };
  const text = typeof output === "string" ? output : JSON.stringify(output, null, 2);
  const cut = cutUtf8(text, RUN_OUTPUT_CAP_BYTES);
  return { output: cut.text, output_truncated: cut.cut };
}
