import { randomUUID } from "node:crypto";
import { PgBoss } from "pg-boss";
import { UnavailableError, errorMessage, kindOf } from "../../kernel/errors.js";
import type { Clock } from "../../core/scheduler.js";
import { BOSS_SCHEMA, CHANNEL, Db, DbUnreachableError, isConnectionError, unreachableSentence } from "./db.js";
import { Fleet } from "./fleet.js";
import { PgJobRepo } from "./jobs.js";
import { Listener, type Change } from "./notify.js";
import { PgQueue, QUEUE } from "./queue.js";
import { PgRunRepo } from "./runs.js";
import { migrate } from "./schema.js";

export interface PostgresBackendOptions {
  url: string;
  /** The variable the URL came from (the config's `store.url_env`), for messages. */
  urlEnv: string;
  /** The config as it is now (max_concurrent, fleet_max_concurrent, max_output_bytes follow reloads). */
  limits: () => { maxConcurrent: number; fleetMaxConcurrent: number | undefined; maxOutputBytes: number };
  runsPerJob: number;
  workRoot: string;
  clock: Clock;
  /** A server works the fleet's queue; the CLI only answers its own call (and may run a job now). */
  role: "server" | "cli";
  onNotice: (level: "info" | "warning" | "error", message: string) => void;
}

export interface PostgresBackend {
  jobs: PgJobRepo;
  runs: PgRunRepo;
  queue: PgQueue;
  orphans: Fleet;
  /** "the database at host:port/db", for messages. */
  jobsLocation: string;
  /** This process's id in the fleet. */
  processId: string;
  /** Resolves once the mirror holds every change acknowledged before the call (read-your-writes). */
  sync(): Promise<void>;
  /** cancel_run of a run going in another process of the fleet. */
  remoteCancel: { request(runId: string): Promise<void>; onRequest(listener: (runId: string) => void): void };
  close(): Promise<void>;
}

/**
 * Opens the database: migrates the schema, listens for changes, loads the mirror, joins the
 * fleet, and (for a server) starts pg-boss and the worker. See docs/postgres.md.
 */
