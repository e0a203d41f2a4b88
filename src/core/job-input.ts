import { z } from "zod";
import { lazily } from "../kernel/lazy.js";
import {
  AFTER_ON,
  CATCH_UP_POLICIES,
  DELIVER_EVENTS,
  JOB_TRIGGERS,
  PERMISSION_DENIED_POLICIES,
  ON_EMPTY_POLICIES,
  JOB_TYPES,
  NOTIFY_EVENTS,
  OUTPUT_FORMATS,
  OVERLAP_POLICIES,
  SESSION_MODES,
} from "./jobs.js";

const hasNoControlChars = (s: string) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s);

/**
 * The job fields a caller may set, as a zod shape: the tools' input schemas and the CLI's
 * flags are both built from it, so the two never drift apart. Cross-field rules (schedule,
 * timezone, executor, work_dir, output_schema) are checked in the core, which words them.
 * Made on first use: a server that never adds or updates a job builds none of them.
 */
export const jobFieldsShape = lazily(() => {
  const webhookUrl = z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .max(2048)
    .describe("Gets the run as a JSON POST");
  return {
    name: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\p{L}\p{N}][\p{L}\p{N} ._:@/-]*$/u, "must start with a letter or digit and use letters, digits, spaces and . _ : @ / -")
      .describe("Unique; usable as the job id, makes retries safe"),
    schedule: z.string().min(1).max(200).describe('cron ("0 9 * * 1-5"), "@every 15m", an ISO time ("2026-12-01T09:00") or a delay ("in 20m")'),
    prompt: z.string().min(1).describe("What the agent does each run (up to 32 KiB)"),
    timezone: z.string().min(1).max(64).describe("IANA zone (default: the server's)"),
    executor: z.string().min(1).max(64).describe("Executor name from config (default: default_executor)"),
    work_dir: z.string().min(1).max(4096).describe("Absolute dir inside work_dir_roots"),
    session: z.enum(SESSION_MODES).describe("persistent resumes one session (default isolated: fresh each run)"),
    type: z.enum(JOB_TYPES).describe("resource-intensive: one at a time (default medium)"),
    timeout_seconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .describe("Run time limit (default 1800)"),
    retries: z.number().int().min(0).max(10).describe("Retries of a failed run (default 3)"),
    retry_delay_seconds: z.number().min(0).max(3600).describe("First retry delay, doubling (default 1)"),
    output_format: z.enum(OUTPUT_FORMATS).describe("json: must parse; structured: match output_schema (default text)"),
    output_schema: z.record(z.string(), z.unknown()).describe("JSON Schema for structured"),
    overlap: z.enum(OVERLAP_POLICIES).describe("If the last run is still going (default skip)"),
    catch_up: z.enum(CATCH_UP_POLICIES).describe("Missed while down (default latest)"),
    max_runs: z.number().int().min(1).max(1_000_000_000).describe("Stop after this many runs"),
    expires_at: z.string().min(1).max(64).describe("ISO time the job stops"),
    max_cost_usd: z.number().positive().max(1_000_000).describe("Cost cap per run"),
    pause_after_failures: z.number().int().min(0).max(1000).describe("Pause after this many failures in a row (default 5)"),
    enabled: z.boolean().describe("false creates the job paused"),
    silent: z.boolean().describe("true: no webhooks or deliveries"),
    notify_on: z.array(z.enum(NOTIFY_EVENTS)).max(3).describe("Webhook endings (default all)"),
    on_complete: webhookUrl,
    on_fail: webhookUrl,
    deliver_to: z.array(z.string().min(1).max(64)).max(10).describe('Channels from config, e.g. ["team"]'),
    deliver_on: z.array(z.enum(DELIVER_EVENTS)).max(6).describe("Default completed, failed, paused"),
    on_permission_denied: z.enum(PERMISSION_DENIED_POLICIES).describe("claude-code denied a tool (default fail)"),
    on_empty: z.enum(ON_EMPTY_POLICIES).describe("A success with no output: warn (default) or fail"),
    requires_mcp: z.array(z.string().min(1).max(100)).max(20).describe("MCP servers claude-code needs connected"),
    prompt_context: z.boolean().describe("Prefix a context line (default on; off for command)"),
    jitter_seconds: z.number().int().min(0).max(3600).describe("Random start delay up to this"),
    catch_up_window_seconds: z
      .number()
      .int()
      .min(0)
      .max(366 * 86400)
      .describe("Catch up only within this (default: config)"),
    trigger: z.enum(JOB_TRIGGERS).describe("http: POST /hooks/{job_id} with its token starts a run"),
    after: z.strictObject({ job: z.string(), on: z.enum(AFTER_ON).optional() }).describe("After each run of job ending on (default completed)"),
    check: z.string().min(1).describe("Gate check from config"),
    self_service: z.boolean().describe("Runs may pause/reschedule it"),
  };
});

export const addJobInput = lazily(() => z.strictObject(jobFieldsShape()).partial().required({ schedule: true, prompt: true }));
export type AddJobInput = z.infer<ReturnType<typeof addJobInput>>;

/**
 * Fields of update_cron: any of the above but `enabled` (pause and resume do that) and
 * `trigger` (its token is shown once, when the job is made); null clears an optional one.
 */
export const updateJobInput = lazily(() => {
  const F = jobFieldsShape();
  const { enabled: _enabled, trigger: _trigger, ...updatable } = F;
  return z
    .strictObject({
      ...updatable,
      name: F.name.nullable(),
      executor: F.executor.nullable(),
      work_dir: F.work_dir.nullable(),
      output_schema: F.output_schema.nullable(),
      max_runs: F.max_runs.nullable(),
      expires_at: F.expires_at.nullable(),
      max_cost_usd: F.max_cost_usd.nullable(),
      on_complete: F.on_complete.nullable(),
      on_fail: F.on_fail.nullable(),
      prompt_context: F.prompt_context.nullable(),
      catch_up_window_seconds: F.catch_up_window_seconds.nullable(),
      after: F.after.nullable(),
      check: F.check.nullable(),
    })
    .partial();
});
export type UpdateJobInput = z.infer<ReturnType<typeof updateJobInput>>;

export { hasNoControlChars };
