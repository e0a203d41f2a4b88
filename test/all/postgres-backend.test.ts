/**
 * The postgres backend's parts against a real PostgreSQL, several backends at once on one
 * database as several processes would be: migration, the mirrors and their notifications,
 * no lost update, an occurrence taken and run once, orphans, outputs, a lost connection.
 * (The fleet of real agent-cron processes is test/all/postgres-fleet.test.ts.)
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresBackend, checkNodeVersion, type PostgresBackend } from "../../src/backends/postgres/index.js";
import { migrate, SCHEMA_VERSION } from "../../src/backends/postgres/schema.js";
import { Db } from "../../src/backends/postgres/db.js";
import { UnavailableError, UserError } from "../../src/kernel/errors.js";
import { JobSchema, RunSchema, type Job, type Run } from "../../src/core/jobs.js";
import type { Occurrence } from "../../src/core/ports.js";
import { systemClock } from "../../src/core/scheduler.js";
import { countWrites, freshDatabase, sql, startCluster, waitFor, type Cluster } from "./pg-helpers.js";
import { storedJob } from "../helpers/stored-job.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
afterAll(() => cluster?.stop());

const open: PostgresBackend[] = [];
afterAll(async () => {
  await Promise.allSettled(open.map((b) => b.close()));
});

async function backend(
  url: string,
  opts: { role?: "server" | "cli"; fleet?: number; maxConcurrent?: number; notices?: string[] } = {},
): Promise<PostgresBackend> {
  const b = await openPostgresBackend({
    urlEnv: "TEST_DB",
    env: { TEST_DB: url },
    limits: () => ({ maxConcurrent: opts.maxConcurrent ?? 4, fleetMaxConcurrent: opts.fleet, maxOutputBytes: 2048 }),
    runsPerJob: 5,
    workRoot: "/nonexistent-work-root",
    clock: systemClock,
    role: opts.role ?? "server",
    onNotice: (level, message) => opts.notices?.push(`${level}: ${message}`),
  });
  open.push(b);
  return b;
}

function makeJob(fields: Partial<Job> = {}): Job {
  const now = new Date().toISOString();
  const fleetJob: Partial<Job> = { schedule: "@every 1s", overlap: "allow", silent: true, notify_on: [], created_at: now, updated_at: now };
  return storedJob({ ...fleetJob, ...fields });
}

function makeRun(job: Job, fields: Partial<Run> = {}): Run {
  return RunSchema.parse({
    id: randomUUID(),
    job_id: job.id,
    status: "running",
    trigger: "schedule",
    scheduled_for: null,
    started_at: new Date().toISOString(),
    finished_at: null,
    duration_ms: null,
    attempts: 1,
    session_id: null,
    work_dir: null,
    exit_code: null,
    error: null,
    response: null,
    output_truncated: false,
    usage: null,
    pid: process.pid,
    ...fields,
  });
}

describe("postgres backend", () => {
  it("migrates once when several processes start at once, and refuses a schema newer than it knows", async () => {
    const url = await freshDatabase(cluster, "migrate");
    const dbs = Array.from({ length: 6 }, () => new Db(url, { max: 2 }));
    const results = await Promise.all(dbs.map((db) => migrate(db)));
    expect(results.filter((r) => r.from === 0)).toHaveLength(1);
    expect(results.every((r) => r.to === SCHEMA_VERSION)).toBe(true);
    expect(await sql(url, "SELECT version FROM agent_cron.schema_version ORDER BY version")).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
    );
    await sql(url, "INSERT INTO agent_cron.schema_version (version) VALUES ($1)", [SCHEMA_VERSION + 1]);
    await expect(migrate(dbs[0])).rejects.toThrow(
      new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this agent-cron knows \\(${SCHEMA_VERSION}\\); upgrade agent-cron`),
    );
    await Promise.all(dbs.map((db) => db.end()));
  });

  it("shows a job written through one process to the others within a second, and a removal too", async () => {
    const url = await freshDatabase(cluster, "mirror");
    const [a, b] = [await backend(url), await backend(url)];
    const heard: [string, string | undefined][] = [];
    b.jobs.onExternalChange((id, job) => heard.push([id, job?.state]));
    const job = makeJob({ name: "audit", prompt: "x".repeat(20_000) });
    const t0 = Date.now();
    await a.jobs.insert(job);
    // 20 KB does not fit a NOTIFY payload: read back by id.
    await waitFor("b to see the job", () => b.jobs.byName("audit"), 1000, 5);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(b.jobs.get(job.id)?.prompt).toHaveLength(20_000);
    await a.jobs.update(job.id, (j) => ({ ...j, state: "paused", enabled: false }));
    await waitFor("b to see the pause", () => b.jobs.get(job.id)?.state === "paused", 1000, 5);
    await a.jobs.delete(job.id);
    await waitFor("b to see the removal", () => b.jobs.get(job.id) === undefined, 1000, 5);
    expect(heard).toEqual([
      [job.id, "active"],
      [job.id, "paused"],
      [job.id, undefined],
    ]);
    // Field order as written (jsonb reorders keys; the mirror gives them back in the schema's order).
    const c = await backend(url, { role: "cli" });
    await a.jobs.insert(makeJob({ name: "order" }));
    expect(Object.keys((await waitFor("c to see it", () => c.jobs.byName("order")))!)).toEqual(Object.keys(JobSchema.shape));
  });

  it("loses no update when two processes change one job at once", async () => {
    const url = await freshDatabase(cluster, "update");
    const [a, b] = [await backend(url), await backend(url)];
    const job = makeJob();
    await a.jobs.insert(job);
    await waitFor("b to see it", () => b.jobs.get(job.id));
    const bump = (repo: PostgresBackend) => repo.jobs.update(job.id, (j) => ({ ...j, run_count: j.run_count + 1 }));
    await Promise.all(Array.from({ length: 40 }, (_, i) => bump(i % 2 ? a : b)));
    const stored = await sql<{ n: number }>(url, "SELECT (data->>'run_count')::int AS n FROM agent_cron.jobs WHERE id = $1", [job.id]);
    expect(stored[0].n).toBe(40);
    await waitFor("both mirrors at 40", () => a.jobs.get(job.id)?.run_count === 40 && b.jobs.get(job.id)?.run_count === 40);
    // A change that changes nothing writes nothing.
    expect((await a.jobs.update(job.id, () => null))?.changed).toBe(false);
    expect(await a.jobs.update(randomUUID(), (j) => j)).toBeUndefined();
  });

  it("writes job updates asked at once in one statement, and still loses none of another process's changes, a locked row's or a removal's", async () => {
    const url = await freshDatabase(cluster, "jobbatch");
    const [a, b] = [await backend(url), await backend(url)];
    const jobs = Array.from({ length: 30 }, () => makeJob());
    for (const job of jobs) await a.jobs.insert(job);
    await waitFor("b to see them", () => jobs.every((job) => b.jobs.get(job.id)));
    // UPDATE statements on the jobs table, counted by the database.
    const jobStatements = await countWrites(url, "job_statements", { event: "UPDATE", table: "jobs", each: "STATEMENT" });
    const bump = (repo: PostgresBackend, id: string) => repo.jobs.update(id, (j) => ({ ...j, run_count: j.run_count + 1 }));
    const first = await Promise.all(jobs.map((job) => bump(a, job.id)));
    expect(first.every((r) => r?.changed && r.job.run_count === 1)).toBe(true);
    expect(await jobStatements()).toBeLessThanOrEqual(2);
    // Checks that change nothing, asked at once, agree with the rows.
    const checks = await Promise.all(jobs.map((job) => a.jobs.update(job.id, () => null)));
    expect(checks.every((r) => r && !r.changed && r.job.run_count === 1)).toBe(true);

    // Now the rows move under a's mirror: one is locked by another transaction, one changed and one
    // checked after a write this mirror has not heard of (no notification), one removed, ten bumped
    // by b at the same moment, and one renamed by a.
    const [locked, changed, checked, removed, renamed] = jobs;
    const byB = jobs.slice(10, 20);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("SELECT 1 FROM agent_cron.jobs WHERE id = $1 FOR UPDATE", [locked.id]);
    for (const job of [changed, checked])
      await sql(url, "UPDATE agent_cron.jobs SET rev = nextval('agent_cron.rev'), data = jsonb_set(data, '{run_count}', '100') WHERE id = $1", [job.id]);
    await sql(url, "DELETE FROM agent_cron.jobs WHERE id = $1", [removed.id]);
    const release = new Promise<void>((resolve) => setTimeout(() => void holder.query("COMMIT").then(() => resolve()), 300));
    const [results, , checkedResult, renamedResult] = await Promise.all([
      Promise.all(jobs.filter((job) => job !== checked && job !== renamed).map((job) => bump(a, job.id))),
      Promise.all(byB.map((job) => bump(b, job.id))),
      a.jobs.update(checked.id, () => null),
      a.jobs.update(renamed.id, (j) => ({ ...j, name: "renamed", run_count: j.run_count + 1 })),
      release,
    ]);
    await holder.end();
    expect(results.filter((r) => r === undefined)).toHaveLength(1);
    expect(a.jobs.get(removed.id)).toBeUndefined();
    expect(checkedResult).toMatchObject({ changed: false, job: { run_count: 100 } });
    expect(renamedResult).toMatchObject({ changed: true, job: { name: "renamed", run_count: 2 } });
    const want = (id: string) => (id === changed.id ? 101 : id === checked.id ? 100 : byB.some((j) => j.id === id) ? 3 : 2);
    const stored = await sql<{ id: string; n: number }>(url, "SELECT id, (data->>'run_count')::int AS n FROM agent_cron.jobs");
    expect(stored).toHaveLength(jobs.length - 1);
    for (const row of stored) expect(row.n, row.id).toBe(want(row.id));
    // b was never told of the checked job's write (made without a notification), a read it back.
    for (const repo of [a, b])
      await waitFor("both mirrors to agree with the rows", () =>
        stored.every((row) => (repo === b && row.id === checked.id) || repo.jobs.get(row.id)?.run_count === row.n),
      );
  });

  it("refuses a second job of the same name added through another process at the same moment", async () => {
    const url = await freshDatabase(cluster, "names");
    const [a, b] = [await backend(url), await backend(url)];
    const results = await Promise.allSettled([a.jobs.insert(makeJob({ name: "same" })), b.jobs.insert(makeJob({ name: "same" }))]);
    const refused = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toBeInstanceOf(UserError);
    expect(String(refused[0].reason.message)).toMatch(/^Another job is already named "same"/);
  });

  it("takes an occurrence once fleet-wide and runs it once, in one of the processes", async () => {
    const url = await freshDatabase(cluster, "take");
    const backends = [await backend(url), await backend(url), await backend(url)];
    const ran: { who: number; jobId: string; occ: Occurrence }[] = [];
    backends.forEach((b, who) =>
      b.queue.consume(async (jobId, occ) => {
        ran.push({ who, jobId, occ });
        // As the dispatcher does: each occurrence run gets its record.
        const run = makeRun(b.jobs.get(jobId)!, { scheduled_for: new Date(occ.scheduledFor!).toISOString() });
        await b.runs.put({ ...run, status: "completed", finished_at: new Date().toISOString() });
      }),
    );
    const jobs = Array.from({ length: 20 }, () => makeJob());
    for (const j of jobs) await backends[0].jobs.insert(j);
    await waitFor("every mirror to have them", () => backends.every((b) => b.jobs.size === 20));
    const at = Date.now() - 10;
    const takes = await Promise.all(jobs.flatMap((j) => backends.map((b) => b.queue.take(b.jobs.get(j.id)!, { scheduledFor: at, trigger: "schedule" }, 0))));
    expect(takes.filter((t) => t !== null)).toHaveLength(20);
    await waitFor("20 runs", () => ran.length >= 20);
    await new Promise((r) => setTimeout(r, 1500));
    expect(ran).toHaveLength(20);
    expect(new Set(ran.map((r) => r.jobId)).size).toBe(20);
    expect(ran.every((r) => r.occ.scheduledFor === at && r.occ.trigger === "schedule")).toBe(true);
    // Each job marked handled, never moved back by a later take of an older occurrence.
    const iso = new Date(at).toISOString().replace("Z", "+00:00");
    for (const b of backends) expect(b.jobs.get(jobs[0].id)?.last_scheduled_for).toBe(iso);
    expect(await backends[1].queue.take(backends[1].jobs.get(jobs[0].id)!, { scheduledFor: at - 1000, trigger: "schedule" }, 0)).toBeNull();
    const rows = await sql<{ state: string; n: string }>(url, "SELECT state, count(*) AS n FROM agent_cron.occurrences GROUP BY state");
    expect(rows).toEqual([{ state: "done", n: "20" }]);
  });

  it("sends a take's job write as the fields it changed, and every mirror ends with the row's job, one that missed a write by reading the row", async () => {
    const url = await freshDatabase(cluster, "patch");
    const [a, b] = [await backend(url), await backend(url)];
    a.queue.consume(async () => {});
    const job = makeJob({ prompt: "x".repeat(2000) });
    await a.jobs.insert(job);
    await waitFor("b to see it", () => b.jobs.get(job.id));
    const payloads: string[] = [];
    const listen = new pg.Client({ connectionString: url });
    await listen.connect();
    listen.on("notification", (m) => payloads.push(m.payload ?? ""));
    await listen.query("LISTEN agent_cron");
    const row = async () => JobSchema.parse((await sql<{ data: unknown }>(url, "SELECT data FROM agent_cron.jobs WHERE id = $1", [job.id]))[0].data);
    try {
      const at = Date.now() - 10;
      const taken = await a.queue.take(a.jobs.get(job.id)!, { scheduledFor: at, trigger: "schedule" }, 0);
      expect(taken?.last_scheduled_for).toBe(new Date(at).toISOString().replace("Z", "+00:00"));
      await waitFor("b to hear the take", () => b.jobs.revOf(job.id) === a.jobs.revOf(job.id));
      const stored = await row();
      expect(b.jobs.get(job.id)).toEqual(stored);
      expect(a.jobs.get(job.id)).toEqual(stored);
      expect(Object.keys(b.jobs.get(job.id)!)).toEqual(Object.keys(stored));
      // The take's notification carries the changed fields, not the 2 KB prompt.
      const take = payloads.map((p) => JSON.parse(p)).find((c) => c.k === "j" && c.id === job.id);
      expect(take.d).toBeNull();
      expect(Object.keys(take.p)).toEqual(expect.arrayContaining(["last_scheduled_for", "updated_at"]));
      expect(take.p).not.toHaveProperty("prompt");
      expect(take.b).toBeLessThan(take.v);
      // A write no mirror heard (made behind their backs): a's take is made on the row as locked,
      // b's copy is not the one the take's fields apply to, so b reads the row.
      await sql(url, `UPDATE agent_cron.jobs SET rev = nextval('agent_cron.rev'), data = jsonb_set(data, '{prompt}', '"changed behind"') WHERE id = $1`, [
        job.id,
      ]);
      await a.queue.take(a.jobs.get(job.id)!, { scheduledFor: at + 1000, trigger: "schedule" }, 0);
      await waitFor("b to read the row", () => b.jobs.get(job.id)?.prompt === "changed behind");
      expect(b.jobs.get(job.id)).toEqual(await row());
      expect(a.jobs.get(job.id)).toEqual(await row());
      // A run's bookkeeping (an update asked with others in one turn) travels as its fields too.
      await a.jobs.update(job.id, (j) => ({ ...j, run_count: j.run_count + 1 }));
      await waitFor("b to hear the update", () => b.jobs.revOf(job.id) === a.jobs.revOf(job.id));
      expect(b.jobs.get(job.id)).toEqual(await row());
      expect(b.jobs.get(job.id)?.run_count).toBe(job.run_count + 1);
      const update = payloads
        .map((p) => JSON.parse(p))
        .filter((c) => c.k === "j" && c.id === job.id)
        .at(-1);
      expect(update.p).toEqual({ run_count: job.run_count + 1 });
      // A changed field too large to travel (NOTIFY payloads stop at 8000 bytes): the write is
      // made, and the notification leaves the fields out, so b reads the row.
      const long = "a long prompt ".repeat(1000);
      await a.jobs.update(job.id, (j) => ({ ...j, prompt: long }));
      await waitFor("b to read the long prompt", () => b.jobs.get(job.id)?.prompt === long);
      expect(b.jobs.get(job.id)).toEqual(await row());
      const big = payloads
        .map((p) => JSON.parse(p))
        .filter((c) => c.k === "j" && c.id === job.id)
        .at(-1);
      expect([big.p, big.b, big.d]).toEqual([null, null, null]);
    } finally {
      await listen.end();
    }
  });

  it("does not take an occurrence of a job paused through another process", async () => {
    const url = await freshDatabase(cluster, "paused");
    const [a, b] = [await backend(url), await backend(url)];
    a.queue.consume(async () => {});
    b.queue.consume(async () => {});
    const job = makeJob();
    await a.jobs.insert(job);
    await waitFor("b to see it", () => b.jobs.get(job.id));
    const stale = b.jobs.get(job.id)!;
    await a.jobs.update(job.id, (j) => ({ ...j, state: "paused", enabled: false }));
    // b's copy still says active (it may not have heard yet): the database decides.
    expect(await b.queue.take(stale, { scheduledFor: Date.now(), trigger: "schedule" }, 0)).toBeNull();
  });

  it("settles its own occurrence left running two minutes with no run: lost and recorded, or done once its job was removed", async () => {
    const url = await freshDatabase(cluster, "stray");
    const a = await backend(url);
    const [kept, removed] = [makeJob(), makeJob()];
    for (const j of [kept, removed]) await a.jobs.insert(j);
    const at = Math.floor(Date.now() / 1000) * 1000 - 180_000;
    for (const j of [kept, removed])
      await sql(
        url,
        "INSERT INTO agent_cron.occurrences (job_id, scheduled_for, trigger, state, process_id, started_at) VALUES ($1, $2, 'schedule', 'running', $3, now() - interval '3 minutes')",
        [j.id, new Date(at).toISOString(), a.processId],
      );
    await a.jobs.delete(removed.id);
    const found = await a.orphans.claimOrphans();
    expect(found.map((r) => [r.job_id, Date.parse(r.scheduled_for!)])).toEqual([[kept.id, at]]);
    const states = await sql<{ job_id: string; state: string }>(url, "SELECT job_id, state FROM agent_cron.occurrences");
    expect(Object.fromEntries(states.map((s) => [s.job_id, s.state]))).toEqual({ [kept.id]: "lost", [removed.id]: "done" });
  });

  it("keeps a queue_one occurrence whose queuing meets a database restart: it waits once the database is back, then runs once", async () => {
    if (!cluster.dir) throw new Error("needs its own cluster");
    const url = await freshDatabase(cluster, "waitrestart");
    const notices: string[] = [];
    const a = await backend(url, { notices });
    const job = makeJob({ overlap: "queue_one" });
    await a.jobs.insert(job);
    const calls: number[] = [];
    let waited: boolean | Error | undefined;
    let down = false;
    const bringUp = () => {
      if (!down) return;
      down = false;
      cluster.up();
    };
    a.queue.consume(async (jobId, occ) => {
      calls.push(occ.scheduledFor!);
      if (calls.length === 1) {
        // The dispatcher found a run going and queues this occurrence behind it, as the database goes.
        cluster.down();
        down = true;
        const back = setTimeout(bringUp, 2000);
        try {
          waited = await a.queue.waitBehind!(jobId, { ...occ, scheduledFor: occ.scheduledFor! });
        } catch (err) {
          waited = err as Error;
        } finally {
          clearTimeout(back);
        }
        return;
      }
      const run = makeRun(a.jobs.get(jobId)!, { scheduled_for: new Date(occ.scheduledFor!).toISOString() });
      await a.runs.put({ ...run, status: "completed", finished_at: new Date().toISOString() });
    });
    const at = Math.floor(Date.now() / 1000) * 1000 - 1000;
    try {
      expect(await a.queue.take(a.jobs.get(job.id)!, { scheduledFor: at, trigger: "schedule" }, 0)).not.toBeNull();
      await waitFor("the queued occurrence to run once the database is back", () => calls.length === 2, 40_000, 200);
    } finally {
      bringUp();
    }
    expect(waited).toBe(true);
    expect(calls).toEqual([at, at]);
    expect(notices.some((n) => /unreachable/.test(n))).toBe(true);
    await waitFor(
      "its row to be done",
      async () => (await sql<{ state: string }>(url, "SELECT state FROM agent_cron.occurrences WHERE job_id = $1", [job.id]))[0]?.state === "done",
      10_000,
      200,
    );
    expect(await sql(url, "SELECT status, scheduled_for FROM agent_cron.runs WHERE job_id = $1", [job.id])).toEqual([
      { status: "completed", scheduled_for: new Date(at) },
    ]);
  });

  it("holds an occurrence past fleet_max_concurrent until a slot frees", async () => {
    const url = await freshDatabase(cluster, "fleetcap");
    const backends = [await backend(url, { fleet: 2 }), await backend(url, { fleet: 2 })];
    let running = 0;
    let most = 0;
    let done = 0;
    backends.forEach((b) =>
      b.queue.consume(async (jobId, occ) => {
        const job = b.jobs.get(jobId)!;
        const run = makeRun(job, { scheduled_for: new Date(occ.scheduledFor!).toISOString() });
        await b.runs.put(run);
        running++;
        most = Math.max(most, running);
        setTimeout(() => {
          running--;
          done++;
          void b.runs.put({ ...run, status: "completed", finished_at: new Date().toISOString() });
        }, 400);
      }),
    );
    const jobs = Array.from({ length: 6 }, () => makeJob());
    for (const j of jobs) await backends[0].jobs.insert(j);
    await waitFor("mirrors", () => backends[1].jobs.size === 6);
    const at = Date.now();
    for (const [i, j] of jobs.entries()) await backends[i % 2].queue.take(backends[i % 2].jobs.get(j.id)!, { scheduledFor: at, trigger: "schedule" }, 0);
    await waitFor("all six runs", () => done === 6, 20_000);
    expect(most).toBe(2);
  });

  it("claims a run whose process went quiet, once, and keeps its interrupted record from the old process", async () => {
    const url = await freshDatabase(cluster, "orphans");
    const [a, b, c] = [await backend(url), await backend(url), await backend(url)];
    const job = makeJob();
    await a.jobs.insert(job);
    const run = makeRun(job);
    await a.runs.put(run);
    // A live process's runs are not orphans.
    expect(await b.orphans.claimOrphans()).toEqual([]);
    // a stops beating (as a killed process would).
    await sql(url, "UPDATE agent_cron.processes SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", [a.processId]);
    const [fromB, fromC] = await Promise.all([b.orphans.claimOrphans(), c.orphans.claimOrphans()]);
    expect([...fromB, ...fromC].map((r) => r.id)).toEqual([run.id]);
    const claimer = fromB.length ? b : c;
    await claimer.runs.put({ ...run, status: "interrupted", error: "gone" });
    // The old process comes back and finishes its run: the fleet's record stands.
    await a.runs.put({ ...run, status: "completed" });
    const stored = await sql<{ status: string }>(url, "SELECT status FROM agent_cron.runs WHERE id = $1", [run.id]);
    expect(stored[0].status).toBe("interrupted");
    expect(a.runs.get(run.id)?.status).toBe("interrupted");
  });

  it("finds again an orphan run and a lost occurrence whose interrupted record could not be written, until it is, and records a lost occurrence once", async () => {
    const url = await freshDatabase(cluster, "unrecorded");
    const [a, b, c] = [await backend(url), await backend(url), await backend(url)];
    const job = makeJob();
    await a.jobs.insert(job);
    await waitFor("the mirrors", () => b.jobs.get(job.id) && c.jobs.get(job.id));
    // a runs a run, and has claimed an occurrence without writing its run yet; then a is gone.
    const run = makeRun(job);
    await a.runs.put(run);
    // A minute ago: a sweep prunes settled occurrences older than an hour (KEEP_OCCURRENCES).
    const at = Math.floor(Date.now() / 1000) * 1000 - 60_000;
    await sql(url, "INSERT INTO agent_cron.occurrences (job_id, scheduled_for, trigger, state, process_id) VALUES ($1, $2, 'schedule', 'running', $3)", [
      job.id,
      new Date(at).toISOString(),
      a.processId,
    ]);
    await a.close();
    const first = await b.orphans.claimOrphans();
    expect(first.map((r) => [r.id === run.id ? "run" : "lost", r.scheduled_for === null ? null : Date.parse(r.scheduled_for)]).sort()).toEqual([
      ["lost", at],
      ["run", null],
    ]);
    // b could not write either record (the database went away then): its next sweep finds both again, the same.
    const again = await b.orphans.claimOrphans();
    expect(again.map((r) => r.id).sort()).toEqual(first.map((r) => r.id).sort());
    // Another process finds neither while b, alive, holds them.
    expect(await c.orphans.claimOrphans()).toEqual([]);
    // The lost occurrence's record has the same id whoever makes it: written by b and, had b died
    // meanwhile, by c, it is one record.
    const lostRun = again.find((r) => r.id !== run.id)!;
    await b.runs.put({ ...lostRun, status: "interrupted" });
    await c.runs.put({ ...lostRun, status: "interrupted" });
    await b.runs.put({ ...run, status: "interrupted" });
    expect(await b.orphans.claimOrphans()).toEqual([]);
    const stored = await sql<{ id: string; status: string }>(url, "SELECT id, status FROM agent_cron.runs WHERE job_id = $1 ORDER BY id", [job.id]);
    expect(stored).toEqual([run.id, lostRun.id].sort().map((id) => ({ id, status: "interrupted" })));
  });

  it("does not take for gone a process that joined while a sweep went on, nor record its occurrence lost", async () => {
    const url = await freshDatabase(cluster, "joined");
    const b = await backend(url);
    const job = makeJob();
    await b.jobs.insert(job);
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000).toISOString();
    let joined: PostgresBackend | null = null;
    // Between the sweep's start and its statements (under load, seconds), a process joins the
    // fleet and claims an occurrence (its run not written yet), and another starts a run.
    const run = makeRun(job);
    b.orphans.onSweep = async () => {
      joined = await backend(url);
      await sql(url, "INSERT INTO agent_cron.occurrences (job_id, scheduled_for, trigger, state, process_id) VALUES ($1, $2, 'schedule', 'running', $3)", [
        job.id,
        at,
        joined.processId,
      ]);
      await joined.runs.put(run);
    };
    expect(await b.orphans.claimOrphans()).toEqual([]);
    expect(joined).not.toBeNull();
    expect(await sql(url, "SELECT state, process_id FROM agent_cron.occurrences")).toEqual([{ state: "running", process_id: joined!.processId }]);
    expect(await sql(url, "SELECT status, claimed_by FROM agent_cron.runs")).toEqual([{ status: "running", claimed_by: null }]);
  });

  it("writes runs put at once in one statement, each put of a run in the order asked, and keeps a record taken over by another process", async () => {
    const url = await freshDatabase(cluster, "putbatch");
    const [a, b] = [await backend(url), await backend(url)];
    const jobs = Array.from({ length: 20 }, () => makeJob());
    for (const job of jobs) await a.jobs.insert(job);
    const taken = makeRun(jobs[0]);
    await a.runs.put(taken);
    await sql(
      url,
      "UPDATE agent_cron.runs SET claimed_by = 'another process', rev = nextval('agent_cron.rev'), data = jsonb_set(data, '{status}', '\"interrupted\"'), status = 'interrupted' WHERE id = $1",
      [taken.id],
    );
    // INSERT statements on the runs table, counted by the database.
    const runStatements = await countWrites(url, "run_statements", { event: "INSERT", table: "runs", each: "STATEMENT" });
    // 4 runs per job (runs_per_job is 5 here, with the one above), each put running then, without waiting, completed.
    const runs = jobs.flatMap((job) => Array.from({ length: 4 }, () => makeRun(job, { scheduled_for: new Date().toISOString() })));
    const done = (run: Run): Run => ({ ...run, status: "completed", finished_at: new Date().toISOString() });
    const outcomes = await Promise.all([...runs.map((run) => a.runs.put(run)), ...runs.map((run) => a.runs.put(done(run))), a.runs.put(done(taken))]);
    expect(outcomes.slice(0, -1).every((o) => o.kind === "stored")).toBe(true);
    expect(outcomes.at(-1)).toMatchObject({ kind: "superseded", by: { id: taken.id, status: "interrupted" } });
    expect(await runStatements()).toBeLessThanOrEqual(4);
    const stored = await sql<{ status: string; n: number }>(url, "SELECT status, count(*)::int AS n FROM agent_cron.runs WHERE id <> $1 GROUP BY 1", [
      taken.id,
    ]);
    expect(stored).toEqual([{ status: "completed", n: runs.length }]);
    for (const repo of [a, b])
      await waitFor("both mirrors to hold every run completed", () => runs.every((run) => repo.runs.get(run.id)?.status === "completed"));
  });

  it("inserts a run only if absent (putNew) when two processes put the same id at once: one wins each, its record stands in both mirrors", async () => {
    const url = await freshDatabase(cluster, "putnew");
    const [a, b] = [await backend(url), await backend(url)];
    // 20 jobs of 5 runs (runs_per_job here), so that none is evicted.
    const jobs = Array.from({ length: 20 }, () => makeJob());
    for (const job of jobs) await a.jobs.insert(job);
    const runs = jobs.flatMap((job) => Array.from({ length: 5 }, () => makeRun(job, { trigger: "after" })));
    const won = await Promise.all(runs.map((run) => Promise.all([a.runs.putNew({ ...run, response: "a" }), b.runs.putNew({ ...run, response: "b" })])));
    expect(won.filter(([x, y]) => x === y)).toEqual([]);
    const stored = new Map((await sql<{ id: string; who: string }>(url, "SELECT id, data->>'response' AS who FROM agent_cron.runs")).map((r) => [r.id, r.who]));
    expect(stored.size).toBe(runs.length);
    runs.forEach((run, i) => expect(stored.get(run.id)).toBe(won[i][0] ? "a" : "b"));
    // The loser read the winner's record back; the other mirror heard of it.
    for (const repo of [a, b])
      await waitFor("both mirrors to hold every winner", () => runs.every((run) => repo.runs.get(run.id)?.response === stored.get(run.id)));
    // Both won some: the race was real.
    expect(won.some(([x]) => x) && won.some(([, y]) => y)).toBe(true);
    // Once there, a later putNew changes nothing.
    expect(await a.runs.putNew({ ...runs[0], status: "completed" })).toBe(false);
    expect((await sql<{ status: string }>(url, "SELECT status FROM agent_cron.runs WHERE id = $1", [runs[0].id]))[0].status).toBe("running");
  });

  it("keeps runs_per_job runs of a job in the database and every mirror, with outputs capped at max_output_bytes", async () => {
    const url = await freshDatabase(cluster, "runs");
    const [a, b] = [await backend(url), await backend(url)];
    const job = makeJob();
    await a.jobs.insert(job);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const run = makeRun(job, { status: "completed", response: `r${i}` });
      ids.push(run.id);
      await a.runs.put(run);
      await a.runs.writeOutput(run.id, "é".repeat(5000));
    }
    const rows = await sql<{ id: string }>(url, "SELECT id FROM agent_cron.runs ORDER BY seq");
    expect(rows.map((r) => r.id)).toEqual(ids.slice(3));
    expect(await sql(url, "SELECT count(*)::int AS n FROM agent_cron.outputs")).toEqual([{ n: 5 }]);
    await waitFor("b's mirror", () => b.runs.ofJob(job.id).length === 5 && b.runs.ofJob(job.id)[4].id === ids[7]);
    expect(b.runs.ofJob(job.id).map((r) => r.id)).toEqual(ids.slice(3));
    const out = await b.runs.readOutput(ids[7]);
    expect(Buffer.byteLength(out!)).toBe(2048);
    expect(out).toBe("é".repeat(1024));
    // NUL cannot live in jsonb or text: dropped, the rest kept.
    const nul = makeRun(job, { status: "completed", response: "a\u0000b" });
    await a.runs.put(nul);
    await a.runs.writeOutput(nul.id, "x\u0000y");
    expect(await b.runs.readOutput(nul.id)).toBe("xy");
    await b.runs.removeJob(job.id);
    await waitFor("a's mirror to drop them", () => a.runs.ofJob(job.id).length === 0);
    expect(await sql(url, "SELECT count(*)::int AS n FROM agent_cron.runs")).toEqual([{ n: 0 }]);
  });

  it("says in one sentence that the database is unreachable, and catches up when it is back", async () => {
    if (!cluster.dir) throw new Error("needs its own cluster");
    const url = await freshDatabase(cluster, "outage");
    const notices: string[] = [];
    const [a, b] = [await backend(url, { notices }), await backend(url)];
    const job = makeJob();
    await a.jobs.insert(job);
    await waitFor("b to see it", () => b.jobs.get(job.id));
    cluster.down();
    try {
      const err = await a.jobs.update(job.id, (j) => ({ ...j, prompt: "changed" })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(
        /^The database at 127\.0\.0\.1:\d+\/ac_outage_\w+ is unreachable: .+; agent-cron retries and resumes when it is back\.$/,
      );
      // Takes are refused until this process has caught up.
      await expect(a.queue.take(a.jobs.get(job.id)!, { scheduledFor: Date.now(), trigger: "schedule" }, 0)).rejects.toBeInstanceOf(UnavailableError);
      await waitFor("the warning", () => notices.some((n) => n.startsWith("warning: The database at")));
    } finally {
      cluster.up();
    }
    // While a was cut off, b changed the job; a hears of it once it is back.
    await waitFor("b to write again", () => b.jobs.update(job.id, (j) => ({ ...j, prompt: "from b" })).then(() => true), 15_000, 200);
    await waitFor("a to catch up", () => a.jobs.get(job.id)?.prompt === "from b", 15_000);
    await waitFor("a to say it is back", () => notices.some((n) => /^info: The database at .+ is reachable again; scheduling resumed\.$/.test(n)), 5000);
    await a.jobs.update(job.id, (j) => ({ ...j, prompt: "from a" }));
    await waitFor("b to see it", () => b.jobs.get(job.id)?.prompt === "from a");
  });

  it("says which Node it needs, and which variable is missing, before connecting", async () => {
    expect(() => checkNodeVersion("20.19.0")).toThrow(/^The postgres store needs Node\.js 22\.12 or newer \(for pg-boss 12\); this is Node\.js 20\.19\.0\./);
    expect(() => checkNodeVersion("22.11.0")).toThrow(UserError);
    expect(() => checkNodeVersion("22.12.0")).not.toThrow();
    expect(() => checkNodeVersion("24.1.0")).not.toThrow();
    const opts = {
      urlEnv: "NOPE",
      env: {},
      limits: () => ({ maxConcurrent: 1, fleetMaxConcurrent: undefined, maxOutputBytes: 1024 }),
      runsPerJob: 1,
      workRoot: "/x",
      clock: systemClock,
      role: "cli" as const,
      onNotice: () => {},
    };
    await expect(openPostgresBackend(opts)).rejects.toThrow(/^The config's store is postgres, but NOPE is not set; set it to the database URL/);
    await expect(openPostgresBackend({ ...opts, env: { NOPE: "mysql://x" } })).rejects.toThrow(/^NOPE must be a postgres:\/\/ URL/);
    await expect(openPostgresBackend({ ...opts, env: { NOPE: "postgres://127.0.0.1:1/x" } })).rejects.toThrow(
      /^The database at 127\.0\.0\.1:1\/x is unreachable: the connection was refused \(is the server running\?\)\. Start it, or fix the URL in NOPE\.$/,
    );
  });
});
