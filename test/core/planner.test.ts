import { describe, expect, it } from "vitest";
import { afterNotRun, afterRun, withDerivedFields } from "../../src/core/job-rules.js";
import type { Job, Run } from "../../src/core/jobs.js";
import { MAX_MISSED_RECORDS, brokenJobProblem, nextRuns, planCatchUp, sameTimeline, takeable } from "../../src/core/planner.js";
import { scheduleOfJob } from "../../src/core/schedule.js";

// Decisions as pure functions of a job and the clock: no data dir, no timers.
const job = (over: Partial<Job> = {}): Job =>
  ({
    id: "00000000-0000-4000-8000-000000000001",
    name: "j",
    schedule: "* * * * *",
    run_at: null,
    timezone: "UTC",
    state: "active",
    enabled: true,
    catch_up: "latest",
    created_at: "2026-03-02T09:00:00.000+00:00",
    updated_at: "2026-03-02T09:00:00.000+00:00",
    last_scheduled_for: "2026-03-02T09:00:00.000+00:00",
    schedule_from: null,
    next_run_at: null,
    expires_at: null,
    max_runs: null,
    run_count: 0,
    consecutive_failures: 0,
    pause_after_failures: 5,
    schedule_history: [],
    missed_spans: [],
    ...over,
  }) as Job;
const at = (hhmm: string) => Date.parse(`2026-03-02T${hhmm}:00.000Z`);
const plan = (j: Job, now: number, windowSeconds = 3600) => planCatchUp(j, scheduleOfJob(j), now, windowSeconds);

describe("planCatchUp", () => {
  it("is null when nothing was missed (next_run_at still ahead)", () => {
    expect(plan(job({ next_run_at: "2026-03-02T09:11:00.000+00:00" }), at("09:10"))).toBeNull();
  });

  it("latest: runs the newest missed occurrence and records the rest", () => {
    const p = plan(job(), at("09:10") + 30_000)!;
    expect(p.newest).toBe(at("09:10"));
    expect(p.run).toEqual([at("09:10")]);
    expect(p.record).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => at(`09:0${m}`)));
    expect(p.truncated).toBe(false);
    expect(p.next).toBe(at("09:11"));
  });

  it("says what comes after the plan: the next occurrence after now, none once expires_at or max_runs leaves none", () => {
    expect(plan(job({ catch_up: "none" }), at("09:05") + 59_000)!.next).toBe(at("09:06"));
    expect(plan(job({ expires_at: "2026-03-02T09:05:30.000+00:00" }), at("09:07"))!.next).toBeNull();
    expect(plan(job({ max_runs: 3, run_count: 3 }), at("09:07"))!.next).toBeNull();
    expect(plan(job({ schedule: "0 12 * * *" }), at("12:00") + 1)!.next).toBe(Date.parse("2026-03-03T12:00:00.000Z"));
  });

  it("all: runs every occurrence inside the window, oldest first; none: records them all", () => {
    expect(plan(job({ catch_up: "all" }), at("09:05"))!.run).toEqual([1, 2, 3, 4, 5].map((m) => at(`09:0${m}`)));
    const none = plan(job({ catch_up: "none" }), at("09:05"))!;
    expect(none.run).toEqual([]);
    expect(none.record).toHaveLength(5);
  });

  it("only occurrences inside the window may run; a month away records only the newest few", () => {
    expect(plan(job(), at("09:10"), 60 * 5 - 1)!.run).toEqual([at("09:10")]);
    expect(plan(job({ catch_up: "all" }), at("09:10"), 150)!.run).toEqual([at("09:08"), at("09:09"), at("09:10")]);
    const month = plan(job(), at("09:00") + 30 * 86_400_000)!;
    expect(month.record).toHaveLength(MAX_MISSED_RECORDS);
    expect(month.truncated).toBe(true);
  });
});

describe("nextRuns", () => {
  it("never returns an occurrence at or before the last handled one, and stops at max_runs and expires_at", () => {
    const j = job({ last_scheduled_for: "2026-03-02T09:05:00.000+00:00" });
    expect(nextRuns(j, scheduleOfJob(j), 2, at("09:00"))).toEqual([new Date(at("09:06")), new Date(at("09:07"))]);
    const capped = job({ max_runs: 3, run_count: 2 });
    expect(nextRuns(capped, scheduleOfJob(capped), 5, at("09:00"))).toHaveLength(1);
    const expiring = job({ expires_at: "2026-03-02T09:02:30.000+00:00" });
    expect(nextRuns(expiring, scheduleOfJob(expiring), 5, at("09:00"))).toHaveLength(2);
    expect(nextRuns(job({ state: "paused" }), scheduleOfJob(job()), 5, at("09:00"))).toEqual([]);
  });
});

