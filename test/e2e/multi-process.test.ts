/**
 * Several processes on one data dir (SPEC §9): two stdio servers (two IDE windows) and the
 * CLI. One owns the data dir (owner.json names it) and schedules; the other forwards to it.
 * Each occurrence runs once; the follower sees and changes the same jobs; when the owner
 * dies (kill -9) the follower takes over within 10 s, when it exits within 2 s.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Run } from "../../src/core/jobs.js";
import { runsOnDisk } from "../helpers/server.js";
import { Server, fixtureExecutor, isAlive, makeDataDir, readOwner, removeDir, runCli, sleep, waitFor } from "../reliability/helpers.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

/** Owner first, then the follower, on a fresh data dir. */
async function pair(): Promise<{ dir: string; a: Server; b: Server }> {
  const dir = makeDataDir({ max_concurrent: 8, executors: { sleep: fixtureExecutor("sleep-agent.mjs", "{prompt}") } }, "agent-cron-multi-");
  cleanup.push(() => removeDir(dir));
  const a = await Server.start(dir, { name: "window-a" });
  cleanup.push(() => a.kill9());
  const b = await Server.start(dir, { name: "window-b" });
  cleanup.push(() => b.kill9());
  expect(readOwner(dir)?.pid).toBe(a.pid);
  return { dir, a, b };
}

/** Each occurrence has exactly one record, and none between the first and the last is missing. */
function expectEachOccurrenceOnce(runs: Run[], everyMs = 1000): void {
  const times = runs
    .filter((r) => r.scheduled_for !== null)
    .map((r) => Date.parse(r.scheduled_for!))
    .sort((x, y) => x - y);
  const dupes = times.filter((t, i) => i > 0 && t === times[i - 1]);
  expect(
    dupes.map((t) => new Date(t).toISOString()),
    "occurrences with more than one run",
  ).toEqual([]);
  const gaps = times.filter((t, i) => i > 0 && t - times[i - 1] !== everyMs).map((t) => new Date(t).toISOString());
  expect(gaps, "occurrences after a gap (an occurrence with no record at all)").toEqual([]);
}

const brief = (runs: Run[]) => runs.map((r) => `${r.scheduled_for?.slice(11, 23)} ${r.status} ${r.trigger} pid=${r.pid}`).join("\n");

