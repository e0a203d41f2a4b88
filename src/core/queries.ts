import { UserError } from "../kernel/errors.js";
import { RUN_STATUSES, type Job, type Run, type RunStatus } from "./jobs.js";
import type { JobRepo, RunRepo } from "./ports.js";

/** Answers about jobs and runs, read from the repositories: no writes, no scheduling. */

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
