/**
 * Always on (SPEC §17): with always_on "daemon" a stdio server that finds no owner starts a
 * background owner and follows it; the owner outlives the client, runs the jobs on time with
 * no client open, takes the next client as a follower, holds none of the client's variables
 * in its environment, and ends with `agent-cron stop`. Driven as Claude Code does: spawn
 * the built CLI over stdio, call tools, exit; then look from outside.
 */
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SECRETS_FD_ENV, keptInEnvironment } from "../../src/backends/files/share/secret-env.js";
import { TestServer, isAlive, makeDataDir, removeDir, runCli, runsOnDisk, waitFor } from "../helpers/server.js";
import { OwnerReaper, environOf, ownerOf, statOf, stdioOf } from "../helpers/owner.js";

const reaper = new OwnerReaper();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  await reaper.reap();
});

/** The client's environment: always_on "daemon", and variables the owner must not inherit. */
const CLIENT_ENV = { AGENT_CRON_ALWAYS_ON: "daemon", ANTHROPIC_API_KEY: "sk-test-client-secret", CLIENT_ONLY_VARIABLE: "from-the-client" };

function dataDir(): string {
  const dir = makeDataDir({
    config: {
      // The runs get the key: it reaches the owner, on a pipe, but not its environment block.
      env_allow: ["ANTHROPIC_API_KEY"],
    },
  });
  reaper.remember(dir);
  cleanup.push(() => removeDir(dir));
  return dir;
}

