import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { openMemoryBackend } from "../../src/backends/memory/index.js";
import { composeApp } from "../../src/compose.js";
import { parseConfig } from "../../src/config.js";
import type { App } from "../../src/core/app.js";
import { systemClock } from "../../src/core/scheduler.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** An App in memory whose executor "sleeper" starts a real shell that writes its pid and waits. */
async function sleeperApp(): Promise<{ app: App; pidFile: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-close-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, "pid");
  const config = parseConfig({
    timezone: "UTC",
    default_executor: "sleeper",
    executors: { sleeper: { type: "command", command: ["sh", "-c", `echo $$ > ${pidFile}; exec sleep 30`], sandbox: "none" } },
  });
  const backend = openMemoryBackend({ runsPerJob: 10, clock: systemClock });
  const app = await composeApp({ ...backend, exclusive: true }, { dataDir: path.join(dir, "data"), config, workRoot: path.join(dir, "work") });
  cleanup.push(() => app.runtime.close(0));
  return { app, pidFile };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("two Apps in one process", () => {
  it("closing one kills its own agents and leaves the other's running", async () => {
    const a = await sleeperApp();
    const b = await sleeperApp();
    for (const { app } of [a, b]) {
      await app.jobs.add({ name: "sleep", schedule: "@daily", prompt: "p", retries: 0 }, "test");
      await app.jobs.runNow("sleep");
    }
    const pidOf = (f: string) => Number(readFileSync(f, "utf8"));
    await vi.waitFor(() => expect(pidOf(a.pidFile) > 0 && pidOf(b.pidFile) > 0).toBe(true), { timeout: 5000 });
    const [pa, pb] = [pidOf(a.pidFile), pidOf(b.pidFile)];
    await a.app.runtime.close(0);
    await vi.waitFor(() => expect(alive(pa)).toBe(false), { timeout: 5000 });
    expect(alive(pb)).toBe(true);
    expect(b.app.queries.listRuns({ job: "sleep" }).items[0].status).toBe("running");
  });
});
