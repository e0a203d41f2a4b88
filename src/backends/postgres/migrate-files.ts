import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import lockfile from "proper-lockfile";
import type { Config } from "../../config.js";
import { UserError } from "../../kernel/errors.js";
import type { Job } from "../../core/jobs.js";
import { systemClock } from "../../core/scheduler.js";
import { openFilesBackend } from "../files/index.js";
import { CHANNEL, SCHEMA, type Db } from "./db.js";
import { databaseUrl } from "./index.js";
import { runJson } from "./runs.js";

export interface MigrationReport {
  jobs: { copied: number; present: number; skipped: string[] };
  runs: { copied: number; present: number };
  outputs: { copied: number };
}

const BATCH = 500;

/**
 * `agent-cron migrate --to postgres`, after the CLI has read its arguments and the config:
 * copies a files data dir's jobs, runs and outputs into the database the config's store names
 * (or AGENT_CRON_DATABASE_URL, when the data dir's own config still says files). Nothing there
 * is overwritten: a record already in the database (same id) stays as it is, so running it
 * twice changes nothing. The data dir is only read (see migrateFiles): it is left as it was.
 */
export async function migrateDataDir(dataDir: string, config: Config, env: NodeJS.ProcessEnv): Promise<{ where: string; report: MigrationReport }> {
  const urlEnv = config.store.type === "postgres" ? config.store.url_env : "AGENT_CRON_DATABASE_URL";
  const url = databaseUrl(env, urlEnv);
  const { Db: DbClass } = await import("./db.js");
  const { migrate } = await import("./schema.js");
  const db = new DbClass(url, { max: 2, applicationName: "agent-cron migrate" });
  try {
    await migrate(db);
    return { where: db.where, report: await migrateFiles(dataDir, db, config.runs_per_job) };
  } finally {
    await db.end();
  }
}

