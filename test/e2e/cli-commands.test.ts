/** The CLI as a newcomer types it: update, short ids, flags anywhere, help, mcp-config, escapes. */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { describe, it } from "vitest";
import { ROOT, makeDataDir, removeDir, runCli, type CliResult, type Structured } from "../helpers/server.js";

const json = (r: CliResult) => JSON.parse(r.stdout) as Structured;

function dataDir(onTestFinished: (fn: () => Promise<void>) => void) {
  const dir = makeDataDir();
  onTestFinished(() => removeDir(dir));
  return { dir, cli: (...args: string[]) => runCli([...args, "--data-dir", dir]) };
}

describe.concurrent("CLI commands", () => {
  it("update changes the given fields of a job found by the short id list prints; --clear resets one", async ({ expect, onTestFinished }) => {
    const { dir, cli } = dataDir(onTestFinished);
    const { job } = json(await cli("add", "--name", "audit", "--schedule", "@daily", "--prompt", "old", "--max-runs", "5", "--json"));
    const short = job.id.slice(0, 8);
    expect((await cli("list")).stdout).toContain(short);

    const r = await cli("update", short, "--prompt", "new prompt", "--schedule", "0 7 * * *", "--retries", "1", "--clear", "max_runs");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Updated audit \(/);
    const shown = json(await runCli(["--data-dir", dir, "--json", "show", short]));
    expect(shown.job).toMatchObject({ id: job.id, prompt: "new prompt", schedule: "0 7 * * *", retries: 1, max_runs: null });

    const none = await cli("update", "audit");
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/needs at least one field to change/);
    const bad = await cli("update", "audit", "--retries", "99");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/retries must be at most 10/);
    const contradiction = await cli("update", "audit", "--clear", "prompt", "--prompt", "x");
    expect(contradiction.code).toBe(2);
    // Nothing changed by the refused calls.
    expect(json(await cli("show", "audit", "--json")).job.retries).toBe(1);
  });

  it("pause, resume, runs and show-run take short ids too; a too-short or unknown one is a clear error", async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const { job } = json(await cli("add", "--name", "short", "--schedule", "@daily", "--prompt", "hi", "--json"));
    expect((await cli("pause", job.id.slice(0, 8))).stdout).toMatch(/short: paused/);
    expect((await cli("resume", job.id.slice(0, 10))).stdout).toMatch(/short: active/);
    const { run } = json(await cli("run", "short", "--json"));
    const table = await cli("runs", job.id.slice(0, 8));
    expect(table.stdout).toContain(run.id.slice(0, 8));
    expect((await cli("show-run", run.id.slice(0, 8))).stdout).toContain(`run ${run.id}`);
    const tooShort = await cli("show", job.id.slice(0, 5));
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toMatch(/No job with id or name/);
  });

  it("takes the common flags before or after the command", async ({ expect, onTestFinished }) => {
    const { dir } = dataDir(onTestFinished);
    await runCli(["--data-dir", dir, "add", "--schedule", "@daily", "--prompt", "p", "--name", "anywhere"]);
    const before = await runCli(["--json", "--data-dir", dir, "list"]);
    const after = await runCli(["list", "--data-dir", dir, "--json"]);
    const eq = await runCli([`--data-dir=${dir}`, "list", "--json"]);
    expect(before.code).toBe(0);
    expect(json(before).jobs.map((j: Structured) => j.name)).toEqual(["anywhere"]);
    expect(json(after)).toEqual(json(before));
    expect(json(eq)).toEqual(json(before));
  });

  it("help COMMAND and COMMAND --help print that command's help; --version the package's", async ({ expect }) => {
    const a = await runCli(["help", "update"]);
    const b = await runCli(["update", "--help"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^agent-cron update JOB/);
    expect(b.stdout).toBe(a.stdout);
    expect((await runCli(["add", "-h"])).stdout).toMatch(/--schedule S --prompt P/);
    const unknown = await runCli(["help", "nope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/No command "nope"/);
    const version = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
    expect((await runCli(["--version"])).stdout.trim()).toBe(version);
  });

  it("mcp-config prints an entry with absolute paths that a client can launch from any folder", async ({ expect, onTestFinished }) => {
    const { dir } = dataDir(onTestFinished);
    const r = await runCli(["mcp-config", "--data-dir", dir]);
    expect(r.code).toBe(0);
    const entry = json(r).mcpServers["agent-cron"];
    expect(path.isAbsolute(entry.command)).toBe(true);
    expect(entry.args[0]).toBe(path.join(ROOT, process.env.AGENT_CRON_DIST || "dist", "cli.js"));
    expect(entry.args.slice(1)).toEqual(["serve", "--data-dir", dir]);
    const client = new Client({ name: "mcp-config-test", version: "1" });
    await client.connect(new StdioClientTransport({ command: entry.command, args: entry.args, cwd: "/", stderr: "ignore" }));
    expect((await client.listTools()).tools.some((t) => t.name === "add_cron")).toBe(true);
    await client.close();
    expect((await runCli(["mcp-config", "--claude-code"])).stdout).toMatch(/^claude mcp add agent-cron -- \/.+ serve\n$/);
    expect(json(await runCli(["mcp-config", "--http", "--port", "9000"])).mcpServers["agent-cron"]).toEqual({ type: "http", url: "http://127.0.0.1:9000/mcp" });
  });

  it("mcp-config run from npm's npx cache prints npx pinned to this version, never a path in the cache", async ({ expect, onTestFinished }) => {
    // What `npx agent-cron mcp-config` runs: the package unpacked under ~/.npm/_npx/<hash>/.
    const home = mkdtempSync(path.join(os.tmpdir(), "agent-cron-npx-"));
    onTestFinished(() => removeDir(home));
    const pkg = path.join(home, ".npm", "_npx", "0123456789abcdef", "node_modules", "agent-cron");
    mkdirSync(pkg, { recursive: true });
    cpSync(path.join(ROOT, process.env.AGENT_CRON_DIST || "dist"), path.join(pkg, "dist"), { recursive: true });
    cpSync(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
    const version = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version;
    const run = (...args: string[]) =>
      execFileSync(process.execPath, [path.join(pkg, "dist", "cli.js"), ...args], { encoding: "utf8", env: { PATH: process.env.PATH, HOME: home } });
    const out = run("mcp-config");
    expect(out).not.toContain("_npx");
    expect(JSON.parse(out).mcpServers["agent-cron"]).toEqual({ command: "npx", args: ["-y", `agent-cron@${version}`, "serve"] });
    expect(run("mcp-config", "--claude-code")).toBe(`claude mcp add agent-cron -- npx -y agent-cron@${version} serve\n`);
  });

  it("prints control characters from prompts, names and outputs escaped, never raw", async ({ expect, onTestFinished }) => {
    const { cli } = dataDir(onTestFinished);
    const evil = "\u001b]0;pwned\u0007\u001b[31mred\u001b[0m";
    await cli("add", "--name", "esc", "--schedule", "@daily", "--prompt", evil);
    const outputs = [await cli("list"), await cli("show", "esc"), await cli("run", "esc"), await cli("runs", "esc")];
    for (const r of outputs) {
      expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    }
    expect(outputs[1].stdout).toContain("\\x1b]0;pwned\\x07\\x1b[31mred");
    // The echo agent answers with the prompt: the run block escapes the output too.
    expect(outputs[2].stdout).toContain("\\x1b[31mred");
    // --json stays exact (JSON escapes it anyway).
    expect(json(await cli("show", "esc", "--json")).job.prompt).toBe(evil);
  });
});
