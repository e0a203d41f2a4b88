import { randomUUID } from "node:crypto";
import { z } from "zod";
import { toIsoInZone } from "../kernel/time.js";

/** The one source of truth for job and run shapes: tools, resources and the store use these. */

export const JOB_STATES = ["active", "paused", "completed", "pending_approval"] as const;
export const SESSION_MODES = ["isolated", "persistent"] as const;
export const JOB_TYPES = ["light", "medium", "resource-intensive"] as const;
export const OUTPUT_FORMATS = ["text", "json", "structured"] as const;
export const OVERLAP_POLICIES = ["skip", "queue_one", "replace", "allow"] as const;
export const CATCH_UP_POLICIES = ["latest", "all", "none"] as const;
export const NOTIFY_EVENTS = ["completed", "failed", "canceled"] as const;
/**
 * When a job's result goes to its channels: `failed` includes timed_out and interrupted;
 * `changed` is a completed run whose answer differs from the previous completed run's;
 * `paused` is the job pausing itself after failures in a row.
 */
export const DELIVER_EVENTS = ["completed", "failed", "canceled", "changed", "paused", "always"] as const;
export type DeliverEvent = (typeof DELIVER_EVENTS)[number];
/**
 * Why a target is owed a run: a deliver_on event, or what the run's own agent said through its
 * run tools (`needs_attention`: it asked a person; `quiet`: nothing to report, sent only under
 * deliver_on "always").
 */
export const DELIVERY_TARGET_EVENTS = ["completed", "failed", "canceled", "changed", "paused", "needs_attention", "quiet"] as const;
export type DeliveryTargetEvent = (typeof DELIVERY_TARGET_EVENTS)[number];
/** What a run's agent said of its run through the run tools (SPEC §21); null: nothing. */
export const RUN_OUTCOMES = ["quiet", "needs_attention"] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];
/** A chained job's upstream ending that starts it. */
export const AFTER_ON = ["completed", "failed", "any"] as const;
/** The reason of an occurrence its gate check found nothing to do for. */
export const CHECK_NOTHING_TO_DO = "check: nothing to do";
export const DEFAULT_DELIVER_ON: DeliverEvent[] = ["completed", "failed", "paused"];
export const DELIVERY_STATES = ["pending", "delivered", "failed"] as const;
export const RUN_STATUSES = [
  "running",
  "completed",
  "failed",
  "timed_out",
  "canceled",
  "skipped",
  "missed",
  "interrupted",
  // Taken, then not run because its job went back to a person for approval (SPEC §18, §20).
  "declined",
] as const;
export const RUN_TRIGGERS = ["schedule", "catch_up", "manual", "event", "after"] as const;
export const PERMISSION_DENIED_POLICIES = ["fail", "warn"] as const;
export const JOB_TRIGGERS = ["schedule", "http"] as const;

export type JobState = (typeof JOB_STATES)[number];
export type RunStatus = (typeof RUN_STATUSES)[number];
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

export const MAX_PROMPT_BYTES = 32 * 1024;
export const RESPONSE_CAP_BYTES = 4 * 1024;

const isoTime = z.string().describe("ISO 8601 time with milliseconds and offset");

export const UsageSchema = z.object({
  input_tokens: z.number().nullable().optional(),
  output_tokens: z.number().nullable().optional(),
  cost_usd: z.number().nullable().optional(),
});
export type Usage = z.infer<typeof UsageSchema>;

