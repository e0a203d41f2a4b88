import type { Job as BossJob, PgBoss } from "pg-boss";
import type pg from "pg";
import { withDerivedFields } from "../../core/job-rules.js";
import type { Job, RunTrigger } from "../../core/jobs.js";
import { handledUntil } from "../../core/planner.js";
import type { Occurrence, OccurrenceQueue } from "../../core/ports.js";
import type { Clock } from "../../core/scheduler.js";
import { toIsoInZone } from "../../core/time.js";
import { CHANNEL, SCHEMA, type Db } from "./db.js";
import type { PgJobRepo } from "./jobs.js";
import { parseJob } from "./jobs.js";
import type { PgRunRepo } from "./runs.js";

/** The pg-boss queue every process of a fleet works. */
export const QUEUE = "agent-cron-occurrences";
/** An idle worker looks for queued occurrences this often (a take wakes every worker at once). */
const POLL_MS = 500;
/** Occurrences that ended are settled together this long after (see flush). */
const SETTLE_MS = 50;
/** pg_advisory_xact_lock key around counting the fleet's runs. */
const FLEET_LOCK = "7161938520000001";

interface OccurrenceData {
  job_id: string;
  at: number;
  trigger: RunTrigger;
}

/**
 * The queue of taken occurrences, shared by the fleet through pg-boss 12. `take` inserts the
 * occurrence row, moves the job's last_scheduled_for and enqueues the run (pg-boss `send`
 * with this transaction's connection as its `db`) in one transaction: the occurrence is
 * taken once fleet-wide, or not at all. Each process's worker fetches as many as it has free
 * slots (max_concurrent), moves each occurrence row from queued to running (counting the
 * fleet's runs first when fleet_max_concurrent is set), runs it, and holds its pg-boss job,
 * with heartbeats, until the run has ended.
 */
