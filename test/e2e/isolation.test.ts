/**
 * SPEC §20's isolation promises that hold without bubblewrap (the sandboxed side is in
 * test/all/sandbox-server.test.ts): "auto" says when it cannot sandbox, per-run limits stop a
 * run that passes them, no run outlives its timeout or a server killed with kill -9, and a run
 * finds no secret in its parent's environment.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TestServer, fixture, isAlive, makeDataDir, removeDir, runCli, waitFor } from "../helpers/server.js";

const NODE = process.execPath;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

const greedy = (mode: string, n: number, limits: Record<string, number>) => ({
  type: "command",
  command: [NODE, fixture("greedy-agent.mjs"), mode, String(n)],
  sandbox: "none",
  ...limits,
});

async function start(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestServer> {
  const s = await TestServer.start({ config, env });
  dirs.push(s.dataDir);
  return s;
}

/** Runs a job of `executor` once and returns the finished run. */
async function runOnce(s: TestServer, executor: string, extra: Record<string, unknown> = {}) {
  const { job } = await s.tool("add_cron", { schedule: "@yearly", prompt: "go", executor, retries: 0, ...extra });
  const { run } = await s.tool("run_now", { job: job.id, wait: true });
  const { output } = await s.tool("get_run", { run: run.id });
  return { ...run, output };
}

describe('"sandbox": "auto" where bubblewrap does not work', () => {
  it("runs unsandboxed and says so at start, in add_cron's answer and in doctor", async () => {
    // A PATH with no bwrap on it: the fixture agents are started by absolute path.
    const emptyPath = makeDataDir({ noConfig: true });
    dirs.push(emptyPath);
    const config = { default_executor: "open", executors: { open: { type: "command", command: [NODE, fixture("echo-agent.mjs"), "{prompt}"] } } };
    const s = await start(config, { PATH: emptyPath });
    try {
      const warning = 'Executor "open" runs without a sandbox (executors.open.sandbox is "auto" and bubblewrap is not installed';
      await waitFor(() => s.stderr().includes(warning), { what: "the start-up warning" });
      const added = await s.tool("add_cron", { schedule: "@yearly", prompt: "hello" });
      expect(added.warnings.join(" ")).toContain(warning);
      const { run } = await s.tool("run_now", { job: added.job.id, wait: true });
      expect(run.status, run.error).toBe("completed");
      const doctor = await runCli(["doctor", "--data-dir", s.dataDir, "--json"], { env: { PATH: emptyPath } });
      expect(doctor.stdout).toContain('runs WITHOUT a sandbox (executors.open.sandbox is \\"auto\\"');
    } finally {
      await s.cleanup();
    }
  });
});

