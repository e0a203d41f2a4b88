/**
 * An owner that stalls past the lock's stale time (SIGSTOP) is taken over; when it wakes
 * (SIGCONT) it must not acknowledge, write or delete anything: a call queued to it goes to the
 * new owner, and the new owner's lock, socket and owner.json stay.
 */
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Host } from "../../src/backends/files/share/host.js";
import { openApp } from "../../src/compose.js";
import { parseConfig } from "../../src/config.js";
import type { Fence } from "../../src/kernel/errors.js";
import { baseConfig, workCacheOf } from "../helpers/data-dir.js";
import { afterEach, describe, expect, it } from "vitest";
import { Server, isAlive, makeDataDir, readDataFiles, readOwner, removeDir, runCli, sleep, waitFor } from "./helpers.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

const names = (page: Record<string, any>) => (page.jobs as { name: string }[]).map((j) => j.name).sort();

describe("an owner that stalls and is taken over", () => {
  it("wakes without acknowledging, writing or deleting anything: the queued change lands with the new owner", async () => {
    const dir = makeDataDir({}, "agent-cron-fence-");
    cleanup.push(() => removeDir(dir));
    const a = await Server.start(dir, { name: "stalls" });
    cleanup.push(async () => {
      if (isAlive(a.pid)) process.kill(a.pid, "SIGCONT");
      await a.kill9();
    });
    const b = await Server.start(dir, { name: "follower" });
    cleanup.push(() => b.kill9());
    expect(readOwner(dir)?.pid).toBe(a.pid);
    await b.tool("add_cron", { name: "before", schedule: "@daily", prompt: "p" });

    process.kill(a.pid, "SIGSTOP");
    // Sent through the follower to the stopped owner: it waits in the socket.
    const queued = b.call("add_cron", { name: "queued-during-stall", schedule: "@daily", prompt: "p" });
    // Past the lock's stale time (6 s), a newcomer takes the data dir over.
    await sleep(7000);
    const c = await Server.start(dir, { name: "newcomer" });
    cleanup.push(() => c.kill9());
    expect(readOwner(dir)?.pid).toBe(c.pid);

    process.kill(a.pid, "SIGCONT");
    const answer = await queued;
    expect(answer.isError, JSON.stringify(answer.content)).toBeFalsy();

    // Acknowledged, so it is the new owner's, on disk, and every process lists it.
    expect(names(await c.tool("list_crons"))).toEqual(["before", "queued-during-stall"]);
    expect([...readDataFiles(dir).jobs.values()].map((j) => j.name).sort()).toEqual(["before", "queued-during-stall"]);
    await waitFor(() => a.stderr().includes("took over the data dir"), { timeout: 10_000, what: "the woken owner to say it was taken over" });
    expect(names(await a.tool("list_crons"))).toEqual(["before", "queued-during-stall"]);
    // The woken process forwards now: its own calls land with the new owner too.
    await a.tool("add_cron", { name: "from-the-woken-one", schedule: "@daily", prompt: "p" });
    expect(names(await c.tool("list_crons"))).toContain("from-the-woken-one");

    // It deleted nothing of the new owner's, even after it exits.
    await a.close();
    expect(readOwner(dir)?.pid).toBe(c.pid);
    expect(existsSync(path.join(dir, "agent-cron.sock"))).toBe(true);
    expect(existsSync(path.join(dir, "agent-cron.lock"))).toBe(true);
    const cli = await runCli(["list", "--json", "--data-dir", dir]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).total).toBe(3);
  }, 60_000);

  it("refuses a socket caller that does not know the owner's secret", async () => {
    const dir = makeDataDir({}, "agent-cron-fence-");
    cleanup.push(() => removeDir(dir));
    const a = await Server.start(dir, { name: "owner" });
    cleanup.push(() => a.kill9());
    const net = await import("node:net");
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.createConnection(path.join(dir, "agent-cron.sock"));
      let text = "";
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => (text += d));
      sock.on("close", () => resolve(text));
      sock.on("error", reject);
      // What a run's agent would try: a forged add_cron without the token.
      sock.write(
        JSON.stringify({ auth: "guess" }) +
          "\n" +
          JSON.stringify({ id: 1, method: "addCron", args: { input: { schedule: "@daily", prompt: "backdoor" }, createdBy: "forged" } }) +
          "\n",
      );
    });
    expect(reply).toMatch(/"denied":"This socket serves only agent-cron processes that can read the data dir's owner\.json\."/);
    expect(reply).not.toMatch(/"hello"|"result"/);
    expect((await a.tool("list_crons")).total).toBe(0);
  });
});

describe("an owner that closes", () => {
  it("refuses a write that comes after its files are gone as itself stopping, and says nothing of a takeover", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-close-"));
    cleanup.push(() => removeDir(dataDir));
    const notices: string[] = [];
    let fence: Fence | undefined;
    const host = await Host.open({
      dataDir,
      config: parseConfig(baseConfig()),
      role: "server",
      env: { ...process.env, XDG_CACHE_HOME: workCacheOf(dataDir) },
      onNotice: (level, message) => notices.push(`${level}: ${message}`),
      openApp: (opts) => {
        fence = opts.fence;
        return openApp(opts);
      },
    });
    expect(fence).toBeDefined();
    fence!();
    await host.close();
    expect(existsSync(path.join(dataDir, "agent-cron.lock"))).toBe(false);
    expect(existsSync(path.join(dataDir, "owner.json"))).toBe(false);
    // A write whose callback comes late, after the close took the lock and owner file away.
    expect(() => fence!()).toThrow(/^This agent-cron process is shutting down and no longer writes to the data dir .+; nothing was changed\.$/);
    await sleep(50);
    expect(notices.filter((n) => /took over/.test(n))).toEqual([]);
  });
});

describe("an owner file that cannot be written", () => {
  it("fails the start with the reason and lets the lock go, so the data dir is not left locked by nobody", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-ownerfile-"));
    cleanup.push(() => removeDir(dataDir));
    // A directory where owner.json goes: writing it fails as a full disk would.
    mkdirSync(path.join(dataDir, "owner.json"));
    const opening = Host.open({
      dataDir,
      config: parseConfig(baseConfig()),
      role: "server",
      env: { ...process.env, XDG_CACHE_HOME: workCacheOf(dataDir) },
      openApp,
    });
    await expect(opening).rejects.toThrow(/^The data dir .+ could not be taken: .+owner\.json could not be written \(.+\)\.$/);
    expect(existsSync(path.join(dataDir, "agent-cron.lock"))).toBe(false);
  });
});
