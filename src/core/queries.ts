import type { Config } from "../config.js";
import { UserError } from "../kernel/errors.js";
import { toIsoInZone } from "../kernel/time.js";
import { activity, type Activity } from "./activity.js";
import { checkTimezone } from "./job-definitions.js";
import { RUN_STATUSES, type Job, type Run, type RunStatus, type RunWithOutput } from "./jobs.js";
import { OccurrenceCache, auditJob, auditReport, type AuditReport, type JobAudit, type RecordIndexCache } from "./ledger.js";
import type { JobRepo, RunRepo } from "./ports.js";
import { describeSchedule, nextOccurrences, parseSchedule } from "./schedule.js";
import type { Clock } from "./scheduler.js";

/** Answers about jobs and runs, read from the repositories: no writes, no scheduling. */

/**
 * What the queries read of the runtime: its stores, clock and config, and what only the
 * running process knows (each job's next occurrences from its schedule cache, the occurrences
 * waiting now, a run in flight).
 */
export interface QuerySource {
  readonly jobs: JobRepo;
  readonly runs: RunRepo;
  readonly config: Config;
  readonly clock: Clock;
  nextRuns(job: Job, count: number, from?: number): Date[];
  waiting(jobId: string): ReadonlySet<number> | undefined;
  whenDone(runId: string): Promise<Run> | null;
  /** A history that cannot be read is said here (once a minute per sentence), and the answer goes on without it. */
  warn(jobId: string, err: unknown): void;
}

/**
 * The answers every transport gives (list, show, runs, preview, audit, the dashboard's
 * pictures): reads only. A change goes through the job service (job-service.ts).
 */
export class Queries {
  /** What the last audit found, for a metric (see unaccountedOccurrences in ledger.ts). */
  lastAudit: { unaccounted: number; at: number } | null = null;

  constructor(
    private readonly src: QuerySource,
    private readonly ledger: RecordIndexCache,
  ) {}

  get config(): Config {
    return this.src.config;
  }

  job(id: string): Job | undefined {
    return this.src.jobs.get(id);
  }

  allJobs(): Iterable<Job> {
    return this.src.jobs.all();
  }

  /** Finds a job by id, name, or the unique start of its id (8 characters or more, as the CLI prints). */
  resolveJob(ref: string): Job {
    return resolveJob(this.src.jobs, ref);
  }

  listJobs(opts: { state?: Job["state"]; query?: string; limit?: number; cursor?: string }): Page<Job> {
    return listJobs(this.src.jobs, opts);
  }

  listRuns(opts: { job?: string; status?: RunStatus; limit?: number; cursor?: string }): Page<Run> {
    return listRuns(this.src.jobs, this.src.runs, opts);
  }

  /** A job's newest runs, newest first. */
  recentRuns(jobId: string, count: number): Run[] {
    return this.src.runs.ofJob(jobId).slice(-count).reverse();
  }

  getRunRecord(runId: string): Run {
    return resolveRun(this.src.runs, runId);
  }

  async getRun(runId: string): Promise<RunWithOutput> {
    const run = this.getRunRecord(runId);
    // By the resolved id: `runId` may be the 8-character start that lists print.
    const text = (await this.src.runs.readOutput(run.id)) ?? (run.status === "running" ? null : "");
    let output: unknown = text;
    const job = this.src.jobs.get(run.job_id);
    if (text !== null && job && job.output_format !== "text" && run.status === "completed") {
      try {
        output = JSON.parse(text);
      } catch {
        output = text;
      }
    }
    return { ...run, output };
  }

  /** Waits for a run to end (or returns it if it has). */
  async waitForRun(runId: string): Promise<Run> {
    const pending = this.src.whenDone(runId);
    return pending ? await pending : this.getRunRecord(runId);
  }

  /** The job's next occurrences, never at or before the last one handled; none unless it is active. */
  nextRuns(job: Job, count: number, from?: number): Date[] {
    return this.src.nextRuns(job, count, from);
  }

  formatTime(date: Date, timezone = this.src.config.timezone): string {
    return toIsoInZone(date, timezone);
  }

  preview(schedule: string, timezone: string | undefined, count = 5) {
    const tz = checkTimezone(timezone ?? this.src.config.timezone);
    const now = new Date(this.src.clock.now());
    const sched = parseSchedule(schedule, tz, now);
    const runs = nextOccurrences(sched, now, Math.min(Math.max(1, count), 50), now);
    return {
      description: describeSchedule(sched),
      next_runs: runs.map((d) => toIsoInZone(d, tz)),
      next_runs_utc: runs.map((d) => d.toISOString()),
    };
  }

