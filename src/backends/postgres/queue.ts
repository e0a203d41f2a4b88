import type { Job as BossJob, PgBoss } from "pg-boss";
import pg from "pg";
import { caughtUpFields, takenFields, withDerivedFields } from "../../core/job-rules.js";
import type { Job, Run, RunTrigger } from "../../core/jobs.js";
import { handledUntil, takeable, type CatchUpPlan } from "../../core/planner.js";
import type { Occurrence, OccurrenceQueue } from "../../core/ports.js";
import type { Clock } from "../../core/scheduler.js";
import { toIsoInZone } from "../../kernel/time.js";
import { CHANNEL, SCHEMA, type Db } from "./db.js";
import { goneSql } from "./fleet.js";
import type { PgJobRepo } from "./jobs.js";
import { parseJob } from "./jobs.js";
import type { PgRunRepo } from "./runs.js";

/** The pg-boss queue every process of a fleet works. */
export const QUEUE = "agent-cron-occurrences";
/** An idle worker looks for queued occurrences this often (a take wakes its own worker at once, and the others when it has no free slot). */
const POLL_MS = 500;
/**
 * How long a server that does not go first for a job waits before it tries to take one of its
 * occurrences itself (see Fleet.goesFirst): the one that goes first may have died. Well under
 * the App's LATE_MS, past which an occurrence is caught up instead.
 */
const HANDOFF_MS = 2000;
/** Takes written in one transaction, at most; transactions of takes at once, at most. */
const TAKE_BATCH_MAX = 500;
const TAKE_BATCHES = 4;
/** A take's transaction is tried this many times at most while the database is up (see persist). */
const TAKE_ATTEMPTS = 12;
/** Occurrences that ended are settled together this long after (see flush). */
const SETTLE_MS = 50;
/** After a flush the database did not take, the next try. */
const FLUSH_RETRY_MS = 1_000;
/** pg_advisory_xact_lock(WAIT_LOCK, hashtext(job id)): one waiting occurrence per job (queue_one). */
const WAIT_LOCK = 1633907303;
/** A worker that is behind waits this long for a few slots to free before it fetches (see loop). */
const GATHER_MS = 15;
/** pg_advisory_xact_lock key around counting the fleet's runs. */
const FLEET_LOCK = "7161938520000001";

interface OccurrenceData {
  job_id: string;
  at: number;
  trigger: RunTrigger;
  /** A caught-up occurrence only to be recorded missed. */
  missed?: boolean;
  /** One of a catch-up backlog (runs whatever overlap says). */
  backlog?: boolean;
}

