import { renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { App } from "../../../src/core/app.js";
import type { Run } from "../../../src/core/jobs.js";
import { JobStore } from "../../../src/backends/files/store/jobs-store.js";
import { schedulingBehaviour } from "../../behaviour/scheduling.js";
import { FakeClock } from "../../helpers/clock.js";
import { filesBackend, forget, openTestApp } from "../../helpers/app.js";

// The same behaviour on a real data dir, then what only files can do: go away, fill up, be hand-edited.
schedulingBehaviour(filesBackend);

const T0 = "2026-03-02T08:59:59.500Z";
const makeApp = (opts: { dir?: string; clock?: FakeClock } = {}) =>
  openTestApp({ backend: filesBackend, dir: opts.dir, clock: opts.clock ?? new FakeClock(T0), config: { max_concurrent: 4, runs_per_job: 100 } });
const runsOf = (app: App, job: string): Run[] => app.queries.listRuns({ job, limit: 100 }).items;
const until = (fn: () => boolean | void) => vi.waitFor(() => expect(fn()).not.toBe(false), { timeout: 5000, interval: 5 });

describe("the App on a files data dir", () => {
  it("a run record that cannot be written neither wedges the job nor ends the process; it is written once the disk is back", async () => {
    const { app, clock, exec, dir } = await makeApp();
    const errors: string[] = [];
    app.runtime.events.on("notice", (level, message) => level === "error" && errors.push(message));
    await app.jobs.add({ name: "tick", schedule: "* * * * * *", prompt: "p", retries: 0 }, "test");
    await app.runtime.start();
    clock.advance(500);
    await until(() => exec.calls.length === 1);
    // The disk goes away while the run is going: its end cannot be written.
    const runsDir = path.join(dir, "runs");
    renameSync(runsDir, `${runsDir}.away`);
    writeFileSync(runsDir, "not a directory");
    exec.finishAll();
    await until(() => errors.some((e) => /could not be recorded/.test(e)));
    // Occurrences while the disk is gone: none starts an agent, none is "skipped: still going".
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(exec.calls).toHaveLength(1);
    // The disk is back; the records kept in memory are written at the next try.
    rmSync(runsDir);
    renameSync(`${runsDir}.away`, runsDir);
    await app.jobs.pause("tick");
    // The next try is on the clock; an occurrence whose failed record came late (a loaded
    // machine) arms it again from then, so time goes on until every record is written.
    await until(() => {
      clock.advance(1000);
      return runsOf(app, "tick").filter((r) => r.status === "failed").length === 3;
    });
    const runs = runsOf(app, "tick");
    expect(runs.filter((r) => r.status === "skipped")).toEqual([]);
    expect(runs.filter((r) => r.status === "failed").every((r) => /its record could not be written/.test(r.error ?? ""))).toBe(true);
    // The run that ended while the disk was gone has its record too.
    expect(runs.find((r) => r.id === exec.calls[0].req.runId)?.status).toBe("completed");
    expect(runs.filter((r) => r.status === "running")).toEqual([]);
    // And the job runs again.
    await app.jobs.resume("tick");
    clock.advance(1000);
    await until(() => exec.calls.length === 2);
    exec.finishAll();
  });

  it("a stored job that can no longer be scheduled is paused with the reason, naming file and job, and the others run", async () => {
    const first = await makeApp();
    await first.app.jobs.add({ name: "good", schedule: "* * * * * *", prompt: "p" }, "test");
    const bad = (await first.app.jobs.add({ name: "bad-zone", schedule: "@daily", prompt: "p" }, "test")).job;
    const badDate = (await first.app.jobs.add({ name: "bad-date", schedule: "@daily", prompt: "p" }, "test")).job;
    await first.app.runtime.close(0);
    forget(first.app);
    // What tzdata updates and hand edits leave behind.
    const store = await JobStore.open(first.dir);
    await store.put({ ...bad, timezone: "Mars/Olympus" });
    await store.put({ ...badDate, created_at: "yesterday-ish" });
    await store.idle();
    store.close();

    const { app, clock, exec } = await makeApp({ dir: first.dir, clock: first.clock });
    expect(app.runtime.startupProblems).toHaveLength(2);
    expect(app.runtime.startupProblems[0]).toMatch(
      new RegExp(`^Job "bad-zone" \\(${bad.id}\\) in .*jobs\\.json cannot be scheduled: timezone "Mars/Olympus" is not known`),
    );
    expect(app.runtime.startupProblems[1]).toMatch(/"bad-date" .* created_at "yesterday-ish" is not a date/);
    expect(app.queries.resolveJob("bad-zone")).toMatchObject({ state: "paused", enabled: false });
    expect(app.queries.resolveJob("bad-zone").last_error).toMatch(/^Cannot be scheduled: timezone "Mars\/Olympus"/);
    await app.runtime.start();
    clock.advance(1000);
    await until(() => exec.calls.length >= 1);
    expect(exec.calls[0].req.jobId).toBe(app.queries.resolveJob("good").id);
    // Fixed through update_cron, it can be resumed.
    await app.jobs.update("bad-zone", { timezone: "Europe/Paris" });
    expect((await app.jobs.resume("bad-zone")).state).toBe("active");
    exec.finishAll();
  });

  it("after a restart, fires each job at the next_run_at its file holds; one that fell behind is caught up, and expires_at and max_runs still end a job", async () => {
    const first = await makeApp();
    const ahead = (await first.app.jobs.add({ name: "ahead", schedule: "30 9 * * *", prompt: "p" }, "test")).job;
    await first.app.jobs.add({ name: "behind", schedule: "0 9 * * *", prompt: "p", retries: 0 }, "test");
    await first.app.jobs.add({ name: "last", schedule: "10,40 9 * * *", prompt: "p", retries: 0, max_runs: 1 }, "test");
    await first.app.jobs.add({ name: "ends", schedule: "20,40 9 * * *", prompt: "p", retries: 0, expires_at: "2026-03-02T09:25:00Z" }, "test");
    expect(ahead.next_run_at).toBe("2026-03-02T09:30:00.000+00:00");
    await first.app.runtime.close(0);
    forget(first.app);
    first.clock.advance(5 * 60_000); // 09:04:59.5: "behind" missed 09:00
    const { app, clock, exec } = await makeApp({ dir: first.dir, clock: first.clock });
    await app.runtime.start();
    const started = () => exec.calls.map((c) => app.queries.resolveJob(c.req.jobId).name);
    await until(() => started().includes("behind"));
    expect(started()).toEqual(["behind"]);
    exec.finishAll();
    for (let i = 0; i < 30 * 60; i++) {
      clock.advance(1000);
      if (i % 60 === 0) await new Promise((r) => setTimeout(r, 5));
      exec.finishAll();
    }
    await until(() => started().length === 4);
    exec.finishAll();
    const at = (name: string) => runsOf(app, name).map((r) => `${r.scheduled_for} ${r.trigger}`);
    expect(at("behind")).toEqual(["2026-03-02T09:00:00.000+00:00 catch_up"]);
    expect(at("ahead")).toEqual(["2026-03-02T09:30:00.000+00:00 schedule"]);
    expect(at("last")).toEqual(["2026-03-02T09:10:00.000+00:00 schedule"]);
    expect(at("ends")).toEqual(["2026-03-02T09:20:00.000+00:00 schedule"]);
    await until(() => app.queries.resolveJob("last").state === "completed" && app.queries.resolveJob("ends").state === "completed");
  });

  it("after a restart, catches up every job that fell behind (caught up side by side), each with its own missed records in order", async () => {
    const first = await makeApp();
    for (let i = 0; i < 80; i++) {
      await first.app.jobs.add({ name: `m${i}`, schedule: "* * * * *", prompt: "p", catch_up: i % 2 ? "none" : "latest", retries: 0 }, "test");
    }
    await first.app.runtime.close(0);
    forget(first.app);
    first.clock.advance(3 * 60_000); // 09:02:59.5: 09:00, 09:01 and 09:02 missed
    const { app, exec } = await makeApp({ dir: first.dir, clock: first.clock });
    await app.runtime.start();
    // Four runs at a time (max_concurrent): each finished as it starts.
    await until(() => {
      exec.finishAll();
      return exec.calls.length === 40;
    });
    for (let i = 0; i < 80; i++) {
      const name = `m${i}`;
      await until(() => runsOf(app, name).every((r) => r.status !== "running"));
      const runs = runsOf(app, name)
        .map((r) => `${r.scheduled_for} ${r.status}`)
        .sort();
      const missed = ["2026-03-02T09:00:00.000+00:00 missed", "2026-03-02T09:01:00.000+00:00 missed"];
      expect(runs, name).toEqual(i % 2 ? [...missed, "2026-03-02T09:02:00.000+00:00 missed"] : [...missed, "2026-03-02T09:02:00.000+00:00 completed"]);
      expect(app.queries.resolveJob(name).last_scheduled_for).toBe("2026-03-02T09:02:00.000+00:00");
    }
  });

  it("reports a full disk at an occurrence and moves on to the next one instead of retrying it in a loop", async () => {
    const { app, clock, exec, dir } = await makeApp();
    await app.jobs.add({ name: "tick", schedule: "* * * * * *", prompt: "p" }, "test");
    await app.runtime.start();
    const errors: string[] = [];
    app.runtime.events.on("notice", (level, message) => level === "error" && errors.push(message));
    app.runtime.jobs.close();
    rmSync(path.join(dir, "jobs.journal"), { force: true });
    symlinkSync("/dev/full", path.join(dir, "jobs.journal"));
    for (let i = 0; i < 3; i++) {
      clock.advance(i === 0 ? 500 : 1000);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Said once, not once per occurrence: the same sentence is not repeated within a minute.
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/disk is full/);
    expect(exec.calls).toHaveLength(0);
  });
  it("an occurrence still queued (overlap: queue_one) when the server stops is recorded skipped, not lost", async () => {
    const { app, clock, exec } = await makeApp();
    await app.jobs.add({ name: "q", schedule: "* * * * * *", prompt: "p", overlap: "queue_one" }, "test");
    await app.runtime.start();
    clock.advance(500);
    await until(() => exec.calls.length === 1);
    clock.advance(1000); // 09:00:01 waits behind 09:00:00
    await until(() => app.queries.resolveJob("q").last_scheduled_for === "2026-03-02T09:00:01.000+00:00");
    await new Promise((r) => setTimeout(r, 30)); // taken, then handed to the dispatcher's queue
    forget(app);
    await app.runtime.close(0);
    const records = runsOf(app, "q").map((r) => [r.scheduled_for, r.status]);
    expect(records).toContainEqual(["2026-03-02T09:00:01.000+00:00", "skipped"]);
  });
});
