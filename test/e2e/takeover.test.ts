/**
 * A follower whose takeover fails once (issue 20): the data dir could not be opened at that
 * moment (here: jobs.json did not parse). It must try again rather than stay without an owner
 * until restarted, with every call waiting 60 s and then failing.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Server, expireLock, makeDataDir, readOwner, removeDir, waitFor } from "../reliability/helpers.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

describe("a follower whose takeover failed", () => {
  it("takes the data dir over once it can be opened again, and answers calls without a restart", async () => {
    const dir = makeDataDir({}, "agent-cron-takeover-");
    cleanup.push(() => removeDir(dir));
    const a = await Server.start(dir, { name: "window-a" });
    cleanup.push(() => a.kill9());
    const b = await Server.start(dir, { name: "window-b" });
    cleanup.push(() => b.kill9());
    await b.tool("add_cron", { name: "daily", schedule: "@daily", prompt: "p" });
    expect(readOwner(dir)?.pid).toBe(a.pid);

    const jobsFile = path.join(dir, "jobs.json");
    const saved = existsSync(jobsFile) ? readFileSync(jobsFile, "utf8") : null;
    process.kill(a.pid, "SIGKILL");
    await a.whenExited();
    // The follower's takeover meets a data file that does not parse.
    writeFileSync(jobsFile, "{ not json");
    expireLock(dir);
    await waitFor(() => /jobs\.json/.test(b.stderr()), { timeout: 15_000, what: "the follower to report the failed takeover", describe: () => b.stderr() });

    // The file is mended (a person fixed it); no restart.
    if (saved === null) rmSync(jobsFile);
    else writeFileSync(jobsFile, saved);
    const t0 = Date.now();
    const list = await b.tool("list_crons");
    expect(list.jobs.map((j: { name: string }) => j.name)).toEqual(["daily"]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await waitFor(() => readOwner(dir)?.pid === b.pid, { timeout: 10_000, what: "the follower to own the data dir" });
  }, 60_000);
});
