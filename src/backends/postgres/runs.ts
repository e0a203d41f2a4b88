import { rm } from "node:fs/promises";
import type pg from "pg";
import path from "node:path";
import { UserError } from "../../kernel/errors.js";
import { RunSchema, TERMINAL_STATUSES, type Run } from "../../core/jobs.js";
import { cutUtf8 } from "../../core/output.js";
import { STORED, type PutOutcome, type RunRepo } from "../../core/ports.js";
import { recentBySorting } from "../../core/queries.js";
import { CHANNEL, SCHEMA, type Db } from "./db.js";
import { inlineSql, notifySql, type Change } from "./notify.js";

type Row = { id: string; seq: string; rev: string; data: unknown };
/** The pool, or one connection inside a transaction. */
type Queryable = { query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> };

/**
 * Run history in the database, capped per job at runs_per_job, with a mirror for the core's
 * synchronous reads (as PgJobRepo). A run's row remembers the process that runs it; once
 * another process has taken it over as an orphan (fleet.ts), only that process may write it,
 * so a process that was cut off and comes back cannot overwrite the `interrupted` record.
 */
export class PgRunRepo implements RunRepo {
  private readonly byJob = new Map<string, Run[]>();
  private readonly byId = new Map<string, Run>();
  private readonly seqs = new Map<string, number>();
  private readonly revs = new Map<string, number>();
  /** Runs of removed jobs: rev at removal, so older news of them is ignored. */
  private readonly removedJobs = new Map<string, number>();
  private readonly endWaiters = new Map<string, (() => void)[]>();
  private listener: ((run: Run) => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly origin: string,
    private readonly opts: { runsPerJob: number; maxOutputBytes: () => number; workRoot: string },
  ) {}