export async function openBackend(opts: PostgresBackendOptions): Promise<PostgresBackend> {
  const processId = randomUUID();
  const db = new Db(opts.url, { max: Math.max(4, Math.min(20, opts.limits().maxConcurrent + 4)) });
  const location = `the database at ${db.where}`;
  // Takes have a small pool of their own (see PgQueue); a CLI command takes nothing.
  const takeDb = new Db(opts.url, { max: opts.role === "server" ? 10 : 1, applicationName: "agent-cron take" });
  let closing = false;
  let available = true;
  let resyncTimer: NodeJS.Timeout | null = null;
  let resyncing: Promise<void> | null = null;

  const onError = (err: unknown) => {
    if (closing) return;
    // A lost connection is said once (degrade), not by every part that noticed it.
    if (err instanceof UnavailableError || isConnectionError(err) || isQuiet(err)) return degrade(err);
    opts.onNotice("error", `Postgres backend: ${errorMessage(err)}`);
  };

  try {
    await migrate(db);
  } catch (err) {
    await db.end();
    await takeDb.end();
    throw startupError(err, db.where, opts.urlEnv);
  }

  const jobs = new PgJobRepo(db, processId, () => close());
  const runs = new PgRunRepo(db, processId, { runsPerJob: opts.runsPerJob, maxOutputBytes: () => opts.limits().maxOutputBytes, workRoot: opts.workRoot });
  const fleet = new Fleet(db, processId, opts.role === "server", (id) => jobs.get(id), onError);

  // Notifications too large to carry their record are read back together, once per turn.
  const toFetch = { jobs: new Set<string>(), runs: new Set<string>() };
  let flushing = false;
  const reading = new Set<Promise<void>>();
  const flush = () => {
    if (flushing) return;
    flushing = true;
    const read = new Promise<void>((resolve) =>
      setImmediate(async () => {
        flushing = false;
        const jobIds = [...toFetch.jobs];
        const runIds = [...toFetch.runs];
        toFetch.jobs.clear();
        toFetch.runs.clear();
        try {
          if (jobIds.length) await jobs.fetch(jobIds);
          if (runIds.length) await runs.fetch(runIds);
        } catch (err) {
          // Caught up after the connection is back (resync reads everything).
          degrade(err);
        } finally {
          resolve();
        }
      }),
    );
    reading.add(read);
    void read.finally(() => reading.delete(read));
  };

  /**
   * Read-your-writes across the fleet: a notification of this process's own, sent now, comes
   * back on the LISTEN connection after every notification of a transaction that committed
   * before it (PostgreSQL delivers them in commit order), so once it is heard, and the records
   * too large to travel are read back, the mirror holds every change acknowledged before the
   * call. One round trip; while the database is away the mirror answers as it is.
   */
  let cancelListener: ((runId: string) => void) | null = null;
  const remoteCancel = {
    /** Asks the fleet to cancel a run: the process running it does (its record then says canceled). */
    request: async (runId: string) => {
      await db.query(`SELECT pg_notify('${CHANNEL}', json_build_object('o', $1::text, 'k', 'c', 'id', $2::text, 'v', 0)::text)`, [processId, runId]);
    },
    onRequest: (listener: (runId: string) => void) => {
      cancelListener = listener;
    },
  };

  const syncWaiters = new Map<string, () => void>();
  const sync = async () => {
    if (closing || !available || !listener.connected) return;
    const token = randomUUID();
    const heard = new Promise<void>((resolve) => syncWaiters.set(token, resolve));
    let timer: NodeJS.Timeout | undefined;
    try {
      await db.query(`SELECT pg_notify('${CHANNEL}', json_build_object('o', $1::text, 'k', 's', 'id', $2::text, 'v', 0)::text)`, [processId, token]);
      await Promise.race([heard, new Promise<void>((resolve) => (timer = setTimeout(resolve, SYNC_WAIT_MS)))]);
    } catch {
      return;
    } finally {
      clearTimeout(timer);
      syncWaiters.delete(token);
    }
    await Promise.all([...reading]);
  };

  // Set once pg-boss exists (servers only): a take elsewhere wakes this worker.
  let queueRef: PgQueue | null = null;
  const onChange = (change: Change) => {
    if (change.k === "s") {
      if (change.o === processId) syncWaiters.get(change.id)?.();
      return;
    }
    if (change.k === "c") {
      // Every process hears it; the one running the run cancels it.
      if (change.o !== processId) cancelListener?.(change.id);
      return;
    }
    if (change.o === processId) return;
    if (change.k === "w") {
      queueRef?.wake();
      return;
    }
    if (change.k === "j" || change.k === "jd") {
      if (jobs.heard(change) === "fetch") toFetch.jobs.add(change.id);
    } else if (change.k === "r" || change.k === "rd") {
      if (runs.heard(change) === "fetch") toFetch.runs.add(change.id);
    }
    if (toFetch.jobs.size || toFetch.runs.size) flush();
  };

  /**
   * The database went away. Writes fail with a sentence until it is back; takes are refused
   * until this process has caught up on what it missed (resync), so none is taken twice and
   * catch-up sees the occurrences missed meanwhile.
   */
  const degrade = (err: unknown) => {
    if (closing || !available) return;
    available = false;
    opts.onNotice("warning", err instanceof UnavailableError ? err.message : unreachableSentence(db.where, err));
    scheduleResync();
  };
  const scheduleResync = () => {
    if (closing || resyncTimer) return;
    resyncTimer = setTimeout(() => {
      resyncTimer = null;
      // While LISTEN is down its reconnect resyncs; otherwise (a pooled connection broke) do it here.
      if (!listener.connected) return;
      void resync().catch(() => scheduleResync());
    }, 1000);
    resyncTimer.unref();
  };
  const resync = () => {
    resyncing ??= (async () => {
      try {
        const before = new Map([...jobs.all()].map((j) => [j.id, j]));
        const { changed, removed } = await jobs.load();
        await runs.load();
        available = true;
        // Every job is scheduled again from what the database says was handled, so catch-up covers
        // what passed while it was unreachable (the App arms each job after its last handled occurrence).
        const listener = jobs.externalListener();
        for (const id of removed) listener?.(id, undefined, before.get(id));
        const news = new Set(changed);
        for (const job of [...jobs.all()]) if (news.has(job.id) || job.state === "active") listener?.(job.id, job, before.get(job.id));
        queueRef?.wake();
        opts.onNotice("info", `The database at ${db.where} is reachable again; scheduling resumed.`);
      } finally {
        resyncing = null;
      }
    })();
    return resyncing;
  };
  db.onConnectionError = degrade;
  takeDb.onConnectionError = degrade;

  const listener = new Listener(opts.url, processId, { onChange, onReconnect: resync, onLost: degrade });
  let boss: PgBoss | null = null;
  try {
    // Listening before loading: a change committed while the mirror loads is heard, not missed.
    await listener.start();
    await jobs.load();
    await runs.load();
    await fleet.join();
    if (opts.role === "server") {
      boss = new PgBoss({
        connectionString: opts.url,
        schema: BOSS_SCHEMA,
        max: 4,
        application_name: "agent-cron pg-boss",
        schedule: false,
        // An occurrence fetched by a process that died before claiming it is handed out again
        // once its heartbeat (10 s) has lapsed, noticed within this many seconds.
        superviseIntervalSeconds: 5,
        registerInstance: false,
        openTelemetry: { enabled: false },
      });
      // pg-boss reports a lost connection (and its maintenance's failures) here; without a
      // listener an 'error' event would end the process.
      boss.on("error", onError);
      await boss.start();
      await boss.createQueue(QUEUE, {
        // A process that dies stops beating: its occurrence goes back to the queue, where the
        // occurrence row (no longer queued) keeps it from running again.
        heartbeatSeconds: 10,
        expireInSeconds: 24 * 3600,
        retryLimit: 1_000_000,
        retryDelay: 1,
        retryBackoff: false,
        deleteAfterSeconds: 3600,
      });
    }
  } catch (err) {
    closing = true;
    await listener.close();
    await boss?.stop({ graceful: false, close: true }).catch(() => {});
    await fleet.leave();
    await db.end();
    await takeDb.end();
    throw startupError(err, db.where, opts.urlEnv);
  }

  const queue = new PgQueue({
    db,
    takeDb,
    boss,
    jobs,
    runs,
    origin: processId,
    clock: opts.clock,
    limits: () => ({ perProcess: opts.limits().maxConcurrent, fleet: opts.limits().fleetMaxConcurrent }),
    goesFirst: (jobId) => fleet.goesFirst(jobId),
    checkAvailable: () => {
      if (!available) throw new DbUnreachableError(db.where, null);
    },
    onError,
  });
  if (boss) queueRef = queue;
  const bossRef = boss;
  fleet.holding = () => queue.holding();
  fleet.onSweep = () => queue.requeueOrphanedWaits();
  // pg-boss heartbeats of the occurrences in hand, with this process's own.
  fleet.onBeat = async () => {
    const held = queue.held();
    if (bossRef && held.length) await bossRef.touch(QUEUE, held);
  };

  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      if (resyncTimer) clearTimeout(resyncTimer);
      await queue.close();
      runs.releaseWaiters();
      await queue.drain(3000);
      await queue.flush();
      await bossRef?.stop({ graceful: false, close: true, timeout: 2000 }).catch(() => {});
      await fleet.leave();
      await listener.close();
      await db.end();
      await takeDb.end();
    })());

  return { jobs, runs, queue, orphans: fleet, jobsLocation: location, processId, sync, remoteCancel, close };
}

/** A sync waits this long at most for its notification (a LISTEN connection that has silently died). */
const SYNC_WAIT_MS = 2000;

/** pg-boss's own reports of a connection that is down: the backend already said so once. */
function isQuiet(err: unknown): boolean {
  return /ECONNREFUSED|Connection terminated|terminating connection|the database system is (shutting down|starting up)|timeout exceeded when trying to connect/i.test(
    errorMessage(err),
  );
}

function startupError(err: unknown, where: string, urlEnv: string): unknown {
  if (err instanceof DbUnreachableError) {
    return new UnavailableError(
      `The database at ${where} is unreachable${err.reason ? `: ${err.reason}` : ""}. Start it, or fix the URL in ${urlEnv}.`,
      "AC_DB_UNREACHABLE",
    );
  }
  // Another sentence meant for the caller (the database is busy) stands as it is.
  if (kindOf(err) === "unavailable") return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === "28P01" || e?.code === "28000")
    return new UnavailableError(`The database at ${where} refused the login (${e.message}); fix the user or password in ${urlEnv}.`);
  if (e?.code === "3D000")
    return new UnavailableError(`The database at ${where} does not exist (${e.message}); create it (createdb) or fix the URL in ${urlEnv}.`);
  return err;
}
