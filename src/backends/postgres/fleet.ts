import { createHash } from "node:crypto";
import os from "node:os";
import { newRun, type Job, type Run, type RunTrigger } from "../../core/jobs.js";
import type { OrphanFinder } from "../../core/ports.js";
import { killOrphanedRuns } from "../../executors/orphans.js";
import { VERSION } from "../../version.js";
import { LIVE_LOCK, SCHEMA, type Db } from "./db.js";
import { parseRun } from "./runs.js";

/** A process says it is alive this often (and touches the pg-boss jobs it holds, whose heartbeat is 10 s)... */
export const HEARTBEAT_MS = 5_000;
/**
 * ...and is taken for gone once it has been quiet this long: the fallback when its machine or
 * network is lost (its connection, and so its lock, may linger on the server for a long time).
 */
export const STALE_SECONDS = 35;
/** How often each process looks for runs of processes that have gone: found within 2-3 s of a kill, within STALE + SWEEP (< 60 s) otherwise. */
export const SWEEP_MS = 2_000;
/** Finished occurrence rows are kept this long (a late duplicate take of one is refused by the job's last_scheduled_for anyway). */
const KEEP_OCCURRENCES = "1 hour";
/**
 * Each process holds the session-level advisory lock (LIVE_LOCK, hashtext(its id)) on its LISTEN
 * connection (notify.ts). The database drops it the moment that connection ends, which a
 * kill -9 does at once: others read pg_locks, so a death is known within a sweep, not a
 * heartbeat timeout. After the database itself restarted no one holds a lock until they
 * reconnect, so for RELOCK_GRACE_SECONDS after a restart the heartbeat alone decides.
 */
const RELOCK_GRACE_SECONDS = 15;

/**
 * SQL: the ids of the live processes (their lock held and their heartbeat fresh), with whether
 * each works the queue. pg_locks is read once, not per row: sweeps compare against this list.
 */
const LIVE_SQL = `WITH held AS (
    SELECT l.objid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ${LIVE_LOCK}::oid AND l.objsubid = 2)
  SELECT p.id, p.worker FROM ${SCHEMA}.processes p
  WHERE p.heartbeat_at > now() - interval '${STALE_SECONDS} seconds'
    AND (now() < pg_postmaster_start_time() + interval '${RELOCK_GRACE_SECONDS} seconds'
         OR (hashtext(p.id)::bigint & 4294967295)::oid IN (SELECT objid FROM held))`;

/**
 * SQL: true when the process named in `column` is gone (not live, and not this process, whose
 * id is the parameter `self`). Read in the statement that acts on it, never from a list read
 * before: a process that joined since, and claimed an occurrence or started a run meanwhile,
 * would be taken for gone (under load a sweep's statements can be seconds apart), and its
 * occurrence recorded lost while it ran it.
 */
export const goneSql = (column: string, self: string) =>
  `(${column} IS NULL OR ${column} <> ALL(ARRAY(SELECT live.id FROM (${LIVE_SQL}) live) || ${self}::text))`;

/**
 * This process's seat in the fleet: a row in `processes` refreshed every HEARTBEAT_MS, and
 * the search for runs whose process went quiet. A run records the process running it; when
 * that process stops beating (killed, its machine lost) any other process claims the run,
 * in one UPDATE, so each orphan goes to exactly one process, which records it interrupted.
 *
 * One heartbeat per process rather than per run: the cost stays one small write every 10 s
 * however many runs are going.
 */
export class Fleet implements OrphanFinder {
  readonly everyMs = SWEEP_MS;
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  /** Extra work each beat (pg-boss heartbeats of the occurrences in hand). */
  onBeat: () => Promise<void> = async () => {};
  /** Extra work each sweep (occurrences a gone process left waiting are queued again). */
  onSweep: () => Promise<void> = async () => {};
  /** The occurrences this process's worker holds now ("job_id epoch-ms"). */
  holding: () => Set<string> = () => new Set();

  /** The live processes that work the queue, this one included when it does; ordered by id. */
  private workers: string[] = [];

  constructor(
    private readonly db: Db,
    readonly id: string,
    private readonly worker: boolean,
    private readonly getJob: (id: string) => Job | undefined,
    private readonly onError: (err: unknown) => void,
  ) {}

