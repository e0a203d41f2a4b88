import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it, type ExpectStatic } from "vitest";
import { TestServer, baseConfig, isAlive, makeDataDir, pidsWorkingIn, removeDir, sleep, startRaw, waitFor, type Structured } from "../helpers/server.js";

const YEARLY = "0 0 1 1 *";

describe.concurrent("restarts on the same data dir", () => {
  it("keeps jobs and run history across a restart, and goes on scheduling", async ({ expect, onTestFinished }) => {
    const a = await TestServer.start();
    onTestFinished(() => removeDir(a.dataDir));
    await a.tool("add_cron", { name: "keeper", schedule: "@every 1s", prompt: "kept" });
    await a.tool("add_cron", { name: "sleeper", schedule: YEARLY, prompt: "z", enabled: false, retries: 7 });
    const before = await a.waitForRuns(
      "keeper",
      (runs) => runs.filter((r) => r.status === "completed").length >= 2 && runs.filter((r) => r.status === "completed"),
    );
    // Every row field, even those at their default (list_crons leaves them out otherwise).
    const every = { fields: ["name", "description", "timezone", "state", "next_run_at", "last_run_at", "last_status"] };
    const jobsBefore = (await a.tool("list_crons", every)).jobs as Structured[];
    await a.close();

    const b = await TestServer.start({ dataDir: a.dataDir });
    onTestFinished(() => b.close());
    const jobsAfter = (await b.tool("list_crons", every)).jobs as Structured[];
    expect(jobsAfter.map((j) => j.id)).toEqual(jobsBefore.map((j) => j.id));
    const sleeper = jobsAfter.find((j) => j.name === "sleeper")!;
    expect(sleeper).toMatchObject({ state: "paused", prompt: "z" });
    expect(await b.job("sleeper")).toMatchObject({ state: "paused", enabled: false, retries: 7, prompt: "z", created_by: "e2e-client/1.0.0" });
    const keeperBefore = jobsBefore.find((j) => j.name === "keeper")!;
    const keeperAfter = jobsAfter.find((j) => j.name === "keeper")!;
    for (const k of ["id", "schedule", "prompt", "timezone", "description", "state"]) expect(keeperAfter[k]).toEqual(keeperBefore[k]);

    const runsAfter = await b.runs("keeper");
    for (const run of before) {
      const again = runsAfter.find((r) => r.id === run.id);
      expect(again).toEqual(run);
    }
    expect((await b.read(`cron://runs/${before[0].id}`)).output).toBe("kept");
    // The new server schedules the job too.
    await b.waitForRuns("keeper", (runs) => runs.some((r) => r.status === "completed" && !before.some((o) => o.id === r.id) && r.pid === b.pid));
  });

  it("after kill -9 mid-run, a restart records that run interrupted and never runs its occurrence again", async ({ expect, onTestFinished }) => {
    const a = await TestServer.start();
    onTestFinished(() => removeDir(a.dataDir));
    await a.addJob({ name: "long-once", schedule: "in 1s", prompt: "30000", executor: "sleep", retries: 3 });
    await a.addJob({ name: "long-every", schedule: "@every 2s", prompt: "30000", executor: "sleep", retries: 3 });
    const [running] = await a.waitForRuns("long-once", (runs) => runs[0]?.status === "running" && runs);
    const [runningToo] = await a.waitForRuns("long-every", (runs) => runs[0]?.status === "running" && runs);
    const workDirs: string[] = [running, runningToo].map((r) => r.work_dir);
    const agents = await waitFor(
      () => {
        const pids = workDirs.map((d) => pidsWorkingIn(d));
        return pids.every((p) => p.length > 0) && pids.flat();
      },
      { what: "both agents to start" },
    );
    // Whatever happens, no agent outlives the test.
    onTestFinished(() => agents.forEach((pid) => isAlive(pid) && process.kill(pid, "SIGKILL")));
    process.kill(a.pid, "SIGKILL");
    await waitFor(() => a.transport.pid === null, { timeout: 5000, what: "the killed server to be reaped" });
    await a.close();

    const b = await TestServer.start({ dataDir: a.dataDir });
    onTestFinished(() => b.close());
    // Already true at the first answer.
    const [once] = await b.runs("long-once");
    expect(once.id).toBe(running.id);
    expect(once.status).toBe("interrupted");
    expect(once.error).toMatch(/server stopped/);
    expect(once.finished_at).toEqual(expect.any(String));
    const everyRuns = await b.runs("long-every");
    const interrupted = everyRuns.find((r) => r.id === runningToo.id)!;
    expect(interrupted.status).toBe("interrupted");
    const oneShotJob = await b.job("long-once");
    expect(oneShotJob.state).toBe("completed");
    expect(oneShotJob.last_status).toBe("interrupted");

    // Give retries (1 s) and catch-up time to misbehave.
    await sleep(2500);
    const onceLater = await b.runs("long-once");
    expect(onceLater.map((r) => [r.id, r.status])).toEqual([[running.id, "interrupted"]]);
    const everyLater = await b.runs("long-every");
    const sameOccurrence = everyLater.filter((r) => r.scheduled_for === runningToo.scheduled_for);
    expect(sameOccurrence.map((r) => r.id)).toEqual([runningToo.id]);
    expect(everyLater.find((r) => r.id === runningToo.id)!.status).toBe("interrupted");
    // The orphaned agents of the interrupted runs were stopped by the new owner.
    expect(agents.filter(isAlive)).toEqual([]);
  });
});

