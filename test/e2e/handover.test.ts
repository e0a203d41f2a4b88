/**
 * Hand-over on upgrade (SPEC §17), with two builds: this one, and a copy of it whose
 * package.json says an older version. The older build's background owner runs an
 * every-second job; the newer `agent-cron start` asks it to hand over; the old owner stops
 * taking occurrences, finishes its runs and exits; the new one takes the data dir. Counted
 * from a file the fixture agent appends to: no occurrence lost, none run twice.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, ROOT, TEST_ENV, fixture, isAlive, makeDataDir, removeDir, runsOnDisk, waitFor, workCacheOf } from "../helpers/server.js";
import { OwnerReaper, ownerOf } from "../helpers/owner.js";

const reaper = new OwnerReaper();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  await reaper.reap();
});

const NEW_VERSION = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version as string;
const OLD_VERSION = "0.0.1";

/** A copy of the built dist/ that says it is an older version (VERSION is read from ../package.json). */
function olderBuild(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), "agent-cron-old-build-"));
  cleanup.push(() => removeDir(root));
  cpSync(path.dirname(CLI), path.join(root, "dist"), { recursive: true });
  writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: "agent-cron", version: OLD_VERSION, type: "module" }));
  return path.join(root, "dist", "cli.js");
}

function cli(build: string, args: string[], dataDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [build, ...args, "--data-dir", dataDir],
      {
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? os.homedir(),
          ...TEST_ENV,
          XDG_CACHE_HOME: workCacheOf(dataDir),
          AGENT_CRON_ALWAYS_ON: "daemon",
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe("hand-over to a newer agent-cron", () => {
  it("the older background owner hands the data dir over: every occurrence of an every-second job runs exactly once across the two", async () => {
    const oldCli = olderBuild();
    const work = mkdtempSync(path.join(os.tmpdir(), "agent-cron-handover-"));
    cleanup.push(() => removeDir(work));
    const countFile = path.join(work, "executions.txt");
    const dir = makeDataDir({
      config: { executors: { append: { type: "command", command: [process.execPath, fixture("append-agent.mjs"), countFile], sandbox: "none" } } },
    });
    reaper.remember(dir);
    cleanup.push(() => removeDir(dir));
    const lines = () => (existsSync(countFile) ? readFileSync(countFile, "utf8").trim().split("\n").filter(Boolean) : []);

    // The older build's background owner, and the job, added through it.
    const started = await cli(oldCli, ["start"], dir);
    expect(started.code, started.stderr).toBe(0);
    const oldOwner = ownerOf(dir)!;
    expect(oldOwner).toMatchObject({ version: OLD_VERSION, started_as: "daemon" });
    reaper.rememberPid(oldOwner.pid);
    const add = await cli(
      oldCli,
      ["add", "--name", "tick", "--schedule", "* * * * * *", "--prompt", "tick", "--executor", "append", "--overlap", "allow", "--retries", "0", "--json"],
      dir,
    );
    expect(add.code, add.stderr).toBe(0);
    const jobId = JSON.parse(add.stdout).job.id as string;
    await waitFor(() => lines().length >= 3, { timeout: 20_000, what: "three runs by the old owner" });

    // The newer build asks for the data dir.
    const t0 = Date.now();
    const upgrade = await cli(CLI, ["start"], dir);
    const tookMs = Date.now() - t0;
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const newOwner = ownerOf(dir)!;
    reaper.rememberPid(newOwner.pid);
    expect(newOwner).toMatchObject({ version: NEW_VERSION, started_as: "daemon" });
    expect(newOwner.pid).not.toBe(oldOwner.pid);
    expect(isAlive(oldOwner.pid)).toBe(false);
    const atHandOver = lines().length;
    await waitFor(() => lines().length >= atHandOver + 4, { timeout: 20_000, what: "runs by the new owner" });

    const stop = await cli(CLI, ["stop"], dir);
    expect(stop.code, stop.stderr).toBe(0);

    // Executions, as the agent counted them: each occurrence once, none missing in between.
    const times = lines()
      .map((l) => l.split(" ")[0])
      .filter((t) => t !== "manual")
      .map((t) => Date.parse(t))
      .sort((a, b) => a - b);
    const dupes = times.filter((t, i) => i > 0 && t === times[i - 1]);
    const gaps = times.filter((t, i) => i > 0 && t - times[i - 1] !== 1000);
    // The records agree, and each says which owner ran it.
    const runs = runsOnDisk(dir, jobId);
    const byOld = runs.filter((r) => r.pid === oldOwner.pid);
    const byNew = runs.filter((r) => r.pid === newOwner.pid);
    const lastOld = Math.max(...byOld.map((r) => Date.parse(r.scheduled_for)));
    const firstNew = byNew.map((r) => r).sort((a, b) => Date.parse(a.scheduled_for) - Date.parse(b.scheduled_for))[0];
    console.log(
      `hand-over ${OLD_VERSION} (pid ${oldOwner.pid}) → ${NEW_VERSION} (pid ${newOwner.pid}): agent-cron start took ${tookMs} ms; ` +
        `${times.length} executions of an every-second job from ${new Date(times[0]).toISOString()} to ${new Date(times[times.length - 1]).toISOString()}, ` +
        `${dupes.length} run twice, ${gaps.length} gaps; ${byOld.length} runs by the old owner (last occurrence ${new Date(lastOld).toISOString()}), ${byNew.length} by the new ` +
        `(first occurrence ${firstNew?.scheduled_for}, started ${firstNew ? Date.parse(firstNew.started_at) - Date.parse(firstNew.scheduled_for) : "?"} ms after it was due); ` +
        `records: ${[...new Set(runs.map((r) => `${r.status}/${r.trigger}`))].join(", ")}`,
    );
    expect(
      dupes.map((t) => new Date(t).toISOString()),
      "occurrences run twice",
    ).toEqual([]);
    expect(
      gaps.map((t) => new Date(t).toISOString()),
      "occurrences lost",
    ).toEqual([]);
    expect(byOld.length).toBeGreaterThanOrEqual(3);
    expect(byNew.length).toBeGreaterThanOrEqual(4);
    expect(runs.filter((r) => r.status !== "completed").map((r) => `${r.scheduled_for} ${r.status} ${r.error}`)).toEqual([]);
    expect(runs.length).toBe(times.length);
    expect(Date.parse(firstNew.scheduled_for) - lastOld).toBe(1000);
  }, 120_000);
});