  liveProcesses(): number {
    return this.workers.length;
  }

  async join(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      void this.beat().catch(this.onError);
      void this.onBeat().catch(this.onError);
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    await this.db.query(
      `INSERT INTO ${SCHEMA}.processes (id, host, pid, version, worker) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
      [this.id, os.hostname(), process.pid, VERSION, this.worker],
    );
    await this.alive();
  }

  /** The live processes now; the live workers kept for goesFirst (a dead one's jobs pass to the others within a sweep). */
  async alive(): Promise<string[]> {
    const { rows } = await this.db.query<{ id: string; worker: boolean }>(LIVE_SQL);
    const ids = new Set(rows.filter((r) => r.worker).map((r) => r.id));
    if (this.worker) ids.add(this.id);
    this.workers = [...ids].sort();
    return [...new Set([...rows.map((r) => r.id), this.id])];
  }

  /**
   * Whether this process should be the first to try taking a job's occurrences. Every server
   * arms every occurrence; letting one of them (picked by a hash of the job, the same in every
   * process) go first spares the database the others' attempts: by the time they would try,
   * they have heard it was taken. Correctness never depends on it (the take is a transaction
   * either way); while membership changes, two may go first, or none for a moment.
   */
  goesFirst(jobId: string): boolean {
    if (this.workers.length <= 1) return true;
    return this.workers[fnv1a(jobId) % this.workers.length] === this.id;
  }

  /** Leaves the fleet: what is still marked running of this process becomes an orphan at once. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.db.query(`DELETE FROM ${SCHEMA}.processes WHERE id = $1`, [this.id]).catch(() => {});
  }

  /**
   * Runs left `running` by processes that are gone, claimed by this one; and occurrences such a
   * process had started without writing their run yet, as runs to record (never run again).
   */
  async claimOrphans(): Promise<Run[]> {
    // Kept for goesFirst; what is gone is decided in each statement (goneSql).
    await this.alive();
    await this.onSweep();
    // An orphan this process claimed in an earlier sweep whose interrupted record could not be
    // written then (the database went away) is claimed again, until its record is written.
    const { rows } = await this.db.query<{ id: string; data: unknown; host: string | null }>(
      `WITH orphan AS (
         SELECT r.id, r.process_id AS was FROM ${SCHEMA}.runs r
         WHERE r.status = 'running' AND (${goneSql("r.process_id", "$1")} OR r.claimed_by = $1)
         FOR UPDATE OF r SKIP LOCKED)
       UPDATE ${SCHEMA}.runs r SET claimed_by = $1, process_id = $1 FROM orphan o WHERE r.id = o.id
       RETURNING r.id, r.data, (SELECT p.host FROM ${SCHEMA}.processes p WHERE p.id = o.was) AS host`,
      [this.id],
    );
    const orphans = rows.map((r) => parseRun(r.data, r.id));
    // Room in the fleet (fleet_max_concurrent) held by a process that is gone, or by a run that
    // ended while its release could not be written.
    await this.db.query(
      `DELETE FROM ${SCHEMA}.slots s WHERE ${goneSql("s.process_id", "$1")}
         OR NOT EXISTS (SELECT 1 FROM ${SCHEMA}.runs r WHERE r.id = s.run_id AND r.status = 'running')`,
      [this.id],
    );
    // Agents that outlived their server on this machine are killed, as the files backend does
    // (found by AGENT_CRON_RUN_ID in their environment); those on other machines are out of reach.
    const here = os.hostname();
    killOrphanedRuns(rows.filter((r) => r.host === here).map((r) => r.id));
    await this.db.query(
      `UPDATE ${SCHEMA}.occurrences o SET state = 'done', finished_at = now()
       WHERE o.state = 'running' AND ${goneSql("o.process_id", "$1")}
         AND EXISTS (SELECT 1 FROM ${SCHEMA}.runs r WHERE r.job_id = o.job_id AND r.scheduled_for = o.scheduled_for)`,
      [this.id],
    );
    // Lost: started by a process that is gone, with no run record. Marked lost for this process,
    // which records each (below); one marked lost whose record was never written (the database
    // went away between the two, or its process died) is found again, by this process or, once
    // it is gone, by another: the record's id is the occurrence's own, so writing it twice
    // leaves one record.
    const lost = await this.db.query<{ job_id: string; scheduled_for: Date; trigger: RunTrigger }>(
      `UPDATE ${SCHEMA}.occurrences o SET state = 'lost', process_id = $1, finished_at = now()
       WHERE (o.state = 'running' AND ${goneSql("o.process_id", "$1")} OR o.state = 'lost' AND (o.process_id = $1 OR ${goneSql("o.process_id", "$1")}))
         AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.runs r WHERE r.job_id = o.job_id AND r.scheduled_for = o.scheduled_for)
       RETURNING o.job_id, o.scheduled_for, o.trigger`,
      [this.id],
    );
    // This process's own, when its worker no longer holds them: a claim whose answer was lost
    // with the connection (the row moved, the worker never heard) would otherwise wait forever.
    // A job removed meanwhile took its runs with it: its occurrence is done.
    const mine = await this.db.query<{ job_id: string; scheduled_for: Date }>(
      `SELECT job_id, scheduled_for FROM ${SCHEMA}.occurrences WHERE state = 'running' AND process_id = $1 AND started_at < now() - interval '2 minutes'`,
      [this.id],
    );
    const held = this.holding();
    const stray = mine.rows.filter((o) => !held.has(`${o.job_id} ${o.scheduled_for.getTime()}`));
    if (stray.length) {
      const settled = await this.db.query<{ job_id: string; scheduled_for: Date; trigger: RunTrigger; state: string }>(
        `UPDATE ${SCHEMA}.occurrences o
         SET state = CASE WHEN EXISTS (SELECT 1 FROM ${SCHEMA}.runs r WHERE r.job_id = o.job_id AND r.scheduled_for = o.scheduled_for)
                            OR NOT EXISTS (SELECT 1 FROM ${SCHEMA}.jobs j WHERE j.id = o.job_id) THEN 'done' ELSE 'lost' END,
             finished_at = now()
         FROM unnest($2::text[], $3::timestamptz[]) AS x(job_id, at)
         WHERE o.job_id = x.job_id AND o.scheduled_for = x.at AND o.state = 'running' AND o.process_id = $1
         RETURNING o.job_id, o.scheduled_for, o.trigger, o.state`,
        [this.id, stray.map((o) => o.job_id), stray.map((o) => o.scheduled_for.toISOString())],
      );
      lost.rows.push(...settled.rows.filter((o) => o.state === "lost"));
    }
    for (const occ of lost.rows) {
      const job = this.getJob(occ.job_id);
      if (!job) continue;
      orphans.push(lostOccurrenceRun(job, occ.scheduled_for.getTime(), occ.trigger));
    }
    if (Date.now() - this.lastPrune > 60_000) {
      this.lastPrune = Date.now();
      await this.prune().catch(this.onError);
    }
    return orphans;
  }

  async claimDeliveries(): Promise<string[]> {
    // claimed_by makes the record this process's to write from then on (runs.ts), so a process
    // wrongly taken for gone could not record the same delivery as well.
    const { rows } = await this.db.query<{ id: string }>(
      `UPDATE ${SCHEMA}.runs r SET claimed_by = $1, process_id = $1
       WHERE r.data->>'delivery' = 'pending' AND r.status <> 'running'
         AND ${goneSql("coalesce(r.claimed_by, r.process_id)", "$1")}
       RETURNING r.id`,
      [this.id],
    );
    return rows.map((r) => r.id);
  }

  private async prune(): Promise<void> {
    await this.db.query(`DELETE FROM ${SCHEMA}.occurrences WHERE state IN ('done', 'lost') AND scheduled_for < now() - interval '${KEEP_OCCURRENCES}'`);
    await this.db.query(`DELETE FROM ${SCHEMA}.processes WHERE heartbeat_at < now() - interval '1 day'`);
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A `running` record for an occurrence whose process went away before writing one. Its id is
 * made from the occurrence, so every process that records it writes the same record.
 */
function lostOccurrenceRun(job: Job, at: number, trigger: RunTrigger): Run {
  const h = createHash("sha256").update(`lost ${job.id} ${at}`).digest("hex");
  const runId = `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return newRun(job, { scheduledFor: at, trigger, runId }, {});
}
