import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestServer, makeDataDir, removeDir, runCli, waitFor, type CliResult, type Structured } from "../helpers/server.js";

const json = (r: CliResult) => {
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout) as Structured;
};

/** A fresh data dir per test, so the tests run concurrently. */
function dataDir(onTestFinished: (fn: () => Promise<void>) => void): { dir: string; cli: (...args: string[]) => Promise<CliResult> } {
  const dir = makeDataDir();
  onTestFinished(() => removeDir(dir));
  return { dir, cli: (...args: string[]) => runCli([...args, "--data-dir", dir]) };
}

const AUDIT = ["add", "--schedule", "0 9 * * 1-5", "--prompt", "Audit the logs", "--name", "audit", "--retries", "0", "--timezone", "America/New_York"];

describe.concurrent("the job commands on a data dir no server is using", () => {
  it("add --json exits 0 and prints the job, created by cli, with its next runs; the same add again says it exists", async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const r = await cli(...AUDIT, "--json");
    expect(r.code).toBe(0);
    const out = json(r);
    expect(out.created).toBe(true);
    expect(out.job).toMatchObject({
      name: "audit",
      schedule: "0 9 * * 1-5",
      prompt: "Audit the logs",
      retries: 0,
      timezone: "America/New_York",
      created_by: "cli",
      state: "active",
    });
    expect(out.next_runs.length).toBeGreaterThan(0);
    expect(out.next_runs[0]).toMatch(/T09:00:00\.000-0[45]:00$/);
    expect(out.description).toMatch(/9:00|09:00/);

    const human = await cli(...AUDIT);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Exists:? audit/);
    expect(human.stdout).toContain(out.job.id.slice(0, 8));
    const again = json(await cli(...AUDIT, "--json"));
    expect(again.created).toBe(false);
    expect(again.job.id).toBe(out.job.id);
  });

  it("list prints a table, and --json the jobs, filtered by --state", async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const { job } = json(await cli(...AUDIT, "--json"));
    const table = await cli("list");
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/NAME\s+ID\s+STATE\s+SCHEDULE/);
    expect(lines.some((l) => /^audit\s+\S+\s+active\s+0 9 \* \* 1-5/.test(l))).toBe(true);
    const out = json(await cli("list", "--json"));
    expect(out.jobs.map((j: Structured) => j.id)).toEqual([job.id]);
    expect(json(await cli("list", "--state", "paused", "--json")).jobs).toEqual([]);
  });

  it("run waits for the run and exits 0 when it completed, 1 when it failed; runs, show and show-run print them", async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const { job } = json(await cli(...AUDIT, "--json"));
    json(await cli("add", "--schedule", "@daily", "--prompt", "x", "--name", "broken", "--executor", "fail", "--retries", "0", "--json"));

    const r = await cli("run", "audit", "--json");
    expect(r.code).toBe(0);
    const { run } = json(r);
    expect(run).toMatchObject({ status: "completed", trigger: "manual", job_id: job.id, response: "Audit the logs" });
    const failed = await cli("run", "broken");
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/status\s+failed/);
    expect(failed.stdout).toMatch(/fatal: the agent broke/);

    const table = await cli("runs", "audit");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/RUN\s+JOB\s+STATUS/);
    expect(table.stdout).toContain(run.id.slice(0, 8));
    expect(table.stdout).toMatch(/completed\s+manual/);
    expect(json(await cli("runs", "--status", "failed", "--json")).runs.map((x: Structured) => x.status)).toEqual(["failed"]);

    const human = await cli("show", "audit");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^name\s+audit$/m);
    expect(human.stdout).toMatch(/^state\s+active$/m);
    expect(human.stdout).toContain("Recent runs:");
    const view = json(await cli("show", job.id, "--json"));
    expect(view.recent_runs.map((x: Structured) => x.id)).toEqual([run.id]);
    const whole = json(await cli("show-run", run.id, "--json"));
    expect(whole.output).toBe("Audit the logs");
  });

  it("pause and resume change the job's state; remove deletes it with its runs unless --keep-runs", async ({ expect, onTestFinished }) => {
    const { cli, dir } = dataDir(onTestFinished);
    const { job } = json(await cli(...AUDIT, "--json"));
    json(await cli("add", "--schedule", "@daily", "--prompt", "y", "--name", "kept", "--json"));
    expect(json(await cli("pause", "audit", "--json")).job.state).toBe("paused");
    expect(json(await cli("list", "--state", "paused", "--json")).jobs.map((j: Structured) => j.name)).toEqual(["audit"]);
    const resumed = await cli("resume", "audit");
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/audit: active/);

    expect((await cli("run", "audit")).code).toBe(0);
    expect((await cli("run", "kept")).code).toBe(0);
    expect(json(await cli("remove", "audit", "--json", "--yes")).removed).toBe(job.id);
    expect(existsSync(path.join(dir, "runs", `${job.id}.json`))).toBe(false);
    const kept = await cli("remove", "kept", "--keep-runs", "-y");
    expect(kept.code).toBe(0);
    expect(kept.stdout).toMatch(/Removed/);
    expect(json(await cli("list", "--json")).jobs).toEqual([]);
    expect(json(await cli("runs", "--json")).runs.map((r: Structured) => r.response)).toEqual(["y"]);
  });
});