  /** Reads every run (the table holds at most runs_per_job per job). */
  async load(): Promise<Run[]> {
    const { rows } = await this.db.query<Row>(`SELECT id, seq, rev, data FROM ${SCHEMA}.runs ORDER BY seq`);
    const changed: Run[] = [];
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      const run = this.applyRow(row);
      if (run) changed.push(run);
    }
    // Runs removed while this process was not listening.
    for (const [id, run] of [...this.byId]) if (!seen.has(id)) this.drop(run);
    return changed;
  }

  onExternalChange(listener: (run: Run) => void): void {
    this.listener = listener;
  }

  get(id: string): Run | undefined {
    return this.byId.get(id);
  }

  ofJob(jobId: string): readonly Run[] {
    return this.byJob.get(jobId) ?? [];
  }

  *all(): IterableIterator<Run> {
    for (const runs of this.byJob.values()) yield* runs;
  }

  recent(opts: { limit: number; after?: string; filter?: (run: Run) => boolean }) {
    return recentBySorting(this.all(), opts);
  }

  /**
   * Puts asked for in one turn of the event loop go in one statement (see putBatch): at capacity
   * the runs of a fetched batch start together, and a statement each was a third of a process's
   * round trips. A run's puts go in the order asked, one at a time.
   */
  put(run: Run): Promise<PutOutcome> {
    return new Promise<PutOutcome>((resolve, reject) => {
      this.pendingPuts.push({ run, resolve, reject });
      if (this.putsScheduled) return;
      this.putsScheduled = true;
      setImmediate(() => {
        this.putsScheduled = false;
        this.startPuts();
      });
    });
  }

  private readonly pendingPuts: { run: Run; resolve: (o: PutOutcome) => void; reject: (err: unknown) => void }[] = [];
  /** Runs with a put in a statement now: their next put waits for it. */
  private readonly putting = new Set<string>();
  private putsScheduled = false;

  private startPuts(): void {
    const batch: typeof this.pendingPuts = [];
    const ids = new Set<string>();
    for (let i = 0; i < this.pendingPuts.length; ) {
      const p = this.pendingPuts[i];
      if (ids.has(p.run.id) || this.putting.has(p.run.id)) {
        i++;
        continue;
      }
      this.pendingPuts.splice(i, 1);
      batch.push(p);
      ids.add(p.run.id);
    }
    if (!batch.length) return;
    for (const id of ids) this.putting.add(id);
    const written: Promise<(PutOutcome | Error)[]> =
      batch.length === 1 ? this.write(this.db, batch[0].run).then((o) => [o!]) : this.putBatch(batch.map((p) => p.run));
    void written
      .then(
        (outcomes) => batch.forEach((p, i) => (outcomes[i] instanceof Error ? p.reject(outcomes[i]) : p.resolve(outcomes[i]))),
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        for (const id of ids) this.putting.delete(id);
        if (this.pendingPuts.length) this.startPuts();
      });
  }

  /** Several runs' puts (one each) as one statement: the same row rules as write, rows taken in id order. */
  private async putBatch(runs: Run[]): Promise<(PutOutcome | Error)[]> {
    const { rows } = await this.db.query<{ id: string; seq: string; rev: string }>(
      `WITH x AS (
         SELECT e->>'id' AS id, e->>'job_id' AS job_id, e->>'status' AS status, e->>'trigger' AS trigger,
           (e->>'scheduled_for')::timestamptz AS scheduled_for, (e->>'started_at')::timestamptz AS started_at, e::text AS data
         FROM json_array_elements($1::text::json) AS e),
       w AS (
         INSERT INTO ${SCHEMA}.runs AS r (id, job_id, status, trigger, scheduled_for, started_at, process_id, rev, data)
         SELECT id, job_id, status, trigger, scheduled_for, started_at, $2, nextval('${SCHEMA}.rev'), data::jsonb FROM x ORDER BY id
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, scheduled_for = EXCLUDED.scheduled_for,
           started_at = EXCLUDED.started_at, rev = EXCLUDED.rev, data = EXCLUDED.data
         WHERE r.claimed_by IS NULL OR r.claimed_by = $2
         RETURNING r.id, r.seq, r.rev)
       SELECT w.id, w.seq, w.rev, ${notifySql("r", "w", "$2", inlineSql("x.data"))} FROM w JOIN x ON x.id = w.id`,
      [`[${runs.map(runJson).join(",")}]`, this.origin],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const lost = runs.filter((r) => !byId.has(r.id));
    // Taken over by another process meanwhile (its process had gone quiet): its record stands.
    if (lost.length) await this.fetch(lost.map((r) => r.id));
    const evicted: Run[] = [];
    const outcomes = runs.map((run): PutOutcome | Error => {
      const row = byId.get(run.id);
      if (!row) {
        const by = this.byId.get(run.id);
        return by ? { kind: "superseded", by } : new Error(`Run ${run.id} was taken over by another agent-cron process and could not be read back.`);
      }
      evicted.push(...this.apply(run, Number(row.seq), Number(row.rev)));
      return STORED;
    });
    if (evicted.length) {
      await this.db.query(`DELETE FROM ${SCHEMA}.runs WHERE id = ANY($1) AND status <> 'running'`, [evicted.map((r) => r.id)]);
    }
    return outcomes;
  }

  /** Inserted only when no process has inserted a run of that id: the fleet starts a chained run once. */
  async putNew(run: Run): Promise<boolean> {
    return (await this.write(this.db, run, true)) !== null;
  }

  /** The row is read and written under its lock, so two updates made at once both land. */
  async update(id: string, change: (run: Run) => Run | null): Promise<Run | undefined> {
    let stored: Run | undefined;
    await this.db.tx(async (client) => {
      const { rows } = await client.query<Row>(`SELECT id, seq, rev, data FROM ${SCHEMA}.runs WHERE id = $1 FOR UPDATE`, [id]);
      if (!rows.length) return;
      const current = parseRun(rows[0].data, id);
      const next = change(current);
      stored = next ?? current;
      if (next) await this.write(client, next);
    });
    return stored === undefined ? undefined : (this.byId.get(id) ?? stored);
  }

  /** `onlyNew`: an insert that does nothing when the run exists (then null). */
  private async write(q: Queryable, run: Run, onlyNew = false): Promise<PutOutcome | null> {
    const { rows } = await q.query<{ seq: string; rev: string }>(
      `WITH w AS (
         INSERT INTO ${SCHEMA}.runs AS r (id, job_id, status, trigger, scheduled_for, started_at, process_id, rev, data)
         VALUES ($1, $2, $3, $4, $5::timestamptz, $6::timestamptz, $7, nextval('${SCHEMA}.rev'), $8::text::jsonb)
         ON CONFLICT (id) ${
           onlyNew
             ? "DO NOTHING"
             : `DO UPDATE SET status = EXCLUDED.status, scheduled_for = EXCLUDED.scheduled_for,
           started_at = EXCLUDED.started_at, rev = EXCLUDED.rev, data = EXCLUDED.data
         WHERE r.claimed_by IS NULL OR r.claimed_by = $7`
         }
         RETURNING r.id, r.seq, r.rev)
       SELECT w.seq, w.rev, ${notifySql("r", "w", "$7", inlineSql("$8::text"))} FROM w`,
      // The JSON travels once: the notification's copy is the same text, when it fits.
      [run.id, run.job_id, run.status, run.trigger, run.scheduled_for, run.started_at, this.origin, runJson(run)],
    );
    if (rows.length === 0) {
      // Another process took this run over (its process had gone quiet), or (onlyNew) recorded it first: its record stands.
      await this.fetch([run.id]);
      if (onlyNew) return null;
      const by = this.byId.get(run.id);
      if (by) return { kind: "superseded", by };
      throw new Error(`Run ${run.id} was taken over by another agent-cron process and could not be read back.`);
    }
    const evicted = this.apply(run, Number(rows[0].seq), Number(rows[0].rev));
    if (evicted.length) {
      await this.db.query(`DELETE FROM ${SCHEMA}.runs WHERE id = ANY($1) AND status <> 'running'`, [evicted.map((r) => r.id)]);
    }
    return STORED;
  }

  async removeJob(jobId: string): Promise<void> {
    const { rows } = await this.db.query<{ v: string }>(
      `WITH d AS (DELETE FROM ${SCHEMA}.runs WHERE job_id = $1), v AS (SELECT nextval('${SCHEMA}.rev') AS v)
       SELECT v.v, pg_notify('${CHANNEL}', json_build_object('o', $2::text, 'k', 'rd', 'id', $1::text, 'v', v.v)::text) FROM v`,
      [jobId, this.origin],
    );
    this.dropJob(jobId, Number(rows[0].v));
    await rm(path.join(this.opts.workRoot, jobId), { recursive: true, force: true });
  }

  async writeOutput(runId: string, output: string, raw?: string): Promise<void> {
    // Capped by max_output_bytes, as the executors cap what they read.
    const max = this.opts.maxOutputBytes();
    const text = cutUtf8(output, max).text;
    const rawText = raw !== undefined && raw !== output ? cutUtf8(raw, max).text : null;
    try {
      await this.db.query(
        `INSERT INTO ${SCHEMA}.outputs (run_id, output, raw) VALUES ($1, $2, $3)
         ON CONFLICT (run_id) DO UPDATE SET output = EXCLUDED.output, raw = EXCLUDED.raw`,
        [runId, stripNul(text), rawText === null ? null : stripNul(rawText)],
      );
    } catch (err) {
      if ((err as { code?: string }).code === "23503") throw new UserError(`Run ${runId} is not in the database, so its output cannot be stored.`);
      throw err;
    }
  }

  async readOutput(runId: string): Promise<string | null> {
    const { rows } = await this.db.query<{ output: string }>(`SELECT output FROM ${SCHEMA}.outputs WHERE run_id = $1`, [runId]);
    return rows.length ? rows[0].output : null;
  }

  /** Resolves once the run has a final status (at once if it has, or is unknown here). */
  whenEnded(runId: string): Promise<void> {
    const run = this.byId.get(runId);
    if (!run || TERMINAL_STATUSES.has(run.status)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.endWaiters.get(runId) ?? [];
      list.push(resolve);
      this.endWaiters.set(runId, list);
    });
  }

  /** Releases every waiter (the process is closing). */
  releaseWaiters(): void {
    for (const list of this.endWaiters.values()) for (const resolve of list) resolve();
    this.endWaiters.clear();
  }

  /** News from another process: applied when newer; "fetch" when the record must be read back. */
  heard(change: Change): "applied" | "stale" | "fetch" {
    if (change.k === "rd") {
      this.dropJob(change.id, change.v);
      return "applied";
    }
    const known = this.revs.get(change.id);
    if (known !== undefined && known >= change.v) return "stale";
    if (change.d === undefined || change.d === null) return "fetch";
    // A run notification carries no seq: a new run goes after the job's others.
    const run = this.applyRow(
      { id: change.id, seq: String(change.s ?? this.seqs.get(change.id) ?? Number.MAX_SAFE_INTEGER), rev: String(change.v), data: change.d },
      false,
    );
    if (run) this.listener?.(run);
    return "applied";
  }

  async fetch(ids: string[]): Promise<void> {
    const { rows } = await this.db.query<Row>(`SELECT id, seq, rev, data FROM ${SCHEMA}.runs WHERE id = ANY($1)`, [ids]);
    for (const row of rows) {
      const run = this.applyRow(row);
      if (run) this.listener?.(run);
    }
  }

  private applyRow(row: Row, validate = true): Run | null {
    const rev = Number(row.rev);
    const known = this.revs.get(row.id);
    if (known !== undefined && known >= rev) return null;
    const run = validate ? parseRun(row.data, row.id) : (row.data as Run);
    const removedAt = this.removedJobs.get(run.job_id);
    if (removedAt !== undefined && removedAt > rev) return null;
    this.apply(run, Number(row.seq), rev);
    return run;
  }

  /** Puts a run in the mirror (newest rev wins); returns runs evicted past runs_per_job. */
  private apply(run: Run, seq: number, rev: number): Run[] {
    const known = this.revs.get(run.id);
    if (known !== undefined && known >= rev) return [];
    let runs = this.byJob.get(run.job_id);
    if (!runs) this.byJob.set(run.job_id, (runs = []));
    const old = this.byId.get(run.id);
    if (old) {
      runs[runs.indexOf(old)] = run;
    } else {
      // Oldest first, by seq; almost always at the end.
      let i = runs.length;
      while (i > 0 && (this.seqs.get(runs[i - 1].id) ?? 0) > seq) i--;
      runs.splice(i, 0, run);
      this.seqs.set(run.id, seq);
    }
    this.byId.set(run.id, run);
    this.revs.set(run.id, rev);
    if (TERMINAL_STATUSES.has(run.status)) {
      const waiters = this.endWaiters.get(run.id);
      this.endWaiters.delete(run.id);
      for (const resolve of waiters ?? []) resolve();
    }
    return old ? [] : this.evictOldest(runs);
  }

  /** Keeps the newest runs_per_job of a job, never evicting a run still going. */
  private evictOldest(runs: Run[]): Run[] {
    if (runs.length <= this.opts.runsPerJob) return [];
    const dropped: Run[] = [];
    for (let i = 0; i < runs.length && runs.length - dropped.length > this.opts.runsPerJob; i++) {
      if (runs[i].status !== "running") dropped.push(runs[i]);
    }
    for (const r of dropped) this.drop(r);
    return dropped;
  }

  private drop(run: Run): void {
    const runs = this.byJob.get(run.job_id);
    const i = runs?.indexOf(run) ?? -1;
    if (runs && i >= 0) runs.splice(i, 1);
    if (runs?.length === 0) this.byJob.delete(run.job_id);
    this.byId.delete(run.id);
    this.revs.delete(run.id);
    this.seqs.delete(run.id);
    // Its default work dir, when it ran on this machine.
    const own = path.join(this.opts.workRoot, run.id);
    if (run.work_dir === own) void rm(own, { recursive: true, force: true }).catch(() => {});
  }

  private dropJob(jobId: string, rev: number): void {
    this.removedJobs.set(jobId, Math.max(rev, this.removedJobs.get(jobId) ?? 0));
    for (const run of [...(this.byJob.get(jobId) ?? [])]) {
      if ((this.revs.get(run.id) ?? 0) < rev) this.drop(run);
    }
  }
}

export function parseRun(data: unknown, id: string): Run {
  const parsed = RunSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(
      `The database holds an invalid run ${id} (${issue.path.join(".") || "record"}: ${issue.message}); fix or remove that row in agent_cron.runs.`,
    );
  }
  return parsed.data;
}

/** A run as JSON for jsonb, which cannot hold NUL characters (an agent's output may). */
export function runJson(run: Run): string {
  const json = JSON.stringify(run);
  return json.includes("\\u0000") ? JSON.stringify(run, (_k, v: unknown) => (typeof v === "string" ? stripNul(v) : v)) : json;
}

/** PostgreSQL text cannot hold NUL; an agent's output rarely does, and loses only those bytes. */
function stripNul(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "") : text;
}