export async function migrateFiles(dataDir: string, db: Db, runsPerJob: number): Promise<MigrationReport> {
  // Only read: the data dir is never written, not even a lock. Its stores are opened on a copy
  // (opening a files store may compact a journal, cut a torn tail, or rebuild an index), and a
  // server that holds its lock, before or after the copy, stops the migration.
  await refuseIfInUse(dataDir);
  const copy = await mkdtemp(path.join(os.tmpdir(), "agent-cron-migrate-"));
  try {
    for (const name of ["jobs.json", "jobs.journal", "jobs.journal.old", "runs"]) {
      await cp(path.join(dataDir, name), path.join(copy, name), { recursive: true, preserveTimestamps: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
    }
    await refuseIfInUse(dataDir);
    return await copyInto(dataDir, copy, db, runsPerJob);
  } catch (err) {
    // Messages name the data dir's files, not the copy's.
    if (err instanceof UserError) throw new UserError(err.message.replaceAll(copy, dataDir));
    throw err;
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

async function refuseIfInUse(dataDir: string): Promise<void> {
  const locked = await lockfile.check(dataDir, { lockfilePath: path.join(dataDir, "agent-cron.lock"), stale: 6000, realpath: false }).catch(() => false);
  if (locked) throw new UserError(`An agent-cron process is using ${dataDir}; stop it first, so that nothing it changes during the copy is left behind.`);
}

async function copyInto(dataDir: string, copy: string, db: Db, runsPerJob: number): Promise<MigrationReport> {
  const files = await openFilesBackend({ dataDir: copy, runsPerJob, workRoot: path.join(copy, "work"), clock: systemClock });
  const jobs = [...files.jobs.all()];
  const runs = [...files.runs.all()];
  const report: MigrationReport = { jobs: { copied: 0, present: 0, skipped: [] }, runs: { copied: 0, present: 0 }, outputs: { copied: 0 } };
  await db.tx(async (client) => {
    for (let i = 0; i < jobs.length; i += BATCH) {
      const batch = jobs.slice(i, i + BATCH);
      const existing = await client.query<{ id: string; name: string | null }>(`SELECT id, name FROM ${SCHEMA}.jobs WHERE id = ANY($1) OR name = ANY($2)`, [
        batch.map((j) => j.id),
        batch.flatMap((j) => (j.name ? [j.name] : [])),
      ]);
      const ids = new Set(existing.rows.map((r) => r.id));
      const names = new Map(existing.rows.filter((r) => r.name).map((r) => [r.name!, r.id]));
      const fresh: Job[] = [];
      for (const job of batch) {
        if (ids.has(job.id)) report.jobs.present++;
        else if (job.name && names.has(job.name))
          report.jobs.skipped.push(`"${job.name}" (${job.id}): the database has another job of that name (${names.get(job.name)})`);
        else fresh.push(job);
      }
      if (!fresh.length) continue;
      const { rowCount } = await client.query(
        `WITH w AS (
           INSERT INTO ${SCHEMA}.jobs (id, name, state, rev, data)
           SELECT e->>'id', e->>'name', e->>'state', nextval('${SCHEMA}.rev'), e FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n
           ON CONFLICT DO NOTHING RETURNING id, rev, seq)
         SELECT pg_notify('${CHANNEL}', json_build_object('o', 'migrate', 'k', 'j', 'id', w.id, 'v', w.rev, 's', w.seq)::text) FROM w`,
        [JSON.stringify(fresh)],
      );
      report.jobs.copied += rowCount ?? 0;
    }
    for (let i = 0; i < runs.length; i += BATCH) {
      const batch = runs.slice(i, i + BATCH);
      const { rows } = await client.query<{ id: string }>(
        `WITH w AS (
           INSERT INTO ${SCHEMA}.runs (id, job_id, status, trigger, scheduled_for, started_at, rev, data)
           SELECT e->>'id', e->>'job_id', e->>'status', e->>'trigger', (e->>'scheduled_for')::timestamptz, (e->>'started_at')::timestamptz,
                  nextval('${SCHEMA}.rev'), e
           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY n
           ON CONFLICT DO NOTHING RETURNING id, rev, seq)
         SELECT w.id, pg_notify('${CHANNEL}', json_build_object('o', 'migrate', 'k', 'r', 'id', w.id, 'v', w.rev, 's', w.seq)::text) FROM w`,
        [`[${batch.map((r) => runJson(r)).join(",")}]`],
      );
      report.runs.copied += rows.length;
      report.runs.present += batch.length - rows.length;
      for (const { id } of rows) {
        const output = await readOutput(dataDir, id);
        if (output === null) continue;
        await client.query(`INSERT INTO ${SCHEMA}.outputs (run_id, output) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [id, output.replaceAll("\u0000", "")]);
        report.outputs.copied++;
      }
    }
  });
  await files.jobs.idle();
  await files.jobs.close();
  await files.runs.close?.();
  return report;
}

/** A run's output, read from the data dir itself (outputs are not copied). */
async function readOutput(dataDir: string, runId: string): Promise<string | null> {
  try {
    return await readFile(path.join(dataDir, "outputs", runId), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

export function describeReport(dataDir: string, where: string, r: MigrationReport): string {
  const lines = [
    `Copied ${count(r.jobs.copied, "job")}, ${count(r.runs.copied, "run")} and ${count(r.outputs.copied, "output")} from ${dataDir} to the database at ${where}` +
      (r.jobs.present || r.runs.present
        ? ` (${count(r.jobs.present, "job")} and ${count(r.runs.present, "run")} were there already, and were left as they are).`
        : "."),
  ];
  for (const s of r.jobs.skipped) lines.push(`Not copied: job ${s}; rename one of them and run migrate again.`);
  if (r.jobs.copied || r.runs.copied)
    lines.push(`The data dir is unchanged. Point the servers at the database with "store": {"type": "postgres"} in their config.`);
  return lines.join("\n");
}