describe("per-run limits, enforced and reported as the run's error", () => {
  it("stops a run past max_memory_mb, max_pids and max_disk_mb (work dir total and one file)", async () => {
    const s = await start({
      executors: {
        memory: greedy("memory", 1024, { max_memory_mb: 100 }),
        pids: greedy("pids", 40, { max_pids: 8 }),
        disk: greedy("disk", 24, { max_disk_mb: 4 }),
        bigfile: greedy("bigfile", 16, { max_disk_mb: 4 }),
        within: greedy("disk", 2, { max_disk_mb: 4 }),
      },
    });
    try {
      const [memory, pids, disk, bigfile, within] = await Promise.all(["memory", "pids", "disk", "bigfile", "within"].map((e) => runOnce(s, e)));
      expect(memory.status).toBe("failed");
      expect(memory.error).toContain("the run used more than 100 MB of memory (max_memory_mb)");
      expect(pids.status).toBe("failed");
      expect(pids.error).toContain("the run had more than 8 processes at once (max_pids)");
      expect(disk.status).toBe("failed");
      expect(disk.error).toContain("the run wrote more than 4 MB to its work dir (max_disk_mb)");
      expect(bigfile.status).toBe("failed");
      expect(bigfile.error).toContain("the run wrote a file larger than 4 MB (max_disk_mb)");
      // Under its limits a run is left alone.
      expect(within.status, within.error).toBe("completed");
      expect(within.output).toBe("survived");
    } finally {
      await s.cleanup();
    }
  });

  it("caps each file a run writes: inherited from the server for the default max_disk_mb (no prlimit per run), by a prlimit wrapper for a small one", async () => {
    const limits = { type: "command", command: ["cat", "/proc/self/limits"], sandbox: "none" };
    const s = await start({ executors: { inherits: limits, small: { ...limits, max_disk_mb: 4 } } });
    try {
      const fileCap = (output: string) => /^Max file size\s+(\S+)\s+(\S+)/m.exec(output)?.slice(1);
      const inherits = await runOnce(s, "inherits");
      expect(inherits.status, inherits.error).toBe("completed");
      // The server's own soft limit (set once, at its first run), its hard one untouched: no wrapper set both.
      expect(fileCap(inherits.output)).toEqual([String(2048 * 1024 * 1024), "unlimited"]);
      const small = await runOnce(s, "small");
      expect(small.status, small.error).toBe("completed");
      expect(fileCap(small.output)).toEqual([String(4 * 1024 * 1024), String(4 * 1024 * 1024)]);
      // A second run of the default executor still inherits it.
      expect(fileCap((await runOnce(s, "inherits")).output)).toEqual([String(2048 * 1024 * 1024), "unlimited"]);
    } finally {
      await s.cleanup();
    }
  });
});

