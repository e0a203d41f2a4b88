import type pg from "pg";
import { UserError } from "../../kernel/errors.js";
import { SCHEMA, type Db } from "./db.js";

/**
 * The tables, as numbered migrations. Each runs once, in its own transaction, and records
 * its number in schema_version. A session advisory lock around the whole check makes
 * several processes starting at once take turns: the first migrates, the others find
 * nothing left to do.
 *
 * Every record keeps its whole JSON in `data` (the same shape the files backend writes) and
 * copies out the columns that are queried or indexed; nothing reads inside `data`.
 */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      -- One counter for every write of a job or run: a process's mirror keeps the newest it
      -- has seen of each record and ignores older news (notifications can cross).
      CREATE SEQUENCE ${SCHEMA}.rev;

      CREATE TABLE ${SCHEMA}.jobs (
        id          text PRIMARY KEY,
        seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        name        text UNIQUE,
        state       text NOT NULL,
        rev         bigint NOT NULL,
        data        jsonb NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
      );

      -- Each process that runs agents says it is alive every few seconds; a run whose process
      -- went quiet is an orphan (fleet.ts).
      CREATE TABLE ${SCHEMA}.processes (
        id            text PRIMARY KEY,
        host          text NOT NULL,
        pid           integer NOT NULL,
        version       text NOT NULL,
        -- A server works the queue; a CLI command does not.
        worker        boolean NOT NULL DEFAULT false,
        started_at    timestamptz NOT NULL DEFAULT now(),
        heartbeat_at  timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE ${SCHEMA}.runs (
        id             text PRIMARY KEY,
        seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        job_id         text NOT NULL,
        status         text NOT NULL,
        trigger        text NOT NULL,
        scheduled_for  timestamptz,
        started_at     timestamptz,
        -- The process running it (set when the record is first written), and the process that
        -- took it over as an orphan: only that one may write it from then on.
        process_id     text,
        claimed_by     text,
        rev            bigint NOT NULL,
        data           jsonb NOT NULL
      );
      CREATE INDEX runs_job ON ${SCHEMA}.runs (job_id, seq);
      CREATE INDEX runs_occurrence ON ${SCHEMA}.runs (job_id, scheduled_for);
      CREATE INDEX runs_running ON ${SCHEMA}.runs (process_id) WHERE status = 'running';

      -- Whole outputs; records carry the first 4 KiB.
      CREATE TABLE ${SCHEMA}.outputs (
        run_id  text PRIMARY KEY REFERENCES ${SCHEMA}.runs (id) ON DELETE CASCADE,
        output  text NOT NULL,
        raw     text
      );

      -- An occurrence is taken once fleet-wide: the process whose insert wins enqueues its run
      -- in the same transaction; a worker runs it only if it moves the row from queued to running.
      CREATE TABLE ${SCHEMA}.occurrences (
        job_id         text NOT NULL,
        scheduled_for  timestamptz NOT NULL,
        trigger        text NOT NULL,
        state          text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'lost')),
        process_id     text,
        taken_at       timestamptz NOT NULL DEFAULT now(),
        started_at     timestamptz,
        finished_at    timestamptz,
        PRIMARY KEY (job_id, scheduled_for)
      );
      CREATE INDEX occurrences_running ON ${SCHEMA}.occurrences (process_id) WHERE state = 'running';
      CREATE INDEX occurrences_old ON ${SCHEMA}.occurrences (scheduled_for) WHERE state IN ('done', 'lost');
    `,
  },
  {
    version: 2,
    sql: `
      -- overlap queue_one: an occurrence queued behind a run going is 'waiting', in the table
      -- rather than in one process's memory, so it survives that process (fleet.ts requeues it).
      ALTER TABLE ${SCHEMA}.occurrences DROP CONSTRAINT occurrences_state_check;
      ALTER TABLE ${SCHEMA}.occurrences ADD CONSTRAINT occurrences_state_check CHECK (state IN ('queued', 'running', 'waiting', 'done', 'lost'));
      CREATE INDEX occurrences_waiting ON ${SCHEMA}.occurrences (job_id) WHERE state = 'waiting';
    `,
  },
  {
    version: 3,
    sql: `
      -- Deliveries a process that is gone left pending are looked for every sweep (fleet.ts).
      CREATE INDEX runs_delivery_pending ON ${SCHEMA}.runs (id) WHERE data->>'delivery' = 'pending';
      -- fleet_max_concurrent: the room a run not started from a claimed occurrence (manual, event,
      -- chained) holds while an attempt executes; a claimed occurrence holds its room by its row.
      CREATE TABLE ${SCHEMA}.slots (
        run_id      text PRIMARY KEY,
        process_id  text NOT NULL,
        taken_at    timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
/** pg_advisory_lock key: "agent-cron migrate" (any constant of our own). */
const MIGRATE_LOCK = 0x61_67_63_72_6d_69_67n;

/** Creates or migrates the schema; safe when several processes start at once. */
export async function migrate(db: Db): Promise<{ from: number; to: number }> {
  let client: pg.PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    throw db.wrap(err);
  }
  let broken: Error | undefined;
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATE_LOCK.toString()]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA}.schema_version`);
      const from = rows[0]?.v ?? 0;
      if (from > SCHEMA_VERSION) {
        throw new UserError(
          `The database at ${db.where} holds agent-cron schema version ${from}, newer than this agent-cron knows (${SCHEMA_VERSION}); upgrade agent-cron on this machine to the version the fleet runs.`,
        );
      }
      for (const m of MIGRATIONS) {
        if (m.version <= from) continue;
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query(`INSERT INTO ${SCHEMA}.schema_version (version) VALUES ($1)`, [m.version]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK").catch(() => {});
          throw err;
        }
      }
      return { from, to: SCHEMA_VERSION };
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATE_LOCK.toString()]).catch(() => {});
    }
  } catch (err) {
    if (!(err instanceof UserError)) broken = err as Error;
    throw db.wrap(err);
  } finally {
    client.release(broken);
  }
}
