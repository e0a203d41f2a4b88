import { createHash, randomUUID } from "node:crypto";
import type { z } from "zod";
import type { Config } from "../config.js";
import type { ChannelConfig } from "../kernel/channel-config.js";
import { UserError } from "../kernel/errors.js";
import { describeIssue } from "../kernel/issues.js";
import type { AddJobInput, UpdateJobInput } from "./job-input.js";
import { DEFAULT_DELIVER_ON, MAX_APPROVAL_EVENTS, MAX_PROMPT_BYTES, maxRunsReached, type ApprovalEvent, type Job } from "./jobs.js";
import { checkSchemaDepth, compileOutputSchema } from "./output.js";
import { ID_LIKE } from "./queries.js";
import { parseSchedule, type ParsedSchedule } from "./schedule.js";
import { isValidTimezone, toIsoInZone } from "../kernel/time.js";
import { resolveWorkDir } from "./work-dirs.js";
import { refuseCycle } from "./chain.js";

/**
 * What a job may be: every field a caller gives is checked here, with one sentence that says
 * what is wrong and how to fix it, before anything is stored. The checks read the config of
 * the moment (executors, channels, work_dir roots), never the store.
 */
export interface DefinitionContext {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  /** Throws a UserError when the config has no executor of that name. */
  checkExecutor(name: string): void;
  /** Paths a work_dir may not be, be inside, or hold (the data dir, the default work root). */
  readonly forbiddenWorkDirs: string[];
  /** A stored job by id, name or id prefix (throws a UserError naming the ref when none). */
  resolveJob(ref: string): Job;
  getJob(id: string): Job | undefined;
  /** The delivery parts' own checks (src/delivery/), handed in by the composition root. */
  readonly delivery: DeliveryChecks;
}

/** What delivery says a job's targets must be; core asks, src/delivery/ knows. */
export interface DeliveryChecks {
  /** Throws a UserError when `url` may not be a webhook (`field` names it in the sentence). */
  checkWebhookUrl(url: string, field: string, allowPrivate: boolean): void;
  /** Why a configured channel cannot send now (a variable it names is unset), or null. */
  channelProblem(name: string, channel: ChannelConfig, env: NodeJS.ProcessEnv): string | null;
}

/** What a caller defined, for add_cron's retry-safety check. */
const DEFINITION_FIELDS = [
  "schedule",
  "timezone",
  "prompt",
  "executor",
  "work_dir",
  "session",
  "type",
  "timeout_seconds",
  "retries",
  "retry_delay_seconds",
  "output_format",
  "output_schema",
  "overlap",
  "catch_up",
  "max_runs",
  "max_cost_usd",
  "pause_after_failures",
  "silent",
  "notify_on",
  "on_complete",
  "on_fail",
  "deliver_to",
  "deliver_on",
  "on_permission_denied",
  "on_empty",
  "requires_mcp",
  "prompt_context",
  "jitter_seconds",
  "catch_up_window_seconds",
  "trigger",
  "after",
  "check",
  "self_service",
] as const;

/**
 * What a job does, when, and where its results go (SPEC §20): under approval "ask" or
 * "required", an agent's change of one sends the job back to a person. A list of names, not
 * of Job keys, so that fields added later (`after`, `check`) are covered by adding them here.
 */
export const REAPPROVAL_FIELDS: readonly string[] = [
  "prompt",
  "schedule",
  "timezone",
  "executor",
  "work_dir",
  "on_complete",
  "on_fail",
  "deliver_to",
  "deliver_on",
  "output_schema",
  "requires_mcp",
  "trigger",
  "after",
  "check",
];

export function sameDefinition(a: Job, b: Job): boolean {
  return DEFINITION_FIELDS.every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

export function parseInput<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: z.ZodError } }, raw: unknown): T {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  throw new UserError(describeIssue(r.error.issues[0] as z.core.$ZodIssue, raw));
}

/**
 * A new output_schema must compile (ajv loads lazily, so this awaits). Done before a change
 * reads the job it changes: an await between that read and the store would let a
 * concurrent change be overwritten.
 */
export async function compileSchema(schema: Record<string, unknown> | null | undefined): Promise<void> {
  if (!schema) return;
  // Before anything recursive (JSON.stringify, ajv) sees it.
  checkSchemaDepth(schema);
  if (JSON.stringify(schema).length > 64 * 1024) throw new UserError("output_schema is larger than 64 KiB.");
  await compileOutputSchema(schema);
}

