import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import { createExecutor } from "../../src/executors/index.js";
import { ProcessGroups, killAllProcessGroups, liveProcessGroupCount, runProcess, type ProcessSpec } from "../../src/executors/process.js";
import { fixture, isAlive, makeRequest, waitFor } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-process-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (argv: string[], over: Partial<ProcessSpec> = {}) =>
  runProcess({
    argv,
    cwd: tmp,
    env: { PATH: process.env.PATH ?? "" },
    timeoutMs: 10_000,
    killGraceMs: 1_000,
    maxOutputBytes: 1024 * 1024,
    ...over,
  });

describe("runProcess", () => {
  it("writes stdin, captures stdout and the exit code", async () => {
    const r = await run([fixture("echo-agent.mjs")], { stdin: "héllo wörld" });
    expect(r).toMatchObject({ exitCode: 0, signal: null, stdout: "héllo wörld\n", timedOut: false, canceled: false, spawnError: null });
    expect(liveProcessGroupCount()).toBe(0);
  });

  it("survives EPIPE when the child exits without reading a large stdin", async () => {
    const r = await run([process.execPath, fixture("no-stdin-agent.mjs")], { stdin: "x".repeat(8 * 1024 * 1024) });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("bye\n");
  });

  it("on timeout kills the whole process group, grandchildren included", async () => {
    const pidFile = path.join(tmp, "grandchild.pid");
    const r = await run([fixture("hang-agent.mjs"), pidFile], { timeoutMs: 500, killGraceMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.canceled).toBe(false);
    expect(r.signal).toBe("SIGKILL"); // it ignored SIGTERM
    expect(r.stdout).toBe("started\n");
    expect(r.durationMs).toBeLessThan(3000);
    const grandchild = Number(readFileSync(pidFile, "utf8"));
    expect(await waitFor(() => !isAlive(grandchild), 1000)).toBe(true);
  });

  it("does not wait for a grandchild that left the group and holds stdout open", async () => {
    const pidFile = path.join(tmp, "escaped.pid");
    try {
      // The timeout leaves a loaded machine time to start the agent and its grandchild (the
      // pid file proves it did); the claim is that nothing waits for the grandchild after it.
      const r = await run([fixture("hang-agent.mjs"), pidFile, "escape"], { timeoutMs: 2000, killGraceMs: 200 });
      expect(existsSync(pidFile)).toBe(true);
      expect(r.timedOut).toBe(true);
      expect(r.durationMs).toBeLessThan(5000);
    } finally {
      if (await waitFor(() => existsSync(pidFile), 5000)) process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    }
  });

  it("kills what the leader left behind in its group when it exits", async () => {
    const pidFile = path.join(tmp, "leftover.pid");
    const script = `const c = require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
      require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); c.unref();`;
    const r = await run([process.execPath, "-e", script]);
    expect(r).toMatchObject({ exitCode: 0, timedOut: false });
    const leftover = Number(readFileSync(pidFile, "utf8"));
    expect(await waitFor(() => !isAlive(leftover), 1000)).toBe(true);
  });

  it("stops at SIGTERM without waiting for the grace period when the child obeys", async () => {
    const r = await run([fixture("sleep-agent.mjs"), "10000"], { timeoutMs: 200, killGraceMs: 20_000 });
    expect(r).toMatchObject({ timedOut: true, signal: "SIGTERM", exitCode: null });
    expect(r.durationMs).toBeLessThan(2000);
  });

  it("cancels through the AbortSignal", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const r = await run([fixture("sleep-agent.mjs"), "10000"], { signal: ac.signal });
    expect(r).toMatchObject({ canceled: true, timedOut: false, stdout: "" });
    expect(r.durationMs).toBeLessThan(2000);
  });

  it("does not start anything when the signal is already aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await run([fixture("echo-agent.mjs"), "hi"], { signal: ac.signal });
    expect(r).toMatchObject({ canceled: true, exitCode: null, stdout: "" });
  });

  it("keeps the head of stdout up to the cap, on a UTF-8 boundary", async () => {
    const r = await run([fixture("big-agent.mjs"), "100000"], { maxOutputBytes: 1000 });
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdout.startsWith("START€")).toBe(true);
    expect(r.stdout).not.toContain("\uFFFD");
    expect(Buffer.byteLength(r.stdout)).toBe(998); // 5 + 331 whole 3-byte characters
  });

  it("keeps the tail of stderr up to the cap, on a UTF-8 boundary", async () => {
    const r = await run([fixture("big-agent.mjs"), "100000", "stderr"], { maxOutputBytes: 1000 });
    expect(r.stderrTruncated).toBe(true);
    expect(r.stdoutTruncated).toBe(false);
    expect(r.stderr.endsWith("€END")).toBe(true);
    expect(r.stderr).not.toContain("\uFFFD");
    expect(Buffer.byteLength(r.stderr)).toBeLessThanOrEqual(1000);
    expect(Buffer.byteLength(r.stderr)).toBeGreaterThanOrEqual(997);
  });

  it("does not flag output under the cap as truncated", async () => {
    const r = await run([fixture("big-agent.mjs"), "300"], { maxOutputBytes: 1000 });
    expect(r.stdoutTruncated).toBe(false);
    expect(r.stdout.endsWith("€END")).toBe(true);
  });

  it("reports a missing program by name instead of throwing", async () => {
    const r = await run(["no-such-program-agent-cron"]);
    expect(r.spawnError).toMatch(/"no-such-program-agent-cron" was not found/);
    expect(r.exitCode).toBeNull();
    expect(liveProcessGroupCount()).toBe(0);
  });

  it("reports a missing working directory as such", async () => {
    const r = await run([fixture("echo-agent.mjs"), "hi"], { cwd: path.join(tmp, "gone") });
    expect(r.spawnError).toMatch(/working directory .*gone does not exist/);
  });

  it("killAllProcessGroups kills every live group at once", async () => {
    const pending = run([fixture("hang-agent.mjs"), path.join(tmp, "all.pid")]);
    expect(await waitFor(() => liveProcessGroupCount() === 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(killAllProcessGroups()).toBe(1);
    const r = await pending;
    expect(r.signal).toBe("SIGKILL");
    expect(r.durationMs).toBeLessThan(5000);
    expect(liveProcessGroupCount()).toBe(0);
  });
});

