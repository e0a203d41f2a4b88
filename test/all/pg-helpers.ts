/**
 * A real PostgreSQL for the postgres backend's tests. `npm run test:all` starts one cluster
 * (scripts/pg-cluster.sh) and exports AGENT_CRON_TEST_DATABASE_URL and AGENT_CRON_PG_DIR;
 * run alone, a test file starts its own cluster and stops it at the end. Each test gets a
 * fresh database on it, so tests never see each other's rows.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "..", "..");
const CLUSTER = path.join(ROOT, "scripts", "pg-cluster.sh");

export interface Cluster {
  /** URL of the cluster's `postgres` database (for CREATE DATABASE). */
  url: string;
  /** The cluster's folder (for down/up), or null for a database given from outside. */
  dir: string | null;
  stop(): void;
  /** Stops the server, keeping its data (connection-loss tests). */
  down(): void;
  up(): void;
}

export function startCluster(): Cluster {
  const given = process.env.AGENT_CRON_TEST_DATABASE_URL;
  const givenDir = process.env.AGENT_CRON_PG_DIR ?? null;
  if (given) {
    return {
      url: given,
      dir: givenDir,
      stop: () => {},
      down: () => cluster("down", need(givenDir)),
      up: () => cluster("up", need(givenDir)),
    };
  }
  const out = execFileSync("bash", [CLUSTER, "start"], { encoding: "utf8" });
  const dir = /AGENT_CRON_PG_DIR='([^']+)'/.exec(out)![1];
  const url = /AGENT_CRON_TEST_DATABASE_URL='([^']+)'/.exec(out)![1];
  return { url, dir, stop: () => cluster("stop", dir), down: () => cluster("down", dir), up: () => cluster("up", dir) };
}

function need(dir: string | null): string {
  if (!dir) throw new Error("This test stops and starts the server, so it needs a cluster made by scripts/pg-cluster.sh (AGENT_CRON_PG_DIR).");
  return dir;
}

function cluster(cmd: string, dir: string): void {
  execFileSync("bash", [CLUSTER, cmd, dir], { stdio: "inherit" });
}

let counter = 0;

/** A new, empty database on the cluster; returns its URL. */
export async function freshDatabase(cluster: Cluster, label = "t"): Promise<string> {
  const name = `ac_${label}_${process.pid}_${Date.now().toString(36)}_${counter++}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(cluster.url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** One query on its own connection. */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}

/**
 * Counts, in the database itself, the `event` statements (or rows, `each: "ROW"`) on one of
 * agent-cron's tables from now on: a trigger adds one to a counter table named `name`.
 * Resolves to a function that reads the count.
 */
export async function countWrites(
  url: string,
  name: string,
  on: { event: "INSERT" | "UPDATE"; table: "jobs" | "runs"; each: "STATEMENT" | "ROW" },
): Promise<() => Promise<number>> {
  await sql(
    url,
    `CREATE TABLE ${name} (n bigint NOT NULL);
     INSERT INTO ${name} VALUES (0);
     CREATE FUNCTION count_${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE ${name} SET n = n + 1; RETURN NULL; END $$;
     CREATE TRIGGER count_${name} AFTER ${on.event} ON agent_cron.${on.table} FOR EACH ${on.each} EXECUTE FUNCTION count_${name}();`,
  );
  return async () => (await sql<{ n: number }>(url, `SELECT n::int AS n FROM ${name}`))[0].n;
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A fleet member's HOME under `parent`, with a config of its own (on the database at `url`):
 * nothing on disk is shared with the other processes.
 */
export function fleetHome(parent: string, url: string, config: Record<string, unknown>): { home: string; dataDir: string; env: Record<string, string> } {
  const home = mkdtempSync(path.join(parent, "agent-cron-pg-home-"));
  const dataDir = path.join(home, ".agent-cron");
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(path.join(dataDir, "config.json"), JSON.stringify({ timezone: "UTC", store: { type: "postgres" }, ...config }));
  return { home, dataDir, env: { HOME: home, AGENT_CRON_DATABASE_URL: url } };
}

/**
 * Waits until a fleet has finished what it took: no occurrence queued, running or waiting, and
 * no run running. A slow fleet (a loaded machine) may take long; a stuck one fails: when it has
 * finished no occurrence for `stallMs`, or after `maxMs` in all, with the first of what is
 * left (occurrence rows with their pg-boss jobs' states). Says how it goes every 5 s. Returns
 * how long it waited. The check is two counts: it must not slow down the fleet it waits for.
 */
export async function drained(url: string, opts: { stallMs: number; maxMs: number; say: (line: string) => void }): Promise<number> {
  const from = Date.now();
  let finished = -1;
  let finishedAt = from;
  let saidAt = 0;
  for (;;) {
    const [row] = await sql<{ occ: string; runs: string; done: string }>(
      url,
      `SELECT (SELECT count(*) FROM agent_cron.occurrences WHERE state IN ('queued', 'running', 'waiting')) AS occ,
              (SELECT count(*) FROM agent_cron.runs WHERE status = 'running') AS runs,
              (SELECT count(*) FROM agent_cron.occurrences WHERE state IN ('done', 'lost')) AS done`,
    );
    const left = Number(row.occ) + Number(row.runs);
    const now = Date.now();
    if (left === 0) return now - from;
    // Catch-ups queued meanwhile may make what is left grow: progress is what finishes.
    if (Number(row.done) > finished) {
      finished = Number(row.done);
      finishedAt = now;
    }
    if (now - saidAt >= 5000) {
      saidAt = now;
      opts.say(
        `draining: ${row.occ} occurrences queued, running or waiting, ${row.runs} runs running, ${row.done} finished, ${Math.round((now - from) / 1000)} s on`,
      );
    }
    if (now - finishedAt > opts.stallMs || now - from > opts.maxMs) {
      const first = await sql(
        url,
        `SELECT o.job_id, o.scheduled_for, o.state, o.process_id, o.taken_at, o.started_at, (SELECT string_agg(b.state::text, ',') FROM agent_cron_boss.job b
                  WHERE b.name = 'agent-cron-occurrences' AND b.data->>'job_id' = o.job_id AND (b.data->>'at')::bigint = (extract(epoch FROM o.scheduled_for) * 1000)::bigint) AS boss
         FROM agent_cron.occurrences o WHERE o.state IN ('queued', 'running', 'waiting') ORDER BY o.scheduled_for LIMIT 20`,
      );
      const why = now - finishedAt > opts.stallMs ? `nothing finished for ${opts.stallMs / 1000} s` : `${opts.maxMs / 1000} s passed`;
      throw new Error(`The fleet did not finish what it took (${why}): ${left} left, the first: ${JSON.stringify(first)}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