/** How a person's decision reached agent-cron: the CLI, the dashboard (approver secret), or a client's elicitation (approval "ask"). */
export const APPROVAL_CHANNELS = ["cli", "dashboard", "elicitation", "mcp"] as const;
export type ApprovalChannel = (typeof APPROVAL_CHANNELS)[number];
/** One step of a job's approval: approved by a person, or sent back to pending_approval by a change. */
export const ApprovalEventSchema = z.object({
  event: z.enum(["approved", "sent_back"]),
  at: isoTime,
  by: z.string().describe("Who: the person's user and process, or the client that asked"),
  via: z.enum(APPROVAL_CHANNELS),
  fields: z.array(z.string()).optional().describe("sent_back: the fields whose change needs a person again"),
});
export type ApprovalEvent = z.infer<typeof ApprovalEventSchema>;
/** A job keeps its newest approval events, no more. */
export const MAX_APPROVAL_EVENTS = 20;
/** One change of what a job is due to do: from `at`, this schedule, timezone and state hold. */
export const ScheduleEntrySchema = z.object({
  at: isoTime,
  state: z.enum(JOB_STATES),
  schedule: z.string(),
  timezone: z.string(),
  run_at: isoTime.optional().describe("A one-shot's time"),
});
export type ScheduleEntry = z.infer<typeof ScheduleEntrySchema>;

/** Occurrences missed while the server was down that got no record of their own (only the newest are recorded). */
export const MissedSpanSchema = z.object({
  from: isoTime.describe("Exclusive"),
  to: isoTime.describe("Exclusive"),
  reason: z.string(),
});
export type MissedSpan = z.infer<typeof MissedSpanSchema>;

export const ON_EMPTY_POLICIES = ["warn", "fail"] as const;

export const JobSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  schedule: z.string(),
  run_at: isoTime.nullable(),
  timezone: z.string(),
  prompt: z.string(),
  executor: z.string().nullable().describe("The executor this job names; null follows the config's default_executor at each run"),
  work_dir: z.string().nullable(),
  session: z.enum(SESSION_MODES),
  session_id: z.string().nullable().describe("The agent session of a persistent job, once created"),
  type: z.enum(JOB_TYPES),
  timeout_seconds: z.number(),
  retries: z.number(),
  retry_delay_seconds: z.number(),
  output_format: z.enum(OUTPUT_FORMATS),
  output_schema: z.record(z.string(), z.unknown()).nullable(),
  overlap: z.enum(OVERLAP_POLICIES),
  catch_up: z.enum(CATCH_UP_POLICIES),
  max_runs: z.number().nullable(),
  expires_at: isoTime.nullable(),
  max_cost_usd: z.number().nullable(),
  pause_after_failures: z.number(),
  enabled: z.boolean(),
  state: z.enum(JOB_STATES),
  silent: z.boolean(),
  notify_on: z.array(z.enum(NOTIFY_EVENTS)),
  on_complete: z.string().nullable(),
  on_fail: z.string().nullable(),
  deliver_to: z.array(z.string()).default([]).describe("Channels from the operator's config that get this job's results"),
  deliver_on: z.array(z.enum(DELIVER_EVENTS)).default(DEFAULT_DELIVER_ON).describe("Which endings are delivered to deliver_to"),
  on_permission_denied: z
    .enum(PERMISSION_DENIED_POLICIES)
    .default("fail")
    .describe("A claude-code run whose result lists permission_denials: fail it (default), or complete with warnings"),
  requires_mcp: z.array(z.string()).default([]).describe("MCP servers a claude-code run needs connected; one that is not fails the run at once"),
  prompt_context: z.boolean().nullable().default(null).describe("Precede the prompt with one line of context; null: on for agent executors, off for command"),
  jitter_seconds: z.number().default(0).describe("Each occurrence starts after a stable pseudo-random delay up to this long"),
  catch_up_window_seconds: z.number().nullable().default(null).describe("Missed occurrences older than this are not caught up; null: the config's"),
  trigger: z.enum(JOB_TRIGGERS).default("schedule").describe("http: POST /hooks/{id} with the job's token also starts a run"),
  trigger_token_hash: z.string().nullable().default(null).describe("SHA-256 of the event trigger's token; the token itself is shown once"),
  approvals: z.array(ApprovalEventSchema).default([]).describe("Who approved this job, when and through what; and which changes sent it back (newest last)"),
  after: z
    .object({ job: z.string().describe("The upstream job's id"), on: z.enum(AFTER_ON) })
    .nullable()
    .default(null)
    .describe("Chaining: each run of `job` that ends `on` (completed, failed, any) starts a run of this job with its output"),
  check: z.string().nullable().default(null).describe("A gate check from the operator's config: runs before each occurrence; exit 1 skips it"),
  self_service: z.boolean().default(false).describe("The run's agent may pause or reschedule its own job (pause_me, reschedule_me)"),
  notes: z
    .array(z.object({ at: isoTime, run_id: z.string(), text: z.string() }))
    .default([])
    .describe("What earlier runs remembered (remember), oldest first, up to 8 KiB in all; given to the next runs"),
  on_empty: z
    .enum(ON_EMPTY_POLICIES)
    .default("warn")
    .describe(
      'A run that succeeds having done nothing (no output; for agents also no output tokens): "warn" (completed with warnings: ["empty: …"], delivered as needing attention) or "fail"',
    ),
  schedule_history: z
    .array(ScheduleEntrySchema)
    .default([])
    .describe("Each change of schedule, timezone or state (pauses) with its time, newest last, so an audit knows what was due when"),
  missed_spans: z.array(MissedSpanSchema).default([]).describe("Stretches of occurrences missed while the server was down beyond the newest ones recorded"),
  backlog_due: z
    .array(isoTime)
    .default([])
    .describe("Caught-up occurrences (catch_up: all) handed to a backlog and not yet all run: a restart runs those without a record"),
  created_by: z.string(),
  created_at: isoTime,
  updated_at: isoTime,
  last_run_at: isoTime.nullable(),
  last_status: z.enum(RUN_STATUSES).nullable(),
  last_error: z.string().nullable(),
  last_scheduled_for: isoTime.nullable().describe("The newest occurrence handled; never run again"),
  schedule_from: isoTime.nullable().default(null).describe("Scheduling (re)starts here: set by resume and by a new schedule"),
  next_run_at: isoTime.nullable(),
  run_count: z.number(),
  consecutive_failures: z.number(),
});
export type Job = z.infer<typeof JobSchema>;

