import type { App, Approver } from "./app.js";
import type { Activity } from "./activity.js";
import type { AuditReport } from "./ledger.js";
import { encodeCursor } from "./queries.js";
import { UserError, errorMessage, kindOf } from "../kernel/errors.js";
import type { AppEventBus } from "./events.js";
import type { Job, JobState, Run, RunStatus, RunWithOutput } from "./jobs.js";
import { clipChars, describeJob, jobRow, runRow, type JobRow, type RunRow } from "./views.js";

export interface NextRuns {
  next_runs: string[];
  next_runs_utc: string[];
}
export interface AddCronResult extends NextRuns {
  job: Job;
  created: boolean;
  description: string;
  warnings: string[];
  /** The config's approval mode, so the MCP edge knows whether to ask the user. */
  approval: "none" | "ask" | "required";
  /** An event-triggered job's token, shown once when it is made. */
  trigger_token?: string;
}

/** Who asks: a person at the CLI, or an MCP client (an agent), whose jobs may need approval. */
export interface AddCronArgs {
  input: unknown;
  created_by: string;
  origin?: "cli" | "mcp";
  /** The user accepted this job when asked (approval: ask). */
  approved?: boolean;
  /** Check and describe, store nothing. */
  dry_run?: boolean;
}
export interface JobChange extends NextRuns {
  job: Job;
  description: string;
}
export interface JobView extends NextRuns {
  job: Job;
  description: string;
  recent_runs: RunRow[];
}
export interface Preview extends NextRuns {
  valid: boolean;
  description: string;
  error?: string;
}

/**
 * Everything the MCP tools, resources and CLI ask of agent-cron, as plain JSON in and out.
 * The process that owns the data dir serves it from its App (LocalApi); other processes on
 * the same data dir forward each call to the owner (RemoteApi), so every process answers
 * with the same data.
 */
export interface CronApi {
  readonly events: AppEventBus;
  addCron(a: AddCronArgs): Promise<AddCronResult>;
  /** `timezone` is the server's: a model-facing row leaves it out where a job has this one. */
  listCrons(a: {
    state?: JobState;
    query?: string;
    limit?: number;
    cursor?: string;
  }): Promise<{ jobs: JobRow[]; total: number; next_cursor: string | null; timezone: string }>;
  listRuns(a: { job?: string; status?: RunStatus; limit?: number; cursor?: string }): Promise<{ runs: RunRow[]; next_cursor: string | null }>;
  pause(a: { job: string }): Promise<JobChange>;
  resume(a: { job: string }): Promise<JobChange>;
  remove(a: { job: string; keep_runs?: boolean }): Promise<{ removed: string }>;
  getCron(a: { job: string }): Promise<JobView>;
  /** `by`: the client that asks, for the record when the change sends the job back for approval. */
  updateCron(a: { job: string; patch: unknown; origin?: "cli" | "mcp"; by?: string }): Promise<JobChange>;
  /**
   * A person approves or rejects a job waiting for approval; the CLI and dashboard only, never
   * a tool. `via` is what the caller says it is; who it is, is filled in by the edge that
   * checked it (actAsChecked), never taken from the caller.
   */
  approve(a: DecisionArgs): Promise<JobChange>;
  reject(a: DecisionArgs): Promise<{ removed: string }>;
  /** POST /hooks/{job_id}: starts a run of an event-triggered job (null when queued behind the one going). */
  triggerEvent(a: { job_id: string; token: string; payload: string }): Promise<{ run: Run | null }>;
  runNow(a: { job: string }): Promise<{ run: Run; job_name: string | null }>;
  waitRun(a: { run: string }): Promise<{ run: Run }>;
  cancelRun(a: { run: string }): Promise<{ run: Run }>;
  previewSchedule(a: { schedule: string; timezone?: string; count?: number }): Promise<Preview>;
  readRun(a: { run: string }): Promise<RunWithOutput & { job_name: string | null }>;
  /** Whole job records, a page at a time (the cron://jobs resource and resource listing). */
  jobsPage(a: { cursor?: string }): Promise<JobsPage>;
  /** Completion of resource ids. */
  completeIds(a: { kind: "job" | "run"; prefix: string }): Promise<string[]>;
  /** The dashboard's jobs page: job rows, each with its newest runs (`runs`, default 20), in one call. */
  overview(a: {
    state?: JobState;
    query?: string;
    limit?: number;
    cursor?: string;
    runs?: number;
  }): Promise<{ jobs: JobOverview[]; total: number; next_cursor: string | null }>;
  /** The dashboard's job page: a job's runs, newest first, with their cost. */
  jobRuns(a: { job: string; limit?: number; cursor?: string }): Promise<{ runs: RunBrief[]; next_cursor: string | null }>;
  /** Every occurrence since `since` (default 7d) against its records (SPEC §18): counts per job and what has no record. */
  audit(a: { job?: string; since?: string; limit?: number }): Promise<AuditReport>;
  /** The next occurrences across every active job, soonest first (agent-cron status). */
  upcoming(a: { count?: number }): Promise<{ occurrences: Upcoming[] }>;
  /** The dashboard's pictures (SPEC §22): the past and next day's occurrences across jobs, and the cost per day. */
  activity(a: Record<string, never>): Promise<Activity>;
}