export function checkTimezone(tz: string): string {
  if (!isValidTimezone(tz)) throw new UserError(`Unknown timezone "${tz}"; use an IANA name such as Europe/Paris or America/New_York.`);
  return tz;
}

function checkPrompt(prompt: string): string {
  const bytes = Buffer.byteLength(prompt);
  if (!prompt.trim()) throw new UserError("prompt is empty; say what the agent should do.");
  if (bytes > MAX_PROMPT_BYTES)
    throw new UserError(
      `prompt is ${bytes} bytes; the limit is ${MAX_PROMPT_BYTES} (32 KiB). Put long instructions in a file in the work dir and refer to it.`,
    );
  if (prompt.includes("\u0000")) throw new UserError("prompt contains a NUL character; remove it.");
  return prompt;
}

/**
 * A name is looked up wherever an id is (SPEC §20): one that could pass for a job or run id,
 * or for the start of one (8+ hex digits, as list prints ids), could stand in for another
 * job in `agent-cron approve <prefix>`. Stored names from before this rule still load; see
 * legacyNameProblem.
 */
export function checkName(name: string): string {
  if (ID_LIKE.test(name)) {
    throw new UserError(
      `name "${name}" looks like a job id or the start of one (8 or more hex digits and dashes), so it could be taken for another job; use a name with another letter or sign in it, such as "job-${name}".`,
    );
  }
  return name;
}

/** A stored name that breaks checkName's rule: what to tell the person, or null. */
export function legacyNameProblem(job: Job): string | null {
  if (job.name === null || !ID_LIKE.test(job.name)) return null;
  return `Job ${job.id} is named "${job.name}", which looks like a job id; it is still found by its id, and by that name only while no id starts with it. Rename it: agent-cron update ${job.id} --name <new name> (or update_cron with "name").`;
}

function checkTime(value: string, timezone: string, field: string, now: number): string {
  let d: Date | null;
  try {
    d = parseSchedule(value, timezone, new Date(0)).runAt;
  } catch {
    d = null;
  }
  if (!d || !/^\d{4}-\d{2}-\d{2}T/.test(value.trim())) throw new UserError(`${field} must be an ISO date-time such as 2026-12-31T23:59, got "${value}".`);
  if (d.getTime() <= now) throw new UserError(`${field} ${toIsoInZone(d, timezone)} is in the past.`);
  return toIsoInZone(d, timezone);
}

function checkWorkDir(ctx: DefinitionContext, dir: string): string {
  return resolveWorkDir(dir, ctx.config.work_dir_roots, ctx.forbiddenWorkDirs);
}

/** The gate check a job names must be one the operator configured (callers never choose programs). */
function checkCheck(ctx: DefinitionContext, name: string | null): void {
  if (name === null || ctx.config.checks[name]) return;
  const known = Object.keys(ctx.config.checks);
  throw new UserError(
    `check names "${name.length > 64 ? `${name.slice(0, 64)}…` : name}", which is not a configured check; ` +
      (known.length ? `the checks are: ${known.join(", ")}.` : "the operator has configured no checks (config key checks)."),
  );
}

/** `after` as given (a job id or name) → as stored (the upstream's id), refusing a loop. */
function checkAfter(
  ctx: DefinitionContext,
  self: Pick<Job, "id" | "name">,
  after: { job: string; on?: "completed" | "failed" | "any" } | null | undefined,
): Job["after"] {
  if (!after) return null;
  let upstream: Job;
  try {
    upstream = ctx.resolveJob(after.job);
  } catch {
    throw new UserError(`after names job "${after.job}", which does not exist; list_crons shows the jobs.`);
  }
  refuseCycle({ get: (id) => ctx.getJob(id) }, self, upstream.id);
  return { job: upstream.id, on: after.on ?? "completed" };
}