describe("two stdio servers and the CLI on one data dir", () => {
  it("runs each occurrence of an every-second job exactly once across both, and both list and change the same jobs", async () => {
    const { dir, a, b } = await pair();
    // The follower adds the ticking job; the owner adds another.
    const tick = (await b.tool("add_cron", { name: "tick", schedule: "* * * * * *", prompt: "tick", retries: 0 })).job;
    const daily = (await a.tool("add_cron", { name: "daily", schedule: "@daily", prompt: "daily" })).job;
    expect((await a.jobs()).find((j) => j.name === "tick")!.created_by).toBe("window-b/1.0.0");

    // The ticking job's run fields move every second, so the two lists are compared without them.
    const steady = (jobs: Record<string, unknown>[]) => jobs.map(({ last_run_at, next_run_at, last_status, ...rest }) => rest);
    const listA = (await a.tool("list_crons")).jobs;
    const listB = (await b.tool("list_crons")).jobs;
    expect(steady(listB)).toEqual(steady(listA));
    expect(listB.find((j: { name: string }) => j.name === "daily")).toEqual(listA.find((j: { name: string }) => j.name === "daily"));
    expect(listA.map((j: { id: string }) => j.id)).toEqual([tick.id, daily.id]);
    expect((await b.tool("get_cron", { job: "daily" })).job.id).toBe(daily.id);

    await waitFor(async () => (await a.runs("tick")).filter((r) => r.status === "completed").length >= 4, { timeout: 15_000, what: "4 completed runs" });
    await sleep(300);
    const [fromA, fromB] = [await a.runs("tick"), await b.runs("tick")];
    // The job ticks on while the two lists are read (each read is a list and a get_run per run,
    // seconds on a loaded machine): B's, read later, may also hold runs of occurrences after A's
    // newest. Up to that one, the two are the same runs.
    const newestA = Math.max(...fromA.map((r) => Date.parse(r.scheduled_for!)));
    expect(
      fromB.filter((r) => Date.parse(r.scheduled_for!) <= newestA).map((r) => r.id),
      brief(fromB),
    ).toEqual(fromA.map((r) => r.id));
    const disk = runsOnDisk(dir, tick.id) as unknown as Run[];
    expect(disk.length).toBeGreaterThanOrEqual(4);
    // Every run was made by the owner, once per occurrence.
    expect(new Set(disk.map((r) => r.pid))).toEqual(new Set([a.pid]));
    expect(
      disk.filter((r) => r.status !== "running").every((r) => r.status === "completed" && r.trigger === "schedule"),
      brief(disk),
    ).toBe(true);
    expectEachOccurrenceOnce(disk);

    // A change made through one is seen by the other at once.
    await b.tool("pause", { job: "daily" });
    expect((await a.tool("get_cron", { job: "daily" })).job.state).toBe("paused");
    await a.tool("update_cron", { job: "daily", prompt: "changed by a" });
    expect((await b.tool("get_cron", { job: "daily" })).job.prompt).toBe("changed by a");
    await b.tool("remove", { job: "daily" });
    expect((await a.tool("list_crons")).jobs.map((j: { name: string }) => j.name)).toEqual(["tick"]);
  }, 40_000);

  it("takes over within 10 s when the owner is killed (kill -9): new runs by the follower, the interrupted and missed occurrences recorded, none run twice", async () => {
    const { dir, a, b } = await pair();
    const tick = (await a.tool("add_cron", { name: "tick", schedule: "* * * * * *", prompt: "500", executor: "sleep", retries: 0, overlap: "allow" })).job;
    await waitFor(async () => (await b.runs("tick")).some((r) => r.status === "running"), { timeout: 10_000, what: "a run in flight" });

    const owner = readOwner(dir)!;
    expect(owner.pid).toBe(a.pid);
    const killedAt = Date.now();
    process.kill(owner.pid, "SIGKILL");
    await a.whenExited();

    // The follower becomes the owner and schedules again.
    const newOwner = await waitFor(() => readOwner(dir)?.pid === b.pid && Date.now(), { timeout: 12_000, what: "the follower to own the data dir" });
    const firstRun = await waitFor(async () => (await b.runs("tick")).find((r) => r.pid === b.pid && r.status !== "missed") && Date.now(), {
      timeout: 12_000,
      what: "a run by the follower",
    });
    const tookOver = newOwner - killedAt;
    console.log(`multi-process: kill -9 → follower owns the data dir in ${tookOver} ms, first run by it after ${firstRun - killedAt} ms`);
    expect(tookOver).toBeLessThan(10_000);
    expect(firstRun - killedAt).toBeLessThan(10_000);
    expect(isAlive(b.pid)).toBe(true);

    await waitFor(async () => (await b.runs("tick")).filter((r) => r.pid === b.pid && r.status === "completed" && r.trigger === "schedule").length >= 2, {
      timeout: 10_000,
      what: "scheduled runs by the follower",
    });
    const runs = await b.runs("tick");
    const byA = runs.filter((r) => r.pid === a.pid);
    // What the dead owner had in flight is recorded interrupted, not left running or run again.
    expect(
      byA.some((r) => r.status === "interrupted"),
      brief(runs),
    ).toBe(true);
    expect(runs.some((r) => r.status === "running" && r.pid === a.pid)).toBe(false);
    // The occurrences nobody ran while the lock went stale: the newest caught up, the rest missed.
    const caughtUp = runs.filter((r) => r.trigger === "catch_up");
    expect(caughtUp.filter((r) => r.status === "missed").length, brief(runs)).toBeGreaterThanOrEqual(2);
    expect(caughtUp.filter((r) => r.status !== "missed").length, brief(runs)).toBe(1);
    expectEachOccurrenceOnce(runsOnDisk(dir, tick.id) as unknown as Run[]);
    // Tools still answer, now from the new owner.
    expect((await b.tool("list_crons")).jobs.map((j: { id: string }) => j.id)).toEqual([tick.id]);
  }, 60_000);

  it("takes over within 2 s when the owner exits (its client closes)", async () => {
    const { dir, a, b } = await pair();
    const tick = (await b.tool("add_cron", { name: "tick", schedule: "* * * * * *", prompt: "tick", retries: 0 })).job;
    await waitFor(async () => (await b.runs("tick")).some((r) => r.status === "completed"), { timeout: 10_000, what: "a first run" });

    const t0 = Date.now();
    const closing = a.close();
    const owned = await waitFor(() => readOwner(dir)?.pid === b.pid && Date.now(), { timeout: 5000, interval: 20, what: "the follower to own the data dir" });
    await closing;
    console.log(`multi-process: owner exit → follower owns the data dir in ${owned - t0} ms`);
    expect(owned - t0).toBeLessThan(2000);

    await waitFor(async () => (await b.runs("tick")).some((r) => r.pid === b.pid && r.status === "completed"), {
      timeout: 5000,
      what: "a run by the new owner",
    });
    expectEachOccurrenceOnce(runsOnDisk(dir, tick.id) as unknown as Run[]);
    expect((await b.tool("get_cron", { job: "tick" })).job.id).toBe(tick.id);
  }, 40_000);

  it("lets the CLI add, list and remove jobs while the servers run; the servers list the job and run it at once", async () => {
    const { dir, a, b } = await pair();
    const added = await runCli([
      "add",
      "--schedule",
      "* * * * * *",
      "--prompt",
      "from the cli",
      "--name",
      "cli-job",
      "--retries",
      "0",
      "--data-dir",
      dir,
      "--json",
    ]);
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    const job = JSON.parse(added.stdout).job;
    expect(job).toMatchObject({ name: "cli-job", created_by: "cli", prompt: "from the cli" });
    console.log(`multi-process: CLI add beside two servers took ${added.ms} ms`);

    // At once, through both servers: no restart, no polling of files.
    expect((await a.tool("list_crons")).jobs.map((j: { id: string }) => j.id)).toEqual([job.id]);
    expect((await b.tool("list_crons")).jobs.map((j: { id: string }) => j.id)).toEqual([job.id]);
    // And the owner schedules it at once.
    await waitFor(async () => (await b.runs("cli-job")).some((r) => r.status === "completed" && r.pid === a.pid), {
      timeout: 5000,
      what: "a run of the CLI's job",
    });

    const listed = await runCli(["list", "--data-dir", dir, "--json"]);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).jobs.map((j: { id: string }) => j.id)).toEqual([job.id]);
    const removed = await runCli(["remove", "cli-job", "--data-dir", dir, "--yes"]);
    expect(removed.code).toBe(0);
    expect((await b.tool("list_crons")).jobs).toEqual([]);
    expect(isAlive(a.pid) && isAlive(b.pid)).toBe(true);
  }, 40_000);

  it("sends resource updates, list changes and run log messages to the follower's client when the owner runs a job", async () => {
    const { b } = await pair();
    const job = (await b.tool("add_cron", { name: "tick", schedule: "@every 1s", prompt: "tick", retries: 0 })).job;
    await b.client.subscribeResource({ uri: `cron://jobs/${job.id}` });
    const since = Date.now();
    await waitFor(
      () => b.notifications.some((n) => n.at >= since && n.method === "notifications/resources/updated" && n.params.uri === `cron://jobs/${job.id}`),
      { timeout: 8000, what: "resources/updated for the job" },
    );
    await waitFor(() => b.notifications.some((n) => n.at >= since && n.method === "notifications/resources/list_changed"), {
      timeout: 8000,
      what: "resources/list_changed",
    });
    await waitFor(
      () =>
        b.notifications.some(
          (n) => n.at >= since && n.method === "notifications/message" && n.params.data?.event === "run.finished" && n.params.data?.job_id === job.id,
        ),
      { timeout: 8000, what: "a run.finished log message" },
    );
    // The run it announced is one the owner made and the follower can read.
    const finished = b.notifications.find((n) => n.method === "notifications/message" && n.params.data?.event === "run.finished")!;
    const run = await b.read(`cron://runs/${finished.params.data.run_id}`);
    expect(run.output).toMatch(/^tick\s*$/);
  }, 40_000);
});
