/**
 * Unattended runs you can trust (SPEC §13), in the core with an injected clock: approval of
 * jobs made by agents, the context line before each prompt, jitter, and a job's own
 * catch-up window.
 */
import { describe, expect, it, vi } from "vitest";
import type { App } from "../../src/core/app.js";
import type { Run } from "../../src/core/jobs.js";
import { contextLine, jitterDelayMs } from "../../src/core/prompt-context.js";
import { forget, openTestApp } from "../helpers/app.js";

async function makeApp(opts: { now: string; approval?: "none" | "ask" | "required"; dir?: string; catch_up_window_seconds?: number }) {
  return openTestApp({ dir: opts.dir, now: opts.now, config: { approval: opts.approval ?? "none", catch_up_window_seconds: opts.catch_up_window_seconds } });
}

const runsOf = (app: App, job: string): Run[] => app.queries.listRuns({ job, limit: 100 }).items;
const until = (fn: () => boolean | void) => vi.waitFor(() => expect(fn()).not.toBe(false), { timeout: 5000, interval: 5 });

describe("approval of jobs made by agents", () => {
  it("required: a job from an MCP client waits, never runs, and cannot be resumed or run by a tool; a person approves it", async () => {
    const { app, clock, exec } = await makeApp({ now: "2026-03-02T08:59:59.000Z", approval: "required" });
    const { job } = await app.jobs.add({ name: "agent-made", schedule: "* * * * * *", prompt: "p" }, "claude-code/2.1");
    expect(job).toMatchObject({ state: "pending_approval", enabled: false, next_run_at: null });
    await app.runtime.start();
    clock.advance(5000);
    await new Promise((r) => setTimeout(r, 30));
    expect(exec.calls).toHaveLength(0);
    await expect(app.jobs.runNow("agent-made")).rejects.toThrow(
      /waiting for a person's approval, so it cannot run; they approve it with: agent-cron approve agent-made/,
    );
    await expect(app.jobs.resume("agent-made")).rejects.toThrow(/cannot be resumed/);
    // Approved: scheduled from now on, nothing replayed from the wait.
    const approved = await app.jobs.approve("agent-made");
    expect(approved.state).toBe("active");
    expect(approved.next_run_at).toBe("2026-03-02T09:00:05.000+00:00");
    clock.advance(1000);
    await until(() => exec.calls.length === 1);
    expect(Date.parse(exec.calls[0].req.scheduledFor)).toBeGreaterThan(Date.parse("2026-03-02T09:00:03.000Z"));
  });

  it("required: the CLI's jobs are active at once; an agent's change of prompt, schedule, executor or work_dir sends a job back", async () => {
    const { app } = await makeApp({ now: "2026-03-02T08:00:00.000Z", approval: "required" });
    const { job } = await app.jobs.add({ name: "by-person", schedule: "@daily", prompt: "p" }, "cli", { origin: "cli" });
    expect(job.state).toBe("active");
    expect((await app.jobs.update("by-person", { timeout_seconds: 60 })).state).toBe("active");
    expect((await app.jobs.update("by-person", { prompt: "now do something else" })).state).toBe("pending_approval");
    expect((await app.jobs.approve("by-person")).state).toBe("active");
    expect((await app.jobs.update("by-person", { schedule: "@hourly" }, { origin: "cli" })).state).toBe("active");
  });

  it("ask: a job the user accepted is active; one nobody could be asked about waits; reject removes it", async () => {
    const { app } = await makeApp({ now: "2026-03-02T08:00:00.000Z", approval: "ask" });
    expect((await app.jobs.add({ name: "accepted", schedule: "@daily", prompt: "p" }, "client/1", { approved: true })).job.state).toBe("active");
    expect((await app.jobs.add({ name: "unasked", schedule: "@daily", prompt: "p" }, "client/1")).job.state).toBe("pending_approval");
    await expect(app.jobs.approve("accepted")).rejects.toThrow(/is not waiting for approval/);
    await app.jobs.reject("unasked");
    expect(app.runtime.jobs.byName("unasked")).toBeUndefined();
  });

  it("a dry run checks and describes the job but stores nothing", async () => {
    const { app } = await makeApp({ now: "2026-03-02T08:00:00.000Z", approval: "ask" });
    const probe = await app.jobs.add({ name: "maybe", schedule: "@daily", prompt: "p" }, "client/1", { dryRun: true });
    expect(probe.created).toBe(true);
    expect(app.runtime.jobs.size).toBe(0);
    await expect(app.jobs.add({ name: "bad", schedule: "61 * * * *", prompt: "p" }, "client/1", { dryRun: true })).rejects.toThrow(/minute must be 0-59/);
  });
});

