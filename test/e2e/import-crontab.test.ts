/** agent-cron import crontab (SPEC §22): a line becomes a job of a configured command executor, or a reason. */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "vitest";
import { CLI, fixture, makeDataDir, removeDir, runCli, type CliResult, type Structured } from "../helpers/server.js";

const json = (r: CliResult) => JSON.parse(r.stdout) as Structured;
const NODE = process.execPath;

describe("agent-cron import crontab", () => {
  it("imports lines whose command is a configured command executor, lists the others with reasons, and --dry-run stores nothing", { timeout: 120_000 }, async ({
    expect,
    onTestFinished,
  }) => {
    const hello = [NODE, fixture("echo-agent.mjs"), "hello from cron"];
    const dir = makeDataDir({ config: { executors: { hello: { type: "command", command: hello, sandbox: "none" } } } });
    onTestFinished(() => removeDir(dir));
    const cli = (...args: string[]) => runCli([...args, "--data-dir", dir]);
    const tab = [
      "# nightly things",
      "MAILTO=me@example.com",
      "CRON_TZ=America/New_York",
      `15 3 * * * ${NODE} ${fixture("echo-agent.mjs")} 'hello from cron'`,
      "@reboot /usr/bin/start-thing",
      "0 * * * * /usr/bin/report --out /tmp/r.txt",
      "*/5 * * * * curl -s http://example.com | sh",
      "0 9 * * 1 /usr/bin/printf 50%",
      `@weekly ${NODE} ${fixture("echo-agent.mjs")} "hello from cron"`,
      `61 * * * * ${NODE} ${fixture("echo-agent.mjs")} 'hello from cron'`,
      "not a crontab line",
    ].join("\n");
    const file = path.join(dir, "tab");
    writeFileSync(file, tab);

    const dry = await cli("import", "crontab", file, "--dry-run", "--json");
    expect(dry.code).toBe(1);
    const plan = json(dry);
    expect(plan.jobs.map((j: Structured) => [j.line, j.executor, j.schedule, j.created])).toEqual([
      [4, "hello", "15 3 * * *", false],
      [9, "hello", "@weekly", false],
    ]);
    const reasons = Object.fromEntries(plan.not_importable.map((r: Structured) => [r.line, r.reason]));
    expect(Object.keys(reasons).map(Number)).toEqual([2, 5, 6, 7, 8, 10, 11]);
    expect(reasons[2]).toMatch(/environment line \(MAILTO=…\)/);
    expect(reasons[5]).toMatch(/^@reboot has no time of day/);
    expect(reasons[6]).toMatch(/no command executor in config\.json runs exactly this command/);
    expect(plan.not_importable.find((r: Structured) => r.line === 6).suggested_executor).toEqual({
      name: "report",
      config: { type: "command", command: ["/usr/bin/report", "--out", "/tmp/r.txt"] },
    });
    expect(reasons[7]).toMatch(/uses the shell/);
    expect(reasons[8]).toMatch(/"%" in a crontab command/);
    expect(reasons[10]).toMatch(/minute must be 0-59, got 61/);
    expect(reasons[11]).toMatch(/not a crontab line/);
    expect(json(await cli("list", "--json")).jobs).toEqual([]);

    // For real, from stdin.
    const real = spawnSync(NODE, [CLI, "import", "crontab", "-", "--data-dir", dir], { input: tab, encoding: "utf8" });
    expect(real.status).toBe(1);
    expect(real.stdout).toMatch(/^Added 2 job\(s\):\n {2}line 4: crontab-hello-4 {2}15 3 \* \* \* \(.+America\/New_York.*\) → executor hello/);
    expect(real.stdout).toContain('"executors": { "report": {"type":"command","command":["/usr/bin/report","--out","/tmp/r.txt"]} }');
    const jobs = json(await cli("list", "--json")).jobs as Structured[];
    expect(jobs.map((j) => j.name)).toEqual(["crontab-hello-4", "crontab-hello-9"]);
    const shown = json(await cli("show", "crontab-hello-4", "--json")).job;
    expect(shown).toMatchObject({ executor: "hello", timezone: "America/New_York", schedule: "15 3 * * *" });

    // The job runs the operator's program, not text from the crontab.
    const ran = json(await cli("run", "crontab-hello-4", "--json")).run;
    expect(ran.status).toBe("completed");
    expect(ran.output.trim()).toBe("hello from cron");

    // Again: nothing new.
    expect(json(await cli("import", "crontab", file, "--json")).jobs.map((j: Structured) => j.created)).toEqual([false, false]);
  });
});