/** One attempt to hand a run's result to a channel (or to the job's own webhook). */
const DeliveryShape = z.object({
  channel: z.string().describe("A channel name from config, or on_complete / on_fail for the job's own webhook"),
  event: z.string(),
  attempt: z.number(),
  ok: z.boolean().describe("True only when the receiver accepted it (2xx, and the service's own ok where it has one)"),
  http_status: z.number().nullable().describe("HTTP status, null when no answer"),
  message_id: z
    .string()
    .nullable()
    .optional()
    .describe("The id the service gave the message (Slack ts, Discord id, Telegram message_id), where it returns one"),
  error: z.string().nullable(),
  at: isoTime,
});
/** Records written before channels existed ({url, event, attempt, at, status, error}) still read. */
export const DeliverySchema = z.preprocess((raw) => {
  const r = raw as Record<string, unknown> | null;
  if (!r || typeof r !== "object" || "channel" in r || !("url" in r)) return raw;
  const status = typeof r.status === "number" ? r.status : null;
  return {
    channel: r.event === "completed" ? "on_complete" : "on_fail",
    event: r.event,
    attempt: r.attempt,
    ok: r.error === null && status !== null && status >= 200 && status < 300,
    http_status: status,
    error: r.error ?? null,
    at: r.at,
  };
}, DeliveryShape);
export type Delivery = z.infer<typeof DeliveryShape>;

/** What a finished run still has to hand over: a channel, or the job's webhook, and why. */
export const DeliveryTargetSchema = z.object({
  channel: z.string(),
  event: z.enum(DELIVERY_TARGET_EVENTS),
});
export type DeliveryTarget = z.infer<typeof DeliveryTargetSchema>;