/** The fields that refer to the operator's config: webhooks, channels, the output settings. */
function checkReferences(ctx: DefinitionContext, job: Job): void {
  checkCheck(ctx, job.check);
  if (job.output_format === "structured" && !job.output_schema) {
    throw new UserError('output_format "structured" needs an output_schema (a JSON Schema object).');
  }
  const allow = ctx.config.webhooks.allow_private_networks;
  if (job.on_complete) ctx.delivery.checkWebhookUrl(job.on_complete, "on_complete", allow);
  if (job.on_fail) ctx.delivery.checkWebhookUrl(job.on_fail, "on_fail", allow);
  // Callers pick channels by name; the operator's config says where they go.
  const channels = ctx.config.channels;
  for (const name of job.deliver_to) {
    const channel = channels[name];
    if (!channel) {
      const known = Object.keys(channels);
      throw new UserError(
        `deliver_to names "${name}", which is not a configured channel; ` +
          (known.length ? `the channels are: ${known.join(", ")}.` : "the operator has configured no channels (config key channels)."),
      );
    }
    const missing = ctx.delivery.channelProblem(name, channel, ctx.env);
    if (missing) throw new UserError(`deliver_to names "${name}", which cannot send: ${missing}.`);
  }
}

/** A new job from add_cron's input, checked; its schedule is returned for the caller's cache. */
export function draftJob(ctx: DefinitionContext, input: AddJobInput, createdBy: string, now: number): { job: Job; schedule: ParsedSchedule } {
  const nowIso = (tz: string) => toIsoInZone(new Date(now), tz);
  const timezone = checkTimezone(input.timezone ?? ctx.config.timezone);
  const schedule = parseSchedule(input.schedule, timezone, new Date(now));
  // A job that names no executor follows default_executor at run time, so changing the
  // default fixes jobs made before the change.
  const executor = input.executor ?? null;
  ctx.checkExecutor(executor ?? ctx.config.default_executor);
  const state = input.enabled === false ? "paused" : "active";
  const job: Job = {
    id: randomUUID(),
    name: input.name === undefined ? null : checkName(input.name),
    schedule: input.schedule.trim(),
    run_at: schedule.runAt ? toIsoInZone(schedule.runAt, timezone) : null,
    timezone,
    prompt: checkPrompt(input.prompt),
    executor,
    work_dir: input.work_dir === undefined ? null : checkWorkDir(ctx, input.work_dir),
    session: input.session ?? "isolated",
    session_id: null,
    type: input.type ?? "medium",
    timeout_seconds: input.timeout_seconds ?? 1800,
    retries: input.retries ?? 3,
    retry_delay_seconds: input.retry_delay_seconds ?? 1,
    output_format: input.output_format ?? "text",
    output_schema: input.output_schema ?? null,
    overlap: input.overlap ?? "skip",
    catch_up: input.catch_up ?? "latest",
    max_runs: input.max_runs ?? null,
    expires_at: input.expires_at === undefined ? null : checkTime(input.expires_at, timezone, "expires_at", now),
    max_cost_usd: input.max_cost_usd ?? null,
    pause_after_failures: input.pause_after_failures ?? 5,
    enabled: state === "active",
    state,
    silent: input.silent ?? false,
    notify_on: input.notify_on ? [...new Set(input.notify_on)] : ["completed", "failed", "canceled"],
    on_complete: input.on_complete ?? null,
    on_fail: input.on_fail ?? null,
    deliver_to: input.deliver_to ? [...new Set(input.deliver_to)] : [],
    deliver_on: input.deliver_on ? [...new Set(input.deliver_on)] : [...DEFAULT_DELIVER_ON],
    on_permission_denied: input.on_permission_denied ?? "fail",
    on_empty: input.on_empty ?? "warn",
    schedule_history: [],
    missed_spans: [],
    backlog_due: [],
    requires_mcp: input.requires_mcp ? [...new Set(input.requires_mcp)] : [],
    prompt_context: input.prompt_context ?? null,
    jitter_seconds: input.jitter_seconds ?? 0,
    catch_up_window_seconds: input.catch_up_window_seconds ?? null,
    trigger: input.trigger ?? "schedule",
    trigger_token_hash: null,
    approvals: [],
    after: null,
    check: input.check ?? null,
    self_service: input.self_service ?? false,
    notes: [],
    created_by: createdBy,
    created_at: nowIso(timezone),
    updated_at: nowIso(timezone),
    last_run_at: null,
    last_status: null,
    last_error: null,
    last_scheduled_for: null,
    schedule_from: null,
    next_run_at: null,
    run_count: 0,
    consecutive_failures: 0,
  };
  job.after = checkAfter(ctx, job, input.after);
  checkReferences(ctx, job);
  return { job, schedule };
}