describe("the context line before each prompt", () => {
  it("names the job and the occurrence in the job's timezone: a Tuesday 09:00 Paris job fired at 08:00 UTC says Tuesday 09:00 +01:00", async () => {
    const { app, clock, exec } = await makeApp({ now: "2026-12-01T07:59:59.000Z" });
    await app.jobs.add({ name: "standup", schedule: "0 9 * * 2", timezone: "Europe/Paris", prompt: "Summarise yesterday" }, "test");
    await app.runtime.start();
    clock.advance(1000);
    await until(() => exec.calls.length === 1);
    const prompt = exec.calls[0].req.prompt;
    expect(prompt).toBe(
      '[agent-cron] Job "standup", occurrence Tuesday 2026-12-01 09:00 +01:00 (Europe/Paris); schedule: At 09:00 AM, only on Tuesday; no previous run.\n\nSummarise yesterday',
    );
    exec.finishAll();
    await until(() => runsOf(app, "standup")[0].status === "completed");
    await app.jobs.runNow("standup");
    await until(() => exec.calls.length === 2);
    expect(exec.calls[1].req.prompt).toMatch(
      /^\[agent-cron\] Job "standup", run by hand at Tuesday 2026-12-01 09:00 \+01:00 \(Europe\/Paris\); .*previous run: completed at Tuesday 2026-12-01 09:00 \+01:00\.\n\nSummarise yesterday$/,
    );
  });

  it("is off with prompt_context false, and says how the previous run failed", () => {
    const job = { id: "j", name: null, schedule: "@hourly", timezone: "UTC", run_at: null } as never;
    const previous = { status: "failed", finished_at: "2026-12-01T08:00:05.000+00:00", error: "exit code 3: fatal: the agent broke" } as Run;
    expect(contextLine(job, { scheduled_for: "2026-12-01T09:00:00.000+00:00", trigger: "schedule", started_at: null }, previous)).toBe(
      "[agent-cron] Job j, occurrence Tuesday 2026-12-01 09:00 +00:00 (UTC); schedule: Every hour; previous run: failed at Tuesday 2026-12-01 08:00 +00:00 (exit code 3: fatal: the agent broke).",
    );
  });
});

describe("jitter_seconds", () => {
  it("starts each occurrence after its stable delay, keeping scheduled_for nominal", async () => {
    const { app, clock, exec } = await makeApp({ now: "2026-03-02T08:59:59.000Z" });
    const { job } = await app.jobs.add({ name: "spread", schedule: "0 9 * * *", prompt: "p", jitter_seconds: 600, prompt_context: false }, "test");
    const at = Date.parse("2026-03-02T09:00:00.000Z");
    const delay = jitterDelayMs(job.id, at, 600);
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThan(600_000);
    expect(jitterDelayMs(job.id, at, 600)).toBe(delay);
    await app.runtime.start();
    clock.advance(1000);
    await new Promise((r) => setTimeout(r, 30));
    clock.advance(delay - 50);
    await new Promise((r) => setTimeout(r, 30));
    expect(exec.calls).toHaveLength(0);
    clock.advance(100);
    await until(() => exec.calls.length === 1);
    expect(exec.calls[0].req.scheduledFor).toBe("2026-03-02T09:00:00.000+00:00");
  });

  it("an occurrence waiting out its jitter when the server stops is recorded skipped as it stops, once, even after a manual run", async () => {
    const first = await makeApp({ now: "2026-03-02T08:59:59.000Z" });
    const { job } = await first.app.jobs.add({ name: "spread", schedule: "0 9 * * *", prompt: "p", jitter_seconds: 600, prompt_context: false }, "test");
    await first.app.runtime.start();
    first.clock.advance(1000);
    await until(() => first.app.queries.resolveJob("spread").last_scheduled_for !== null);
    // A manual run starts while the 09:00 occurrence waits: the job's last_run_at is after it.
    await first.app.jobs.runNow("spread");
    await until(() => first.exec.calls.length === 1);
    first.exec.finishAll();
    forget(first.app);
    await first.app.runtime.close(0);
    const second = await makeApp({ now: "2026-03-02T09:00:30.000Z", dir: first.dir });
    const scheduled = second.app.queries.listRuns({ job: job.id, limit: 100 }).items.filter((r) => r.trigger === "schedule");
    expect(scheduled.map((r) => [r.scheduled_for, r.status, r.error])).toEqual([
      ["2026-03-02T09:00:00.000+00:00", "skipped", "The server stopped before this occurrence could start."],
    ]);
  });

  it("spreads a fleet's 09:00 over the window", () => {
    const delays = Array.from({ length: 200 }, (_, i) => jitterDelayMs(`job-${i}`, 0, 60));
    expect(Math.min(...delays)).toBeLessThan(10_000);
    expect(Math.max(...delays)).toBeGreaterThan(50_000);
  });
});

describe("catch_up_window_seconds per job", () => {
  it("overrides the config's: an occurrence missed longer ago than the job's window is recorded missed, not run", async () => {
    const first = await makeApp({ now: "2026-03-02T08:59:59.500Z", catch_up_window_seconds: 86_400 });
    await first.app.jobs.add({ name: "tight", schedule: "0 9 * * *", prompt: "p", catch_up_window_seconds: 60 }, "test");
    await first.app.jobs.add({ name: "loose", schedule: "0 9 * * *", prompt: "p" }, "test");
    await first.app.runtime.close(0);
    forget(first.app);
    // Down from 08:59:59 to 09:10: the 09:00 occurrence is 10 minutes old.
    const second = await makeApp({ now: "2026-03-02T09:10:00.000Z", dir: first.dir, catch_up_window_seconds: 86_400 });
    await second.app.runtime.start();
    await until(() => runsOf(second.app, "loose").length === 1 && runsOf(second.app, "tight").length === 1);
    expect(runsOf(second.app, "tight")[0].status).toBe("missed");
    expect(runsOf(second.app, "loose")[0]).toMatchObject({ status: "running", trigger: "catch_up" });
  });
});