export const RunSchema = z.object({
  id: z.string(),
  job_id: z.string(),
  status: z.enum(RUN_STATUSES),
  trigger: z.enum(RUN_TRIGGERS),
  scheduled_for: isoTime.nullable(),
  started_at: isoTime.nullable(),
  finished_at: isoTime.nullable(),
  duration_ms: z.number().nullable(),
  attempts: z.number(),
  executor: z.string().nullable().default(null).describe("The executor that ran it"),
  session_id: z.string().nullable(),
  work_dir: z.string().nullable(),
  exit_code: z.number().nullable(),
  error: z.string().nullable(),
  response: z.string().nullable(),
  output_truncated: z.boolean(),
  usage: UsageSchema.nullable(),
  pid: z.number().nullable().describe("The server process that ran it"),
  deliveries: z.array(DeliverySchema).optional().describe("Every delivery attempt to a channel or webhook"),
  delivery: z
    .enum(DELIVERY_STATES)
    .nullable()
    .default(null)
    .describe("pending until every target has accepted it (delivered) or given up (failed); null when nothing was due"),
  delivery_due: z.array(DeliveryTargetSchema).default([]).describe("Targets not yet handed the result: a restart sends these"),
  output_hash: z.string().nullable().default(null).describe("Hash of the whole output, to tell a changed answer"),
  warnings: z
    .array(z.string())
    .default([])
    .describe("What went wrong without failing the run (permission denials under on_permission_denied: warn; empty: an answer with nothing in it)"),
  executor_version: z.string().nullable().default(null).describe("The executor's program and version, as it reports it"),
  signal: z.string().nullable().default(null).describe("The signal that ended the agent's process, when one did"),
  tool_calls: z
    .array(z.object({ name: z.string(), count: z.number() }))
    .nullable()
    .default(null)
    .describe("Tools the agent called, from its event stream (claude-code, codex)"),
  output_sha256: z.string().nullable().default(null).describe("SHA-256 of the whole output"),
  event_payload: z.string().nullable().default(null).describe("trigger event: the request body, appended to the prompt"),
  after_run: z.string().nullable().default(null).describe("trigger after: the upstream run that started this one"),
  outcome: z
    .enum(RUN_OUTCOMES)
    .nullable()
    .default(null)
    .describe("What the agent said through its run tools: quiet (nothing to report), needs_attention (asked a person)"),
  outcome_note: z.string().nullable().default(null).describe("quiet: why there is nothing to report; needs_attention: the agent's question for a person"),
  chain_due: z.array(z.string()).default([]).describe("Chained jobs this run still has to start (a restart starts them)"),
});
export type Run = z.infer<typeof RunSchema>;

/** A run record as `cron://runs/{id}` shows it: with the whole output. */
export const RunWithOutputSchema = RunSchema.extend({ output: z.unknown() });
export type RunWithOutput = z.infer<typeof RunWithOutputSchema>;

/** max_runs counts runs as they start: true once a job has started its last allowed run. */
/**
 * A new run record of one occurrence of `job` (`scheduledFor` in epoch ms, null for manual runs
 * and events): every field at its empty value, then `fields`. The one place a run is made, for
 * runs that start, occurrences recorded without running, and a fleet's lost occurrences.
 */
export function newRun(
  job: Job,
  occ: { scheduledFor: number | null; trigger: RunTrigger; payload?: string; runId?: string; afterRun?: string },
  fields: Partial<Run>,
): Run {
  return {
    id: occ.runId ?? randomUUID(),
    job_id: job.id,
    status: "running",
    trigger: occ.trigger,
    scheduled_for: occ.scheduledFor === null ? null : toIsoInZone(new Date(occ.scheduledFor), job.timezone),
    started_at: null,
    finished_at: null,
    duration_ms: null,
    attempts: 0,
    executor: null,
    session_id: null,
    work_dir: null,
    exit_code: null,
    error: null,
    response: null,
    output_truncated: false,
    usage: null,
    pid: null,
    delivery: null,
    delivery_due: [],
    output_hash: null,
    warnings: [],
    executor_version: null,
    signal: null,
    tool_calls: null,
    output_sha256: null,
    event_payload: occ.payload ?? null,
    after_run: occ.afterRun ?? null,
    outcome: null,
    outcome_note: null,
    chain_due: [],
    ...fields,
  };
}

export function maxRunsReached(job: Pick<Job, "max_runs" | "run_count">): boolean {
  return job.max_runs !== null && job.run_count >= job.max_runs;
}

export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set(RUN_STATUSES.filter((s) => s !== "running"));
