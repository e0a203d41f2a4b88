/**
 * SPEC §19 under faults: three BUILT agent-cron processes on one PostgreSQL, tens of
 * every-second jobs across every catch_up and overlap policy, kill -9 of a random process every
 * few seconds (restarted), a Postgres restart and a 10 s stop. At the end every occurrence from
 * each job's creation to its end is counted from the schedule here (not by the code under
 * test): each has exactly one record, and none ran twice (the agent appends a line per
 * execution to a file, so executions are counted outside the servers).
 */
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { TestServer, pidsWorkingIn, sleep } from "../helpers/server.js";
import { drained, fleetHome, freshDatabase, sql, startCluster, type Cluster } from "./pg-helpers.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
afterAll(() => cluster?.stop());

const OVERLAPS = ["allow", "skip", "queue_one", "replace"] as const;
const CATCH_UPS = ["none", "latest", "all"] as const;
/**
 * Jobs per (overlap, catch_up) pair: 12 jobs. With 2 (24 jobs) on the shared 2-core machine
 * the fleet fell behind after the restarts and did not finish within the wait (see docs/postgres.md).
 */
const EACH = 1;
/** How long the jobs live, from their creation; the faults happen inside it. */
const LIFE_MS = 110_000;

interface Member {
  home: string;
  dataDir: string;
  env: Record<string, string>;
  server: TestServer | null;
}