describe("process groups, one set per owner", () => {
  it("killing one set's groups leaves another set's processes running", async () => {
    const mine = new ProcessGroups();
    const theirs = new ProcessGroups();
    const pidOf = (name: string) => path.join(tmp, name);
    const a = run([fixture("hang-agent.mjs"), pidOf("mine.pid")], { groups: mine });
    const b = run([fixture("hang-agent.mjs"), pidOf("theirs.pid")], { groups: theirs });
    expect(await waitFor(() => mine.size === 1 && theirs.size === 1)).toBe(true);
    // The agents are up once they have written their grandchild's pid.
    expect(await waitFor(() => existsSync(pidOf("mine.pid")) && existsSync(pidOf("theirs.pid")))).toBe(true);
    expect(mine.killAll()).toBe(1);
    const ended = await a;
    expect(ended.signal).toBe("SIGKILL");
    expect(mine.size).toBe(0);
    const survivor = Number(readFileSync(pidOf("theirs.pid"), "utf8"));
    expect(theirs.size).toBe(1);
    expect(isAlive(survivor)).toBe(true);
    // The exit hook's sweep still reaches every set.
    expect(killAllProcessGroups()).toBe(1);
    expect((await b).signal).toBe("SIGKILL");
    expect(await waitFor(() => !isAlive(survivor), 1000)).toBe(true);
    expect(liveProcessGroupCount()).toBe(0);
  });

  it("an executor built with a context's set keeps its agents' groups there", async () => {
    const groups = new ProcessGroups();
    const config = parseConfig({});
    const executor = createExecutor(
      "slow",
      { type: "command", command: [fixture("sleep-agent.mjs"), "10000"], output: "text", env: {}, sandbox: "none" },
      config,
      {
        serverEnv: process.env,
        killGraceMs: 1000,
        processGroups: groups,
      },
    );
    const pending = executor.execute(makeRequest(tmp));
    expect(await waitFor(() => groups.size === 1)).toBe(true);
    expect(groups.killAll()).toBe(1);
    expect((await pending).status).toBe("failed");
    expect(groups.size).toBe(0);
  });
});
