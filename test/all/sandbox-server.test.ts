/**
 * The sandbox as a server runs it: a job whose executor sets "sandbox": "bwrap" cannot read
 * the data dir (prompts, outputs, owner.json's socket secret), the config file, other runs'
 * work dirs, nor reach the owner's socket, while it can write its own work dir. The data
 * dir, config and cache live outside /tmp and HOME (both hidden anyway), so what is hidden
 * here is hidden because the server named it.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { processesWithEnv, sandboxTestDir } from "../executors/helpers.js";
import { TestServer, baseConfig, fixture, isAlive, waitFor, workCacheOf } from "../helpers/server.js";

const base = sandboxTestDir("agent-cron-sandbox-server-");
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("a sandboxed run started by the server", () => {
  it("sees neither the data dir, nor the config file, nor other runs' dirs, nor the socket; it writes its own work dir", async () => {
    const dataDir = path.join(base, "data");
    mkdirSync(dataDir);
    const configFile = path.join(base, "agent-cron.json");
    const probe = {
      type: "command",
      command: [process.execPath, fixture("sandbox-probe.mjs")],
      sandbox: "bwrap",
      binds: [path.dirname(fixture("sandbox-probe.mjs"))],
    };
    writeFileSync(configFile, JSON.stringify(baseConfig({ executors: { probe } })));
    const s = await TestServer.start({ dataDir, env: { AGENT_CRON_CONFIG: configFile } });
    try {
      // Another run's work dir, with something in it.
      const other = await s.tool("add_cron", { name: "other", schedule: "@yearly", prompt: "secret output" });
      const { run: otherRun } = await s.tool("run_now", { job: other.job.id, wait: true });
      writeFileSync(path.join(otherRun.work_dir, "notes.txt"), "other run's notes");
      const workRoot = path.join(workCacheOf(dataDir), "agent-cron", "work");
      const socket = path.join(dataDir, "agent-cron.sock");
      const connect = `require("net").connect(${JSON.stringify(socket)}).on("connect", () => { console.log("connected"); process.exit(0) }).on("error", (e) => { console.log(e.code); process.exit(1) })`;
      const ask = {
        serverPid: s.pid,
        read: [path.join(dataDir, "owner.json"), path.join(dataDir, "jobs.journal"), configFile, otherRun.work_dir, workRoot, "/run/user", "/run/dbus"],
        write: ["own-file.txt"],
        run: [[process.execPath, "-e", connect]],
      };
      await s.tool("add_cron", { name: "probe", schedule: "@yearly", prompt: JSON.stringify(ask), executor: "probe" });
      const { run } = await s.tool("run_now", { job: "probe", wait: true });
      expect(run.status, run.error).toBe("completed");
      const report = JSON.parse((await s.tool("get_run", { run: run.id })).output);
      // The data dir and the work root are empty folders inside; the config file reads as nothing.
      expect(report.read[path.join(dataDir, "owner.json")]).toEqual({ error: "ENOENT" });
      expect(report.read[path.join(dataDir, "jobs.journal")]).toEqual({ error: "ENOENT" });
      expect(report.read[configFile]).toEqual({ error: "EACCES" });
      expect(report.read[otherRun.work_dir]).toEqual({ error: "ENOENT" });
      expect(report.read[workRoot].entries).toEqual([path.basename(run.work_dir)]);
      expect(report.run[0].output).toBe("ENOENT");
      expect(report.serverPidVisible).toEqual({ error: "ENOENT" });
      // The user's session sockets (bus, systemd, agents) are not reachable.
      for (const dir of ["/run/user", "/run/dbus"]) expect([{ entries: [] }, { error: "ENOENT" }]).toContainEqual(report.read[dir]);
      expect(report.write["own-file.txt"]).toBe("ok");
      expect(report.cwd).toBe(run.work_dir);
    } finally {
      await s.cleanup();
    }
  });
});

/** A server over a data dir outside /tmp and HOME (both hidden in the sandbox), with these executors. */
async function serverWith(executors: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = path.join(base, `data-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dataDir);
  writeFileSync(path.join(dataDir, "config.json"), JSON.stringify(baseConfig({ executors })));
  return TestServer.start({ dataDir, env });
}

const probeCommand = [process.execPath, fixture("sandbox-probe.mjs")];
const fixtures = path.dirname(fixture("sandbox-probe.mjs"));

/** Runs the probe once through the server and returns its report. */
async function probeRun(s: TestServer, executor: string, ask: Record<string, unknown>) {
  await s.tool("add_cron", { name: executor, schedule: "@yearly", prompt: JSON.stringify({ serverPid: s.pid, ...ask }), executor, retries: 0 });
  const { run } = await s.tool("run_now", { job: executor, wait: true });
  expect(run.status, run.error).toBe("completed");
  return JSON.parse((await s.tool("get_run", { run: run.id })).output);
}

describe("a sandbox started by a root server (SPEC §20)", () => {
  // Writes each file's own content back: on a host where the write goes through, nothing changes.
  const KNOBS = ["/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern"];
  const rewrite = `const fs = require("fs"); const out = {}; for (const p of ${JSON.stringify(KNOBS)}) { try { fs.writeFileSync(p, fs.readFileSync(p)); out[p] = "written" } catch (e) { out[p] = e.code } } for (const p of ["/proc/sysrq-trigger", "/sys/kernel/mm", "/sys/fs/cgroup"]) { try { fs.accessSync(p, fs.constants.W_OK); out[p] = "writable" } catch (e) { out[p] = e.code } } console.log(JSON.stringify(out))`;

  it("gives the run no capability over the host: its own user namespace, kernel tunables read-only, the server's secrets out of reach", async () => {
    expect(process.getuid?.(), "this test is about a root server: run it as root (CI does)").toBe(0);
    const before = KNOBS.map((p) => readFileSync(p, "utf8"));
    const secrets = { AGENT_CRON_TOKEN: "root-token-7d1f", OPENAI_API_KEY: "sk-root-7d1f" };
    const s = await serverWith({ boxed: { type: "command", command: probeCommand, sandbox: "bwrap", binds: [fixtures] } }, secrets);
    try {
      const report = await probeRun(s, "boxed", {
        run: [[process.execPath, "-e", rewrite]],
        read: ["/proc/self/uid_map", path.join(s.dataDir, "owner.json"), `/proc/${s.pid}/environ`],
      });
      const knobs = JSON.parse(report.run[0].output);
      for (const p of KNOBS) expect(["EROFS", "EACCES", "EPERM"], p).toContain(knobs[p]);
      for (const p of ["/sys/kernel/mm", "/sys/fs/cgroup"]) expect(["EROFS", "EACCES", "EPERM"], p).toContain(knobs[p]);
      // Absent where the kernel has no magic SysRq key.
      expect(["EROFS", "EACCES", "EPERM", ...(existsSync("/proc/sysrq-trigger") ? [] : ["ENOENT"])]).toContain(knobs["/proc/sysrq-trigger"]);
      expect(KNOBS.map((p) => readFileSync(p, "utf8"))).toEqual(before);
      // A user namespace maps a single id, not the host's whole range; no capability in it either.
      expect(report.read["/proc/self/uid_map"].text.trim().split(/\s+/)).toEqual(["0", "0", "1"]);
      expect(report.capEff).toBe("0000000000000000");
      expect(report.read[path.join(s.dataDir, "owner.json")]).toEqual({ error: "ENOENT" });
      expect(report.read[`/proc/${s.pid}/environ`]).toEqual({ error: "ENOENT" });
      for (const value of Object.values(secrets)) expect(JSON.stringify(report)).not.toContain(value);
    } finally {
      await s.cleanup();
    }
  });

  it('"sandbox": "auto" (the default) sandboxes the run where bubblewrap works', async () => {
    const s = await serverWith({ auto: { type: "command", command: probeCommand, binds: [fixtures] } });
    try {
      const added = await s.tool("add_cron", { schedule: "@yearly", prompt: "{}", executor: "auto" });
      expect(added.warnings.join(" ")).not.toContain("without a sandbox");
      const report = await probeRun(s, "auto", { read: [path.join(s.dataDir, "owner.json")] });
      expect(report.serverPidVisible).toEqual({ error: "ENOENT" });
      expect(report.read[path.join(s.dataDir, "owner.json")]).toEqual({ error: "ENOENT" });
    } finally {
      await s.cleanup();
    }
  });

  it("stops a sandboxed run past max_memory_mb and max_pids, with the reason as its error", async () => {
    const greedy = (mode: string, n: number, limits: Record<string, number>) => ({
      type: "command",
      command: [process.execPath, fixture("greedy-agent.mjs"), mode, String(n)],
      sandbox: "bwrap",
      binds: [fixtures],
      ...limits,
    });
    const s = await serverWith({
      memory: greedy("memory", 1024, { max_memory_mb: 100 }),
      pids: greedy("pids", 40, { max_pids: 8 }),
      disk: greedy("disk", 24, { max_disk_mb: 4 }),
    });
    try {
      const runs = await Promise.all(
        ["memory", "pids", "disk"].map(async (executor) => {
          const { job } = await s.tool("add_cron", { schedule: "@yearly", prompt: "go", executor, retries: 0 });
          return (await s.tool("run_now", { job: job.id, wait: true })).run;
        }),
      );
      expect(runs.map((r) => r.status)).toEqual(["failed", "failed", "failed"]);
      expect(runs[0].error).toContain("the run used more than 100 MB of memory (max_memory_mb)");
      expect(runs[1].error).toContain("the run had more than 8 processes at once (max_pids)");
      expect(runs[2].error).toContain("the run wrote more than 4 MB to its work dir (max_disk_mb)");
    } finally {
      await s.cleanup();
    }
  });

  it("leaves no process of a sandboxed run when the server is killed with kill -9, a grandchild that left the group included", async () => {
    const s = await serverWith({ boxed: { type: "command", command: probeCommand, sandbox: "bwrap", binds: [fixtures] } });
    try {
      const { job } = await s.tool("add_cron", {
        schedule: "@yearly",
        prompt: JSON.stringify({ hang: "i21-kill9-marker", escape: true }),
        executor: "boxed",
        retries: 0,
      });
      const { run } = await s.tool("run_now", { job: job.id });
      const agents = await waitFor(
        () => {
          const pids = processesWithEnv("AGENT_CRON_RUN_ID", run.id);
          return pids.length >= 2 && pids;
        },
        { what: "the probe and its grandchild" },
      );
      process.kill(s.pid, "SIGKILL");
      expect(await waitFor(() => !agents.some(isAlive), { timeout: 10_000, what: "every process of the run to be gone" })).toBe(true);
      expect(
        readdirSync("/proc")
          .filter((e) => /^\d+$/.test(e))
          .some((e) => {
            try {
              return readFileSync(`/proc/${e}/cmdline`, "latin1").includes("i21-kill9-marker");
            } catch {
              return false;
            }
          }),
      ).toBe(false);
    } finally {
      await s.cleanup();
    }
  });
});