describe("job rules", () => {
  const run = (over: Partial<Run>): Run => ({ status: "completed", trigger: "schedule", error: null, ...over }) as Run;

  it("enabled follows state", () => {
    expect(withDerivedFields(job({ state: "paused", enabled: true })).enabled).toBe(false);
    expect(withDerivedFields(job({ state: "pending_approval", enabled: true })).enabled).toBe(false);
    expect(withDerivedFields(job({ state: "active", enabled: false })).enabled).toBe(true);
  });

  it("a one-shot completes after its own run, not after a manual one; max_runs ends a job", () => {
    const once = job({ run_at: "2026-03-02T10:00:00.000+00:00" });
    expect(afterRun(once, run({}))).toMatchObject({ state: "completed", next_run_at: null });
    expect(afterRun(once, run({ trigger: "manual" })).state).toBeUndefined();
    expect(afterRun(job({ max_runs: 2, run_count: 2 }), run({})).state).toBe("completed");
  });

  it("pauses after pause_after_failures failures in a row, saying why", () => {
    const change = afterRun(job({ consecutive_failures: 4 }), run({ status: "failed", error: "exit 3" }));
    expect(change).toMatchObject({ state: "paused", consecutive_failures: 5 });
    expect(change.last_error).toMatch(/Paused after 5 failed runs in a row; last error: exit 3/);
  });

  it("a one-shot whose occurrence was missed or interrupted has had its turn; a skipped one has not", () => {
    const once = job({ run_at: "2026-03-02T10:00:00.000+00:00" });
    expect(afterNotRun(once, "schedule", "missed").state).toBe("completed");
    expect(afterNotRun(once, "catch_up", "interrupted").state).toBe("completed");
    expect(afterNotRun(once, "schedule", "skipped").state).toBeUndefined();
  });

  it("names what makes a stored job unschedulable", () => {
    expect(brokenJobProblem(job({ timezone: "Mars/Olympus" }))).toMatch(/timezone "Mars\/Olympus"/);
    expect(brokenJobProblem(job({ created_at: "soon" }))).toMatch(/created_at "soon" is not a date/);
    expect(brokenJobProblem(job())).toBeNull();
  });
});

describe("takeable: an occurrence whose take reaches the store after a change (SPEC §18)", () => {
  const history = (...entries: [string, "active" | "paused", string][]) =>
    entries.map(([hhmm, state, schedule]) => ({ at: `2026-03-02T${hhmm}:00.000+00:00`, state, schedule, timezone: "UTC" }));

  it("is taken when the job still schedules it, and never twice", () => {
    const j = job({ schedule_history: history(["09:00", "active", "* * * * *"]) });
    expect(takeable(j, at("09:01"))).toBe(true);
    expect(takeable({ ...j, last_scheduled_for: "2026-03-02T09:01:00.000+00:00" }, at("09:01"))).toBe(false);
  });

  it("is still taken when it came due before a pause, so its run records it (skipped)", () => {
    const j = job({ state: "paused", schedule_history: history(["09:00", "active", "* * * * *"], ["09:05", "paused", "* * * * *"]) });
    expect(takeable(j, at("09:03"))).toBe(true);
    expect(takeable(j, at("09:05"))).toBe(true); // due at the very instant of the pause: taken before it
    expect(takeable(j, at("09:06"))).toBe(false); // never due: armed from an older copy
  });

  it("is still taken when it came due under the schedule a new one replaced", () => {
    const changed = "2026-03-02T09:05:30.000+00:00";
    const j = job({
      schedule: "*/10 * * * *",
      schedule_from: changed,
      schedule_history: [...history(["09:00", "active", "* * * * *"]), { at: changed, state: "active", schedule: "*/10 * * * *", timezone: "UTC" }],
    });
    expect(takeable(j, at("09:04"))).toBe(true);
    expect(takeable(j, at("09:10"))).toBe(true);
    expect(takeable({ ...j, state: "paused" }, at("09:04"))).toBe(true);
    expect(takeable({ ...j, last_scheduled_for: "2026-03-02T09:04:00.000+00:00" }, at("09:03"))).toBe(false);
  });
});

describe("sameTimeline: what another process's write changed", () => {
  it("is the same timeline after a take or a run's bookkeeping, not after a change of when or whether it runs", () => {
    const a = job();
    expect(sameTimeline(a, job({ last_scheduled_for: "2026-03-02T09:05:00.000+00:00", run_count: 3, last_run_at: "2026-03-02T09:05:00.000+00:00" }))).toBe(
      true,
    );
    expect(sameTimeline(a, job({ schedule: "*/5 * * * *" }))).toBe(false);
    expect(sameTimeline(a, job({ timezone: "Europe/Paris" }))).toBe(false);
    expect(sameTimeline(a, job({ state: "paused" }))).toBe(false);
    expect(sameTimeline(a, job({ schedule_from: "2026-03-02T09:03:00.000+00:00" }))).toBe(false);
    expect(sameTimeline(a, job({ expires_at: "2026-03-03T09:00:00.000+00:00" }))).toBe(false);
    // max_runs counts runs: a run elsewhere can end the timeline.
    expect(sameTimeline(job({ max_runs: 10 }), job({ max_runs: 10 }))).toBe(false);
  });
});
