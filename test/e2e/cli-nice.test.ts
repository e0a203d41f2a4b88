/** The CLI beside systemctl list-timers and gh (SPEC §22): relative times, logs, a confirmed remove, booleans set false. */
import { spawn, spawnSync } from "node:child_process";
import { describe, it } from "vitest";
import { HttpServer } from "../helpers/http.js";
import { CLI, makeDataDir, removeDir, runCli, waitFor, type CliResult, type Structured } from "../helpers/server.js";

const json = (r: CliResult) => JSON.parse(r.stdout) as Structured;

function dataDir(onTestFinished: (fn: () => Promise<void>) => void) {
  const dir = makeDataDir();
  onTestFinished(() => removeDir(dir));
  return { dir, cli: (...args: string[]) => runCli([...args, "--data-dir", dir]) };
}

/** The built CLI in a pseudo-terminal (util-linux script), with `input` typed at it. */
function inTerminal(args: string[], input: string): { code: number | null; out: string } {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const r = spawnSync("script", ["-qec", command, "/dev/null"], { input, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: r.stdout };
}

describe.concurrent("the CLI, as people use it at a terminal", () => {
  it("list shows when the next and last runs are, relative to now, and a one-shot as once, not as the delay it was given", { timeout: 120_000 }, async ({
    expect,
    onTestFinished,
  }) => {
    const { cli } = dataDir(onTestFinished);
    expect((await cli("add", "--name", "later", "--schedule", "in 5h", "--prompt", "hi")).code).toBe(0);
    const before = (await cli("list")).stdout;
    expect(before).toMatch(/NAME\s+ID\s+STATE\s+SCHEDULE\s+NEXT\s+LAST RUN\s+PROMPT/);
    expect(before).toMatch(/later\s+\S{8}\s+active\s+once\s+in 5h\s+-\s+hi/);
    expect(before).not.toContain("in 5h  in 5h");
    expect((await cli("run", "later")).code).toBe(0);
    expect((await cli("list")).stdout).toMatch(/later\s+\S{8}\s+\S+\s+once\s+\S.*(just now|\ds ago) \(completed\)/);
    const shown = (await cli("show", "later")).stdout;
    expect(shown).toMatch(/schedule\s+once at \S+ \((in 5h|in 4h); given as "in 5h"\)/);
  });

  it("a one-shot past its time no longer says when it was due", { timeout: 120_000 }, async ({ expect, onTestFinished }) => {
    const { dir, cli } = dataDir(onTestFinished);
    const server = await HttpServer.start({ dataDir: dir });
    onTestFinished(() => server.cleanup());
    expect((await cli("add", "--name", "soon", "--schedule", "in 1s", "--prompt", "hi")).code).toBe(0);
    await waitFor(async () => json(await cli("show", "soon", "--json")).job.state === "completed", { what: "the one-shot to run" });
    const row = (await cli("list")).stdout.split("\n").find((l) => l.startsWith("soon"))!;
    expect(row).toMatch(/^soon\s+\S{8}\s+completed\s+once\s+-\s+(just now|\d+s ago) \(completed\)/);
    expect(row).not.toMatch(/in 1s|in \d/);
  });

  it("remove asks at a terminal (y removes, anything else keeps), refuses without --yes where nobody can answer, and --yes skips the question", {
    timeout: 120_000,
  }, async ({ expect, onTestFinished }) => {
    const { dir, cli } = dataDir(onTestFinished);
    for (const name of ["a", "b", "c"]) await cli("add", "--name", name, "--schedule", "@daily", "--prompt", "x");
    const piped = await cli("remove", "a");
    expect(piped.code).toBe(2);
    expect(piped.stderr).toMatch(
      /^agent-cron: agent-cron remove would delete job a \(\S{8}\) and its run history; add --yes to confirm \(no terminal here to ask\)\.\n$/,
    );

    const no = inTerminal(["remove", "a", "--data-dir", dir], "n\n");
    expect(no.out).toMatch(/Remove job a \(\S{8}\) and its run history\? \[y\/N\]/);
    expect(no.out).toContain("Not removed.");
    expect(no.code).toBe(1);
    const yes = inTerminal(["remove", "b", "--data-dir", dir], "y\n");
    expect(yes.code).toBe(0);
    expect(yes.out).toMatch(/Removed \S+/);
    expect((await cli("remove", "c", "--yes")).code).toBe(0);
    const left = json(await cli("list", "--json")).jobs.map((j: Structured) => j.name);
    expect(left).toEqual(["a"]);
  });

  it("booleans can be set false: --no-FLAG and --FLAG=false", { timeout: 120_000 }, async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    expect(json(await cli("add", "--name", "q", "--schedule", "@daily", "--prompt", "x", "--silent", "--no-prompt-context", "--json")).job).toMatchObject({
      silent: true,
      prompt_context: false,
    });
    expect(json(await cli("update", "q", "--no-silent", "--json")).job.silent).toBe(false);
    expect(json(await cli("update", "q", "--silent=true", "--prompt-context=true", "--json")).job).toMatchObject({ silent: true, prompt_context: true });
    expect(json(await cli("update", "q", "--silent=false", "--json")).job.silent).toBe(false);
    const twice = await cli("update", "q", "--silent", "--no-silent");
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/--silent is given twice/);
  });

  it("logs prints a run's output by job or run, and -f prints each later run of the job as it finishes", { timeout: 120_000 }, async ({
    expect,
    onTestFinished,
  }) => {
    const { dir, cli } = dataDir(onTestFinished);
    await cli("add", "--name", "talk", "--schedule", "@daily", "--prompt", "first answer");
    const run = json(await cli("run", "talk", "--json")).run;
    const byJob = await cli("logs", "talk");
    expect(byJob.code).toBe(0);
    expect(byJob.stdout).toMatch(new RegExp(`^== talk · run ${run.id.slice(0, 8)} · completed · \\S+\\nfirst answer\\n$`));
    expect((await cli("logs", run.id.slice(0, 8))).stdout).toContain("first answer");

    const server = await HttpServer.start({ dataDir: dir });
    onTestFinished(() => server.cleanup());
    const follow = spawn(process.execPath, [CLI, "logs", "talk", "-f", "--data-dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    follow.stdout.on("data", (c: Buffer) => (out += c));
    const exited = new Promise<number | null>((r) => follow.once("exit", (code) => r(code)));
    onTestFinished(() => void follow.kill("SIGKILL"));
    await waitFor(() => out.includes("first answer"), { what: "the last run's output" });
    await cli("update", "talk", "--prompt", "second answer");
    await cli("run", "talk");
    await waitFor(() => out.includes("second answer"), { what: "the next run's output", describe: () => out });
    follow.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});