  /**
   * Every occurrence of the jobs (or one job) since `since` (default 7 days; "24h", "30m",
   * "2w" or an ISO time) against its records: counts by outcome per job, and each occurrence
   * that is due and has none.
   */
  audit(opts: { job?: string; since?: string; limit?: number } = {}): AuditReport {
    const now = this.src.clock.now();
    const since = parseSince(opts.since, now);
    const jobs = opts.job ? [this.resolveJob(opts.job)] : [...this.src.jobs.all()];
    const cache = new OccurrenceCache();
    const audits: JobAudit[] = [];
    for (const job of jobs) {
      let source: readonly Run[];
      try {
        source = this.src.runs.ofJob(job.id);
      } catch (err) {
        // A history that cannot be read is named; the other jobs are still audited.
        this.src.warn(job.id, err);
        continue;
      }
      const index = this.ledger.of(job.id, source, this.src.config.runs_per_job);
      audits.push(auditJob(job, index, { since, now, waiting: (id) => this.src.waiting(id) }, cache));
    }
    const report = auditReport(audits, { since, now, timezone: this.src.config.timezone, limit: Math.min(Math.max(1, opts.limit ?? 20), 1000) });
    this.lastAudit = { unaccounted: report.unaccounted, at: now };
    return report;
  }

  /** The next occurrences across every active job, soonest first (`count` from 1 to 20). */
  upcoming(count: number): { job: Job; at: string }[] {
    const n = Math.min(Math.max(1, count), 20);
    const soonest: { at: number; job: Job }[] = [];
    for (const job of this.src.jobs.all()) {
      if (job.state !== "active" || !job.next_run_at) continue;
      const at = Date.parse(job.next_run_at);
      if (soonest.length === n && at >= soonest[n - 1].at) continue;
      soonest.push({ at, job });
      soonest.sort((a, b) => a.at - b.at);
      if (soonest.length > n) soonest.pop();
    }
    return soonest.map(({ job }) => ({ job, at: job.next_run_at! }));
  }

  /** The dashboard's pictures: the past and next day's occurrences across jobs, and the cost per day. */
  activity(): Activity {
    const src = this.src;
    return activity({
      jobs: src.jobs.all(),
      runsOf: (id) => src.runs.ofJob(id),
      allRuns: () => src.runs.all(),
      nextRuns: (job, count, from) => src.nextRuns(job, count, from),
      now: src.clock.now(),
      timezone: src.config.timezone,
    });
  }
}

/** `since` of an audit: a span back from now ("7d", "24h", "30m", "2w") or an ISO time; default 7 days. */
export function parseSince(since: string | undefined, now: number): number {
  if (since === undefined || since === "") return now - 7 * 86_400_000;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$/i.exec(since);
  if (m) {
    const unit = { m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2].toLowerCase() as "m"];
    return now - Number(m[1]) * unit;
  }
  const at = Date.parse(since);
  if (Number.isFinite(at) && /^\d{4}-\d{2}-\d{2}/.test(since)) return Math.min(at, now);
  throw new UserError(`since "${since}" is neither a span back from now (such as 7d, 24h, 30m) nor an ISO time (such as 2026-12-01T00:00Z).`);
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
  /** How many match the filter, across every page (where it is known). */
  total?: number;
}

/**
 * Finds a job by id, name, or the unique start of its id (8 characters or more, as the CLI
 * prints). A reference that is one job's name and another's id prefix is an error naming
 * both: a job named like another's id must never be acted on in its place (SPEC §20).
 */
export function resolveJob(jobs: JobRepo, ref: string): Job {
  const exact = jobs.get(ref);
  if (exact) return exact;
  const named = jobs.byName(ref);
  const prefixed = byIdPrefix(ref, jobs.all(), "job");
  if (named && prefixed && named.id !== prefixed.id) {
    throw new UserError(`"${ref}" is both the name of job ${named.id} and the start of job ${prefixed.id}'s id; give the whole id of the one you mean.`);
  }
  const job = named ?? prefixed;
  if (!job) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
  return job;
}

/** What resolveJob would take for the start of an id: 8 to 35 characters of hex digits and dashes. */
export const ID_LIKE = /^[0-9a-f-]{8,}$/i;

/** A run by id or the unique start of its id. */
export function resolveRun(runs: RunRepo, ref: string): Run {
  const run = runs.get(ref) ?? byIdPrefix(ref, runs.all(), "run");
  if (!run) throw new UserError(`No run with id "${ref}"; list_runs shows recent runs.`);
  return run;
}

