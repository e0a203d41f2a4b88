/**
 * Sleep and wake (SPEC §17), for real: the owner is suspended (SIGSTOP) for longer than
 * several occurrences, then continued. Within 5 s it says so, the job's catch_up applies (the
 * newest occurrence runs, as catch_up "latest" says) and the rest are recorded `missed` with
 * the reason "host asleep". (The clock-step case needs libfaketime: test/all/clock-step.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { TestServer, sleep, waitFor, type Structured } from "../helpers/server.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

describe("the owner suspended and continued (SIGSTOP, SIGCONT)", () => {
  it("notices within 5 s, runs the newest occurrence as catch_up says, and records the others missed with reason host asleep", async () => {
    const s = await TestServer.start();
    cleanup.push(() => s.cleanup());
    const job = await s.addJob({ name: "every2", schedule: "@every 2s", prompt: "tick", retries: 0 });
    await s.waitForRuns("every2", (runs) => runs.some((r) => r.status === "completed" && r.trigger === "schedule"), { what: "a first run" });

    const stoppedAt = Date.now();
    process.kill(s.pid, "SIGSTOP");
    try {
      await sleep(9_000);
    } finally {
      process.kill(s.pid, "SIGCONT");
    }
    const continuedAt = Date.now();
    const inGap = (r: Structured) => Date.parse(r.scheduled_for) > stoppedAt && Date.parse(r.scheduled_for) < continuedAt;
    const runs = await s.waitForRuns(
      "every2",
      (rs) => rs.filter((r) => r.status === "missed" && inGap(r)).length >= 2 && rs.some((r) => r.trigger === "catch_up" && r.status === "completed") && rs,
      { timeout: 10_000, what: "the catch-up after the stop" },
    );
    const missed = runs.filter((r: Structured) => r.status === "missed" && inGap(r));
    const caughtUp = runs.filter((r: Structured) => r.trigger === "catch_up" && r.status !== "missed");
    const noticedIn = Math.min(...missed.map((r: Structured) => Date.parse(r.finished_at))) - continuedAt;
    console.log(
      `sleep-wake: stopped ${continuedAt - stoppedAt} ms; noticed ${noticedIn} ms after SIGCONT; records: ` +
        runs.map((r: Structured) => `${r.scheduled_for.slice(11, 23)} ${r.status}/${r.trigger}${r.error ? ` "${r.error}"` : ""}`).join("; "),
    );
    expect(noticedIn).toBeLessThan(5000);
    for (const r of missed) expect(r.error).toMatch(/^host asleep: /);
    // catch_up "latest": the newest occurrence of the gap runs, once.
    expect(caughtUp).toHaveLength(1);
    expect(Date.parse(caughtUp[0].scheduled_for)).toBeGreaterThan(Math.max(...missed.map((r: Structured) => Date.parse(r.scheduled_for))));
    const notice = await waitFor(() => s.notificationsOf("notifications/message").find((n) => /host was asleep/.test(JSON.stringify(n.params))), {
      what: "the notice",
    });
    expect(JSON.stringify(notice.params)).toMatch(/catch_up/);
    // Then it goes on as before.
    await s.waitForRuns("every2", (rs) => rs.some((r) => r.trigger === "schedule" && Date.parse(r.scheduled_for) > continuedAt && r.status === "completed"), {
      what: "a scheduled run after the wake",
    });
    expect(job.id).toBeTruthy();
  }, 60_000);
});