/**
 * The job after update_cron's patch, checked. `firstRun` gives the next occurrence of a
 * candidate, so a change that would leave an active job that never fires is refused (add_cron
 * refuses such a job too). Pure apart from the clock: safe to apply to the newest stored copy.
 */
export function patchedJob(
  ctx: DefinitionContext,
  job: Job,
  patch: UpdateJobInput,
  now: number,
  firstRun: (candidate: Job) => Date | undefined,
  opts: { origin?: "cli" | "mcp"; by?: string; nameTaken(name: string): boolean },
): { job: Job; first: Date | undefined } {
  const timezone = patch.timezone !== undefined ? checkTimezone(patch.timezone) : job.timezone;
  const next: Job = { ...job };
  for (const [key, value] of Object.entries(patch)) {
    if (value !== undefined) (next as Record<string, unknown>)[key] = value;
  }
  next.timezone = timezone;
  const newSchedule = patch.schedule !== undefined || patch.timezone !== undefined;
  if (newSchedule) {
    const sched = parseSchedule(next.schedule, timezone, new Date(now));
    next.schedule = next.schedule.trim();
    next.run_at = sched.runAt ? toIsoInZone(sched.runAt, timezone) : null;
    if (next.state === "completed") next.state = "active";
    // A new schedule counts from now: nothing before the change is caught up.
    next.schedule_from = toIsoInZone(new Date(now), timezone);
  }
  if (patch.prompt !== undefined) next.prompt = checkPrompt(patch.prompt);
  if (patch.executor) ctx.checkExecutor(patch.executor);
  if (typeof patch.work_dir === "string") next.work_dir = checkWorkDir(ctx, patch.work_dir);
  if (typeof patch.expires_at === "string") next.expires_at = checkTime(patch.expires_at, timezone, "expires_at", now);
  if (patch.notify_on) next.notify_on = [...new Set(patch.notify_on)];
  if (patch.deliver_to) next.deliver_to = [...new Set(patch.deliver_to)];
  if (patch.deliver_on) next.deliver_on = [...new Set(patch.deliver_on)];
  if (patch.session === "isolated") next.session_id = null;
  if (patch.name && patch.name !== job.name) checkName(patch.name);
  if (patch.after !== undefined) next.after = checkAfter(ctx, next, patch.after);
  if (patch.name && patch.name !== job.name && opts.nameTaken(patch.name)) {
    throw new UserError(`Another job is already named "${patch.name}"; choose another name.`);
  }
  checkReferences(ctx, next);
  next.updated_at = toIsoInZone(new Date(now), timezone);
  const first = firstRun(next);
  if (next.state === "active" && !first) {
    const why = maxRunsReached(next)
      ? `it has run ${next.run_count} times and max_runs is ${next.max_runs}`
      : next.expires_at && Date.parse(next.expires_at) <= now
        ? `its expires_at ${next.expires_at} has passed`
        : "its schedule has no occurrence left before expires_at";
    throw new UserError(`After this change the job would never run: ${why}. Change that too, or pause or remove the job.`);
  }
  // Under approval, an agent that changes what a job does, when, or where its results go
  // sends it back to a person, saying which fields and who changed them.
  const changed = REAPPROVAL_FIELDS.filter(
    (k) => k in patch && JSON.stringify((next as Record<string, unknown>)[k] ?? null) !== JSON.stringify((job as Record<string, unknown>)[k] ?? null),
  );
  if (opts.origin !== "cli" && ctx.config.approval !== "none" && changed.length && next.state !== "completed") {
    next.state = "pending_approval";
    next.approvals = withApprovalEvent(job.approvals, { event: "sent_back", at: next.updated_at, by: opts.by ?? "an MCP client", via: "mcp", fields: changed });
  }
  next.next_run_at = first && next.state === "active" ? toIsoInZone(first, timezone) : null;
  return { job: next, first };
}

/** The job's approval events with one more, the oldest dropped past MAX_APPROVAL_EVENTS. */
export function withApprovalEvent(events: readonly ApprovalEvent[] | undefined, event: ApprovalEvent): ApprovalEvent[] {
  return [...(events ?? []), event].slice(-MAX_APPROVAL_EVENTS);
}

/** Event trigger tokens are kept as SHA-256 hashes, compared in constant time. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