export interface Upcoming {
  job_id: string;
  name: string | null;
  at: string;
}

export interface DecisionArgs {
  job: string;
  via?: Approver["via"];
  /** Set by the edge that checked the caller (actAsChecked); a caller's own is overwritten. */
  by?: string;
}

/** Whether the caller of a call acts for a person (SPEC §20), as the edge that serves it found out. */
export type PersonCheck = { person: true; who: string } | { person: false; why: string };

/** The calls that need a person, or that give a person more rights than an agent. */
export function claimsPerson(method: ApiMethod, args: unknown): boolean {
  if (method === "approve" || method === "reject") return true;
  const a = args as { origin?: string; approved?: boolean } | null;
  return (method === "addCron" || method === "updateCron") && (a?.origin === "cli" || a?.approved === true);
}

/**
 * A call as the checked caller may make it: approving and rejecting need a person; a job
 * added or changed "from the CLI" (no approval needed) or "accepted by the user" by anything
 * else is treated as an agent's. Who approved is taken from the check, not from the caller.
 */
export function actAsChecked(method: ApiMethod, args: unknown, check: PersonCheck): unknown {
  const a = (args ?? {}) as Record<string, unknown>;
  if (method === "approve" || method === "reject") {
    if (!check.person) {
      throw new UserError(
        `${method === "approve" ? "Approving" : "Rejecting"} a job is a person's act, and this caller is not one: ${check.why}. ` +
          "A person approves at a terminal with agent-cron approve JOB, or on the dashboard signed in with the approver secret.",
      );
    }
    const via = a.via === "dashboard" ? "dashboard" : "cli";
    return { ...a, via, by: via === "dashboard" ? `the approver signed in on the dashboard served by ${check.who}` : check.who };
  }
  if (check.person || !claimsPerson(method, args)) return args;
  return { ...a, origin: "mcp", approved: false, ...(method === "addCron" ? { created_by: "a run (through the CLI)" } : { by: "a run (through the CLI)" }) };
}

/** A run as the dashboard lists it: no answer, with its cost; `error` cut at 300 characters. */
export interface RunBrief {
  id: string;
  job_id: string;
  status: RunStatus;
  trigger: Run["trigger"];
  scheduled_for: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  attempts: number;
  error: string | null;
  cost_usd: number | null;
  delivery: Run["delivery"];
  outcome: Run["outcome"];
  outcome_note: string | null;
  after_run: string | null;
}
export interface JobOverview {
  job: JobRow;
  /** Newest first. */
  runs: RunBrief[];
}
const runBrief = (r: Run): RunBrief => ({
  id: r.id,
  job_id: r.job_id,
  status: r.status,
  trigger: r.trigger,
  scheduled_for: r.scheduled_for,
  started_at: r.started_at,
  finished_at: r.finished_at,
  duration_ms: r.duration_ms,
  attempts: r.attempts,
  error: r.error === null ? null : clipChars(r.error, 300).text,
  cost_usd: r.usage?.cost_usd ?? null,
  delivery: r.delivery,
  outcome: r.outcome,
  outcome_note: r.outcome_note === null ? null : clipChars(r.outcome_note, 300).text,
  after_run: r.after_run,
});
/** The dashboard's jobs page shows at most this many jobs at once. */
export const OVERVIEW_MAX = 1000;

export const API_METHODS = [
  "addCron",
  "listCrons",
  "listRuns",
  "pause",
  "resume",
  "remove",
  "getCron",
  "updateCron",
  "runNow",
  "waitRun",
  "cancelRun",
  "previewSchedule",
  "readRun",
  "jobsPage",
  "completeIds",
  "approve",
  "reject",
  "triggerEvent",
  "overview",
  "jobRuns",
  "upcoming",
  "audit",
  "activity",
] as const satisfies readonly Exclude<keyof CronApi, "events">[];
export type ApiMethod = (typeof API_METHODS)[number];

/**
 * A CronApi whose methods each go to `call(method, args)` (a Host forwarding to the owner of its
 * data dir): one method per name in API_METHODS, so the API is described once, there.
 */
