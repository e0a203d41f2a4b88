import type pg from "pg";
import { UserError } from "../../kernel/errors.js";
import { JobSchema, type Job } from "../../core/jobs.js";
import type { JobRepo } from "../../core/ports.js";
import { SCHEMA, type Db } from "./db.js";
import { inlineSql, notifyJobSql, notifySql, type Change } from "./notify.js";

type Queryable = Pick<pg.ClientBase, "query">;
/** Reads and conditional writes tried before a job whose row moved on is changed under its lock. */
const OPTIMISTIC_ATTEMPTS = 1;
type Row = { id: string; rev: string; data: unknown };

/**
 * The jobs, from the database, with an in-memory mirror for the core's synchronous reads:
 * loaded at open, and kept current by this process's own writes (applied once committed)
 * and by other processes' notifications. Every copy carries its row's rev, so news that
 * arrives late never overwrites newer news.
 *
 * An update is applied to the mirror's copy and written only if the row still has that
 * copy's rev (one statement); when another process changed it first, the change is applied
 * again to the stored row under FOR UPDATE. Either way no process overwrites another's change.
 */
export class PgJobRepo implements JobRepo {
  private readonly jobs = new Map<string, Job>();
  private readonly revs = new Map<string, number>();
  private readonly names = new Map<string, string>();
  /** Jobs removed (ids are never reused): late news of them is ignored. */
  private readonly removed = new Set<string>();
  private readonly writes = new Set<Promise<unknown>>();
  /** The ids applied while a load's read is under way, one set per load (see load). */
  private readonly touched = new Set<Set<string>>();
  /** This process's last write in flight, per job (see exclusive). */
  private readonly inFlight = new Map<string, Promise<void>>();
  private listener: ((id: string, job: Job | undefined, previous: Job | undefined) => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly origin: string,
    private readonly onClose: () => Promise<void>,
  ) {}

  /** Reads every job; at open, and again after the connection came back. Returns the ids whose copy changed. */
  async load(): Promise<{ changed: string[]; removed: string[] }> {
    // A job written while the read is under way (added by this process after the read's
    // snapshot, say) is missing from the rows but not removed: only jobs the mirror held,
    // untouched, before the read began can be found gone by it.
    const touched = new Set<string>();
    this.touched.add(touched);
    let rows: Row[];
    try {
      ({ rows } = await this.db.query<Row>(`SELECT id, rev, data FROM ${SCHEMA}.jobs ORDER BY seq`));
    } finally {
      this.touched.delete(touched);
    }
    const seen = new Set<string>();
    const changed: string[] = [];
    for (const row of rows) {
      seen.add(row.id);
      if (this.applyRow(row, false)) changed.push(row.id);
    }
    const removed = [...this.jobs.keys()].filter((id) => !seen.has(id) && !touched.has(id));
    for (const id of removed) this.forget(id);
    return { changed, removed };
  }

  onExternalChange(listener: (id: string, job: Job | undefined, previous: Job | undefined) => void): void {
    this.listener = listener;
  }

  externalListener(): ((id: string, job: Job | undefined, previous: Job | undefined) => void) | null {
    return this.listener;
  }

  get size(): number {
    return this.jobs.size;
  }

