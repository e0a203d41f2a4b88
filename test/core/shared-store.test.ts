/**
 * The App on a store shared with other processes (exclusive: false, as postgres is), with the
 * memory backend standing in for it: a write that fails once must not be mistaken for another
 * process's takeover of the run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { openMemoryBackend } from "../../src/backends/memory/index.js";
import { composeApp } from "../../src/compose.js";
import { parseConfig } from "../../src/config.js";
import type { App } from "../../src/core/app.js";
import { FakeClock } from "../helpers/clock.js";
import { ControlledExecutor } from "../helpers/fake-executor.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sharedApp() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-shared-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock("2026-03-02T08:59:59.500Z");
  const exec = new ControlledExecutor();
  const config = parseConfig({ timezone: "UTC", default_executor: "fake", executors: { fake: { type: "command", command: ["unused"] } } });
  const backend = openMemoryBackend({ runsPerJob: 10, clock });
  const app: App = await composeApp(
    { ...backend, exclusive: false },
    { dataDir: path.join(dir, "data"), config, clock, executors: new Map([["fake", exec]]), workRoot: path.join(dir, "work") },
  );
  cleanup.push(() => app.runtime.close(0));
  return { app, clock, exec, store: backend.store };
}

const until = (fn: () => boolean) => vi.waitFor(() => expect(fn()).toBe(true), { timeout: 5000, interval: 5 });

describe("an App on a shared store", () => {
  it("completes a one-shot whose final record failed to write once, when the write succeeds later (not taken for a takeover)", async () => {
    const { app, clock, exec, store } = await sharedApp();
    await app.jobs.add({ name: "once", schedule: "in 5s", prompt: "p" }, "test");
    await app.runtime.start();
    clock.advance(5000);
    await until(() => exec.calls.length === 1);
    // The store goes away as the run ends: its record and the job's change both fail.
    store.failWrites = new Error("the database is unreachable");
    exec.finishAll();
    await until(() => app.runtime.events.listenerCount("run") > 0 && exec.running === 0);
    await new Promise((r) => setTimeout(r, 50));
    store.failWrites = null;
    // The dispatcher writes what it could not every 5 s.
    clock.advance(5000);
    await until(() => app.queries.resolveJob("once").state === "completed");
    const runs = app.queries.listRuns({ job: "once", limit: 10 }).items;
    expect(runs.map((r) => r.status)).toEqual(["completed"]);
    expect(app.queries.resolveJob("once")).toMatchObject({ state: "completed", next_run_at: null, run_count: 1, last_status: "completed" });
  });
});