abstract class ApiForwarder {
  protected abstract call<T>(method: ApiMethod, args: unknown): Promise<T>;
  static {
    for (const method of API_METHODS) {
      Object.defineProperty(ApiForwarder.prototype, method, {
        value(this: ApiForwarder, args: unknown) {
          return this.call(method, args);
        },
        writable: true,
        configurable: true,
      });
    }
  }
}
export const ForwardingApi = ApiForwarder as abstract new () => ApiForwarder & Pick<CronApi, ApiMethod>;

/** The calls that change nothing: safe to repeat on another owner, or after a timeout. */
export const READ_METHODS: ReadonlySet<ApiMethod> = new Set([
  "listCrons",
  "listRuns",
  "getCron",
  "previewSchedule",
  "readRun",
  "jobsPage",
  "completeIds",
  "waitRun",
  "overview",
  "jobRuns",
  "upcoming",
  "audit",
  "activity",
]);

const MAX_COMPLETIONS = 100;
/** A cron://jobs page holds at most this many jobs, and stops once past this many bytes of JSON. */
export const JOBS_PAGE_MAX = 100;
const JOBS_PAGE_BYTES = 256 * 1024;

export interface JobsPage {
  jobs: Job[];
  total: number;
  /** Read `cron://jobs?cursor=<next_cursor>` for the next page; null on the last. */
  next_cursor: string | null;
}

/**
 * The API served straight from this process's App: the commands go to its job service, the
 * answers come from its queries, shaped for the wire here. Every call that reads or names a
 * record first waits for the runtime to be in sync (a fleet's mirror has heard every change
 * acknowledged anywhere before the call), so a change made through another process is in the
 * answer.
 */
export class LocalApi implements CronApi {
  constructor(readonly app: App) {}

  get events(): AppEventBus {
    return this.app.runtime.events;
  }

  private synced(): Promise<void> {
    return this.app.runtime.synced();
  }

  private next(job: Job, count = 5): NextRuns {
    const q = this.app.queries;
    const runs = q.nextRuns(job, count);
    return { next_runs: runs.map((d) => q.formatTime(d, job.timezone)), next_runs_utc: runs.map((d) => d.toISOString()) };
  }

  async addCron({ input, created_by, origin, approved, dry_run }: AddCronArgs): Promise<AddCronResult> {
    const { job, created, warnings, triggerToken } = await this.app.jobs.add(input, created_by, { origin, approved, dryRun: dry_run });
    return {
      job,
      created,
      ...this.next(job),
      description: describeJob(job),
      warnings,
      approval: this.app.queries.config.approval,
      ...(triggerToken ? { trigger_token: triggerToken } : {}),
    };
  }

  async listCrons(a: Parameters<CronApi["listCrons"]>[0]) {
    await this.synced();
    const q = this.app.queries;
    const page = q.listJobs(a);
    return { jobs: page.items.map(jobRow), total: page.total ?? page.items.length, next_cursor: page.next_cursor, timezone: q.config.timezone };
  }

  async listRuns(a: Parameters<CronApi["listRuns"]>[0]) {
    await this.synced();
    const page = this.app.queries.listRuns(a);
    return { runs: page.items.map((r) => this.row(r)), next_cursor: page.next_cursor };
  }

  private jobName(id: string): string | null {
    return this.app.queries.job(id)?.name ?? null;
  }

  private row(run: Run): RunRow {
    return runRow(run, this.jobName(run.job_id));
  }

  private change(job: Job): JobChange {
    return { job, description: describeJob(job), ...this.next(job, 3) };
  }

  async pause({ job }: { job: string }) {
    await this.synced();
    return this.change(await this.app.jobs.pause(job));
  }

  async resume({ job }: { job: string }) {
    await this.synced();
    return this.change(await this.app.jobs.resume(job));
  }

  async remove({ job, keep_runs }: { job: string; keep_runs?: boolean }) {
    await this.synced();
    return { removed: await this.app.jobs.remove(job, keep_runs ?? false) };
  }

  async getCron({ job: ref }: { job: string }): Promise<JobView> {
    await this.synced();
    const q = this.app.queries;
    const job = q.resolveJob(ref);
    return { job, description: describeJob(job), ...this.next(job), recent_runs: q.recentRuns(job.id, 10).map((r) => this.row(r)) };
  }

  async updateCron({ job: ref, patch, origin, by }: { job: string; patch: unknown; origin?: "cli" | "mcp"; by?: string }) {
    await this.synced();
    return this.change(await this.app.jobs.update(ref, patch, { origin, by }));
  }

  async approve({ job, by, via }: DecisionArgs) {
    await this.synced();
    return this.change(await this.app.jobs.approve(job, { by: by ?? "a person", via: via ?? "cli" }));
  }