  all(): IterableIterator<Job> {
    return this.jobs.values();
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  byName(name: string): Job | undefined {
    const id = this.names.get(name);
    return id ? this.jobs.get(id) : undefined;
  }

  revOf(id: string): number | undefined {
    return this.revs.get(id);
  }

  /** A write of this process made elsewhere (a take's transaction), once committed. */
  applyOwn(job: Job, rev: number): void {
    this.apply(job, rev);
  }

  async insert(job: Job): Promise<void> {
    await this.track(async () => {
      let rows: { rev: string }[];
      try {
        ({ rows } = await this.db.query<{ rev: string }>(
          `WITH w AS (
             INSERT INTO ${SCHEMA}.jobs (id, name, state, rev, data) VALUES ($1, $2, $3, nextval('${SCHEMA}.rev'), $4::text::jsonb)
             RETURNING id, rev, seq)
           SELECT w.rev, ${notifySql("j", "w", "$5", inlineSql("$4::text"))} FROM w`,
          [job.id, job.name, job.state, JSON.stringify(job), this.origin],
        ));
      } catch (err) {
        throw nameTaken(err, job.name) ?? err;
      }
      this.apply(job, Number(rows[0].rev));
    });
  }

  async update(id: string, change: (job: Job) => Job | null): Promise<{ job: Job; changed: boolean } | undefined> {
    return this.track(() => this.exclusive([id], () => this.updateNow(id, change)));
  }

  /**
   * Runs `write` once this process's writes of these jobs that came before it have settled, and
   * holds back the ones that come after until it has (a take's transaction, see PgQueue, or an
   * update). Two writes of one job in one process that overlapped would meet at its row's lock
   * and the second would fail its revision check: at capacity that was most of the job updates,
   * each then paid two to four more round trips.
   */
  async exclusive<T>(ids: string[], write: () => Promise<T>): Promise<T> {
    const before = ids.map((id) => this.inFlight.get(id)).filter((p): p is Promise<void> => p !== undefined);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    for (const id of ids) this.inFlight.set(id, mine);
    try {
      await Promise.all(before);
      return await write();
    } finally {
      done();
      for (const id of ids) if (this.inFlight.get(id) === mine) this.inFlight.delete(id);
    }
  }

  private async updateNow(id: string, change: (job: Job) => Job | null): Promise<{ job: Job; changed: boolean } | undefined> {
    const mine = this.jobs.get(id);
    const rev = this.revs.get(id);
    let base = mine && rev !== undefined ? { job: mine, rev } : null;
    // The mirror's copy, then the row as the first try found it (another process wrote it since
    // this mirror heard): each change goes with the others asked in the same turn (together).
    for (let attempt = 0; base && attempt < 2; attempt++) {
      const next = change(base.job);
      if (next !== null && next.name !== base.job.name) {
        // A rename goes alone: a name another job took meanwhile fails its statement, and in a
        // batch it would fail every other job's write with it.
        const written = await this.write(this.db, next, base.rev);
        if (written === null) break;
        this.apply(next, written);
        return { job: next, changed: true };
      }
      const found = await this.together(id, base.rev, next, base.job);
      if (found === undefined) return this.gone(id);
      if (!("data" in found)) {
        if (next === null) return { job: base.job, changed: false };
        this.apply(next, found.rev);
        return { job: next, changed: true };
      }
      // What was stored is news to this mirror; the change is made again on it.
      this.applyRow(found, true);
      base = { job: this.revs.get(id) === Number(found.rev) ? this.jobs.get(id)! : parseJob(found.data, id), rev: Number(found.rev) };
    }
    // Another process wrote it since this mirror heard (or this mirror has not heard of it yet):
    // read the row and write the change on it if the row has not moved on meanwhile (two round
    // trips, no transaction); a row that keeps moving is changed under its lock.
    for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
      const { rows } = await this.db.query<Row>(`SELECT id, rev, data FROM ${SCHEMA}.jobs WHERE id = $1`, [id]);
      if (rows.length === 0) return this.gone(id);
      this.applyRow(rows[0], true);
      const stored = this.revs.get(id) === Number(rows[0].rev) ? this.jobs.get(id)! : parseJob(rows[0].data, id);
      const next = change(stored);
      if (next === null) return { job: stored, changed: false };
      const written = await this.write(this.db, next, Number(rows[0].rev));
      if (written !== null) {
        this.apply(next, written);
        return { job: next, changed: true };
      }
    }
    const locked = await this.db.tx(async (client) => {
      const { rows } = await client.query<Row>(`SELECT id, rev, data FROM ${SCHEMA}.jobs WHERE id = $1 FOR UPDATE`, [id]);
      if (rows.length === 0) return null;
      const stored = parseJob(rows[0].data, id);
      const next = change(stored);
      if (next === null) return { row: rows[0], job: stored, rev: null };
      return { row: rows[0], job: next, rev: await this.write(client, next, null) };
    });
    if (!locked) return this.gone(id);
    // What was stored is news to this mirror (another process wrote it); then ours, once committed.
    this.applyRow(locked.row, true);
    if (locked.rev === null) return { job: this.jobs.get(id) ?? locked.job, changed: false };
    this.apply(locked.job, locked.rev);
    return { job: locked.job, changed: true };
  }

  /**
   * A revision check (`job` null) or a write of the job if its row still has `rev`, put in one
   * statement with the others asked for in the same turn of the event loop: at capacity every
   * run's start writes its job (run_count) and most ends check its rev, and a statement each
   * was most of a process's round trips. Resolves to the row's rev when it still had `rev` (for
   * a write, the new rev), to the row when it had moved on (for a write, as locked then), or
   * undefined when it is gone. This process asks for at most one per job at a time (exclusive).
   */
  private together(id: string, rev: number, job: Job | null, base: Job): Promise<{ rev: number } | Row | undefined> {
    return new Promise((resolve, reject) => {
      this.pendingTogether.push({ id, rev, job, base, resolve, reject });
      if (this.pendingTogether.length > 1) return;
      setImmediate(() => {
        const batch = this.pendingTogether.splice(0);
        this.writeTogether(batch).then(
          (found) => {
            for (const p of batch) p.resolve(found.get(p.id));
          },
          (err) => {
            for (const p of batch) p.reject(err);
          },
        );
      });
    });
  }