/**
 * The queue of taken occurrences, shared by the fleet through pg-boss 12. `take` inserts the
 * occurrence row, moves the job's last_scheduled_for and enqueues the run (pg-boss `insert`,
 * `send`'s batch form, with this transaction's connection as its `db`) in one transaction:
 * the occurrence is taken once fleet-wide, or not at all. Each process's worker fetches as many as it has free
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
  /** What the worker loop and each occurrence in hand are doing (AGENT_CRON_DEBUG_QUEUE=1 prints it every 2 s). */
  private loopState = "starting";
  private readonly stages = new Map<string, { stage: string; since: number }>();
  private debugTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: {
      db: Db;
      /** A pool of its own for takes, so a burst of them never holds up the runs' writes or tool calls. */
      takeDb: Db;
      /** Null in a CLI process: it takes no occurrences and works no queue. */
      boss: PgBoss | null;
      jobs: PgJobRepo;
      runs: PgRunRepo;
      origin: string;
      clock: Clock;
      limits: () => { perProcess: number; fleet: number | undefined };
      /** False when another process should try first (see Fleet.goesFirst). */
      goesFirst: (jobId: string) => boolean;
      /** Throws while the backend has lost the database and not caught up since. */
      checkAvailable: () => void;
      onError: (err: unknown) => void;
    },
  ) {}

  /**
   * Takes an occurrence for the fleet. Every server arms every occurrence; the one that goes
   * first for this job (Fleet.goesFirst) asks the database at once, the others only if they
   * have not heard it was taken HANDOFF_MS later (its process may have died), so normally one
   * process per job asks. Takes due together are written together (see takeBatch).
   */
  async take(job: Job, occ: Occurrence & { scheduledFor: number; nextRunAt?: string | null }, delayMs: number): Promise<Job | null> {
    if (!this.deps.boss) throw new Error("This agent-cron process does not schedule (it answers one CLI command).");
    const at = occ.scheduledFor;
    const readyAt = Date.now() + (this.deps.goesFirst(job.id) ? 0 : HANDOFF_MS);
    // A job's takes go in the order of their occurrences, whatever each waits (the hand-off):
    // a take of a later occurrence first would mark the earlier one handled, never taken.
    const previous = this.chains.get(job.id);
    const mine = (async () => {
      await previous?.catch(() => {});
      const wait = readyAt - Date.now();
      if (wait > 0) await sleep(wait);
      return this.takeInOrder(job.id, at, occ.trigger, delayMs, job, occ.nextRunAt);
    })();
    this.chains.set(job.id, mine);
    void mine
      .catch(() => {})
      .finally(() => {
        if (this.chains.get(job.id) === mine) this.chains.delete(job.id);
      });
    return mine;
  }

  /** The last take asked for, per job: the next one starts after it. */
  private readonly chains = new Map<string, Promise<Job | null>>();
  /**
   * The earliest occurrence whose take failed, per job: no later occurrence of the job is taken
   * by this process until that one is handled (by a take, another process, or a catch-up), so
   * a failure never leaves a hole behind a later take. The App arms the job again from what is
   * handled.
   */
  private readonly failedAt = new Map<string, number>();

  private async takeInOrder(
    jobId: string,
    at: number,
    trigger: RunTrigger,
    delayMs: number,
    armed: Job,
    nextRunAt: string | null | undefined,
  ): Promise<Job | null> {
    // Taken and heard of, through this process or another: nothing to ask the database.
    const known = this.deps.jobs.get(jobId);
    const failed = this.failedAt.get(jobId);
    if (failed !== undefined && known && handledUntil(known) >= failed) this.failedAt.delete(jobId);
    if (!known || !takeable(known, at)) return null;
    if (failed !== undefined && this.failedAt.has(jobId) && at > failed) return null;
    try {
      this.deps.checkAvailable();
      return await new Promise<Job | null>((resolve, reject) => {
        this.pendingTakes.push({ jobId, at, trigger, delayMs, armed, nextRunAt, resolve, reject });
        this.scheduleTakes();
      });
    } catch (err) {
      this.failedAt.set(jobId, Math.min(at, this.failedAt.get(jobId) ?? Infinity));
      throw err;
    }
  }

  private readonly pendingTakes: PendingTake[] = [];
  /** Jobs with a take in a transaction now: their next take waits for it (takes of one job go in order). */
  private readonly takingJobs = new Set<string>();
  private takeBatches = 0;
  private takesScheduled = false;

  private scheduleTakes(): void {
    if (this.takesScheduled) return;
    this.takesScheduled = true;
    // Everything asked for in this turn of the event loop goes in one transaction.
    setImmediate(() => {
      this.takesScheduled = false;
      this.startTakeBatches();
    });
  }

  private startTakeBatches(): void {
    while (this.takeBatches < TAKE_BATCHES && this.pendingTakes.length) {
      const batch: PendingTake[] = [];
      const inBatch = new Set<string>();
      for (let i = 0; i < this.pendingTakes.length && batch.length < TAKE_BATCH_MAX; ) {
        const t = this.pendingTakes[i];
        // One take per job per transaction, the oldest first, and none while one is being written.
        if (inBatch.has(t.jobId) || this.takingJobs.has(t.jobId)) {
          i++;
          continue;
        }
        this.pendingTakes.splice(i, 1);
        batch.push(t);
        inBatch.add(t.jobId);
      }
      if (!batch.length) return;
      for (const id of inBatch) this.takingJobs.add(id);
      this.takeBatches++;
      void this.persist(() => this.takeBatch(batch))
        .then(
          (results) => batch.forEach((t, i) => t.resolve(results[i])),
          (err) => batch.forEach((t) => t.reject(err)),
        )
        .finally(() => {
          for (const id of inBatch) this.takingJobs.delete(id);
          this.takeBatches--;
          if (this.pendingTakes.length) this.startTakeBatches();
        });
    }
  }

  /**
   * Runs a take's transaction again when it failed for a passing reason (a deadlock, a lock or
   * statement timeout, every connection busy) while the database is up: a take given up would
   * lose its occurrence, and the job's later takes wait behind it (takes of one job go in order),
   * so none is taken past it. While the database is away it fails at once: the backend catches
   * up when it is back, and every job is armed again from what the database says was handled.
   */
  private async persist<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.closed || attempt >= TAKE_ATTEMPTS || !this.isUp()) throw err;
        await sleep(Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random()));
      }
    }
  }

  private isUp(): boolean {
    try {
      this.deps.checkAvailable();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * One transaction for a batch of takes (one per job): insert their occurrence rows (a row
   * another process inserted first is left alone: that occurrence is not this process's),
   * lock the jobs whose rows it inserted, give back the rows of jobs paused or handled
   * meanwhile, move each job's last_scheduled_for forward, and enqueue the runs with pg-boss
   * (`insert` with this transaction's connection as `db`). Rows are taken in id order, so two
   * processes' batches never deadlock.
   */
  private takeBatch(batch: PendingTake[]): Promise<(Job | null)[]> {
    batch.sort((a, b) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
    // After this process's updates of these jobs in flight, and before its next ones: written
    // at once, the two would meet at the rows' locks and the updates fail their revision check.
    return this.deps.jobs.exclusive(
      batch.map((t) => t.jobId),
      () => this.takeBatchNow(batch),
    );
  }

  private async takeBatchNow(batch: PendingTake[]): Promise<(Job | null)[]> {
    const { takeDb: db, jobs, origin } = this.deps;
    const boss = this.deps.boss!;
    const mirror = batch.map((t) => ({ job: jobs.get(t.jobId), rev: jobs.revOf(t.jobId) ?? -1 }));
    // The other workers are woken only when this one cannot start them at once itself.
    const now = batch.filter((t) => t.delayMs <= 0).length;
    const wakeOthers = now > 0 && this.deps.limits().perProcess - this.inHand.size < now;
    const taken = await db.tx(async (client) => {
      const { rows } = await client.query<{ id: string; rev: string; data: unknown }>(
        `WITH want AS (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS w(job_id, at, trigger)),
         occ AS (
           INSERT INTO ${SCHEMA}.occurrences (job_id, scheduled_for, trigger, state)
           SELECT job_id, at, trigger, 'queued' FROM want ORDER BY job_id
           ON CONFLICT DO NOTHING
           RETURNING job_id)
         SELECT j.id, j.rev, CASE WHEN j.rev = m.rev THEN NULL ELSE j.data END AS data
         FROM ${SCHEMA}.jobs j JOIN occ ON occ.job_id = j.id JOIN unnest($1::text[], $4::bigint[]) AS m(id, rev) ON m.id = j.id
         ORDER BY j.id
         FOR UPDATE OF j`,
        [batch.map((t) => t.jobId), batch.map((t) => new Date(t.at).toISOString()), batch.map((t) => t.trigger), mirror.map((m) => String(m.rev))],
      );
      const byId = new Map(rows.map((r) => [r.id, r]));
      const out: ({ job: Job; take: PendingTake; base: Job; baseRev: number } | null)[] = [];
      const refused: PendingTake[] = [];
      for (const [i, t] of batch.entries()) {
        const row = byId.get(t.jobId);
        if (!row) {
          // Taken by another process, or the job is gone.
          out.push(null);
          continue;
        }
        const stored = row.data === null && mirror[i].job ? mirror[i].job! : parseJob(row.data, t.jobId);
        // Handled through another process since this one armed it, or paused or rescheduled
        // before it came due (one due before the change is taken: its run records it skipped).
        if (!takeable(stored, t.at)) {
          refused.push(t);
          out.push(null);
          continue;
        }
        out.push({
          take: t,
          job: takenFields(stored, t.at, this.deps.clock.now(), t.armed, t.nextRunAt),
          base: stored,
          baseRev: Number(row.rev),
        });
      }
      if (refused.length) {
        await client.query(
          `DELETE FROM ${SCHEMA}.occurrences o USING unnest($1::text[], $2::timestamptz[]) AS x(job_id, at) WHERE o.job_id = x.job_id AND o.scheduled_for = x.at`,
          [refused.map((t) => t.jobId), refused.map((t) => new Date(t.at).toISOString())],
        );
      }
      const won = out.filter((o): o is { job: Job; take: PendingTake; base: Job; baseRev: number } => o !== null);
      if (!won.length) return out.map(() => null);
      const revs = await jobs.writeTaken(client, won);
      await boss.insert(
        QUEUE,
        won.map(({ take: t }) => ({
          data: { job_id: t.jobId, at: t.at, trigger: t.trigger } satisfies OccurrenceData,
          ...(t.delayMs > 0 ? { startAfter: t.delayMs / 1000 } : {}),
        })),
        { db: txDb(client) },
      );
      if (wakeOthers) await client.query(`SELECT pg_notify('${CHANNEL}', json_build_object('o', $1::text, 'k', 'w', 'id', '', 'v', 0)::text)`, [origin]);
      return out.map((o) => (o ? { job: o.job, rev: revs.get(o.job.id)! } : null));
    });
    const results: (Job | null)[] = [];
    for (const [i, r] of taken.entries()) {
      if (!r) {
        results.push(null);
        continue;
      }
      jobs.applyOwn(r.job, r.rev);
      results.push(r.job);
      const delayMs = batch[i].delayMs;
      if (delayMs > 0) {
        // Its own worker looks again when the jitter has passed; the others find it by polling.
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.wake();
        }, delayMs + 5);
        timer.unref();
        this.timers.add(timer);
      }
    }
    if (now) this.wake();
    return results;
  }

  /**
   * A catch-up, taken whole (see OccurrenceQueue.takeCatchUp): under the job's row lock, the plan
   * is made on the stored job, its last_scheduled_for moved, and every occurrence of the plan
   * inserted and enqueued, in one transaction.
   */
  async takeCatchUp(jobId: string, plan: (stored: Job) => CatchUpPlan | null): Promise<{ job: Job; plan: CatchUpPlan } | null> {
    const boss = this.deps.boss;
    if (!boss) return null;
    this.deps.checkAvailable();
    const { jobs, clock } = this.deps;
    const taken = await this.persist(() =>
      this.deps.takeDb.tx(async (client) => {
        // Occurrence rows first, then the job's row: the order a take keeps, so the two never
        // deadlock. The plan is made on the row as read, and given up if it changed meanwhile.
        const read = await client.query<{ rev: string; data: unknown }>(`SELECT rev, data FROM ${SCHEMA}.jobs WHERE id = $1`, [jobId]);
        if (!read.rows.length) return null;
        const stored = parseJob(read.rows[0].data, jobId);
        const p = stored.state === "active" ? plan(stored) : null;
        if (!p || handledUntil(stored) >= p.newest) return null;
        const wanted: OccurrenceData[] = [
          ...p.record.map((at) => ({ job_id: jobId, at, trigger: "catch_up" as const, missed: true })),
          ...p.run.map((at) => ({ job_id: jobId, at, trigger: "catch_up" as const, ...(p.run.length > 1 ? { backlog: true } : {}) })),
        ];
        // A row already there (an occurrence taken before) keeps its own fate.
        const inserted = await client.query<{ scheduled_for: Date }>(
          `INSERT INTO ${SCHEMA}.occurrences (job_id, scheduled_for, trigger, state)
         SELECT $1, at, 'catch_up', 'queued' FROM unnest($2::timestamptz[]) AS at ORDER BY at
         ON CONFLICT DO NOTHING RETURNING scheduled_for`,
          [jobId, wanted.map((w) => new Date(w.at).toISOString())],
        );
        const locked = await client.query<{ rev: string }>(`SELECT rev FROM ${SCHEMA}.jobs WHERE id = $1 FOR UPDATE`, [jobId]);
        if (!locked.rows.length) return null;
        // Changed since it was read (another process took an occurrence or caught up): planned again.
        if (locked.rows[0].rev !== read.rows[0].rev) throw new Error("The job changed while its catch-up was planned.");
        const job = withDerivedFields({
          ...stored,
          ...caughtUpFields(p, stored.timezone),
          updated_at: toIsoInZone(new Date(clock.now()), stored.timezone),
        });
        const revs = await jobs.writeMany(client, [job]);
        const fresh = new Set(inserted.rows.map((r) => r.scheduled_for.getTime()));
        const queued = wanted.filter((w) => fresh.has(w.at));
        if (queued.length)
          await boss.insert(
            QUEUE,
            queued.map((data) => ({ data })),
            { db: txDb(client) },
          );
        return { job, plan: p, rev: revs.get(jobId)! };
      }),
    );
    if (!taken) return null;
    jobs.applyOwn(taken.job, taken.rev);
    this.wake();
    return { job: taken.job, plan: taken.plan };
  }

  /** Occurrences this process keeps queued behind a run (queue_one): "job_id epoch-ms". */
  private readonly waiting = new Set<string>();

  /**
   * Rejects only once this process is closing: until then a failure (the database away or
   * restarting) is tried again a second later, since the occurrence is this process's alone
   * (its row is claimed) and given up here it would have no run and no record.
   */
  async waitBehind(jobId: string, occ: Occurrence & { scheduledFor: number }): Promise<boolean> {
    const at = new Date(occ.scheduledFor).toISOString();
    const moved = await this.untilClosed(() =>
      this.deps.db.tx(async (client) => {
        // One occurrence waits per job fleet-wide: decided under a lock of the job's own (not its
        // row, which takes lock after occurrence rows: this one holds its occurrence's row).
        await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [WAIT_LOCK, jobId]);
        const { rowCount } = await client.query(
          `UPDATE ${SCHEMA}.occurrences SET state = 'waiting'
         WHERE job_id = $1 AND scheduled_for = $2 AND state = 'running' AND process_id = $3
           AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.occurrences w WHERE w.job_id = $1 AND w.state = 'waiting' AND w.scheduled_for <> $2)`,
          [jobId, at, this.deps.origin],
        );
        return rowCount === 1;
      }),
    );
    if (moved) this.waiting.add(`${jobId} ${occ.scheduledFor}`);
    return moved;
  }

  /** `fn`, tried again every second after a failure until it succeeds; rejects once the queue is closing. */
  private async untilClosed<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await this.persist(fn);
      } catch (err) {
        if (this.closed) throw err;
        this.deps.onError(err);
        await sleep(1000);
      }
    }
  }

  /**
   * An occurrence waiting behind a run (queue_one): held here until the job has no run going,
   * then claimed again (under fleet_max_concurrent) and handed to the runner, which may make it
   * wait again. Stops when this process closes: the row stays 'waiting' and another process
   * requeues it once this one is gone (requeueOrphanedWaits).
   */
  private async runWhenFree(jobId: string, at: number, trigger: RunTrigger): Promise<void> {
    const key = `${jobId} ${at}`;
    while (this.waiting.has(key) && !this.closed) {
      const going = this.deps.runs.ofJob(jobId).find((r) => r.status === "running");
      if (going) {
        await Promise.race([this.deps.runs.whenEnded(going.id), sleep(1000)]);
        continue;
      }
      // The database away: the row stays waiting, and is tried again until this process closes.
      const moved = await this.untilClosed(() => this.moveBack(jobId, at)).catch(() => "closed" as const);
      if (moved === "closed") return;
      if (moved === "full") {
        await sleep(1000);
        continue;
      }
      this.waiting.delete(key);
      if (moved === "gone") return;
      await this.runner!(jobId, { scheduledFor: at, trigger });
    }
  }

  /** waiting → running for this process, when the fleet has room. */
  private async moveBack(jobId: string, at: number): Promise<"moved" | "full" | "gone"> {
    const where = `job_id = ${pg.escapeLiteral(jobId)} AND scheduled_for = ${pg.escapeLiteral(new Date(at).toISOString())} AND state = 'waiting'`;
    const set = `SET state = 'running', process_id = ${pg.escapeLiteral(this.deps.origin)}, started_at = now()`;
    const cap = this.deps.limits().fleet;
    if (cap === undefined) {
      const { rowCount } = await this.deps.db.query(`UPDATE ${SCHEMA}.occurrences ${set} WHERE ${where}`);
      return rowCount === 1 ? "moved" : "gone";
    }
    const [row] = await this.underFleetLock<{ moved: string; waiting: string }>(
      `WITH moved AS (UPDATE ${SCHEMA}.occurrences ${set} WHERE ${where} AND ${roomSql(cap)} > 0 RETURNING 1)
       SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM ${SCHEMA}.occurrences WHERE ${where}) AS waiting`,
    );
    return Number(row.moved) === 1 ? "moved" : Number(row.waiting) === 1 ? "full" : "gone";
  }

  /**
   * Occurrences left waiting (queue_one) by processes that are gone: queued again, with a new
   * pg-boss job, in one transaction. The dead process's own pg-boss job, handed out again
   * later, finds the row taken or claims it first: it runs once either way.
   */
  async requeueOrphanedWaits(): Promise<void> {
    const boss = this.deps.boss;
    if (!boss) return;
    await this.deps.db.tx(async (client) => {
      const { rows } = await client.query<{ job_id: string; scheduled_for: Date; trigger: RunTrigger }>(
        `UPDATE ${SCHEMA}.occurrences o SET state = 'queued', process_id = NULL
         WHERE o.state = 'waiting' AND ${goneSql("o.process_id", "$1")}
         RETURNING o.job_id, o.scheduled_for, o.trigger`,
        [this.deps.origin],
      );
      if (!rows.length) return;
      await boss.insert(
        QUEUE,
        rows.map((r) => ({ data: { job_id: r.job_id, at: r.scheduled_for.getTime(), trigger: r.trigger } satisfies OccurrenceData })),
        { db: txDb(client) },
      );
    });
    this.wake();
  }

  consume(runner: (jobId: string, occ: Occurrence) => Promise<void>): void {
    this.runner = runner;
    if (this.deps.boss) this.loopDone ??= this.loop();
    if (this.deps.boss && process.env.AGENT_CRON_DEBUG_QUEUE && !this.debugTimer) {
      this.debugTimer = setInterval(() => {
        const now = Date.now();
        const held = [...this.inHand.values()].map((j) => {
          const s = this.stages.get(j.id);
          return `${j.data.job_id.slice(0, 8)}@${new Date(j.data.at).toISOString().slice(11, 19)}:${s?.stage ?? "?"}:${s ? now - s.since : "?"}ms`;
        });
        process.stderr.write(
          `queue-debug pid=${process.pid} loop=${this.loopState} up=${this.isUp()} pool=${poolStats(this.deps.db)} takePool=${poolStats(this.deps.takeDb)} inHand=${this.inHand.size} woken=${this.woken} waiting=${this.waiting.size} handling=${this.handling.size} ${held.join(" ")}\n`,
        );
      }, 2000);
      this.debugTimer.unref();
    }
  }

  private setStage(id: string, stage: string): void {
    this.stages.set(id, { stage, since: Date.now() });
  }

  /** Runs waiting for room in the fleet (fleetSlot): told when room may have been freed. */
  private readonly roomWaiters = new Set<() => void>();

  /** Another process queued work or freed room (or a slot freed here): look now. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
    for (const waiter of [...this.roomWaiters]) waiter();
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
    if (this.debugTimer) clearInterval(this.debugTimer);
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
    // The last fetch filled every free slot: more is queued than this process runs.
    let behind = false;
    while (!this.closed) {
      let free = this.deps.limits().perProcess - this.inHand.size;
      if (behind && free > 0 && free < this.deps.limits().perProcess / 4) {
        // At capacity slots free one at a time as runs end, and fetching each alone costs two
        // round trips (fetch, claim) per occurrence: a moment gathers a few more.
        this.loopState = "gather";
        await sleep(GATHER_MS);
        free = this.deps.limits().perProcess - this.inHand.size;
      }
      if (free > 0) {
        let fetched: BossJob<OccurrenceData>[] = [];
        this.woken = false;
        try {
          this.loopState = `fetch(${free})`;
          fetched = (await this.deps.boss!.fetch<OccurrenceData>(QUEUE, { batchSize: free })) ?? [];
        } catch (err) {
          this.deps.onError(err);
          this.loopState = "idle after fetch error";
          await this.idle(2000);
          continue;
        }
        if (fetched.length) this.track(this.handle(fetched));
        behind = fetched.length === free;
        if (behind) continue;
      }
      this.loopState = free > 0 ? "idle" : "full";
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
    for (const job of batch) {
      this.inHand.set(job.id, job);
      this.setStage(job.id, "claim");
    }
    let claims: Map<string, Claim>;
    if (this.closed || !this.runner) {
      // Closing: hand them back to the fleet (another process takes them within a second).
      claims = new Map(batch.map((j) => [j.id, "give back" as const]));
    } else {
      try {
        claims = await this.claim(batch);
      } catch (err) {
        // Given back to the queue at once (tried again after its retryDelay), not left to lapse
        // with its heartbeat (10 s and a supervision later): whoever gets one then finds its
        // occurrence's row as it is (the claim is one transaction: a failed one moved nothing,
        // unless its answer was lost after the commit; then the row is this process's, and the
        // sweep settles it as lost).
        for (const job of batch) {
          this.inHand.delete(job.id);
          this.stages.delete(job.id);
          this.toFail.push({ id: job.id, retryCount: job.retryCount });
        }
        this.scheduleFlush();
        throw err;
      }
    }
    await Promise.all(batch.map((job) => this.settle(job, claims.get(job.id) ?? "taken")));
  }

  private async settle(job: BossJob<OccurrenceData>, claim: Claim): Promise<void> {
    const { job_id: jobId, at, trigger, missed, backlog } = job.data;
    try {
      if (claim === "moved") {
        try {
          this.setStage(job.id, "runner");
          await this.runner!(jobId, { scheduledFor: at, trigger, ...(missed ? { missed } : {}), ...(backlog ? { backlog } : {}) });
          // Queued behind a run (queue_one): held until it has run.
          this.setStage(job.id, "runWhenFree");
          await this.runWhenFree(jobId, at, trigger);
          if (this.waiting.delete(`${jobId} ${at}`)) return;
          this.setStage(job.id, "runEnded");
          await this.runEnded(jobId, at);
        } catch (err) {
          this.deps.onError(err);
        }
        this.finished.push({ jobId, at });
      }
    } finally {
      this.inHand.delete(job.id);
      this.stages.delete(job.id);
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
   * with fleet_max_concurrent, only as many as the fleet has room for (see underFleetLock).
   * "moved": this process runs it; "full": queued still, no room; "taken": not queued (it ran
   * or runs elsewhere: this was pg-boss handing out a retry of it).
   */
  private async claim(batch: BossJob<OccurrenceData>[]): Promise<Map<string, Claim>> {
    const { db, origin } = this.deps;
    const cap = this.deps.limits().fleet;
    const key = (jobId: string, at: number) => `${jobId} ${at}`;
    const want = `unnest(${textArray(batch.map((j) => j.data.job_id))}::text[], ${textArray(batch.map((j) => new Date(j.data.at).toISOString()))}::timestamptz[])`;
    const rows =
      cap === undefined
        ? (
            await db.query<{ job_id: string; scheduled_for: Date; moved: boolean; queued: boolean }>(
              `UPDATE ${SCHEMA}.occurrences o SET state = 'running', process_id = $1, started_at = now()
               FROM ${want} AS x(job_id, at)
               WHERE o.job_id = x.job_id AND o.scheduled_for = x.at AND o.state = 'queued'
               RETURNING o.job_id, o.scheduled_for, true AS moved, true AS queued`,
              [origin],
            )
          ).rows
        : await this.underFleetLock<{ job_id: string; scheduled_for: Date; moved: boolean; queued: boolean }>(
            `WITH want AS (SELECT * FROM ${want} WITH ORDINALITY AS x(job_id, at, ord)),
             pick AS (
               SELECT w.job_id, w.at FROM want w
               JOIN ${SCHEMA}.occurrences o ON o.job_id = w.job_id AND o.scheduled_for = w.at AND o.state = 'queued'
               ORDER BY w.ord LIMIT (SELECT greatest(0, ${roomSql(cap)}))),
             moved AS (
               UPDATE ${SCHEMA}.occurrences o SET state = 'running', process_id = ${pg.escapeLiteral(origin)}, started_at = now()
               FROM pick WHERE o.job_id = pick.job_id AND o.scheduled_for = pick.at AND o.state = 'queued'
               RETURNING o.job_id, o.scheduled_for)
             SELECT w.job_id, w.at AS scheduled_for, m.job_id IS NOT NULL AS moved, q.job_id IS NOT NULL AS queued
             FROM want w
             LEFT JOIN moved m ON m.job_id = w.job_id AND m.scheduled_for = w.at
             LEFT JOIN ${SCHEMA}.occurrences q ON q.job_id = w.job_id AND q.scheduled_for = w.at AND q.state = 'queued'`,
          );
    const moved = new Set(rows.filter((r) => r.moved).map((r) => key(r.job_id, r.scheduled_for.getTime())));
    const full = new Set(rows.filter((r) => !r.moved && r.queued).map((r) => key(r.job_id, r.scheduled_for.getTime())));
    const result = new Map<string, Claim>();
    for (const j of batch) {
      const k = key(j.data.job_id, j.data.at);
      // Two pg-boss jobs of one occurrence in a batch (a retry beside the original): one runs it.
      result.set(j.id, moved.delete(k) ? "moved" : full.has(k) ? "full" : "taken");
    }
    return result;
  }

  /**
   * Runs `statement` under the fleet lock, counting the fleet's runs (roomSql) and claiming what
   * fits, in one round trip: the lock and the statement go as one simple query, which PostgreSQL
   * runs as one transaction (the lock is let go at its end), the statement with a snapshot taken
   * after the lock was granted, so its count sees every claim made before. Held across round
   * trips instead, the lock waited on this process's event loop between them, and every claim of
   * the fleet queued behind it: under load, seconds per claim, and the fleet fell behind.
   * Values go into `statement` as literals (a simple query has no parameters).
   */
  private async underFleetLock<R extends pg.QueryResultRow>(statement: string): Promise<R[]> {
    const results = (await this.deps.db.query(`SELECT pg_advisory_xact_lock(${FLEET_LOCK}); ${statement}`)) as unknown as pg.QueryResult<R>[];
    return results[results.length - 1].rows;
  }

  async fleetSlot(run: Run, signal: AbortSignal): Promise<() => void> {
    const cap = this.deps.limits().fleet;
    const none = () => {};
    if (cap === undefined) return none;
    // Its occurrence's claim holds its room (claim, moveBack).
    if (run.scheduled_for !== null && this.holding().has(`${run.job_id} ${Date.parse(run.scheduled_for)}`)) return none;
    const { db, origin } = this.deps;
    for (;;) {
      if (signal.aborted || this.closed) return none;
      try {
        const got =
          (
            await this.underFleetLock(
              `INSERT INTO ${SCHEMA}.slots (run_id, process_id) SELECT ${pg.escapeLiteral(run.id)}, ${pg.escapeLiteral(origin)} WHERE ${roomSql(cap)} > 0
               ON CONFLICT (run_id) DO UPDATE SET process_id = EXCLUDED.process_id RETURNING run_id`,
            )
          ).length > 0;
        if (got) {
          return () => {
            // Not given back (the database away): the sweep frees a room whose run is no longer running.
            void db
              .query(`DELETE FROM ${SCHEMA}.slots WHERE run_id = $1`, [run.id])
              .then(() => db.query(`SELECT pg_notify('${CHANNEL}', json_build_object('o', $1::text, 'k', 'w', 'id', '', 'v', 0)::text)`, [origin]))
              .catch((err) => this.deps.onError(err));
            this.wake();
          };
        }
      } catch (err) {
        this.deps.onError(err);
      }
      // Full (or the database away): looked at again in a second, at once when room is freed
      // (a wake: a run ended here, or another process said so), or when the run is canceled.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.roomWaiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, 1000);
        this.roomWaiters.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  // Settlements are written together: one statement for the occurrence rows, one pg-boss call
  // each for completions and give-backs, a moment after the runs end.
  private readonly finished: { jobId: string; at: number }[] = [];
  private readonly toComplete: { id: string; retryCount: number }[] = [];
  private readonly toFail: { id: string; retryCount: number }[] = [];
  private flushTimer: NodeJS.Timeout | null = null;

  private scheduleFlush(delayMs = SETTLE_MS): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, delayMs);
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
        // Settled whether or not its record is in the table yet: one deferred (the database
        // away) is written later, and one runs_per_job pruned meanwhile would be taken for
        // missing. The runner records every occurrence it takes whose job is still there (Dispatcher.admitTaken).
        await this.deps.db.query(
          `UPDATE ${SCHEMA}.occurrences o SET state = 'done', finished_at = now()
           FROM unnest($1::text[], $2::timestamptz[]) AS x(job_id, at)
           WHERE o.job_id = x.job_id AND o.scheduled_for = x.at AND o.state = 'running'`,
          [finished.map((f) => f.jobId), finished.map((f) => new Date(f.at).toISOString())],
        );
      }
      if (complete.length) await boss.complete(QUEUE, complete);
      if (fail.length) await boss.fail(QUEUE, fail, { reason: "fleet_max_concurrent reached, its claim failed, or the process that fetched it is closing" });
    } catch (err) {
      // The database is away. What this flush took is put back and sent again once it answers:
      // dropped, an occurrence whose run ended stayed `running` for as long as this process
      // lived (the orphan sweep settles only a dead process's), and the fleet never finished it
      // (postgres-chaos, a Postgres stop). Each statement is safe to repeat: the update touches
      // only rows still running, and pg-boss settles a job once. If this process dies meanwhile,
      // the orphan sweep settles its occurrences and pg-boss hands its jobs out again.
      this.deps.onError(err);
      this.finished.unshift(...finished);
      this.toComplete.unshift(...complete);
      this.toFail.unshift(...fail);
      if (!this.closed) this.scheduleFlush(FLUSH_RETRY_MS);
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

/** pg-boss writes with this transaction's connection (its `db` option). */
const txDb = (client: Pick<pg.ClientBase, "query">) => ({
  executeSql: (text: string, values?: unknown[]) => client.query(text, values) as Promise<pg.QueryResult>,
});

/**
 * SQL: runs the fleet may still start under fleet_max_concurrent: the cap less the occurrences
 * claimed (running) and the rooms other runs hold (slots). Read it only under the fleet lock
 * (underFleetLock), so two processes never both take the last room.
 */
const roomSql = (cap: number) =>
  `(${Math.trunc(cap)} - (SELECT count(*) FROM ${SCHEMA}.occurrences WHERE state = 'running') - (SELECT count(*) FROM ${SCHEMA}.slots))`;

/** A text[] literal for a simple query (no parameters there). */
const textArray = (values: string[]) => `ARRAY[${values.map((v) => pg.escapeLiteral(v)).join(", ")}]`;

const poolStats = (db: Db) => `${db.pool.totalCount}/${db.pool.idleCount}idle/${db.pool.waitingCount}waiting`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface PendingTake {
  jobId: string;
  at: number;
  trigger: RunTrigger;
  delayMs: number;
  /** The job as the App armed this occurrence, and its next_run_at then (see takenFields). */
  armed: Job;
  nextRunAt: string | null | undefined;
  resolve: (job: Job | null) => void;
  reject: (err: unknown) => void;
}
