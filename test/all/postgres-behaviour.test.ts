/**
 * The shared behaviour suite (test/behaviour/) on the postgres backend: the same App, the
 * same injected clock, a real database (a fresh one per test). A restart opens a new
 * backend on the same database after the old one is gone, as a new process would.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { openApp } from "../../src/compose.js";
import type { App } from "../../src/core/app.js";
import { schedulingBehaviour } from "../behaviour/scheduling.js";
import type { TestBackend } from "../helpers/app.js";
import { freshDatabase, startCluster, type Cluster } from "./pg-helpers.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
const dirs: string[] = [];
afterAll(() => {
  cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** What a test's store is: the database, and the App last opened on it (a "process"). */
interface PgStore {
  url: string;
  app: App;
}

const postgresBackend: TestBackend = {
  name: "postgres",
  async open({ config, clock, exec, store }) {
    const previous = store as PgStore | undefined;
    const url = previous?.url ?? (await freshDatabase(cluster, "behaviour"));
    // A restart: the previous process is gone, whether it closed or died (a test that
    // simulates a crash never closes its App). Its heartbeat stops and its seat is freed.
    if (previous) await previous.app.runtime.jobs.close();
    const workRoot = mkdtempSync(path.join(os.tmpdir(), "agent-cron-pg-work-"));
    dirs.push(workRoot);
    const app = await openApp({
      dataDir: path.join(workRoot, "no-data-dir"),
      config: { ...config, store: { type: "postgres", url_env: "AGENT_CRON_TEST_DB" } },
      env: { ...process.env, AGENT_CRON_TEST_DB: url },
      clock,
      executors: new Map([["fake", exec]]),
      workRoot,
    });
    const next: PgStore = { url, app };
    return { app, store: next, dir: "" };
  },
};

schedulingBehaviour(postgresBackend);
