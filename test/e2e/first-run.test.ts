/**
 * The first hour: the server says what can run, a missing program fails at once, the
 * default executor is followed at run time, and config.json edits apply without a restart.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TestServer, baseConfig, waitFor, type Structured } from "../helpers/server.js";

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});
async function start(opts: Parameters<typeof TestServer.start>[0] = {}): Promise<TestServer> {
  const s = await TestServer.start(opts);
  servers.push(s);
  return s;
}
const writeConfig = (s: TestServer, extra: Record<string, unknown>) =>
  writeFileSync(path.join(s.dataDir, "config.json"), JSON.stringify(baseConfig(extra), null, 2));
const logMessages = (s: TestServer) => s.notificationsOf("notifications/message").map((n) => JSON.stringify(n.params.data));

describe("a first run that works", () => {
  it("with no config, says on stderr that no executor can run and what to install or set", async () => {
    // An empty PATH: the default claude executor cannot be found.
    const s = await start({ noConfig: true, env: { PATH: "/nonexistent" } });
    await waitFor(() => /No executor can run jobs yet/.test(s.stderr()), { what: "the executor notice" });
    expect(s.stderr()).toMatch(/claude \(claude-code\) missing: "claude" is not on PATH/);
    expect(s.stderr()).toMatch(/npm install -g @anthropic-ai\/claude-code/);
    expect(s.stderr()).toMatch(/agent-cron doctor/);
  });

  it("with usable executors, names them and the default", async () => {
    const s = await start();
    await waitFor(() => /Executors: .*echo \(command\) ok.*; default echo\./.test(s.stderr()), { what: "the executor line" });
  });

  it("a missing program fails the run at once, with one attempt and what to fix, not four attempts", async () => {
    const s = await start({ config: { executors: { ghost: { type: "command", command: ["/nonexistent/agent-bin", "{prompt}"] } } } });
    await s.tool("add_cron", { name: "ghostly", schedule: "@yearly", prompt: "x", executor: "ghost", retries: 3, retry_delay_seconds: 2 });
    const t0 = Date.now();
    const { run } = await s.tool("run_now", { job: "ghostly", wait: true });
    expect(run.status).toBe("failed");
    expect(run.attempts).toBe(1);
    expect(run.error).toMatch(/could not start: program "\/nonexistent\/agent-bin" was not found/);
    expect(run.error).toMatch(/executors\.ghost\.command/);
    // Retries would have waited 2 + 4 + 8 s.
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("a job that names no executor follows default_executor at run time, and the run records which ran", async () => {
    const s = await start();
    await s.tool("add_cron", { name: "follower", schedule: "@yearly", prompt: "hello" });
    expect((await s.job("follower")).executor).toBeNull();
    await s.tool("add_cron", { name: "pinned", schedule: "@yearly", prompt: "hello", executor: "echo" });
    const first = (await s.tool("run_now", { job: "follower", wait: true })).run as Structured;
    expect(first).toMatchObject({ status: "completed", executor: "echo", response: "hello" });

    writeConfig(s, { default_executor: "echo-stdin" });
    await waitFor(() => logMessages(s).some((m) => m.includes("Config reloaded")), { what: "the reload message" });
    const second = (await s.tool("run_now", { job: "follower", wait: true })).run as Structured;
    expect(second).toMatchObject({ status: "completed", executor: "echo-stdin", response: "hello" });
    // A job that names its executor keeps it.
    expect((await s.tool("run_now", { job: "pinned", wait: true })).run.executor).toBe("echo");
  });

  it("a valid config edit takes effect without a restart: a new executor can be used at once", async () => {
    const s = await start();
    expect(await s.toolError("add_cron", { name: "later", schedule: "@yearly", prompt: "x", executor: "added-later" })).toMatch(
      /Unknown executor "added-later"/,
    );
    writeConfig(s, { executors: { "added-later": { type: "command", command: [process.execPath, "-e", "console.log('new executor')"], sandbox: "none" } } });
    await waitFor(() => /Config reloaded \(executors changed\)/.test(s.stderr()), { what: "the reload line on stderr" });
    await s.tool("add_cron", { name: "later", schedule: "@yearly", prompt: "x", executor: "added-later" });
    expect((await s.tool("run_now", { job: "later", wait: true })).run.response).toBe("new executor");
  });

  it("an invalid config edit keeps the running config and says why on stderr and as an MCP log message", async () => {
    const s = await start();
    writeFileSync(path.join(s.dataDir, "config.json"), JSON.stringify({ ...baseConfig(), max_concurrent: "lots" }));
    await waitFor(() => /max_concurrent/.test(s.stderr()), { what: "the rejection on stderr" });
    expect(s.stderr()).toMatch(/agent-cron error: Invalid config file .*max_concurrent must be a number.*The running config is kept \(approval "none"/);
    await waitFor(() => logMessages(s).some((m) => m.includes("max_concurrent") && m.includes("running config is kept")), { what: "the MCP log message" });
    writeFileSync(path.join(s.dataDir, "config.json"), "{ not json");
    await waitFor(() => /is not valid JSON/.test(s.stderr()), { what: "the JSON error" });
    // Still serving with the old config.
    await s.tool("add_cron", { name: "still", schedule: "@yearly", prompt: "ok" });
    expect((await s.tool("run_now", { job: "still", wait: true })).run.status).toBe("completed");
  });
});