describe("always_on daemon: a background owner", () => {
  it("a one-shot scheduled from a stdio client that then exits runs at its time, in a detached owner holding none of the client's variables", async () => {
    const dir = dataDir();
    const t0 = Date.now();
    const a = await TestServer.start({ dataDir: dir, env: CLIENT_ENV, clientName: "claude-code" });
    cleanup.push(() => a.close());
    const clientPid = a.pid;
    const owner = ownerOf(dir)!;
    expect(owner.started_as).toBe("daemon");
    expect(owner.pid).not.toBe(clientPid);
    expect(isAlive(owner.pid)).toBe(true);

    // Detached: its own session and process group, no terminal, not the client's stdio.
    const st = statOf(owner.pid);
    expect(st.session).toBe(owner.pid);
    expect(st.pgrp).toBe(owner.pid);
    expect(st.tty).toBe(0);
    const clientFds = stdioOf(clientPid);
    const ownerFds = stdioOf(owner.pid);
    for (const fd of ownerFds) expect(clientFds).not.toContain(fd);
    expect(ownerFds[1]).toBe("/dev/null");
    expect(readlinkSync(`/proc/${owner.pid}/cwd`)).toBe(dir);
    // An allow-listed environment: none of the client's variables beyond it.
    const env = environOf(owner.pid);
    expect(env.ANTHROPIC_API_KEY).toBeUndefined();
    expect(env.CLIENT_ONLY_VARIABLE).toBeUndefined();
    expect(env.AGENT_CRON_ALWAYS_ON).toBeUndefined();
    // Beyond the allow-list only the number of the fd the secrets came on.
    expect(Object.keys(env).filter((k) => !keptInEnvironment(k))).toEqual([SECRETS_FD_ENV]);
    expect(readFileSync(`/proc/${owner.pid}/environ`, "utf8")).not.toContain("sk-test-client-secret");
    const log = path.join(dir, "logs", "agent-cron.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("ready background"), { what: "the owner's log" });
    expect(readFileSync(log, "utf8")).not.toContain("sk-test-client-secret");

    // "ENV": the echo agent prints its environment.
    const added = await a.tool("add_cron", { name: "later", schedule: "in 6s", prompt: "ENV" });
    const scheduledAt = Date.now();
    expect(added.summary).toMatch(
      new RegExp(`Runs in agent-cron's background owner \\(pid ${owner.pid}, since \\d\\d:\\d\\d\\), also with no client open\\.$`),
    );
    expect(added.warnings).toEqual([]);
    const listed = await a.tool("list_crons");
    expect(listed.summary).toContain(`background owner (pid ${owner.pid}`);

    // The client quits, as Claude Code does at the end of a session.
    await a.endStdin();
    const clientGone = Date.now();
    expect(isAlive(clientPid)).toBe(false);
    expect(isAlive(owner.pid)).toBe(true);

    // From outside, with no client: the run happens at its time.
    const job = added.job.id as string;
    const run = await waitFor(() => runsOnDisk(dir, job).find((r) => r.status === "completed"), { timeout: 20_000, what: "the one-shot's run" });
    const due = Date.parse(run.scheduled_for);
    const started = Date.parse(run.started_at);
    console.log(
      `always-on timeline: client started ${0} ms; scheduled "in 6s" at +${scheduledAt - t0} ms (due +${due - t0} ms); client gone at +${clientGone - t0} ms; ` +
        `run started at +${started - t0} ms (${started - due} ms after due) by pid ${run.pid} (the owner: ${owner.pid}); status ${run.status}; trigger ${run.trigger}`,
    );
    expect(clientGone).toBeLessThan(due);
    expect(run.trigger).toBe("schedule");
    expect(run.pid).toBe(owner.pid);
    expect(started - due).toBeLessThan(2000);
    // The key the client had reached the run through the owner (env_allow), on a pipe.
    expect(JSON.parse(run.response).ANTHROPIC_API_KEY).toBe("sk-test-client-secret");
    expect(JSON.parse(run.response).CLIENT_ONLY_VARIABLE).toBeUndefined();

    // A second client attaches as a follower of the same owner.
    const b = await TestServer.start({ dataDir: dir, env: CLIENT_ENV });
    cleanup.push(() => b.close());
    expect(ownerOf(dir)!.pid).toBe(owner.pid);
    const runs = await b.runRows("later");
    expect(runs.map((r) => r.id)).toEqual([run.id]);
    await b.close();

    // agent-cron status reads it back; agent-cron stop ends it.
    const status = await runCli(["status", "--data-dir", dir, "--json"], { env: { AGENT_CRON_ALWAYS_ON: "daemon" } });
    expect(status.code).toBe(0);
    const st2 = JSON.parse(status.stdout);
    expect(st2.owner).toMatchObject({ pid: owner.pid, started_as: "daemon", version: expect.any(String) });
    expect(st2.owner.uptime_seconds).toBeGreaterThanOrEqual(1);
    expect(st2.runs_without_client).toBe(true);
    const stop = await runCli(["stop", "--data-dir", dir]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(new RegExp(`Stopped the background owner \\(pid ${owner.pid}\\)`));
    expect(isAlive(owner.pid)).toBe(false);
    expect(ownerOf(dir)).toBeNull();
  }, 90_000);

  it("always_on client keeps today's behaviour: the client's server owns the data dir and every add_cron answer warns", async () => {
    const dir = dataDir();
    const s = await TestServer.start({ dataDir: dir, env: { AGENT_CRON_ALWAYS_ON: "client" } });
    cleanup.push(() => s.close());
    expect(ownerOf(dir)).toMatchObject({ pid: s.pid, started_as: "client" });
    const added = await s.tool("add_cron", { name: "x", schedule: "@daily", prompt: "p" });
    expect(added.warnings).toContain(`Runs only while this client is open (always_on "client").`);
    expect(added.summary).toMatch(/Warning: Runs only while this client is open/);
    const again = await s.tool("add_cron", { name: "y", schedule: "@hourly", prompt: "p" });
    expect(again.warnings).toContain(`Runs only while this client is open (always_on "client").`);
  });

  it("a CLI command that adds a job starts the background owner too, and a new client follows it", async () => {
    const dir = dataDir();
    const add = await runCli(["add", "--data-dir", dir, "--name", "from-cli", "--schedule", "@daily", "--prompt", "p"], {
      env: { AGENT_CRON_ALWAYS_ON: "daemon" },
    });
    expect(add.code, add.stderr).toBe(0);
    const owner = ownerOf(dir)!;
    expect(owner.started_as).toBe("daemon");
    expect(add.stdout).toContain(`Jobs run in agent-cron's background owner (pid ${owner.pid}`);
    const s = await TestServer.start({ dataDir: dir, env: CLIENT_ENV });
    cleanup.push(() => s.close());
    expect(ownerOf(dir)!.pid).toBe(owner.pid);
    expect((await s.tool("list_crons")).jobs.map((j: { name: string }) => j.name)).toEqual(["from-cli"]);
  });
});
