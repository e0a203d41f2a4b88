/**
 * What keeps a fleet's capacity from falling as processes are added (issue 22): two Apps on one
 * database, one injected clock that runs far ahead of the takes, so the fleet's takes fall
 * seconds of schedule time behind, as they do at capacity (bench/postgres.mjs).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import { openApp } from "../../src/compose.js";
import type { App } from "../../src/core/app.js";
import { LATE_MS } from "../../src/core/planner.js";
import { FakeClock } from "../helpers/clock.js";
import { ControlledExecutor } from "../helpers/fake-executor.js";
import { countWrites, freshDatabase, sql, startCluster, waitFor, type Cluster } from "./pg-helpers.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
const dirs: string[] = [];
const apps: App[] = [];
afterAll(async () => {
  for (const a of apps) await a.runtime.close(0).catch(() => {});
  cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function openFleetApp(url: string, clock: FakeClock, exec: ControlledExecutor): Promise<App> {
  const workRoot = mkdtempSync(path.join(os.tmpdir(), "agent-cron-pg-capacity-"));
  dirs.push(workRoot);
  const config = parseConfig({
    timezone: "UTC",
    default_executor: "fake",
    max_concurrent: 16,
    executors: { fake: { type: "command", command: ["unused"] } },
    store: { type: "postgres", url_env: "AGENT_CRON_TEST_DB" },
  });
  const app = await openApp({
    dataDir: path.join(workRoot, "no-data-dir"),
    config,
    env: { ...process.env, AGENT_CRON_TEST_DB: url },
    clock,
    executors: new Map([["fake", exec]]),
    workRoot,
  });
  apps.push(app);
  return app;
}

describe("a fleet whose takes run behind its schedule", () => {
  it("takes every occurrence on schedule: a process that hears of another's takes seconds behind does not catch their jobs up", async () => {
    const url = await freshDatabase(cluster, "behind");
    const clock = new FakeClock("2026-03-02T08:59:59.500Z");
    const exec = new ControlledExecutor();
    const a = await openFleetApp(url, clock, exec);
    const b = await openFleetApp(url, clock, exec);
    const JOBS = 10;
    // At least this many seconds of schedule time, and more until the takes trail by LATE_MS
    // (a faster fleet keeps up longer), at most MAX_SECONDS.
    const SECONDS = 30;
    const MAX_SECONDS = 300;
    for (let i = 0; i < JOBS; i++) await a.jobs.add({ name: `j${i}`, schedule: "* * * * * *", prompt: "p", overlap: "allow" }, "test");
    await waitFor("b to hear of every job", () => b.queries.listJobs({}).items.length === JOBS);
    // Each write of a job row, counted by the database itself.
    const jobWrites = await countWrites(url, "job_writes", { event: "UPDATE", table: "jobs", each: "ROW" });
    await a.runtime.start();
    await b.runtime.start();
    // Schedule time runs a second per 5 ms, BURST seconds between two looks at the rows: each
    // take's round trips cost seconds of it, so the row's last_scheduled_for, which each process
    // hears of, trails the clock by more than LATE_MS (a fleet that keeps up better needs more).
    const BURST = 8;
    const behind: number[] = [0];
    let seconds = 0;
    while (seconds < MAX_SECONDS && (seconds < SECONDS || Math.max(...behind) <= LATE_MS)) {
      for (let k = 0; k < BURST; k++, seconds++) {
        clock.advance(1000);
        exec.finishAll();
        await new Promise((r) => setTimeout(r, 5));
      }
      const [row] = await sql<{ lag: number | null }>(
        url,
        "SELECT extract(epoch FROM max($1::timestamptz - (data->>'last_scheduled_for')::timestamptz)) * 1000 AS lag FROM agent_cron.jobs",
        [new Date(clock.now()).toISOString()],
      );
      if (row.lag !== null) behind.push(Number(row.lag));
    }
    expect(Math.max(...behind)).toBeGreaterThan(LATE_MS);
    // Every occurrence due by now: each run once, from the schedule, none caught up or missed.
    const due = JOBS * seconds;
    // Until all are recorded, or no record comes for 5 s (a catch-up records only the newest
    // it missed, so then fewer come: what there is shows below).
    let seen = -1;
    let since = Date.now();
    await waitFor(
      `${due} runs recorded, or none for 5 s`,
      async () => {
        exec.finishAll();
        const [n] = await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM agent_cron.runs WHERE status <> 'running'");
        if (n.n !== seen) [seen, since] = [n.n, Date.now()];
        return n.n >= due || Date.now() - since > 5000;
      },
      60_000,
      50,
    );
    const byKind = await sql<{ trigger: string; status: string; n: number }>(
      url,
      "SELECT trigger, status, count(*)::int AS n FROM agent_cron.runs GROUP BY 1, 2 ORDER BY 1, 2",
    );
    expect(byKind).toEqual([{ trigger: "schedule", status: "completed", n: due }]);
    const [twice] = await sql<{ n: number }>(
      url,
      "SELECT count(*)::int AS n FROM (SELECT 1 FROM agent_cron.runs GROUP BY job_id, scheduled_for HAVING count(*) > 1) d",
    );
    expect(twice.n).toBe(0);
    // Per occurrence its take and its run's start (run_count); the end of a run that completes
    // like the one before changes nothing, and next_run_at is written by the next take.
    const writes = await jobWrites();
    process.stderr.write(`job writes per occurrence: ${(writes / due).toFixed(2)}\n`);
    expect(writes / due).toBeLessThan(2.3);
  }, 120_000);
});
