/**
 * The stdio relay (src/mcp/relay.ts): a client's `agent-cron serve` whose data dir is owned by a
 * server of its version, with its config, lets that owner serve its MCP session and loads
 * nothing more; when the owner goes, it serves its client itself, mid-session.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Server, expireLock, makeDataDir, readOwner, removeDir, runCli, sleep, waitFor } from "../reliability/helpers.js";
import { TestServer } from "../helpers/server.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

const RELAYED = /The data dir's owner \(pid (\d+)\) serves this client/;

async function start(dir: string, name: string, env?: Record<string, string>): Promise<Server> {
  const s = await Server.start(dir, { name, env });
  cleanup.push(() => s.kill9());
  return s;
}

/** A data dir, its owner (a) and a second client's server (b), which relays to it. */
async function ownerAndRelay(): Promise<{ dir: string; a: Server; b: Server }> {
  const dir = makeDataDir({}, "agent-cron-relay-");
  cleanup.push(() => removeDir(dir));
  const a = await start(dir, "window-a");
  const b = await start(dir, "window-b");
  expect(RELAYED.exec(b.stderr())?.[1]).toBe(String(a.pid));
  return { dir, a, b };
}

const updatesOf = (s: Server, uri: string, after = 0) =>
  s.notifications.filter((n) => n.method === "notifications/resources/updated" && n.params.uri === uri && n.at >= after).length;

describe("a stdio server whose data dir has an owner of its version (the relay)", () => {
  it("lets the owner serve its client: the client's calls, its name on its jobs, and changes made elsewhere as notifications", async () => {
    const { dir, a, b } = await ownerAndRelay();
    expect(a.stderr()).not.toMatch(RELAYED);
    expect(readOwner(dir)?.pid).toBe(a.pid);

    await b.client.subscribeResource({ uri: "cron://jobs" });
    const added = await b.tool("add_cron", { name: "nightly", schedule: "@daily", prompt: "check the logs" });
    expect(added.created).toBe(true);
    expect((await a.tool("get_cron", { job: "nightly" })).job.created_by).toBe("window-b/1.0.0");
    // Where the jobs run is said as to another client's server, not as to the owner's own client.
    expect(added.summary).toContain(`Runs only while another client's agent-cron server (pid ${a.pid}) is open.`);

    const before = Date.now();
    await a.tool("add_cron", { name: "weekly", schedule: "@weekly", prompt: "p" });
    await waitFor(() => updatesOf(b, "cron://jobs", before) > 0, { timeout: 10_000, what: "b to hear of a's change" });
    const names = (await b.tool("list_crons")).jobs.map((j: { name: string }) => j.name).sort();
    expect(names).toEqual(["nightly", "weekly"]);
  }, 60_000);

  it("asks its own client when approval is 'ask', and the accept it gets schedules the job", async () => {
    const dir = makeDataDir({ approval: "ask" }, "agent-cron-relay-");
    cleanup.push(() => removeDir(dir));
    await start(dir, "window-a");
    const asked: string[] = [];
    const b = await TestServer.start({
      dataDir: dir,
      clientName: "window-b",
      onElicit: ({ message }) => {
        asked.push(message);
        return { action: "accept", content: { approve: true } };
      },
    });
    cleanup.push(() => b.close());
    expect(b.stderr()).toMatch(RELAYED);
    const added = await b.tool("add_cron", { name: "asked", schedule: "@daily", prompt: "summarise the inbox" });
    expect(asked).toHaveLength(1);
    expect(asked[0]).toContain("summarise the inbox");
    expect(added.job.state).toBe("active");
  }, 60_000);

  it("serves its client itself once the owner is killed: calls go on, and its subscription still hears of changes", async () => {
    const { dir, a, b } = await ownerAndRelay();
    await b.client.subscribeResource({ uri: "cron://jobs" });
    await b.tool("add_cron", { name: "before", schedule: "@daily", prompt: "p" });

    await a.kill9();
    expireLock(dir);
    const list = await b.tool("list_crons");
    expect(list.jobs.map((j: { name: string }) => j.name)).toEqual(["before"]);
    await waitFor(() => readOwner(dir)?.pid === b.pid, { timeout: 15_000, what: "b to own the data dir" });

    const after = Date.now();
    const cli = await runCli(["add", "--data-dir", dir, "--schedule", "@weekly", "--prompt", "p", "--name", "from-cli"], { timeout: 30_000 });
    expect(cli.code).toBe(0);
    await waitFor(() => updatesOf(b, "cron://jobs", after) > 0, { timeout: 10_000, what: "b's subscription to hear of the CLI's change" });
    expect((await b.tool("add_cron", { name: "after", schedule: "@daily", prompt: "p" })).created).toBe(true);
  }, 90_000);

  it("answers every call while the owner's client quits and the relay takes the data dir over", async () => {
    const { dir, a, b } = await ownerAndRelay();
    await b.tool("add_cron", { name: "kept", schedule: "@daily", prompt: "p" });

    let stop = false;
    const answers: number[] = [];
    const reading = (async () => {
      while (!stop) {
        answers.push((await b.tool("list_crons")).jobs.length);
        await sleep(20);
      }
    })();
    const t0 = Date.now();
    await a.close();
    await waitFor(() => readOwner(dir)?.pid === b.pid, { timeout: 15_000, what: "b to own the data dir" });
    // SPEC §9: another takes over within 2 s when the owner exits.
    expect(Date.now() - t0).toBeLessThan(2_000);
    const seen = answers.length;
    await waitFor(() => answers.length >= seen + 5, { timeout: 10_000, what: "more answers from b as the owner" });
    stop = true;
    await reading;
    expect(new Set(answers)).toEqual(new Set([1]));
    expect(b.stderr()).toContain("serves its client itself now");
  }, 60_000);

  it("relays to an owner whose config was edited since it started, once the owner has reloaded it", async () => {
    const dir = makeDataDir({}, "agent-cron-relay-");
    cleanup.push(() => removeDir(dir));
    const a = await start(dir, "window-a");
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), max_concurrent: 3 }, null, 2));
    await waitFor(() => a.stderr().includes("Config reloaded"), { timeout: 10_000, what: "the owner to reload its config" });
    const b = await start(dir, "window-b");
    expect(RELAYED.exec(b.stderr())?.[1]).toBe(String(a.pid));
  }, 60_000);

  it("serves its client itself when its config is not the owner's", async () => {
    const dir = makeDataDir({}, "agent-cron-relay-");
    cleanup.push(() => removeDir(dir));
    await start(dir, "window-a");
    const other = path.join(dir, "other-config.json");
    writeFileSync(other, JSON.stringify({ timezone: "UTC", always_on: "client" }));
    const b = await start(dir, "window-b", { AGENT_CRON_CONFIG: other });
    expect(b.stderr()).not.toMatch(RELAYED);
    expect((await b.tool("add_cron", { name: "x", schedule: "@daily", prompt: "p", executor: "echo" })).created).toBe(true);
  }, 60_000);
});