describe("a fleet under kill -9 and a Postgres restart and stop", () => {
  const members: Member[] = [];
  const root = mkdtempSync(path.join(os.tmpdir(), "agent-cron-chaos-"));
  const execLog = path.join(root, "executions.log");
  const events = path.join(root, "events.log");
  const say = (line: string) => appendFileSync(events, `${new Date().toISOString()} ${line}\n`);
  // AGENT_CRON_CHAOS_LOGS=DIR keeps every server's whole stderr there (a failure prints only their last lines).
  const keepLog = (server: TestServer) => {
    const dir = process.env.AGENT_CRON_CHAOS_LOGS;
    if (dir && server.transport.pid !== null) writeFileSync(path.join(dir, `server-${server.pid}.log`), server.stderr());
  };

  afterAll(async () => {
    for (const m of members) if (m.server) keepLog(m.server);
    await Promise.allSettled(members.map((m) => m.server?.close()));
    for (const m of members) for (const pid of pidsWorkingIn(m.home)) process.kill(pid, "SIGKILL");
    await rm(root, { recursive: true, force: true });
  });

  function member(url: string): Member {
    const made = fleetHome(root, url, {
      default_executor: "count",
      max_concurrent: 16,
      fleet_max_concurrent: 30,
      runs_per_job: 1000,
      kill_grace_seconds: 0.2,
      shutdown_grace_seconds: 0,
      catch_up_window_seconds: 3600,
      executors: {
        // One line per execution, written before it sleeps: a run that starts is counted even if
        // its server is killed under it.
        count: {
          type: "command",
          sandbox: "none",
          command: ["/bin/sh", "-c", `echo "$AGENT_CRON_JOB_ID $AGENT_CRON_SCHEDULED_FOR $AGENT_CRON_RUN_ID" >> ${execLog}; exec sleep "$0"`, "{prompt}"],
        },
      },
    });
    // AGENT_CRON_DEBUG_QUEUE=1 in the test's environment: each server prints its worker's state every 2 s.
    if (process.env.AGENT_CRON_DEBUG_QUEUE) made.env.AGENT_CRON_DEBUG_QUEUE = process.env.AGENT_CRON_DEBUG_QUEUE;
    return { ...made, server: null };
  }

  /** Starts a member, trying again while the database is away (a start then exits 1). */
  async function start(m: Member, deadline: number): Promise<void> {
    for (;;) {
      try {
        m.server = await TestServer.start({
          dataDir: m.dataDir,
          env: m.env,
          ...(process.env.AGENT_CRON_CHAOS_WRAP ? { wrap: process.env.AGENT_CRON_CHAOS_WRAP.split(" ") } : {}),
        });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(1000);
      }
    }
  }

  it("runs no occurrence twice and leaves exactly one record of each, counted from the schedule", async () => {
    onTestFailed(() => {
      process.stderr.write(`--- events:\n${readFileSync(events, "utf8")}`);
      for (const [i, m] of members.entries())
        process.stderr.write(`--- member ${i} stderr, last lines:\n${(m.server?.stderr() ?? "(killed)").split("\n").slice(-30).join("\n")}\n`);
    });
    const url = await freshDatabase(cluster, "chaos");
    for (let i = 0; i < 3; i++) members.push(member(url));
    await Promise.all(members.map((m) => start(m, Date.now() + 30_000)));
    const startedAt = Date.now();
    const end = Math.ceil((startedAt + LIFE_MS) / 1000) * 1000;
    const expiresAt = new Date(end).toISOString();
    const combos = OVERLAPS.flatMap((overlap) => CATCH_UPS.map((catch_up) => ({ overlap, catch_up })));
    let n = 0;
    for (const { overlap, catch_up } of combos) {
      for (let k = 0; k < EACH; k++) {
        const target = members[n % 3].server!;
        // Runs longer than a second, so overlap decides something; allow's are short.
        const prompt = overlap === "allow" ? "0.1" : "1.2";
        await target.tool("add_cron", {
          name: `${overlap}-${catch_up}-${k}`,
          schedule: "* * * * * *",
          prompt,
          overlap,
          catch_up,
          expires_at: expiresAt,
          silent: true,
        });
        n++;
      }
    }
    say(`added ${n} jobs, ending at ${expiresAt}`);

    let kills = 0;
    let restarts = 0;
    let dbRestarts = 0;
    let dbStops = 0;
    let dbAway = false;
    const restarting: Promise<void>[] = [];
    const faults = (async () => {
      const restartAt = startedAt + 35_000;
      const stopAt = startedAt + 65_000;
      let restarted = false;
      let stopped = false;
      while (Date.now() < end - 8000) {
        await sleep(4000 + Math.random() * 3000);
        if (!restarted && Date.now() >= restartAt) {
          restarted = true;
          dbAway = true;
          say("postgres restart");
          cluster.down();
          cluster.up();
          dbAway = false;
          dbRestarts++;
          continue;
        }
        if (!stopped && Date.now() >= stopAt) {
          stopped = true;
          dbAway = true;
          say("postgres stop for 10 s");
          cluster.down();
          await sleep(10_000);
          cluster.up();
          dbAway = false;
          dbStops++;
          say("postgres up");
          continue;
        }
        const up = members.filter((m) => m.server);
        if (dbAway || up.length < 2) continue;
        const victim = up[Math.floor(Math.random() * up.length)];
        const server = victim.server!;
        say(`kill -9 pid ${server.pid}`);
        keepLog(server);
        process.kill(server.pid, "SIGKILL");
        kills++;
        victim.server = null;
        // Restarted in the background a moment later (as systemd would), while the faults go on.
        restarting.push(
          (async () => {
            await server.close();
            await sleep(1000 + Math.random() * 2000);
            await start(victim, Date.now() + 150_000);
            restarts++;
            say(`restarted as pid ${victim.server!.pid}`);
          })(),
        );
      }
    })();
    await faults;
    await Promise.all(restarting);
    expect(dbRestarts).toBe(1);
    expect(dbStops).toBe(1);
    await sleep(Math.max(0, end - Date.now()) + 1500);

    // What was taken, queued or running finishes (an occurrence a killed process held included).
    // A loaded machine drains slowly; a fleet that stops finishing anything for a minute fails.
    const drainMs = await drained(url, { stallMs: 60_000, maxMs: 240_000, say });
    for (const m of members) if (m.server) keepLog(m.server);
    await Promise.all(members.map((m) => m.server?.close()));

    const jobs = await sql<{ id: string; name: string; created_at: string; spans: { from: string; to: string }[] }>(
      url,
      "SELECT id, name, data->>'created_at' AS created_at, data->'missed_spans' AS spans FROM agent_cron.jobs",
    );
    expect(jobs).toHaveLength(n);
    const records = await sql<{ job_id: string; scheduled_for: Date | null; status: string; trigger: string }>(
      url,
      "SELECT job_id, scheduled_for, status, trigger FROM agent_cron.runs",
    );
    const executions = new Map<string, number>();
    for (const line of readFileSync(execLog, "utf8").split("\n")) {
      const [jobId, at] = line.split(" ");
      if (!jobId || !at) continue;
      const key = `${jobId} ${Date.parse(at)}`;
      executions.set(key, (executions.get(key) ?? 0) + 1);
    }
    const recordsOf = new Map<string, string[]>();
    for (const r of records) {
      const key = `${r.job_id} ${r.scheduled_for?.getTime() ?? "manual"}`;
      recordsOf.set(key, [...(recordsOf.get(key) ?? []), r.status]);
    }
    let occurrences = 0;
    // A catch-up past MAX_MISSED_RECORDS records the newest and keeps the older as one stretch
    // (the job's missed_spans); SPEC §18's audit counts an occurrence strictly inside one as
    // missed, and so does this count (a stretch covering an occurrence that has a record too is
    // a duplicate).
    let missedInSpans = 0;
    const unaccounted: string[] = [];
    const doubled: string[] = [];
    const ranTwice: string[] = [];
    const duplicateKeys = new Set<string>();
    const byStatus: Record<string, number> = {};
    const expected = new Set<string>();
    for (const job of jobs) {
      // Every whole second after the job was made, up to its end: counted here from the schedule.
      for (let t = Math.floor(Date.parse(job.created_at) / 1000) * 1000 + 1000; t <= end; t += 1000) {
        occurrences++;
        const key = `${job.id} ${t}`;
        expected.add(key);
        const got = [
          ...(recordsOf.get(key) ?? []),
          ...(job.spans.some((sp) => t > Date.parse(sp.from) && t < Date.parse(sp.to)) ? ["missed (in a stretch)"] : []),
        ];
        if (got.length === 0) unaccounted.push(`${job.name} ${new Date(t).toISOString()}`);
        if (got.length === 1 && got[0] === "missed (in a stretch)") missedInSpans++;
        if (got.length > 1 || (executions.get(key) ?? 0) > 1) duplicateKeys.add(key);
        if (got.length > 1) doubled.push(`${job.name} ${new Date(t).toISOString()}: ${got.join(", ")}`);
        for (const st of got) byStatus[st] = (byStatus[st] ?? 0) + 1;
        if ((executions.get(key) ?? 0) > 1) ranTwice.push(`${job.name} ${new Date(t).toISOString()} ran ${executions.get(key)} times`);
      }
    }
    const stray = [...recordsOf.keys()].filter((k) => !expected.has(k));
    const executed = [...executions.values()].reduce((a, b) => a + b, 0);
    // duplicates: occurrences with more than one record, or executed more than once.
    const summary = {
      jobs: n,
      occurrences,
      records: records.length,
      missedInSpans,
      byStatus,
      executions: executed,
      kills,
      restarts,
      dbRestarts,
      dbStops,
      // How long the fleet took, after the jobs' end, to finish what it had taken.
      drainMs,
      unaccounted: unaccounted.length,
      duplicates: duplicateKeys.size,
      doubled: doubled.length,
      ranTwice: ranTwice.length,
      stray: stray.length,
    };
    process.stderr.write(`chaos: ${JSON.stringify(summary)}\n`);
    say(`summary ${JSON.stringify(summary)}`);
    if (unaccounted.length) {
      const rows = await sql(
        url,
        "SELECT o.job_id, j.name, o.scheduled_for, o.state, o.trigger, o.taken_at, o.finished_at FROM agent_cron.occurrences o JOIN agent_cron.jobs j ON j.id = o.job_id",
      );
      const byKey = new Map(rows.map((r) => [`${r.name} ${(r.scheduled_for as Date).toISOString()}`, r]));
      for (const u of unaccounted.slice(0, 40)) process.stderr.write(`unaccounted ${u}: occurrence row ${JSON.stringify(byKey.get(u) ?? null)}\n`);
    }
    expect({ unaccounted, doubled, ranTwice, stray }).toEqual({ unaccounted: [], doubled: [], ranTwice: [], stray: [] });
    // Every record of a run that started has its execution, and no execution is without a record.
    for (const key of executions.keys()) expect(expected.has(key), `an execution outside the schedule: ${key}`).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(5);
    expect(occurrences).toBeGreaterThan(n * 100);
  }, 420_000);
});
