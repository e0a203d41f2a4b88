/**
 * The narrow window the crash test hits now and then, made deterministic: a process that dies
 * after it has marked an occurrence handled (last_scheduled_for on disk) but before that
 * occurrence's `running` record reached disk. The occurrence is then neither run nor
 * recorded, a silent skip. "Dying" is simulated by a run store whose write never completes
 * and an App that is abandoned, not closed; the next App opens the same files.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config.js";
import { openApp as composeApp } from "../../src/compose.js";
import { FakeClock } from "../helpers/clock.js";
import { ControlledExecutor } from "../helpers/fake-executor.js";

const T0 = "2026-03-02T08:59:59.500Z";
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function openApp(dir: string, clock: FakeClock, exec = new ControlledExecutor()) {
  const config = parseConfig({ timezone: "UTC", default_executor: "fake", executors: { fake: { type: "command", command: ["unused"] } } });
  const app = await composeApp({ dataDir: dir, config, clock, executors: new Map([["fake", exec]]) });
  return { app, exec };
}

describe("a crash between marking an occurrence handled and recording its run", () => {
  it("leaves a record of that occurrence after restart (interrupted or missed), never a silent gap", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-window-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));

    const clock = new FakeClock(T0);
    const first = await openApp(dir, clock);
    await first.app.jobs.add({ name: "tick", schedule: "* * * * * *", prompt: "p" }, "test");
    await first.app.runtime.start();
    // The process "dies" here: run records never reach the disk from now on.
    first.app.runtime.runs.put = () => new Promise(() => {});
    clock.advance(500); // 09:00:00.000 is due
    await vi.waitFor(() => expect(readFileSync(path.join(dir, "jobs.journal"), "utf8")).toContain('"last_scheduled_for":"2026-03-02T09:00:00.000+00:00"'), {
      timeout: 5000,
      interval: 5,
    });
    await first.app.runtime.jobs.idle();
    // Abandoned, as after kill -9: no close, no further writes.

    const later = new FakeClock(Date.parse("2026-03-02T09:00:00.400Z"));
    const second = await openApp(dir, later);
    cleanup.push(() => second.app.runtime.close(0));
    await second.app.runtime.start();
    await second.app.runtime.jobs.idle();

    const runs = second.app.queries.listRuns({ job: "tick", limit: 100 }).items;
    const job = second.app.queries.resolveJob("tick");
    expect(job.last_scheduled_for).toBe("2026-03-02T09:00:00.000+00:00");
    // The occurrence 09:00:00.000 was taken by the dead process; something must say so.
    expect(runs.map((r) => [r.scheduled_for, r.status])).toContainEqual(["2026-03-02T09:00:00.000+00:00", expect.stringMatching(/^(interrupted|missed)$/)]);
  });
});
