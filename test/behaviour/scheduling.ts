/**
 * The App's behaviour, one set of tests for every backend: test/core/ runs it in memory,
 * test/store/ on a files data dir, test/all/ on a real Postgres. Each test names a behaviour
 * and proves it through the App's public surface with an injected clock.
 */
import { describe, expect, it, vi } from "vitest";
import type { App } from "../../src/core/app.js";
import type { Run } from "../../src/core/jobs.js";
import { FakeClock } from "../helpers/clock.js";
import { ControlledExecutor } from "../helpers/fake-executor.js";
import { forget, openTestApp, type TestBackend } from "../helpers/app.js";
import { ChatReceivers } from "../helpers/chat-receivers.js";
import { unaccountedOccurrences } from "../../src/core/ledger.js";

const T0 = "2026-03-02T08:59:59.500Z";

export function schedulingBehaviour(backend: TestBackend): void {
  async function makeApp(
    opts: { max_concurrent?: number; runs_per_job?: number; daily_budget_usd?: number; store?: unknown; clock?: FakeClock; exec?: ControlledExecutor } = {},
  ) {
    return openTestApp({
      backend,
      store: opts.store,
      clock: opts.clock ?? new FakeClock(T0),
      exec: opts.exec,
      config: { max_concurrent: opts.max_concurrent ?? 4, runs_per_job: opts.runs_per_job ?? 100, daily_budget_usd: opts.daily_budget_usd },
    });
  }

  const runsOf = (app: App, job: string): Run[] => app.queries.listRuns({ job, limit: 100 }).items;
  const until = (fn: () => boolean | void) => vi.waitFor(() => expect(fn()).not.toBe(false), { timeout: 5000, interval: 5 });

  describe(`App scheduling with an injected clock (${backend.name} backend)`, () => {
    it("runs each occurrence once, records scheduled_for to the millisecond, and never runs one at or before the last (clock set back)", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "tick", schedule: "* * * * * *", prompt: "p" }, "test");
      await app.runtime.start();
      clock.advance(500); // 09:00:00.000
      await until(() => exec.calls.length === 1);
      exec.finishAll();
      await app.queries.waitForRun(runsOf(app, "tick")[0].id);
      expect(runsOf(app, "tick")[0]).toMatchObject({ status: "completed", scheduled_for: "2026-03-02T09:00:00.000+00:00" });

      clock.jumpWall(-10_000); // the clock is set back ten seconds
      clock.advance(12_000);
      await until(() => exec.calls.length >= 2);
      exec.finishAll();
      const scheduled = exec.calls.map((c) => c.req.scheduledFor);
      expect(new Set(scheduled).size).toBe(scheduled.length);
      expect(scheduled[1] > scheduled[0]).toBe(true);
    });

    it("does not burst after the clock jumps forward: one catch-up run, the rest recorded missed", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "minutely", schedule: "* * * * *", prompt: "p" }, "test");
      await app.runtime.start();
      clock.jumpWall(10 * 60_000);
      clock.advance(1000);
      await until(() => exec.calls.length === 1);
      exec.finishAll();
      // A fleet records the missed ones from its queue, in no set order with the catch-up run.
      await until(() => {
        const rs = runsOf(app, "minutely");
        return rs.some((r) => r.status === "completed") && rs.filter((r) => r.status === "missed").length >= 9;
      });
      const runs = runsOf(app, "minutely");
      expect(runs.filter((r) => r.status === "missed").length).toBeGreaterThanOrEqual(9);
      expect(runs.filter((r) => r.trigger === "catch_up" && r.status === "completed")).toHaveLength(1);
      expect(exec.calls).toHaveLength(1);
    });

    it("records a skipped run when the previous one is still going (overlap: skip)", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "slow", schedule: "* * * * * *", prompt: "p" }, "test");
      await app.runtime.start();
      clock.advance(500);
      await until(() => exec.calls.length === 1);
      clock.advance(1000);
      await until(() => runsOf(app, "slow").some((r) => r.status === "skipped"));
      expect(exec.calls).toHaveLength(1);
      expect(runsOf(app, "slow").find((r) => r.status === "skipped")?.error).toMatch(/overlap: skip/);
    });

    it("queues one occurrence behind a running one (overlap: queue_one) and skips further ones", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "q", schedule: "* * * * * *", prompt: "p", overlap: "queue_one" }, "test");
      await app.runtime.start();
      clock.advance(500);
      await until(() => exec.calls.length === 1);
      clock.advance(1000);
      clock.advance(1000);
      await until(() => runsOf(app, "q").some((r) => r.status === "skipped"));
      expect(exec.calls).toHaveLength(1);
      exec.calls[0].settle({});
      await until(() => exec.calls.length === 2);
    });

    it("cancels the running one for a newer occurrence (overlap: replace)", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "r", schedule: "* * * * * *", prompt: "p", overlap: "replace" }, "test");
      await app.runtime.start();
      clock.advance(500);
      await until(() => exec.calls.length === 1);
      clock.advance(1000);
      await until(() => exec.calls.length === 2);
      await until(() => runsOf(app, "r").some((r) => r.status === "canceled"));
      expect(runsOf(app, "r").find((r) => r.status === "canceled")?.error).toMatch(/Replaced/);
    });

    it("runs occurrences side by side with overlap: allow, within the global concurrency limit", async () => {
      const { app, clock, exec } = await makeApp({ max_concurrent: 2 });
      await app.jobs.add({ name: "a", schedule: "* * * * * *", prompt: "p", overlap: "allow" }, "test");
      await app.runtime.start();
      clock.advance(500);
      clock.advance(1000);
      clock.advance(1000);
      // All three taken (a shared queue holds the third until a slot frees; files records it running).
      await until(() => app.runtime.jobs.byName("a")?.last_scheduled_for === "2026-03-02T09:00:02.000+00:00");
      await until(() => exec.calls.length === 2);
      expect(exec.maxRunning).toBe(2);
      exec.calls[0].settle({});
      await until(() => exec.calls.length === 3);
      expect(exec.maxRunning).toBe(2);
    });

    it("runs resource-intensive jobs one at a time", async () => {
      const { app, exec } = await makeApp({ max_concurrent: 4 });
      await app.jobs.add({ name: "h1", schedule: "@daily", prompt: "p", type: "resource-intensive" }, "test");
      await app.jobs.add({ name: "h2", schedule: "@daily", prompt: "p", type: "resource-intensive" }, "test");
      await app.jobs.add({ name: "l", schedule: "@daily", prompt: "p", type: "light" }, "test");
      for (const j of ["h1", "h2", "l"]) await app.jobs.runNow(j);
      await until(() => exec.calls.length === 2);
      const heavy = new Set([app.queries.resolveJob("h1").id, app.queries.resolveJob("h2").id]);
      const first = exec.calls.map((c) => c.req.jobId);
      expect(first).toContain(app.queries.resolveJob("l").id);
      expect(first.filter((id) => heavy.has(id))).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 50));
      expect(exec.calls).toHaveLength(2);
      exec.calls.find((c) => heavy.has(c.req.jobId))!.settle({});
      await until(() => exec.calls.length === 3);
      expect(heavy.has(exec.calls[2].req.jobId)).toBe(true);
    });

    it("ends a one-shot in state completed after its run", async () => {
      const { app, clock, exec } = await makeApp();
      const { job } = await app.jobs.add({ name: "once", schedule: "in 5s", prompt: "p" }, "test");
      expect(job.run_at).not.toBeNull();
      await app.runtime.start();
      clock.advance(5000);
      await until(() => exec.calls.length === 1);
      exec.finishAll();
      await until(() => app.queries.resolveJob("once").state === "completed");
      clock.advance(60_000);
      expect(exec.calls).toHaveLength(1);
    });

    it("ends a recurring job in state completed once its expires_at has passed (SPEC §3)", async () => {
      const { app, clock, exec } = await makeApp();
      // T0 is 08:59:59.500; the job runs at 09:00:00, :01 and :02, then expires.
      await app.jobs.add({ name: "ending", schedule: "* * * * * *", prompt: "p", overlap: "allow", expires_at: "2026-03-02T09:00:02.200Z" }, "test");
      await app.runtime.start();
      for (let i = 0; i < 5; i++) {
        clock.advance(i === 0 ? 500 : 1000);
        await new Promise((r) => setTimeout(r, 20));
        exec.finishAll();
      }
      await until(() => app.queries.resolveJob("ending").state === "completed");
      expect(app.queries.resolveJob("ending")).toMatchObject({ state: "completed", enabled: false, next_run_at: null });
      // Occurrences due before the end run even when a fleet's worker starts them after it.
      await until(() => {
        exec.finishAll();
        return exec.calls.length >= 3 && runsOf(app, "ending").every((r) => r.status !== "running");
      });
      expect(exec.calls).toHaveLength(3);
      expect(runsOf(app, "ending").map((r) => r.status)).toEqual(["completed", "completed", "completed"]);
    });

    it("completes at start-up a job whose expires_at passed while the server was down", async () => {
      const first = await makeApp();
      await first.app.jobs.add({ name: "expired", schedule: "@hourly", prompt: "p", expires_at: "2026-03-02T12:30:00Z", catch_up: "none" }, "test");
      await first.app.runtime.close(0);
      forget(first.app);
      const clock = new FakeClock("2026-03-03T08:00:00Z");
      const { app } = await makeApp({ store: first.store, clock });
      await app.runtime.start();
      clock.advance(1);
      await until(() => app.queries.resolveJob("expired").state === "completed");
      expect(app.queries.resolveJob("expired").next_run_at).toBeNull();
    });

    it("ends a job with max_runs after that many runs", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "twice", schedule: "* * * * * *", prompt: "p", max_runs: 2 }, "test");
      await app.runtime.start();
      for (let i = 0; i < 4; i++) {
        clock.advance(i === 0 ? 500 : 1000);
        await until(() => exec.calls.length >= Math.min(i + 1, 2));
        exec.finishAll();
        await new Promise((r) => setTimeout(r, 20));
      }
      await until(() => app.queries.resolveJob("twice").state === "completed");
      expect(exec.calls).toHaveLength(2);
    });

    it("max_runs: 1 with overlap allow runs once, even while that run is still going", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "just-one", schedule: "* * * * * *", prompt: "p", max_runs: 1, overlap: "allow" }, "test");
      await app.runtime.start();
      clock.advance(500);
      await until(() => exec.calls.length === 1);
      // The run is still going when the next occurrences come.
      for (let i = 0; i < 3; i++) {
        clock.advance(1000);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(exec.calls).toHaveLength(1);
      exec.finishAll();
      await until(() => app.queries.resolveJob("just-one").state === "completed");
      expect(runsOf(app, "just-one")).toHaveLength(1);
    });

    it("a one-shot given a new delay by update_cron runs at the new time, not the old one", async () => {
      const { app, clock, exec } = await makeApp();
      await app.jobs.add({ name: "later", schedule: "in 10s", prompt: "p" }, "test");
      await app.runtime.start();
      clock.advance(5_000);
      // The same text again: a new delay, counted from now.
      const updated = await app.jobs.update("later", { schedule: "in 10s" });
      expect(Date.parse(updated.run_at!)).toBe(clock.now() + 10_000);
      expect(updated.next_run_at).toBe(updated.run_at);
      clock.advance(6_000); // past the old time
      await new Promise((r) => setTimeout(r, 30));
      expect(exec.calls).toHaveLength(0);
      clock.advance(5_000);
      await until(() => exec.calls.length === 1);
      expect(exec.calls[0].req.scheduledFor).toBe(updated.run_at);
    });

    it("update_cron refuses a change after which an active job would never run, and changes nothing", async () => {
      const { app, clock } = await makeApp();
      await app.jobs.add({ name: "ending", schedule: "@daily", prompt: "p", expires_at: "2026-03-05T00:00" }, "test");
      await app.runtime.start();
      clock.advance(1000);
      // Every day at midnight, but expiring before the next midnight after the change:
      await expect(app.jobs.update("ending", { schedule: "0 0 1 1 *" })).rejects.toThrow(
        /would never run: its schedule has no occurrence left before expires_at/,
      );
      const j = app.queries.resolveJob("ending");
      expect(j.schedule).toBe("@daily");
      expect(j.state).toBe("active");
      await expect(app.jobs.update("ending", { max_runs: 1 })).resolves.toMatchObject({ max_runs: 1 });
    });

    it("a run waiting to retry holds no concurrency slot, and its back-off is capped at 1 h in all", async () => {
      const { app, clock, exec } = await makeApp({ max_concurrent: 1 });
      await app.jobs.add({ name: "flaky", schedule: "@yearly", prompt: "p", retries: 10, retry_delay_seconds: 1800 }, "test");
      await app.jobs.add({ name: "other", schedule: "@yearly", prompt: "p", retries: 0 }, "test");
      const flaky = await app.jobs.runNow("flaky");
      await until(() => exec.calls.length === 1);
      exec.calls[0].settle({ status: "failed", exitCode: 1, error: "boom" });
      // While flaky waits 30 min to retry, the only slot is free for another job.
      const other = await app.jobs.runNow("other");
      await until(() => exec.calls.length === 2);
      expect(exec.calls[1].req.jobId).toBe(other.job_id);
      exec.calls[1].settle({});
      await app.queries.waitForRun(other.id);
      // 30 min, then 60 min more would pass the 1 h cap: one retry only.
      clock.advance(30 * 60_000);
      await until(() => exec.calls.length === 3);
      exec.calls[2].settle({ status: "failed", exitCode: 1, error: "boom again" });
      const done = await app.queries.waitForRun(flaky.id);
      expect(done).toMatchObject({ status: "failed", attempts: 2 });
      expect(done.error).toMatch(/boom again \(not retried further: the retries would wait more than 1 h in all\)/);
      expect(clock.pendingTimers).toBeGreaterThanOrEqual(0);
    });

    it("get_run with the 8-character id that lists print returns the run's whole output", async () => {
      const { app, exec } = await makeApp();
      await app.jobs.add({ name: "short-id", schedule: "@daily", prompt: "p" }, "test");
      const run = await app.jobs.runNow("short-id");
      await until(() => exec.calls.length === 1);
      exec.calls[0].settle({ output: "the whole answer" });
      await app.queries.waitForRun(run.id);
      const got = await app.queries.getRun(run.id.slice(0, 8));
      expect(got.id).toBe(run.id);
      expect(got.output).toBe("the whole answer");
    });

    it("two channels of one run finishing together both land in its record (no delivery overwrites another's)", async () => {
      const receivers = await ChatReceivers.start();
      try {
        const { app, exec } = await openTestApp({
          backend,
          clock: new FakeClock(T0),
          config: { channels: { team: { type: "slack", url: receivers.url("/slack/a") }, ops: { type: "discord", url: receivers.url("/discord/b") } } },
        });
        await app.jobs.add({ name: "both", schedule: "@daily", prompt: "p", deliver_to: ["team", "ops"] }, "test");
        for (let i = 0; i < 3; i++) {
          const run = await app.jobs.runNow("both");
          await until(() => exec.calls.length === i + 1);
          exec.calls[i].settle({ output: `answer ${i}` });
          await app.queries.waitForRun(run.id);
          // The first delivery loads the channel formatters (markdown-it): slow on a busy machine.
          await vi.waitFor(() => expect(app.queries.getRunRecord(run.id).delivery).not.toBe("pending"), { timeout: 30_000, interval: 20 });
          const done = app.queries.getRunRecord(run.id);
          expect(done.delivery).toBe("delivered");
          expect(new Set(done.deliveries?.map((d) => d.channel))).toEqual(new Set(["team", "ops"]));
          expect(done.delivery_due).toEqual([]);
        }
      } finally {
        await receivers.close();
      }
    });

    it("keeps only the newest runs_per_job runs", async () => {
      const { app, exec } = await makeApp({ runs_per_job: 3 });
      await app.jobs.add({ name: "k", schedule: "@daily", prompt: "p" }, "test");
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const run = await app.jobs.runNow("k");
        ids.push(run.id);
        await until(() => exec.calls.length === i + 1);
        exec.finishAll();
        await app.queries.waitForRun(run.id);
      }
      expect(runsOf(app, "k").map((r) => r.id)).toEqual(ids.slice(-3).reverse());
    });

    it("retries failed attempts with doubling delay, and the run's status is its last attempt's", async () => {
      const { app, exec, clock } = await makeApp();
      await app.jobs.add({ name: "retry", schedule: "@daily", prompt: "p", retries: 2, retry_delay_seconds: 0.01 }, "test");
      const run = await app.jobs.runNow("retry");
      await until(() => exec.calls.length === 1);
      exec.calls[0].settle({ status: "failed", error: "first" });
      // The back-off follows the app's clock: 10 ms, then 20 ms.
      await new Promise((r) => setTimeout(r, 20));
      expect(exec.calls).toHaveLength(1);
      clock.advance(10);
      await until(() => exec.calls.length === 2);
      exec.calls[1].settle({ status: "timed_out", error: "second" });
      await new Promise((r) => setTimeout(r, 20));
      clock.advance(10);
      await new Promise((r) => setTimeout(r, 20));
      expect(exec.calls).toHaveLength(2);
      clock.advance(10);
      await until(() => exec.calls.length === 3);
      exec.calls[2].settle({});
      const done = await app.queries.waitForRun(run.id);
      expect(done.status).toBe("completed");
      expect(done.attempts).toBe(3);
    });

    it("pauses a job after pause_after_failures failed runs in a row and says why", async () => {
      const { app, exec } = await makeApp();
      await app.jobs.add({ name: "bad", schedule: "@daily", prompt: "p", retries: 0, pause_after_failures: 2 }, "test");
      const notices: string[] = [];
      app.runtime.events.on("notice", (_level, message) => notices.push(message));
      for (let i = 0; i < 2; i++) {
        const run = await app.jobs.runNow("bad");
        await until(() => exec.calls.length === i + 1);
        exec.calls[i].settle({ status: "failed", error: "exit 3" });
        await app.queries.waitForRun(run.id);
      }
      const job = app.queries.resolveJob("bad");
      expect(job.state).toBe("paused");
      expect(job.last_error).toMatch(/Paused after 2 failed runs in a row.*exit 3/);
      // Said once, by the ending that paused it (decided by the job's change, not by its text).
      expect(notices.filter((n) => n.includes("paused itself"))).toEqual([
        expect.stringMatching(/^Job bad paused itself: Paused after 2 failed runs in a row/),
      ]);
    });

    it("marks a run left running by a dead process interrupted at start-up, and never runs that occurrence again", async () => {
      const first = await makeApp();
      await first.app.jobs.add({ name: "tick", schedule: "* * * * * *", prompt: "p" }, "test");
      await first.app.runtime.start();
      first.clock.advance(500);
      await until(() => first.exec.calls.length === 1);
      // Simulate a crash: the run record says running, owned by a pid that no longer exists.
      const run = runsOf(first.app, "tick")[0];
      await first.app.runtime.runs.put({ ...run, pid: 2 ** 22 + 12345 });
      forget(first.app);
      // biome-ignore lint/complexity/useLiteralKeys: a private member, reached on purpose (TypeScript allows it only by index)
      first.app.runtime["scheduler"].stop();

      const clock = new FakeClock(first.clock.now());
      const second = await makeApp({ store: first.store, clock });
      const again = runsOf(second.app, "tick")[0];
      expect(again.status).toBe("interrupted");
      await second.app.runtime.start();
      clock.advance(200);
      await new Promise((r) => setTimeout(r, 50));
      expect(second.exec.calls.map((c) => c.req.scheduledFor)).not.toContain(run.scheduled_for);
    });

    describe("catch-up at start-up after downtime", () => {
      async function downFor10Minutes(catch_up: "latest" | "all" | "none", overlap: "allow" | "skip" = "allow") {
        const first = await makeApp();
        await first.app.jobs.add({ name: "m", schedule: "* * * * *", prompt: "p", catch_up, overlap }, "test");
        await first.app.runtime.close(0);
        forget(first.app);
        const clock = new FakeClock(first.clock.now() + 10 * 60_000);
        const second = await makeApp({ store: first.store, clock });
        await second.app.runtime.start();
        await second.app.runtime.jobs.idle();
        await new Promise((r) => setTimeout(r, 50));
        return { ...second, runs: runsOf(second.app, "m") };
      }

      // A fleet (postgres) queues a catch-up whole and its workers run and record it, a moment later.
      it("latest: runs the newest missed occurrence once and records the others missed", async () => {
        const { exec, app } = await downFor10Minutes("latest");
        await until(() => exec.calls.length === 1 && runsOf(app, "m").filter((r) => r.status === "missed").length === 9);
        expect(exec.calls.map((c) => c.req.scheduledFor)).toEqual(["2026-03-02T09:09:00.000+00:00"]);
        expect(runsOf(app, "m").find((r) => r.status === "running")?.trigger).toBe("catch_up");
        // Written with the catch-up, not left in the past until the next occurrence fires.
        expect(app.queries.resolveJob("m").next_run_at).toBe("2026-03-02T09:10:00.000+00:00");
      });

      for (const overlap of ["allow", "skip"] as const) {
        it(`all (overlap ${overlap}): runs every missed occurrence, one after another, oldest first, none skipped`, async () => {
          const { exec, app } = await downFor10Minutes("all", overlap);
          await until(() => exec.calls.length >= 1);
          if (backend.name !== "postgres") {
            // The backlog is the job's own queue: the next waits for the one going. (A fleet's
            // workers run a backlog as they free up, side by side: docs/postgres.md.)
            await new Promise((r) => setTimeout(r, 50));
            expect(exec.calls).toHaveLength(1);
          }
          await until(() => {
            exec.finishAll();
            return exec.calls.length === 10;
          });
          exec.finishAll();
          const order = exec.calls.map((c) => c.req.scheduledFor);
          const expected = Array.from({ length: 10 }, (_, i) => `2026-03-02T09:0${i}:00.000+00:00`);
          expect(backend.name === "postgres" ? [...order].sort() : order).toEqual(expected);
          await until(() => runsOf(app, "m").filter((r) => r.status === "completed").length === 10);
          expect(runsOf(app, "m").filter((r) => r.status === "skipped")).toEqual([]);
        });
      }

      if (backend.name !== "postgres") {
        // (A fleet queues a backlog's occurrences in the database: its workers run them, or a restart does.)
        it("all: a backlog's occurrences not started yet are pending in the audit, and a stop records each skipped, not lost", async () => {
          const { exec, app } = await downFor10Minutes("all");
          await until(() => exec.calls.length === 1);
          const pending = app.queries.audit({ job: "m" });
          expect(pending.unaccounted).toBe(0);
          expect(pending.counts.pending).toBe(10); // the one running and the nine behind it
          await app.runtime.close(0);
          const runs = runsOf(app, "m").sort((a, b) => Date.parse(a.scheduled_for!) - Date.parse(b.scheduled_for!));
          expect(runs.map((r) => `${r.scheduled_for!.slice(11, 16)} ${r.status}`)).toEqual([
            "09:00 interrupted",
            ...Array.from({ length: 9 }, (_, i) => `09:0${i + 1} skipped`),
          ]);
          expect(runs[1].error).toBe("The server stopped before this caught-up occurrence could start (catch_up: all).");
        });

        it("all: after a crash mid-backlog, the restart runs each caught-up occurrence that had not started, once, and none that had", async () => {
          const down = await downFor10Minutes("all");
          await until(() => down.exec.calls.length === 1);
          expect(down.app.queries.resolveJob("m").backlog_due).toHaveLength(10);
          // The crash: the first one's record says running, owned by a pid that no longer exists.
          const going = runsOf(down.app, "m").find((r) => r.status === "running")!;
          await down.app.runtime.runs.put({ ...going, pid: 2 ** 22 + 12345 });
          forget(down.app);
          // biome-ignore lint/complexity/useLiteralKeys: a private member, reached on purpose (TypeScript allows it only by index)
          down.app.runtime["scheduler"].stop();

          const clock = new FakeClock(down.clock.now());
          const { app, exec } = await makeApp({ store: down.store, clock });
          await app.runtime.start();
          await until(() => {
            exec.finishAll();
            return exec.calls.length === 9;
          });
          exec.finishAll();
          expect(exec.calls.map((c) => c.req.scheduledFor.slice(11, 16))).toEqual(Array.from({ length: 9 }, (_, i) => `09:0${i + 1}`));
          await until(() => app.queries.resolveJob("m").backlog_due.length === 0);
          const runs = runsOf(app, "m").sort((a, b) => Date.parse(a.scheduled_for!) - Date.parse(b.scheduled_for!));
          expect(runs.map((r) => `${r.scheduled_for!.slice(11, 16)} ${r.status}`)).toEqual([
            "09:00 interrupted",
            ...Array.from({ length: 9 }, (_, i) => `09:0${i + 1} completed`),
          ]);
          expect(app.queries.audit({ job: "m" }).unaccounted).toBe(0);
        });
      }

      it("none: records every missed occurrence and runs nothing until the next one", async () => {
        const { exec, clock, app } = await downFor10Minutes("none");
        await until(() => runsOf(app, "m").filter((r) => r.status === "missed").length === 10);
        expect(exec.calls).toHaveLength(0);
        expect(app.queries.resolveJob("m").next_run_at).toBe("2026-03-02T09:10:00.000+00:00");
        clock.advance(60_000);
        await until(() => exec.calls.length === 1);
        expect(exec.calls[0].req.scheduledFor).toBe("2026-03-02T09:10:00.000+00:00");
        expect(runsOf(app, "m")).toHaveLength(11);
      });
    });

    describe("the ledger: every occurrence accounted for (SPEC §18)", () => {
      /** An agent whose every attempt completes at once. */
      class InstantExecutor extends ControlledExecutor {
        override execute(req: Parameters<ControlledExecutor["execute"]>[0]) {
          const done = super.execute(req);
          this.finishAll();
          return done;
        }
      }
      /** Lets `seconds` pass one at a time (runs finish as they start); a run late for its second is fine under overlap allow. */
      async function tick(clock: FakeClock, _exec: ControlledExecutor, seconds: number) {
        for (let i = 0; i < seconds; i++) {
          clock.advance(1000);
          await new Promise((r) => setTimeout(r, 3));
        }
      }

      it("audits a schedule changed twice and paused once with no false gaps, and keeps each change in schedule_history", async () => {
        const { app, clock, exec } = await makeApp({ exec: new InstantExecutor() });
        await app.jobs.add({ name: "shifting", schedule: "@every 2s", prompt: "p", overlap: "allow" }, "test");
        await app.runtime.start();
        await tick(clock, exec, 8);
        await app.jobs.update("shifting", { schedule: "* * * * * *" });
        await tick(clock, exec, 5);
        await app.jobs.pause("shifting");
        await tick(clock, exec, 10);
        await app.jobs.resume("shifting");
        await tick(clock, exec, 4);
        await app.jobs.update("shifting", { schedule: "@every 3s" });
        await tick(clock, exec, 10);
        clock.advance(20_000); // past the grace for the newest ones
        await app.jobs.pause("shifting");
        // Occurrences due before the pause get their record (skipped) instead of none, also when
        // their take reaches the store after the pause (a database is slower than this clock):
        // wait until none is pending (taken, no record yet) or running.
        await until(() => {
          const report = app.queries.audit({ job: "shifting" });
          return report.unaccounted === 0 && !report.counts.pending && runsOf(app, "shifting").every((r) => r.status !== "running");
        });
        const report = app.queries.audit({ job: "shifting" });
        expect(report.unaccounted).toBe(0);
        expect(report.jobs[0].duplicates).toBe(0);
        const recorded = runsOf(app, "shifting").filter((r) => r.trigger === "schedule").length;
        expect(report.occurrences).toBe(recorded);
        expect(report.occurrences).toBeGreaterThanOrEqual(15);
        expect(report.summary).toMatch(/^Every occurrence since .* is accounted for/);
        const history = app.queries.resolveJob("shifting").schedule_history.map((e) => `${e.state} ${e.schedule}`);
        expect(history).toEqual(["active @every 2s", "active * * * * * *", "paused * * * * * *", "active * * * * * *", "active @every 3s", "paused @every 3s"]);
      }, 60_000);

      it("finds occurrences whose records are gone, names them, and the self-audit says so once and delivers one alert", async () => {
        const receivers = await ChatReceivers.start();
        try {
          const clock = new FakeClock(T0);
          // Set before the App opens: a backend may take its environment as it is then (postgres's test harness copies it).
          process.env.TG_TOKEN = "123:abc";
          const { app, exec } = await openTestApp({
            backend,
            clock,
            exec: new InstantExecutor(),
            config: {
              audit_interval_minutes: 1,
              alerts: ["ops"],
              channels: { ops: { type: "telegram", token_env: "TG_TOKEN", chat_id: "42", api_base: receivers.url("/telegram") } },
            },
          });
          const notices: string[] = [];
          app.runtime.events.on("notice", (_level, message) => notices.push(message));
          const { job } = await app.jobs.add({ name: "lost", schedule: "* * * * * *", prompt: "p", overlap: "allow" }, "test");
          await app.runtime.start();
          await tick(clock, exec, 5);
          // A fleet's worker starts a taken occurrence a moment later: all five have run first.
          await until(() => runsOf(app, "lost").length === 5 && runsOf(app, "lost").every((r) => r.status !== "running"));
          await app.runtime.runs.removeJob(job.id); // the history is lost behind the server's back
          await app.jobs.pause("lost");
          clock.advance(30_000);
          const report = app.queries.audit({ job: "lost" });
          expect(report.unaccounted).toBe(5);
          expect(report.jobs[0].unaccounted_at[0]).toBe("2026-03-02T09:00:00.000+00:00");
          expect(report.summary).toMatch(/^5 occurrences since .* have no record, in lost/);
          clock.advance(60_000); // the self-audit
          await until(() => notices.some((n) => /^Audit: 5 occurrences of lost have no record: 2026-03-02T09:00:00.000\+00:00/.test(n)));
          await vi.waitFor(() => expect(receivers.at("/telegram/bot123:abc/sendMessage")).toHaveLength(1), { timeout: 30_000, interval: 20 });
          clock.advance(60_000); // said once
          await new Promise((r) => setTimeout(r, 50));
          expect(notices.filter((n) => n.startsWith("Audit:"))).toHaveLength(1);
          expect(receivers.at("/telegram/bot123:abc/sendMessage")).toHaveLength(1);
          expect(unaccountedOccurrences(app.queries)).toBe(5); // what /metrics reads
        } finally {
          delete process.env.TG_TOKEN;
          await receivers.close();
        }
      }, 60_000);

      it("counts a long outage's unrecorded occurrences as missed, not unaccounted", async () => {
        const first = await makeApp();
        await first.app.jobs.add({ name: "minutely", schedule: "* * * * *", prompt: "p" }, "test");
        await first.app.runtime.close(0);
        forget(first.app);
        const clock = new FakeClock("2026-03-02T11:00:30Z"); // two hours later
        const { app, exec } = await makeApp({ store: first.store, clock });
        await app.runtime.start();
        await until(() => exec.calls.length === 1);
        exec.finishAll();
        // The newest 20 missed get a record each (a fleet's workers write them a moment later), the older ones a span.
        await until(() => runsOf(app, "minutely").length === 21 && runsOf(app, "minutely").every((r) => r.status !== "running"));
        const report = app.queries.audit({ job: "minutely" });
        expect(report.unaccounted).toBe(0);
        expect(report.occurrences).toBe(121); // 09:00 to 11:00
        expect(report.counts).toMatchObject({ completed: 1, missed: 120 });
        expect(app.queries.resolveJob("minutely").missed_spans).toHaveLength(1);
      });
    });

    it("skips runs once the day's spend reaches daily_budget_usd, says why once, and runs again the next day", async () => {
      const { app, exec, clock } = await makeApp({ daily_budget_usd: 1 });
      const notices: string[] = [];
      app.runtime.events.on("notice", (_level, message) => notices.push(message));
      await app.jobs.add({ name: "spend", schedule: "@daily", prompt: "p", retries: 0 }, "test");
      for (let i = 0; i < 2; i++) {
        const run = await app.jobs.runNow("spend");
        await until(() => exec.calls.length === i + 1);
        exec.calls[i].settle({ usage: { input_tokens: 10, output_tokens: 5, cost_usd: 0.6 } });
        await app.queries.waitForRun(run.id);
      }
      const skipped = await app.jobs.runNow("spend");
      expect(skipped.status).toBe("skipped");
      expect(skipped.error).toMatch(/daily budget of \$1 is spent \(\$1\.20 today in UTC\); runs resume tomorrow/);
      await app.jobs.runNow("spend");
      expect(notices.filter((n) => /daily budget/.test(n))).toHaveLength(1);
      expect(exec.calls).toHaveLength(2);

      clock.jumpWall(24 * 3600_000);
      const tomorrow = await app.jobs.runNow("spend");
      expect(tomorrow.status).toBe("running");
      await until(() => exec.calls.length === 3);
    });
  });
}