describe.concurrent("start-up refuses bad files, naming them and leaving them untouched", () => {
  const refuses = async (expect: ExpectStatic, dir: string, file: string, expectText?: RegExp) => {
    const bytes = readFileSync(file);
    const result = await startRaw(dir);
    expect(result.ready).toBe(false);
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(file);
    if (expectText) expect(result.stderr).toMatch(expectText);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    return result;
  };

  it("a jobs.json that does not parse stops start-up and is left byte-identical", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir();
    onTestFinished(() => removeDir(dir));
    const file = path.join(dir, "jobs.json");
    writeFileSync(file, '{"version":1,"jobs":[\n{"id":"d4c1a9a6-1111-4222-8333-444455556666","name":"half');
    await refuses(expect, dir, file, /not valid JSON/);
  });

  it("a runs/<job_id>.json that does not parse stops start-up and is left byte-identical", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir();
    onTestFinished(() => removeDir(dir));
    mkdirSync(path.join(dir, "runs"));
    const file = path.join(dir, "runs", "d4c1a9a6-1111-4222-8333-444455556666.json");
    writeFileSync(file, '{"runs":[{"id": oops}]}\n');
    await refuses(expect, dir, file, /not valid JSON/);
  });

  it("a jobs.json holding a job of the wrong shape stops start-up, naming the file", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir();
    onTestFinished(() => removeDir(dir));
    const file = path.join(dir, "jobs.json");
    writeFileSync(file, JSON.stringify({ version: 1, jobs: [{ id: "x", schedule: 5 }] }));
    await refuses(expect, dir, file, /invalid job/);
  });

  it("a jobs.journal with a line that does not parse stops start-up, naming the file", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir();
    onTestFinished(() => removeDir(dir));
    const file = path.join(dir, "jobs.journal");
    writeFileSync(file, '{"del":"d4c1a9a6-1111-4222-8333-444455556666"}\n{"put": nope}\n{"del":"d4c1a9a6-1111-4222-8333-444455556667"}\n');
    await refuses(expect, dir, file);
  });

  it("an unknown config key stops start-up with exit 2, naming the key", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir({ noConfig: true });
    onTestFinished(() => removeDir(dir));
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...baseConfig(), max_concurent: 4 }));
    const result = await startRaw(dir);
    expect(result.ready).toBe(false);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("max_concurent");
    expect(result.stderr.trim().split("\n").length).toBe(1);
  });

  it("a bad config value stops start-up with exit 2, naming the key", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir({ config: { max_concurrent: 0 } });
    onTestFinished(() => removeDir(dir));
    const result = await startRaw(dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("max_concurrent");
  });

  it("a config.json that is not JSON stops start-up, naming the file", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir({ noConfig: true });
    onTestFinished(() => removeDir(dir));
    const file = path.join(dir, "config.json");
    writeFileSync(file, "{ timezone: Europe/Paris }");
    await refuses(expect, dir, file);
  });

  it("a data dir with valid files starts (the checks above are not false alarms)", async ({ expect, onTestFinished }) => {
    const dir = makeDataDir();
    onTestFinished(() => removeDir(dir));
    writeFileSync(path.join(dir, "jobs.json"), JSON.stringify({ version: 1, jobs: [] }));
    const result = await startRaw(dir);
    expect(result.ready).toBe(true);
  });
});