export class PgQueue implements OccurrenceQueue {
  private runner: ((jobId: string, occ: Occurrence) => Promise<void>) | null = null;
  private readonly inHand = new Map<string, BossJob<OccurrenceData>>();
  private readonly handling = new Set<Promise<void>>();
  private closed = false;
  private woken = false;
  private wakeUp: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly deps: {
      db: Db;
      /** Null in a CLI process: it takes no occurrences and works no queue. */
      boss: PgBoss | null;
      jobs: PgJobRepo;
      runs: PgRunRepo;
      origin: string;
      clock: Clock;
      limits: () => { perProcess: number; fleet: number | undefined };
      /** Throws while the backend has lost the database and not caught up since. */
      checkAvailable: () => void;
      onError: (err: unknown) => void;
    },
  ) {}

  /** Takes of one job, in the order they were asked for (see take). */
  private readonly taking = new Map<string, Promise<unknown>>();

  /**
   * One job's takes go one after another, oldest first: they lock the same row, and a newer
   * occurrence committed first would make the older one look handled already.
   */
  take(job: Job, occ: Occurrence & { scheduledFor: number }, delayMs: number): Promise<Job | null> {
    const before = this.taking.get(job.id) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(() => this.takeNow(job, occ, delayMs));
    this.taking.set(job.id, mine);
    void mine.catch(() => {}).finally(() => {
      if (this.taking.get(job.id) === mine) this.taking.delete(job.id);
    });
    return mine;
  }

  private async takeNow(job: Job, occ: Occurrence & { scheduledFor: number }, delayMs: number): Promise<Job | null> {
    const { db, jobs, boss } = this.deps;
    if (!boss) throw new Error("This agent-cron process does not schedule (it answers one CLI command).");
    const at = occ.scheduledFor;
    // Another process took it and this mirror has heard: nothing to ask the database.
    const known = jobs.get(job.id);
    if (!known || handledUntil(known) >= at) return null;
    this.deps.checkAvailable();
    const wake = delayMs <= 0;
    const mirrorRev = jobs.revOf(job.id) ?? -1;
    const taken = await db.tx(async (client) => {
      // One statement: the occurrence row (only one process's insert wins; the others wait for
      // it and find it there), and, when it won, the job row locked, sent back only when this
      // mirror's copy is not the newest.
      const { rows } = await client.query<{ id: string; rev: string; data: unknown }>(
        `WITH occ AS (
           INSERT INTO ${SCHEMA}.occurrences (job_id, scheduled_for, trigger, state) VALUES ($1, $2::timestamptz, $3, 'queued')
           ON CONFLICT DO NOTHING
           RETURNING job_id, CASE WHEN $4::boolean THEN pg_notify('${CHANNEL}', json_build_object('o', $5::text, 'k', 'w', 'id', $1::text, 'v', 0)::text) END AS woke)
         SELECT j.id, j.rev, CASE WHEN j.rev = $6 THEN NULL ELSE j.data END AS data
         FROM ${SCHEMA}.jobs j JOIN occ ON occ.job_id = j.id
         FOR UPDATE OF j`,
        [job.id, new Date(at).toISOString(), occ.trigger, wake, this.deps.origin, String(mirrorRev)],
      );
      // Taken already, or the job is gone.
      if (rows.length === 0) throw new Rollback();
      const stored = rows[0].data === null ? known : parseJob(rows[0].data, job.id);
      // Paused, rescheduled or handled through another process since this one armed it.
      if (stored.state !== "active" || handledUntil(stored) >= at) throw new Rollback();
      const next = withDerivedFields({
        ...stored,
        last_scheduled_for: toIsoInZone(new Date(at), stored.timezone),
        updated_at: toIsoInZone(new Date(this.deps.clock.now()), stored.timezone),
      });
      const rev = await jobs.write(client, next, null);
      const data: OccurrenceData = { job_id: job.id, at, trigger: occ.trigger };
      await boss.send(QUEUE, data as object, {
        db: { executeSql: (text, values) => client.query(text, values as unknown[]) as Promise<pg.QueryResult> },
        ...(delayMs > 0 ? { startAfter: delayMs / 1000 } : {}),
      });
      return { job: next, rev: rev! };
    }).catch((err) => {
      if (err instanceof Rollback) return null;
      throw err;
    });
    if (!taken) return null;
    jobs.applyOwn(taken.job, taken.rev);
    if (wake) this.wake();
    else {
      // Its own worker looks again when the jitter has passed; the others find it by polling.
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.wake();
      }, delayMs + 5);
      timer.unref();
      this.timers.add(timer);
    }
    return taken.job;
  }

  consume(runner: (jobId: string, occ: Occurrence) => Promise<void>): void {
    this.runner = runner;
    if (this.deps.boss) this.loopDone ??= this.loop();
  }

  /** Another process queued work (or a slot freed here): look now. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** The occurrences held here ("job_id epoch-ms"). */
  holding(): Set<string> {
    return new Set([...this.inHand.values()].map((j) => `${j.data.job_id} ${j.data.at}`));
  }

  /** The pg-boss jobs held here, for their heartbeats. */
  held(): { id: string; retryCount: number }[] {
    return [...this.inHand.values()].map((j) => ({ id: j.id, retryCount: j.retryCount }));
  }

  /** Stops fetching; occurrences in hand finish with their runs (the App interrupts those at close). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.wake();
    await this.loopDone;
  }

  /** Waits for the occurrences in hand to settle, for at most `ms`. */
  async drain(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.handling]), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const free = this.deps.limits().perProcess - this.inHand.size;
      if (free > 0) {
        let fetched: BossJob<OccurrenceData>[] = [];
        this.woken = false;
        try {
          fetched = (await this.deps.boss!.fetch<OccurrenceData>(QUEUE, { batchSize: free })) ?? [];
        } catch (err) {
          this.deps.onError(err);
          await this.idle(2000);
          continue;
        }
        if (fetched.length) this.track(this.handle(fetched));
        if (fetched.length === free) continue;
      }
      await this.idle(POLL_MS);
    }
    await this.flush();
  }

  private idle(ms: number): Promise<void> {
    if (this.woken || this.closed) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    }).then(() => {
      this.wakeUp = null;
      this.woken = false;
    });
  }

  private track(p: Promise<void>): void {
    const tracked = p.catch((err) => this.deps.onError(err)).finally(() => this.handling.delete(tracked));
    this.handling.add(tracked);
  }

  /** A batch just fetched: claimed together, then each runs on its own. */
  private async handle(batch: BossJob<OccurrenceData>[]): Promise<void> {
    for (const job of batch) this.inHand.set(job.id, job);
    let claims: Map<string, Claim>;
    if (this.closed || !this.runner) {
      // Closing: hand them back to the fleet (another process takes them within a second).
      claims = new Map(batch.map((j) => [j.id, "give back" as const]));
    } else {
      try {
        claims = await this.claim(batch);
      } catch (err) {
        // Unknown whether they moved: pg-boss hands them out again after their heartbeat, and
        // whoever gets them then finds each occurrence's row as it is.
        for (const job of batch) this.inHand.delete(job.id);
        throw err;
      }
    }
    await Promise.all(batch.map((job) => this.settle(job, claims.get(job.id) ?? "taken")));
  }

  private async settle(job: BossJob<OccurrenceData>, claim: Claim): Promise<void> {
    const { job_id: jobId, at, trigger } = job.data;
    try {
      if (claim === "moved") {
        try {
          await this.runner!(jobId, { scheduledFor: at, trigger });
          await this.runEnded(jobId, at);
        } catch (err) {
          this.deps.onError(err);
        }
        this.finished.push({ jobId, at });
      }
    } finally {
      this.inHand.delete(job.id);
      const attempt = { id: job.id, retryCount: job.retryCount };
      // Full fleet, or closing: back to the queue (tried again after its retryDelay). Taken: it
      // ran or runs elsewhere already (this was pg-boss handing out a retry of it).
      if (claim === "full" || claim === "give back") this.toFail.push(attempt);
      else this.toComplete.push(attempt);
      this.scheduleFlush();
      this.wake();
    }
  }

  /**
   * Moves the batch's occurrences from queued to running for this process, in one statement;
   * with fleet_max_concurrent, only as many as the fleet has room for (counted under a lock).
   */
  private async claim(batch: BossJob<OccurrenceData>[]): Promise<Map<string, Claim>> {
    const { db, origin } = this.deps;
    const key = (jobId: string, at: number) => `${jobId} ${at}`;
    const move = async (conn: Pick<pg.ClientBase, "query"> | Db, jobs: BossJob<OccurrenceData>[]) => {
      const { rows } = await (conn as Db).query<{ job_id: string; scheduled_for: Date }>(
        `UPDATE ${SCHEMA}.occurrences o SET state = 'running', process_id = $3, started_at = now()
         FROM unnest($1::text[], $2::timestamptz[]) AS x(job_id, at)
         WHERE o.job_id = x.job_id AND o.scheduled_for = x.at AND o.state = 'queued'
         RETURNING o.job_id, o.scheduled_for`,
        [jobs.map((j) => j.data.job_id), jobs.map((j) => new Date(j.data.at).toISOString()), origin],
      );
      return new Set(rows.map((r) => key(r.job_id, r.scheduled_for.getTime())));
    };
    const result = new Map<string, Claim>();
    const mark = (jobs: BossJob<OccurrenceData>[], moved: Set<string>) => {
      for (const j of jobs) result.set(j.id, moved.has(key(j.data.job_id, j.data.at)) ? "moved" : "taken");
    };
    const cap = this.deps.limits().fleet;
    if (cap === undefined) {
      mark(batch, await move(db, batch));
      return result;
    }
    await db.tx(async (client) => {
      // One process counts at a time, so two never both take the last slots.
      await client.query("SELECT pg_advisory_xact_lock($1)", [FLEET_LOCK]);
      const { rows } = await client.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM ${SCHEMA}.occurrences WHERE state = 'running')
              + (SELECT count(*) FROM ${SCHEMA}.runs r WHERE r.status = 'running'
                   AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.occurrences o WHERE o.job_id = r.job_id AND o.scheduled_for = r.scheduled_for)) AS n`,
      );
      const room = Math.max(0, cap - Number(rows[0].n));
      const now = batch.slice(0, room);
      if (now.length) mark(now, await move(client, now));
      for (const j of batch.slice(room)) result.set(j.id, "full");
    });
    return result;
  }

  // Settlements are written together: one statement for the occurrence rows, one pg-boss call
  // each for completions and give-backs, a moment after the runs end.
  private readonly finished: { jobId: string; at: number }[] = [];
  private readonly toComplete: { id: string; retryCount: number }[] = [];
  private readonly toFail: { id: string; retryCount: number }[] = [];
  private flushTimer: NodeJS.Timeout | null = null;

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, SETTLE_MS);
    this.flushTimer.unref();
  }

  async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const finished = this.finished.splice(0);
    const complete = this.toComplete.splice(0);
    const fail = this.toFail.splice(0);
    const boss = this.deps.boss!;
    try {
      if (finished.length) {
        await this.deps.db.query(
          `UPDATE ${SCHEMA}.occurrences o SET state = 'done', finished_at = now()
           FROM unnest($1::text[], $2::timestamptz[]) AS x(job_id, at)
           WHERE o.job_id = x.job_id AND o.scheduled_for = x.at AND o.state = 'running'`,
          [finished.map((f) => f.jobId), finished.map((f) => new Date(f.at).toISOString())],
        );
      }
      if (complete.length) await boss.complete(QUEUE, complete);
      if (fail.length) await boss.fail(QUEUE, fail, { reason: "fleet_max_concurrent reached, or the process that fetched it is closing" });
    } catch (err) {
      // The database is away: an occurrence still marked running is settled by the orphan sweep
      // if this process dies, and a pg-boss job not settled is handed out again after its
      // heartbeat, to find its occurrence no longer queued.
      this.deps.onError(err);
    }
  }

  /** The runner returns once the run has started; the occurrence is held until it ends. */
  private async runEnded(jobId: string, at: number): Promise<void> {
    const runs = this.deps.runs.ofJob(jobId);
    for (let i = runs.length - 1; i >= 0; i--) {
      const r = runs[i];
      if (r.status === "running" && r.scheduled_for !== null && Date.parse(r.scheduled_for) === at) {
        await this.deps.runs.whenEnded(r.id);
        return;
      }
    }
  }
}

type Claim = "moved" | "taken" | "full" | "give back";

/** Leaves a take's transaction without an error for the caller: the occurrence was not taken. */
class Rollback extends Error {}
