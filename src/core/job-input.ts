import { z } from "zod";
import {
  CATCH_UP_POLICIES,
  DELIVER_EVENTS,
  JOB_TYPES,
  NOTIFY_EVENTS,
  OUTPUT_FORMATS,
  OVERLAP_POLICIES,
  SESSION_MODES,
} from "./jobs.js";

/**
 * The job fields a caller may set, as a zod shape: the tools' input schemas and the CLI's
 * flags are both built from it, so the two never drift apart. Cross-field rules (schedule,
 * timezone, executor, work_dir, output_schema) are checked in the core, which words them.
 */
const hasNoControlChars = (s: string) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s);
const webhookUrl = z
  .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
  .max(2048)
  .describe("Webhook URL that receives a JSON POST of the run");

export const JobFieldsShape = {
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[\p{L}\p{N}][\p{L}\p{N} ._:@/-]*$/u, "must start with a letter or digit and use letters, digits, spaces and . _ : @ / -")
    .describe("Unique, human-friendly name; usable wherever a job id is taken. Makes add_cron safe to retry."),
  schedule: z
    .string()
    .min(1)
    .max(200)
    .describe('When to run: cron ("0 9 * * 1-5", 6 fields with seconds first), "@daily", "@every 15m", an ISO time ("2026-12-01T09:00"), or a delay ("in 20m")'),
  prompt: z.string().min(1).describe("What the agent is asked to do on each run (up to 32 KiB)"),
  timezone: z.string().min(1).max(64).describe("IANA timezone for the schedule, e.g. Europe/Paris (default: the server's)"),
  executor: z.string().min(1).max(64).describe("Executor name from the operator's config (default: its default_executor)"),
  work_dir: z.string().min(1).max(4096).describe("Absolute directory the agent works in; must be inside the configured work_dir_roots"),
  session: z.enum(SESSION_MODES).describe("isolated: a fresh agent session every run (default); persistent: one session resumed each run"),
  type: z.enum(JOB_TYPES).describe("resource-intensive runs go one at a time (default medium)"),
  timeout_seconds: z.number().int().min(1).max(7 * 24 * 3600).describe("Kill a run after this long (default 1800)"),
  retries: z.number().int().min(0).max(10).describe("Retries of a failed or timed-out run (default 3)"),
  retry_delay_seconds: z.number().min(0).max(3600).describe("First retry delay, doubling each time (default 1)"),
  output_format: z.enum(OUTPUT_FORMATS).describe("text (default), json (must parse) or structured (must match output_schema)"),
  output_schema: z.record(z.string(), z.unknown()).describe("JSON Schema the output must match (output_format structured)"),
  overlap: z.enum(OVERLAP_POLICIES).describe("When the previous run is still going: skip (default), queue_one, replace, allow"),
  catch_up: z.enum(CATCH_UP_POLICIES).describe("Occurrences missed while the server was down: latest (default), all, none"),
  max_runs: z.number().int().min(1).max(1_000_000_000).describe("Stop after this many runs"),
  expires_at: z.string().min(1).max(64).describe("ISO time after which the job stops"),
  max_cost_usd: z.number().positive().max(1_000_000).describe("Cost cap for one run, where the executor can enforce it"),
  pause_after_failures: z.number().int().min(0).max(1000).describe("Pause the job after this many failed runs in a row (default 5; 0 never)"),
  enabled: z.boolean().describe("false creates the job paused"),
  silent: z.boolean().describe("true sends no notifications or webhooks"),
  notify_on: z.array(z.enum(NOTIFY_EVENTS)).max(3).describe("Which run endings notify (default all: completed, failed, canceled)"),
  on_complete: webhookUrl,
  on_fail: webhookUrl,
  deliver_to: z
    .array(z.string().min(1).max(64))
    .max(10)
    .describe('Channels (named in the operator\'s config) that get the results, e.g. ["team"]'),
  deliver_on: z
    .array(z.enum(DELIVER_EVENTS))
    .max(5)
    .describe("Endings sent to deliver_to (default completed, failed, paused); changed: only an answer unlike the last"),
};

export const AddJobInput = z.strictObject(JobFieldsShape).partial().required({ schedule: true, prompt: true });
export type AddJobInput = z.infer<typeof AddJobInput>;

/** Fields of update_cron: any of the above but `enabled` (pause and resume do that); null clears an optional one. */
const { enabled: _enabled, ...updatable } = JobFieldsShape;
const F = JobFieldsShape;
export const UpdateJobInput = z
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
  })
  .partial();
export type UpdateJobInput = z.infer<typeof UpdateJobInput>;

export { hasNoControlChars };
