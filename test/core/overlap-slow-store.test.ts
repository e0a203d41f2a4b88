import os from "node:os";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { composeApp } from "../../src/compose.js";
import { openMemoryBackend } from "../../src/backends/memory/index.js";
import type { Run } from "../../src/core/jobs.js";
import type { PutOutcome } from "../../src/core/ports.js";
import { openTestApp, type TestBackend } from "../helpers/app.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * The memory backend behind a disk slow to sync: while `hold` is on, a finished run's record
 * is put in memory at once but acknowledged only when the test lets it (as a run log's line is
 * written at once and acknowledged after its fdatasync, which took over a second under a fleet).
 */
function slowSyncBackend() {
  const held: (() => void)[] = [];
  const state = { hold: false };
  const backend: TestBackend = {
    name: "memory, slow sync",
    async open({ config, clock, exec }) {
      const parts = openMemoryBackend({ runsPerJob: config.runs_per_job, clock });
      const put = parts.runs.put.bind(parts.runs);
      parts.runs.put = (run: Run): Promise<PutOutcome> => {
        const stored = put(run);
        if (!state.hold || run.status === "running") return stored;
        return stored.then((outcome) => new Promise<PutOutcome>((resolve) => held.push(() => resolve(outcome))));
      };
      const workRoot = mkdtempSync(path.join(os.tmpdir(), "agent-cron-work-"));
      dirs.push(workRoot);
      const app = await composeApp(
        { ...parts, exclusive: true },
        { dataDir: path.join(workRoot, "no-data-dir"), config, clock, executors: new Map([["fake", exec]]), workRoot },
      );
      return { app, store: parts.store, dir: "" };
    },
  };
  return { backend, state, release: () => held.splice(0).forEach((r) => r()) };
}

const until = (fn: () => boolean) => vi.waitFor(() => expect(fn()).toBe(true), { timeout: 5000, interval: 5 });

describe("overlap counts a run as going while its program runs, not while its record syncs", () => {
  for (const overlap of ["skip", "queue_one"] as const) {
    it(`an every-second job (overlap: ${overlap}, max_runs: 2) runs its next occurrence while the previous record still waits for the disk`, async () => {
      const slow = slowSyncBackend();
      const { app, clock, exec } = await openTestApp({ backend: slow.backend });
      await app.jobs.add({ name: "twice", schedule: "* * * * * *", prompt: "p", max_runs: 2, overlap }, "test");
      await app.runtime.start();
      const runs = () => app.queries.listRuns({ job: "twice", limit: 100 }).items;
      slow.state.hold = true;
      clock.advance(500); // 09:00:00
      await until(() => exec.calls.length === 1);
      exec.finishAll();
      // The program has ended; its record is put but not yet acknowledged.
      await until(() => runs().some((r) => r.status === "completed"));
      clock.advance(1000); // 09:00:01: the next occurrence
      await until(() => exec.calls.length === 2 || runs().some((r) => r.status === "skipped"));
      slow.state.hold = false;
      slow.release();
      exec.finishAll();
      await until(() => app.queries.resolveJob("twice").state === "completed");
      slow.release();
      const statuses = runs()
        .map((r) => r.status)
        .sort();
      expect(statuses).toEqual(["completed", "completed"]);
      expect(exec.calls).toHaveLength(2);
    });
  }
});

describe("a run whose ending pauses its job holds the next occurrence until that is written", () => {
  it("pause_after_failures: 2 on an every-second job: the occurrence taken while the second failure syncs is recorded skipped, not run", async () => {
    const slow = slowSyncBackend();
    const { app, clock, exec } = await openTestApp({ backend: slow.backend });
    await app.jobs.add({ name: "give-up", schedule: "* * * * * *", prompt: "p", retries: 0, pause_after_failures: 2, overlap: "allow" }, "test");
    await app.runtime.start();
    const runs = () => app.queries.listRuns({ job: "give-up", limit: 100 }).items;
    clock.advance(500); // 09:00:00
    await until(() => exec.calls.length === 1);
    exec.finishAll({ status: "failed", exitCode: 1, error: "broke" });
    await until(() => runs().some((r) => r.status === "failed"));
    slow.state.hold = true;
    clock.advance(1000); // 09:00:01: the second failure, its record held
    await until(() => exec.calls.length === 2);
    exec.finishAll({ status: "failed", exitCode: 1, error: "broke again" });
    await until(() => runs().filter((r) => r.status === "failed").length === 2);
    clock.advance(1000); // 09:00:02, taken while the pause is not yet written
    await new Promise((r) => setTimeout(r, 50));
    expect(exec.calls).toHaveLength(2);
    slow.state.hold = false;
    slow.release();
    await until(() => app.queries.resolveJob("give-up").state === "paused");
    await until(() => runs().length === 3);
    expect(exec.calls).toHaveLength(2);
    expect(app.queries.resolveJob("give-up").consecutive_failures).toBe(2);
    const third = runs().find((r) => r.scheduled_for === "2026-03-02T09:00:02.000+00:00");
    expect(third?.status).toBe("skipped");
  });
});