describe("no run outlives its timeout or the server (no sandbox)", () => {
  const escape = { type: "command", command: [NODE, fixture("hang-agent.mjs"), "{work_dir}/hang.pid", "escape"], sandbox: "none" };

  /** Starts a run of the escaping agent and returns its work dir and the pid of the grandchild that left the group. */
  async function hangingRun(s: TestServer, extra: Record<string, unknown> = {}) {
    const { job } = await s.tool("add_cron", { schedule: "@yearly", prompt: "go", executor: "escape", retries: 0, ...extra });
    const { run } = await s.tool("run_now", { job: job.id });
    const pidFile = path.join(run.work_dir, "hang.pid");
    const grandchild = await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")), { what: "the grandchild's pid" });
    return { job, run, grandchild };
  }

  it("kills a grandchild that left the process group when the run times out", async () => {
    const s = await start({ executors: { escape } });
    try {
      const { job, run, grandchild } = await hangingRun(s, { timeout_seconds: 2 });
      expect(isAlive(grandchild)).toBe(true);
      const ended = await s.waitForRunEnd(job.id, run.id);
      expect(ended.status).toBe("timed_out");
      expect(await waitFor(() => !isAlive(grandchild), { timeout: 5_000, what: "the grandchild to be gone" })).toBe(true);
    } finally {
      await s.cleanup();
    }
  });

  it("leaves no agent process when the server is killed with kill -9", async () => {
    const s = await start({ executors: { escape } });
    try {
      const { grandchild } = await hangingRun(s);
      const agents = [grandchild];
      // The agent itself: the grandchild's parent.
      const stat = readFileSync(`/proc/${grandchild}/stat`, "latin1");
      agents.push(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      expect(agents.every(isAlive)).toBe(true);
      process.kill(s.pid, "SIGKILL");
      expect(await waitFor(() => !agents.some(isAlive), { timeout: 10_000, what: "every agent process to be gone" })).toBe(true);
    } finally {
      await s.cleanup();
    }
  });
});

describe("the server's secrets are not in its environment block", () => {
  it("a run without a sandbox finds none of them in /proc/$PPID/environ, and the server still uses them", async () => {
    const secrets = {
      AGENT_CRON_TOKEN: "mcp-token-5e1c7e7",
      AGENT_CRON_WEBHOOK_SECRET: "whsec-5e1c7e7",
      OPENAI_API_KEY: "sk-openai-5e1c7e7",
      MY_TOOL_KEY: "tool-key-5e1c7e7",
    };
    const peek = `const fs = require("fs"); console.log(JSON.stringify({ parent: fs.readFileSync("/proc/" + process.ppid + "/environ", "latin1"), own: process.env.MY_TOOL_KEY }))`;
    const s = await start({ env_allow: ["MY_TOOL_KEY"], executors: { peek: { type: "command", command: [NODE, "-e", peek], sandbox: "none" } } }, secrets);
    try {
      const run = await runOnce(s, "peek");
      expect(run.status, run.error).toBe("completed");
      const seen = JSON.parse(run.output) as { parent: string; own: string };
      expect(seen.parent).toContain("PATH=");
      for (const value of Object.values(secrets)) expect(seen.parent).not.toContain(value);
      // env_allow still hands the run its key: the server kept it, out of the block.
      expect(seen.own).toBe(secrets.MY_TOOL_KEY);
      const block = readFileSync(`/proc/${s.pid}/environ`, "latin1");
      for (const value of Object.values(secrets)) expect(block).not.toContain(value);
    } finally {
      await s.cleanup();
    }
  });

  it("an agent-cron started inside a run keeps the run's marks in its environment block (how strays and runs are recognised)", async () => {
    // The CLI, imported as a run would start it, prints its own environment block as it exits.
    const cli = path.join(process.cwd(), "dist", "cli.js");
    const script = `process.on("exit", () => require("fs").writeSync(1, require("fs").readFileSync("/proc/self/environ", "latin1").split("\\0").join("\\n"))); import(${JSON.stringify(cli)})`;
    const s = await start({ executors: { inner: { type: "command", command: [NODE, "-e", script, "argv1", "--version"], sandbox: "none" } } });
    try {
      const run = await runOnce(s, "inner");
      expect(run.status, run.error).toBe("completed");
      expect(run.output.split("\n")).toContain(`AGENT_CRON_RUN_ID=${run.id}`);
    } finally {
      await s.cleanup();
    }
  });
});

describe("starting an owner without secrets in its environment (src/backends/files/share/secret-env.ts, for the background owner)", () => {
  it("hands the secrets over a pipe: the owner uses the token, and its environment block holds only the allow-listed names", async () => {
    const { ownerEnvironment, handOverSecrets, SECRETS_FD_ENV } = await import("../../src/backends/files/share/secret-env.js");
    const { spawn } = await import("node:child_process");
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const token = "owner-token-91c2aa";
    const { env, secrets } = ownerEnvironment({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AGENT_CRON_TOKEN: token,
      OPENAI_API_KEY: "sk-owner-91c2aa",
      AGENT_CRON_ALWAYS_ON: "client",
    });
    expect(Object.keys(env).sort()).toEqual(["HOME", "PATH"]);
    const child = spawn(NODE, [path.join(process.cwd(), "dist", "cli.js"), "serve", "--http", "--port", "0", "--data-dir", dataDir], {
      env: { ...env, [SECRETS_FD_ENV]: "3" },
      stdio: ["ignore", "ignore", "pipe", "pipe"],
    });
    try {
      handOverSecrets(child, secrets);
      let stderr = "";
      child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
      const url = await waitFor(() => /agent-cron ready http (\S+)/.exec(stderr)?.[1], { what: "the ready line" });
      const block = readFileSync(`/proc/${child.pid}/environ`, "latin1").split("\0").filter(Boolean);
      expect(block.map((e) => e.split("=")[0]).sort()).toEqual([SECRETS_FD_ENV, "HOME", "PATH"]);
      // The token arrived: without it the endpoint refuses, with it the request gets through.
      const post = (auth?: string) =>
        fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
          }),
        });
      expect((await post()).status).toBe(401);
      expect((await post(token)).status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
  });
});
