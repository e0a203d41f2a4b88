import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { killOrphanedRuns, killOrphanedRunsSoon } from "../../src/executors/orphans.js";
import { fixture, isAlive, waitFor } from "./helpers.js";

/** An agent of run `runId` in a process group of its own, as an executor starts one. */
const start = (runId: string) =>
  spawn(process.execPath, [fixture("sleep-agent.mjs"), "30000"], {
    detached: true,
    stdio: "ignore",
    env: { PATH: process.env.PATH, AGENT_CRON_RUN_ID: runId },
  });

describe("killOrphanedRuns", () => {
  it("kills the agents of the named runs, found by AGENT_CRON_RUN_ID, and leaves others alone", async () => {
    const orphan = start("run-orphaned");
    const other = start("run-still-owned");
    try {
      await waitFor(() => isAlive(orphan.pid!) && isAlive(other.pid!));
      expect(killOrphanedRuns(["run-orphaned"])).toBe(1);
      expect(await waitFor(() => !isAlive(orphan.pid!))).toBe(true);
      expect(isAlive(other.pid!)).toBe(true);
    } finally {
      orphan.kill("SIGKILL");
      other.kill("SIGKILL");
    }
  });

  it("kills the agents of every run that ended in one stretch, from one call after it, and leaves others alone", async () => {
    const a = start("run-ended-a");
    const b = start("run-ended-b");
    const other = start("run-going-on");
    try {
      await waitFor(() => isAlive(a.pid!) && isAlive(b.pid!) && isAlive(other.pid!));
      killOrphanedRunsSoon("run-ended-a");
      killOrphanedRunsSoon("run-ended-b");
      expect(await waitFor(() => !isAlive(a.pid!) && !isAlive(b.pid!))).toBe(true);
      expect(isAlive(other.pid!)).toBe(true);
    } finally {
      for (const c of [a, b, other]) c.kill("SIGKILL");
    }
  });
});