  private readonly pendingTogether: {
    id: string;
    rev: number;
    job: Job | null;
    base: Job;
    resolve: (found: { rev: number } | Row | undefined) => void;
    reject: (err: unknown) => void;
  }[] = [];

  private async writeTogether(batch: { id: string; rev: number; job: Job | null; base: Job }[]): Promise<Map<string, { rev: number } | Row>> {
    // The rows to write are locked first, in id order as a take locks them, so this statement
    // and another process's take never deadlock; a row that moved on comes back as locked, with
    // what it holds, so the change is made again on it without reading it. A write is made only
    // on the row at `rev`, whose job is `base`: it sends the fields that changed (see writeTaken).
    const { rows } = await this.db.query<{ id: string; rev: string; data: unknown }>(
      `WITH x AS (
         SELECT e->>'i' AS id, (e->>'r')::bigint AS rev, e->>'n' AS name, e->>'s' AS state, e->>'d' AS data, e->'p' AS patch,
           e->'d' IS NOT NULL OR e->'p' IS NOT NULL AS writes
         FROM json_array_elements($1::text::json) AS e),
       l AS (
         SELECT j.id, j.rev, j.data FROM ${SCHEMA}.jobs j JOIN x ON x.id = j.id
         WHERE x.writes ORDER BY j.id FOR UPDATE OF j),
       w AS (
         UPDATE ${SCHEMA}.jobs j SET name = x.name, state = x.state, rev = nextval('${SCHEMA}.rev'),
           data = CASE WHEN x.patch IS NULL THEN x.data::jsonb ELSE j.data || x.patch::jsonb END, updated_at = now()
         FROM x JOIN l ON l.id = x.id WHERE j.id = x.id AND j.rev = x.rev AND l.rev = x.rev
         RETURNING j.id, j.rev, j.seq),
       n AS (SELECT w.id, w.rev, ${notifyJobSql("w", "$2", "x.data", "x.patch", "x.rev")} AS sent FROM w JOIN x ON x.id = w.id)
       SELECT n.id, n.rev, NULL::jsonb AS data FROM n
       UNION ALL
       SELECT l.id, l.rev, l.data FROM l WHERE l.id NOT IN (SELECT id FROM w)
       UNION ALL
       SELECT j.id, j.rev, CASE WHEN j.rev = x.rev THEN NULL ELSE j.data END FROM ${SCHEMA}.jobs j JOIN x ON x.id = j.id WHERE NOT x.writes`,
      [
        JSON.stringify(
          batch.map((b) => {
            if (!b.job) return { i: b.id, r: String(b.rev) };
            const patch = fieldsChanged(b.base, b.job);
            return patch
              ? { i: b.id, r: String(b.rev), n: b.job.name, s: b.job.state, p: patch }
              : { i: b.id, r: String(b.rev), n: b.job.name, s: b.job.state, d: b.job };
          }),
        ),
        this.origin,
      ],
    );
    return new Map(rows.map((r) => [r.id, r.data === null ? { rev: Number(r.rev) } : { id: r.id, rev: r.rev, data: r.data }]));
  }

  /**
   * Writes a job; with `ifRev`, only if the row still has that rev. Returns the new rev, or
   * null when the row had moved on (or is gone).
   */
  async write(conn: Queryable | Db, job: Job, ifRev: number | null): Promise<number | null> {
    // The JSON travels once: the notification's copy is the same text, when it fits.
    const values: unknown[] = [job.id, job.name, job.state, JSON.stringify(job), this.origin];
    if (ifRev !== null) values.push(String(ifRev));
    let rows: { rev: string }[];
    try {
      ({ rows } = await (conn as Queryable).query<{ rev: string }>(
        `WITH w AS (
           UPDATE ${SCHEMA}.jobs SET name = $2, state = $3, rev = nextval('${SCHEMA}.rev'), data = $4::text::jsonb, updated_at = now()
           WHERE id = $1${ifRev !== null ? " AND rev = $6" : ""}
           RETURNING id, rev, seq)
         SELECT w.rev, ${notifySql("j", "w", "$5", inlineSql("$4::text"))} FROM w`,
        values,
      ));
    } catch (err) {
      throw nameTaken(err, job.name) ?? err;
    }
    return rows.length ? Number(rows[0].rev) : null;
  }

