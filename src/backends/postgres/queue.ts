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
/** Where a full fleet (fleet_max_concurrent) leaves an occurrence: queued, tried again in this many seconds. */
const FULL_RETRY_SECONDS = 1;
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
    const taken = await db.tx(async (client) => {
      const inserted = await client.query(
        `INSERT INTO ${SCHEMA}.occurrences (job_id, scheduled_for, trigger, state) VALUES ($1, $2::timestamptz, $3, 'queued')
         ON CONFLICT DO NOTHING
         RETURNING CASE WHEN $4::boolean THEN pg_notify('${CHANNEL}', json_build_object('o', $5::text, 'k', 'w', 'id', $1::text, 'v', 0)::text) END`,
        [job.id, new Date(at).toISOString(), occ.trigger, wake, this.deps.origin],
      );
      if (inserted.rowCount === 0) return null;
      const { rows } = await client.query<{ id: string; rev: string; data: unknown }>(`SELECT id, rev, data FROM ${SCHEMA}.jobs WHERE id = $1 FOR UPDATE`, [job.id]);
      if (rows.length === 0) throw new Rollback();
      const stored = parseJob(rows[0].data, job.id);
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
        for (const job of fetched) this.start(job);
        if (fetched.length === free) continue;
      }
      await this.idle(POLL_MS);
    }
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

  private start(job: BossJob<OccurrenceData>): void {
    this.inHand.set(job.id, job);
    const p = this.handle(job)
      .catch((err) => this.deps.onError(err))
      .finally(() => {
        this.inHand.delete(job.id);
        this.handling.delete(p);
        this.wake();
      });
    this.handling.add(p);
  }

  private async handle(job: BossJob<OccurrenceData>): Promise<void> {
    const boss = this.deps.boss!;
    const attempt = { id: job.id, retryCount: job.retryCount };
    const { job_id: jobId, at, trigger } = job.data;
    if (this.closed || !this.runner) {
      // Closing: hand it back to the fleet (another process takes it within a second).
      await boss.fail(QUEUE, attempt, { reason: "the process that fetched it is closing" });
      return;
    }
    const claim = await this.claim(jobId, at);
    if (claim === "full") {
      await boss.fail(QUEUE, attempt, { reason: "fleet_max_concurrent reached" });
      return;
    }
    if (claim === "moved") {
      try {
        await this.runner(jobId, { scheduledFor: at, trigger });
        await this.runEnded(jobId, at);
      } finally {
        await this.deps.db
          .query(`UPDATE ${SCHEMA}.occurrences SET state = 'done', finished_at = now() WHERE job_id = $1 AND scheduled_for = $2::timestamptz AND state = 'running'`, [jobId, new Date(at).toISOString()])
          .catch(this.deps.onError);
      }
    }
    // "taken": it ran (or is running) elsewhere already; this pg-boss job was a retry of it.
    await boss.complete(QUEUE, attempt);
  }

  /** Moves the occurrence from queued to running for this process, unless the fleet is full. */
  private async claim(jobId: string, at: number): Promise<"moved" | "taken" | "full"> {
    const { db, origin } = this.deps;
    const move = (conn: Pick<pg.ClientBase, "query"> | Db) =>
      (conn as Db).query(
        `UPDATE ${SCHEMA}.occurrences SET state = 'running', process_id = $3, started_at = now()
         WHERE job_id = $1 AND scheduled_for = $2::timestamptz AND state = 'queued'`,
        [jobId, new Date(at).toISOString(), origin],
      );
    const cap = this.deps.limits().fleet;
    if (cap === undefined) return ((await move(db)).rowCount ?? 0) > 0 ? "moved" : "taken";
    return db.tx(async (client) => {
      // One process counts at a time, so two never both take the last slot.
      await client.query("SELECT pg_advisory_xact_lock($1)", [FLEET_LOCK]);
      const { rows } = await client.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM ${SCHEMA}.occurrences WHERE state = 'running')
              + (SELECT count(*) FROM ${SCHEMA}.runs r WHERE r.status = 'running'
                   AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.occurrences o WHERE o.job_id = r.job_id AND o.scheduled_for = r.scheduled_for)) AS n`,
      );
      if (Number(rows[0].n) >= cap) return "full";
      return ((await move(client)).rowCount ?? 0) > 0 ? "moved" : "taken";
    });
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

/** Leaves a take's transaction without an error for the caller: the occurrence was not taken. */
class Rollback extends Error {}