export function listJobs(jobs: JobRepo, opts: { state?: Job["state"]; query?: string; limit?: number; cursor?: string }): Page<Job> {
  const limit = clampLimit(opts.limit, 20, 100);
  const after = opts.cursor ? decodeCursor(opts.cursor) : null;
  const query = opts.query?.toLowerCase();
  const items: Job[] = [];
  let passed = after === null;
  let total = 0;
  let more = false;
  for (const job of jobs.all()) {
    const matches =
      (!opts.state || job.state === opts.state) && (!query || !!job.name?.toLowerCase().includes(query) || job.prompt.toLowerCase().includes(query));
    if (matches) total++;
    if (!passed) {
      passed = job.id === after;
      continue;
    }
    if (!matches) continue;
    if (items.length === limit) more = true;
    else items.push(job);
  }
  if (!passed) throw new UserError("That cursor is no longer valid (its job was removed); list again without a cursor.");
  return { items, total, next_cursor: more ? encodeCursor(items[items.length - 1].id) : null };
}

/** Runs newest first: of one job, or across every job (without sorting them all). */
export function listRuns(jobs: JobRepo, runs: RunRepo, opts: { job?: string; status?: RunStatus; limit?: number; cursor?: string }): Page<Run> {
  const limit = clampLimit(opts.limit, 20, 100);
  if (opts.status && !RUN_STATUSES.includes(opts.status)) throw new UserError(`Unknown run status "${opts.status}".`);
  const after = opts.cursor ? decodeCursor(opts.cursor) : undefined;
  const filter = opts.status ? (r: Run) => r.status === opts.status : undefined;
  let page: { items: Run[]; more: boolean; found: boolean };
  if (opts.job) {
    const ofJob = runs.ofJob(resolveJob(jobs, opts.job).id);
    page = pageNewestFirst(ofJob, limit, after, filter);
  } else {
    page = runs.recent({ limit, after, filter });
  }
  if (!page.found) throw new UserError("That cursor is no longer valid (its run left the history); list again without a cursor.");
  const { items, more } = page;
  return { items, next_cursor: more ? encodeCursor(items[items.length - 1].id) : null };
}

/** A page of `oldestFirst` read from its end: the `limit` matching runs after the run `after`. */
function pageNewestFirst(oldestFirst: readonly Run[], limit: number, after: string | undefined, filter?: (r: Run) => boolean) {
  let i = oldestFirst.length - 1;
  if (after !== undefined) {
    while (i >= 0 && oldestFirst[i].id !== after) i--;
    if (i < 0) return { items: [], more: false, found: false };
    i--;
  }
  const items: Run[] = [];
  for (; i >= 0; i--) {
    const r = oldestFirst[i];
    if (filter && !filter(r)) continue;
    if (items.length === limit) return { items, more: true, found: true };
    items.push(r);
  }
  return { items, more: false, found: true };
}

/** The one record whose id starts with `prefix` (8+ characters); several is an error naming them. */
export function byIdPrefix<T extends { id: string }>(prefix: string, records: Iterable<T>, kind: "job" | "run"): T | undefined {
  if (prefix.length >= 36 || !ID_LIKE.test(prefix)) return undefined;
  prefix = prefix.toLowerCase();
  const found: T[] = [];
  for (const r of records) if (r.id.startsWith(prefix)) found.push(r);
  if (found.length > 1) {
    const ids = found
      .slice(0, 5)
      .map((r) => r.id)
      .join(", ");
    throw new UserError(`"${prefix}" is the start of ${found.length} ${kind} ids (${ids}${found.length > 5 ? ", …" : ""}); give more characters.`);
  }
  return found[0];
}

/** When a run happened, for ordering: its start, else its occurrence. */
export function runTime(r: Run): number {
  return Date.parse(r.started_at ?? r.scheduled_for ?? "") || 0;
}

/**
 * Runs across every job, newest first, by sorting them: for repositories that keep no
 * ordered index (a test's in-memory one).
 */
export function recentBySorting(all: Iterable<Run>, opts: { limit: number; after?: string; filter?: (run: Run) => boolean }) {
  const keyed = [...all].map((r) => ({ r, t: runTime(r) }));
  keyed.sort((a, b) => a.t - b.t || (a.r.id < b.r.id ? -1 : 1));
  return pageNewestFirst(
    keyed.map((k) => k.r),
    opts.limit,
    opts.after,
    opts.filter,
  );
}

export function clampLimit(limit: number | undefined, dflt: number, max: number): number {
  if (limit === undefined) return dflt;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new UserError(`limit must be a whole number from 1 to ${max}, got ${limit}.`);
  return limit;
}

export function encodeCursor(id: string): string {
  return Buffer.from(id).toString("base64url");
}

export function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new UserError("That cursor is not valid; pass the next_cursor of a previous answer, or none.");
  return id;
}