  /**
   * Writes jobs this process has locked (a take's batch), in one statement; returns each one's
   * new rev. Their names and states are as stored (a take changes neither).
   */
  async writeMany(conn: Queryable, list: Job[]): Promise<Map<string, number>> {
    // One JSON array, not text[] parameters: pg escapes an array's elements character by
    // character, a cost that showed in the capacity profile (docs/postgres.md, Capacity).
    const { rows } = await conn.query<{ id: string; rev: string }>(
      `WITH x AS (SELECT e->>'id' AS id, e::text AS data FROM json_array_elements($1::text::json) AS e),
       w AS (
         UPDATE ${SCHEMA}.jobs j SET rev = nextval('${SCHEMA}.rev'), data = x.data::jsonb, updated_at = now()
         FROM x WHERE j.id = x.id
         RETURNING j.id, j.rev, j.seq)
       SELECT w.id, w.rev, ${notifySql("j", "w", "$2", inlineSql("x.data"))} FROM w JOIN x ON x.id = w.id`,
      [JSON.stringify(list), this.origin],
    );
    return new Map(rows.map((r) => [r.id, Number(r.rev)]));
  }

  /**
   * Writes the jobs of a take's batch, which this transaction has locked at `baseRev`, sending
   * only the fields the take changed (last_scheduled_for, next_run_at, updated_at): the row
   * gets them merged in, and the notification carries them with the rev they apply to. A
   * whole job was a take's largest cost in a process at capacity (its JSON, sent and heard back
   * by every process, 300 a second at 300 every-second jobs; docs/postgres.md, Capacity, round
   * 6). A job the change took a field from goes whole. Returns each one's new rev.
   */
  async writeTaken(conn: Queryable, list: { job: Job; base: Job; baseRev: number }[]): Promise<Map<string, number>> {
    const entries = list.map(({ job, base, baseRev }) => {
      const patch = fieldsChanged(base, job);
      return patch ? { i: job.id, b: String(baseRev), p: patch } : { i: job.id, b: String(baseRev), f: job };
    });
    const { rows } = await conn.query<{ id: string; rev: string }>(
      `WITH x AS (
         SELECT e->>'i' AS id, (e->>'b')::bigint AS base, e->'p' AS patch, e->'f' AS whole, (e->'f')::text AS whole_text
         FROM json_array_elements($1::text::json) AS e),
       w AS (
         UPDATE ${SCHEMA}.jobs j SET rev = nextval('${SCHEMA}.rev'),
           data = CASE WHEN x.patch IS NULL THEN x.whole::jsonb ELSE j.data || x.patch::jsonb END, updated_at = now()
         FROM x WHERE j.id = x.id AND j.rev = x.base
         RETURNING j.id, j.rev, j.seq)
       SELECT w.id, w.rev, ${notifyJobSql("w", "$2", "x.whole_text", "x.patch", "x.base")} FROM w JOIN x ON x.id = w.id`,
      [JSON.stringify(entries), this.origin],
    );
    const revs = new Map(rows.map((r) => [r.id, Number(r.rev)]));
    // The rows are locked by this transaction at baseRev: one that is not (a caller's mistake)
    // fails the take rather than write the change on a row it was not made on.
    const missed = list.find((l) => !revs.has(l.job.id));
    if (missed) throw new Error(`The job ${missed.job.id} was not at rev ${missed.baseRev} under its take's lock.`);
    return revs;
  }

  async delete(id: string): Promise<void> {
    await this.track(async () => {
      await this.db.query(
        `WITH w AS (DELETE FROM ${SCHEMA}.jobs WHERE id = $1 RETURNING id, rev, seq)
         SELECT ${notifySql("jd", "w", "$2", "NULL")} FROM w`,
        [id, this.origin],
      );
      this.forget(id);
    });
  }

  async idle(): Promise<void> {
    while (this.writes.size) await Promise.allSettled([...this.writes]);
  }

  async close(): Promise<void> {
    await this.idle();
    await this.onClose();
  }

