/**
 * The sandbox as a server runs it: a job whose executor sets "sandbox": "bwrap" cannot read
 * the data dir (prompts, outputs, owner.json's socket secret), the config file, other runs'
 * work dirs, nor reach the owner's socket, while it can write its own work dir. The data
 * dir, config and cache live outside /tmp and HOME (both hidden anyway), so what is hidden
 * here is hidden because the server named it.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sandboxTestDir } from "../executors/helpers.js";
import { TestServer, baseConfig, fixture, workCacheOf } from "../helpers/server.js";

const base = sandboxTestDir("agent-cron-sandbox-server-");
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("a sandboxed run started by the server", () => {
  it("sees neither the data dir, nor the config file, nor other runs' dirs, nor the socket; it writes its own work dir", async () => {
    const dataDir = path.join(base, "data");
    mkdirSync(dataDir);
    const configFile = path.join(base, "agent-cron.json");
    const probe = { type: "command", command: [process.execPath, fixture("sandbox-probe.mjs")], sandbox: "bwrap", binds: [path.dirname(fixture("sandbox-probe.mjs"))] };
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