  async reject({ job, by, via }: DecisionArgs) {
    await this.synced();
    return { removed: await this.app.jobs.reject(job, { by: by ?? "a person", via: via ?? "cli" }) };
  }

  async triggerEvent({ job_id, token, payload }: { job_id: string; token: string; payload: string }) {
    return { run: await this.app.jobs.triggerEvent(job_id, token, payload) };
  }

  async runNow({ job }: { job: string }) {
    await this.synced();
    const run = await this.app.jobs.runNow(job);
    return { run, job_name: this.jobName(run.job_id) };
  }

  async waitRun({ run }: { run: string }) {
    await this.synced();
    return { run: await this.app.queries.waitForRun(run) };
  }

  async cancelRun({ run }: { run: string }) {
    await this.synced();
    return { run: await this.app.jobs.cancelRun(run) };
  }

  async previewSchedule({ schedule, timezone, count }: { schedule: string; timezone?: string; count?: number }): Promise<Preview> {
    try {
      return { valid: true, ...this.app.queries.preview(schedule, timezone, count ?? 5) };
    } catch (err) {
      if (kindOf(err) !== "user") throw err;
      // An invalid schedule is an answer here, not a failure.
      return { valid: false, description: "", next_runs: [], next_runs_utc: [], error: errorMessage(err) };
    }
  }

  async readRun({ run }: { run: string }) {
    await this.synced();
    const record = await this.app.queries.getRun(run);
    return { ...record, job_name: this.jobName(record.job_id) };
  }

  async jobsPage({ cursor }: { cursor?: string }): Promise<JobsPage> {
    await this.synced();
    const page = this.app.queries.listJobs({ limit: JOBS_PAGE_MAX, cursor });
    // Whole records can be 33 KB each (a 32 KiB prompt): the page also stops at a byte budget.
    const jobs: Job[] = [];
    let bytes = 0;
    for (const job of page.items) {
      bytes += JSON.stringify(job).length;
      if (jobs.length > 0 && bytes > JOBS_PAGE_BYTES) break;
      jobs.push(job);
    }
    const cut = jobs.length < page.items.length;
    const next = cut ? encodeCursor(jobs[jobs.length - 1].id) : page.next_cursor;
    return { jobs, total: page.total ?? jobs.length, next_cursor: next };
  }

  async completeIds({ kind, prefix }: { kind: "job" | "run"; prefix: string }) {
    await this.synced();
    const q = this.app.queries;
    const out: string[] = [];
    const ids = kind === "job" ? [...q.allJobs()].map((j) => j.id) : q.listRuns({ limit: 100 }).items.map((r) => r.id);
    for (const id of ids) {
      if (id.startsWith(prefix)) out.push(id);
      if (out.length === MAX_COMPLETIONS) break;
    }
    return out;
  }

  async overview({ runs: count = 20, limit = 100, cursor, ...filter }: Parameters<CronApi["overview"]>[0]) {
    await this.synced();
    if (!Number.isInteger(limit) || limit < 1 || limit > OVERVIEW_MAX)
      throw new UserError(`limit must be a whole number from 1 to ${OVERVIEW_MAX}, got ${limit}.`);
    if (!Number.isInteger(count) || count < 0 || count > 100) throw new UserError(`runs must be a whole number from 0 to 100, got ${count}.`);
    const q = this.app.queries;
    const jobs: JobOverview[] = [];
    let next = cursor ?? null;
    let total = 0;
    // listJobs pages at 100; a larger dashboard page takes several.
    do {
      const page = q.listJobs({ ...filter, limit: Math.min(100, limit - jobs.length), cursor: next ?? undefined });
      for (const job of page.items) jobs.push({ job: jobRow(job), runs: count ? q.recentRuns(job.id, count).map(runBrief) : [] });
      total = page.total ?? jobs.length;
      next = page.next_cursor;
    } while (next && jobs.length < limit);
    return { jobs, total, next_cursor: next };
  }

  async audit(a: Parameters<CronApi["audit"]>[0]) {
    return this.app.queries.audit(a);
  }

  async upcoming({ count = 3 }: { count?: number }) {
    return { occurrences: this.app.queries.upcoming(count).map(({ job, at }) => ({ job_id: job.id, name: job.name, at })) };
  }

  async activity(): Promise<Activity> {
    return this.app.queries.activity();
  }

  /** The executor a job that names none runs with (the dashboard's job page names it). */
  defaultExecutor(): string {
    return this.app.queries.config.default_executor;
  }

  async jobRuns({ job, limit, cursor }: Parameters<CronApi["jobRuns"]>[0]) {
    await this.synced();
    const page = this.app.queries.listRuns({ job, limit, cursor });
    return { runs: page.items.map(runBrief), next_cursor: page.next_cursor };
  }
}