  /** News from another process (or a read back): applies it when it is newer; tells the listener. */
  heard(change: Change): "applied" | "stale" | "fetch" {
    if (change.k === "jd") {
      if (!this.jobs.has(change.id)) return "stale";
      const previous = this.jobs.get(change.id);
      this.forget(change.id);
      this.listener?.(change.id, undefined, previous);
      return "applied";
    }
    if (this.removed.has(change.id)) return "stale";
    const known = this.revs.get(change.id);
    if (known !== undefined && known >= change.v) return "stale";
    if (change.p) {
      // A take's fields, on the row as it was at rev b: applied to this mirror's copy when it
      // is that one. A field the copy lacks would land out of the schema's order: read the row.
      const copy = this.jobs.get(change.id);
      if (!copy || known !== change.b || Object.keys(change.p).some((k) => !(k in copy))) return "fetch";
      this.applyRow({ id: change.id, rev: String(change.v), data: { ...copy, ...change.p } }, true, false);
      return "applied";
    }
    if (change.d === undefined || change.d === null) return "fetch";
    this.applyRow({ id: change.id, rev: String(change.v), data: change.d }, true, false);
    return "applied";
  }

  /** Rows read back after notifications too large to carry them; ids not found were removed. */
  async fetch(ids: string[]): Promise<void> {
    const { rows } = await this.db.query<Row>(`SELECT id, rev, data FROM ${SCHEMA}.jobs WHERE id = ANY($1)`, [ids]);
    const found = new Set<string>();
    for (const row of rows) {
      found.add(row.id);
      this.applyRow(row, true);
    }
    for (const id of ids) {
      if (found.has(id) || !this.jobs.has(id)) continue;
      const previous = this.jobs.get(id);
      this.forget(id);
      this.listener?.(id, undefined, previous);
    }
  }

  /** Applies a row when newer than the mirror's copy; `external` tells the listener. */
  private applyRow(row: Row, external: boolean, validate = true): boolean {
    const rev = Number(row.rev);
    if (this.removed.has(row.id)) return false;
    const known = this.revs.get(row.id);
    if (known !== undefined && known >= rev) return false;
    // Rows read from jsonb come back with their keys reordered; parsing restores the schema's order.
    const job = validate ? parseJob(row.data, row.id) : (row.data as Job);
    const previous = this.jobs.get(row.id);
    this.apply(job, rev);
    if (external) this.listener?.(row.id, job, previous);
    return true;
  }

  private apply(job: Job, rev: number): void {
    const known = this.revs.get(job.id);
    if (this.removed.has(job.id) || (known !== undefined && known >= rev)) return;
    const old = this.jobs.get(job.id);
    if (old?.name && old.name !== job.name && this.names.get(old.name) === job.id) this.names.delete(old.name);
    this.jobs.set(job.id, job);
    this.revs.set(job.id, rev);
    if (job.name) this.names.set(job.name, job.id);
    for (const t of this.touched) t.add(job.id);
  }

  private forget(id: string): void {
    const old = this.jobs.get(id);
    if (old?.name && this.names.get(old.name) === id) this.names.delete(old.name);
    this.jobs.delete(id);
    this.revs.delete(id);
    this.removed.add(id);
  }

  private gone(id: string): undefined {
    if (this.jobs.has(id)) {
      const previous = this.jobs.get(id);
      this.forget(id);
      this.listener?.(id, undefined, previous);
    }
    return undefined;
  }

  private async track<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    this.writes.add(p);
    try {
      return await p;
    } finally {
      this.writes.delete(p);
    }
  }
}

/**
 * The top-level fields of `next` that differ from `base` (by identity: an equal copy counts as
 * changed, which only makes the patch larger), or null when `next` drops one of base's fields
 * (a patch merged into the row cannot remove it).
 */
function fieldsChanged(base: Job, next: Job): Record<string, unknown> | null {
  const patch: Record<string, unknown> = {};
  const b = base as Record<string, unknown>;
  const n = next as Record<string, unknown>;
  for (const k of Object.keys(b)) if (b[k] !== undefined && n[k] === undefined) return null;
  for (const k of Object.keys(n)) if (n[k] !== undefined && n[k] !== b[k]) patch[k] = n[k];
  return patch;
}

export function parseJob(data: unknown, id: string): Job {
  const parsed = JobSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(
      `The database holds an invalid job ${id} (${issue.path.join(".") || "record"}: ${issue.message}); fix or remove that row in agent_cron.jobs.`,
    );
  }
  return parsed.data;
}

/** Two processes gave two jobs one name at the same moment: the unique index refused the second. */
function nameTaken(err: unknown, name: string | null): UserError | null {
  const e = err as { code?: string; constraint?: string };
  if (e?.code !== "23505" || !name || !String(e.constraint ?? "").includes("name")) return null;
  return new UserError(
    `Another job is already named "${name}" (it was just added through another agent-cron process); choose another name, or call add_cron again with the same definition to get that job.`,
  );
}