describe.concurrent("bad usage exits 2 with a one-line reason on stderr", () => {
  const cases: [string, string[], RegExp][] = [
    ["an unknown command", ["frobnicate"], /Unknown command "frobnicate"/],
    ["an unknown flag", ["list", "--bogus"], /bogus/],
    ["add without --prompt", ["add", "--schedule", "@daily"], /--schedule and --prompt/],
    ["add with a bad schedule", ["add", "--schedule", "60 * * * *", "--prompt", "x"], /minute must be 0-59, got 60/],
    ["add with a non-number where a number goes", ["add", "--schedule", "@daily", "--prompt", "x", "--retries", "lots"], /--retries must be a number/],
    ["add with an unknown executor", ["add", "--schedule", "@daily", "--prompt", "x", "--executor", "nope"], /Unknown executor "nope"/],
    ["pause without a job", ["pause"], /needs a job id or name/],
    ["show of an unknown job", ["show", "nope"], /No job with id or name "nope"/],
    ["runs with an unknown status", ["runs", "--status", "weird"], /--status must be one of/],
    ["two positionals", ["pause", "a", "b"], /Unexpected argument "b"/],
  ];

  it.for(cases)("%s", async ([, args, reason], { expect, onTestFinished }) => {
    const { cli, dir } = dataDir(onTestFinished);
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(/^agent-cron: /);
    // Nothing stored: no journal entry past the header naming the journal, no snapshot with jobs.
    const journal = path.join(dir, "jobs.journal");
    if (existsSync(journal))
      expect(
        readFileSync(journal, "utf8")
          .split("\n")
          .filter((l) => l && !l.startsWith('{"journal":')),
      ).toEqual([]);
    const snapshot = path.join(dir, "jobs.json");
    if (existsSync(snapshot)) expect(JSON.parse(readFileSync(snapshot, "utf8")).jobs).toEqual([]);
  });

  it("no command at all exits 2 with a one-line reason that points to --help", async ({ expect }) => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/No command given; run agent-cron --help/);
  });
});

describe("several job commands at once on one data dir", () => {
  it("each of six concurrent adds succeeds and all six jobs are stored", async ({ onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => cli("add", "--schedule", "@daily", "--prompt", `p${i}`, "--name", `job-${i}`, "--json")));
    // A command must not fail because another one finished first (its change may even have been applied).
    expect(results.map((r) => [r.code, r.stderr.split("\n")[0]])).toEqual(results.map(() => [0, ""]));
    const listed = JSON.parse((await cli("list", "--json")).stdout).jobs as Structured[];
    expect(listed.map((j) => j.name).sort()).toEqual(["job-1", "job-2", "job-3", "job-4", "job-5", "job-6"]);
  });
});

describe("the job commands while a stdio server is using the data dir", () => {
  let s: TestServer;
  const cli = (...args: string[]) => runCli([...args, "--data-dir", s.dataDir]);

  beforeAll(async () => {
    s = await TestServer.start();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("add goes through the server: its tools see the job at once and its clients hear list_changed", async () => {
    const before = s.notificationsOf("notifications/resources/list_changed").length;
    const r = await cli("add", "--schedule", "0 0 1 1 *", "--prompt", "from the terminal", "--name", "from-cli", "--json");
    expect(r.code).toBe(0);
    const { job } = JSON.parse(r.stdout);
    expect(job.created_by).toBe("cli");
    const { jobs } = await s.tool("list_crons");
    expect(jobs.map((j: Structured) => j.id)).toEqual([job.id]);
    await waitFor(() => s.notificationsOf("notifications/resources/list_changed").length > before, { what: "list_changed after the CLI's add" });
  });

  it("pause from the terminal pauses the server's job; run runs it in the server", async () => {
    const paused = await cli("pause", "from-cli", "--json");
    expect(paused.code).toBe(0);
    expect((await s.job("from-cli")).state).toBe("paused");
    const r = await cli("run", "from-cli", "--json");
    expect(r.code).toBe(0);
    const { run } = JSON.parse(r.stdout);
    expect(run.status).toBe("completed");
    expect(run.pid).toBe(s.pid);
    const runs = await s.runs("from-cli");
    expect(runs.map((x) => x.id)).toEqual([run.id]);
  });

  it("a job added through MCP is listed by the CLI with the same data", async () => {
    await s.tool("add_cron", { name: "from-mcp", schedule: "@daily", prompt: "y" });
    const r = await cli("list", "--json");
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout).jobs as Structured[];
    // list_crons leaves out fields at their default unless `fields` asks for them; the CLI's
    // JSON gives every field.
    const every = ["name", "description", "timezone", "state", "next_run_at", "last_run_at", "last_status"];
    const fromServer = (await s.tool("list_crons", { fields: every })).jobs as Structured[];
    expect(listed).toEqual(fromServer);
  });
});
