/**
 * Chained jobs and gate checks (SPEC §21), through the built server: a run of an upstream
 * job starts one run of each job chained after it, with its output; cycles are refused; a
 * kill -9 between the upstream's final record and the downstream start loses nothing and
 * doubles nothing; a gate check decides whether an agent starts at all.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TestServer, fixture, makeDataDir, removeDir, runsOnDisk, sleep, waitFor } from "../helpers/server.js";

const YEARLY = "0 0 1 1 *";
const NODE = process.execPath;
const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close().catch(() => {});
  for (const d of dirs.splice(0)) await removeDir(d);
});

async function start(opts: Parameters<typeof TestServer.start>[0] = {}): Promise<TestServer> {
  const s = await TestServer.start(opts);
  servers.push(s);
  if (!opts.dataDir) dirs.push(s.dataDir);
  return s;
}

describe("after: chained jobs", () => {
  it("each completed run of the upstream starts one run of the chained job, with the upstream output in its prompt", async () => {
    const s = await start();
    const up = await s.addJob({ name: "fetch", schedule: YEARLY, prompt: "upstream said: 42 new issues", executor: "echo" });
    const down = await s.addJob({ name: "summarize", schedule: YEARLY, prompt: "Summarize what fetch found.", executor: "echo", after: { job: "fetch" } });
    expect(down.after).toEqual({ job: up.id, on: "completed" });

    const { run: first } = await s.tool("run_now", { job: "fetch", wait: true });
    const chained = await s.waitForRuns("summarize", (runs) => runs.length === 1 && runs[0].status !== "running" && runs[0]);
    expect(chained.trigger).toBe("after");
    expect(chained.after_run).toBe(first.id);
    expect(chained.status).toBe("completed");
    expect(chained.response).toContain("Summarize what fetch found.");
    expect(chained.response).toContain("Output of fetch:\nupstream said: 42 new issues");

    // A second upstream run: a second chained run, naming it.
    const { run: second } = await s.tool("run_now", { job: "fetch", wait: true });
    const both = await s.waitForRuns("summarize", (runs) => runs.length === 2 && runs.every((r) => r.status !== "running") && runs);
    expect(both.map((r) => r.after_run).sort()).toEqual([first.id, second.id].sort());

    // list_runs rows say which upstream run started a chained one.
    const rows = await s.runRows("summarize");
    expect(rows.every((r) => r.trigger === "after" && typeof r.after_run === "string")).toBe(true);
  });

  it('on: "failed" starts only after a failed upstream run; a completed one starts nothing', async () => {
    const s = await start();
    await s.addJob({ name: "flaky-up", schedule: YEARLY, prompt: "x", executor: "fail", retries: 0 });
    await s.addJob({ name: "ok-up", schedule: YEARLY, prompt: "fine", executor: "echo" });
    await s.addJob({ name: "on-fail", schedule: YEARLY, prompt: "Investigate.", executor: "echo", after: { job: "flaky-up", on: "failed" } });
    await s.addJob({ name: "on-fail-ok", schedule: YEARLY, prompt: "Never.", executor: "echo", after: { job: "ok-up", on: "failed" } });
    const { run } = await s.tool("run_now", { job: "flaky-up", wait: true });
    expect(run.status).toBe("failed");
    await s.tool("run_now", { job: "ok-up", wait: true });
    const [chained] = await s.waitForRuns("on-fail", (runs) => runs.length === 1 && runs[0].status === "completed" && runs);
    expect(chained.response).toContain("Output of flaky-up:");
    expect(await s.runs("on-fail-ok")).toEqual([]);
  });

  it("refuses a cycle at add and at update, naming it, and stores nothing", async () => {
    const s = await start();
    await s.addJob({ name: "a", schedule: YEARLY, prompt: "a", executor: "echo" });
    await s.addJob({ name: "b", schedule: YEARLY, prompt: "b", executor: "echo", after: { job: "a" } });
    await s.addJob({ name: "c", schedule: YEARLY, prompt: "c", executor: "echo", after: { job: "b" } });
    const err = await s.toolError("update_cron", { job: "a", after: { job: "c" } });
    expect(err).toMatch(/^update_cron failed: after would make a cycle: a → c → b → a/);
    expect((await s.job("a")).after).toBeNull();
    const self = await s.toolError("update_cron", { job: "b", after: { job: "b" } });
    expect(self).toContain("b → b");
    const unknown = await s.toolError("add_cron", { name: "d", schedule: YEARLY, prompt: "d", executor: "echo", after: { job: "nope" } });
    expect(unknown).toContain('after names job "nope", which does not exist');
    expect((await s.tool("list_crons", {})).jobs.map((j: { name: string }) => j.name).sort()).toEqual(["a", "b", "c"]);
  });

  it("a kill -9 between the upstream's final record and the downstream start: the restart starts it, once", async () => {
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const s = await start({ dataDir, env: { AGENT_CRON_FAULT: "after-chain-intent" } });
    const up = await s.addJob({ name: "up", schedule: YEARLY, prompt: "the upstream answer", executor: "echo" });
    const down = await s.addJob({ name: "down", schedule: YEARLY, prompt: "Go on.", executor: "echo", after: { job: "up" } });
    const pid = s.pid;
    await s.call("run_now", { job: "up" });
    // The server kills itself (SIGKILL) right after the upstream's final record is written.
    await waitFor(() => s.transport.pid === null || !isAlive(pid), { timeout: 15_000, what: "the server to die at the fault point" });
    const upRuns = runsOnDisk(dataDir, up.id);
    expect(upRuns).toHaveLength(1);
    expect(upRuns[0].status).toBe("completed");
    expect(upRuns[0].chain_due).toEqual([down.id]);
    expect(runsOnDisk(dataDir, down.id)).toEqual([]);

    const again = await start({ dataDir });
    const [chained] = await again.waitForRuns("down", (runs) => runs.length === 1 && runs[0].status === "completed" && runs);
    expect(chained.after_run).toBe(upRuns[0].id);
    expect(chained.response).toContain("Output of up:\nthe upstream answer");
    await waitFor(() => runsOnDisk(dataDir, up.id)[0]?.chain_due?.length === 0, { what: "chain_due to be emptied" });
    await again.close();
    servers.splice(servers.indexOf(again), 1);

    // A third start finds nothing owed: still one chained run.
    const third = await start({ dataDir });
    await third.tool("list_crons", {});
    expect(runsOnDisk(dataDir, down.id)).toHaveLength(1);
  });

  it("a kill -9 after the chained run is recorded, before chain_due is emptied: the restart records it interrupted and starts no second one", async () => {
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const s = await start({ dataDir, env: { AGENT_CRON_FAULT: "after-chain-started" } });
    const up = await s.addJob({ name: "up", schedule: YEARLY, prompt: "the upstream answer", executor: "echo" });
    // overlap allow: only the run's id keeps a second start out.
    const down = await s.addJob({ name: "down", schedule: YEARLY, prompt: "Go on.", executor: "echo", after: { job: "up" }, overlap: "allow" });
    const pid = s.pid;
    await s.call("run_now", { job: "up" });
    await waitFor(() => s.transport.pid === null || !isAlive(pid), { timeout: 15_000, what: "the server to die at the fault point" });
    const [upRun] = runsOnDisk(dataDir, up.id);
    expect(upRun.chain_due).toEqual([down.id]);
    const [recorded] = runsOnDisk(dataDir, down.id);
    expect(recorded).toMatchObject({ status: "running", after_run: upRun.id });

    const again = await start({ dataDir });
    await waitFor(() => runsOnDisk(dataDir, up.id)[0]?.chain_due?.length === 0, { what: "chain_due to be emptied" });
    const runs = await again.runs("down");
    expect(runs.map((r) => [r.id, r.status])).toEqual([[recorded.id, "interrupted"]]);
  });

  it("a chained run queued behind its job's run (overlap: queue_one) stays owed until it starts: a kill -9 meanwhile loses nothing", async () => {
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const s = await start({ dataDir });
    const up = await s.addJob({ name: "up", schedule: YEARLY, prompt: "the upstream answer", executor: "echo" });
    // The sleep agent sleeps `prompt` ms; a chained prompt (with the upstream's output) is no number: it ends at once.
    const down = await s.addJob({ name: "down", schedule: YEARLY, prompt: "60000", executor: "sleep", after: { job: "up" }, overlap: "queue_one" });
    await s.call("run_now", { job: "down" });
    await s.waitForRuns("down", (runs) => runs.length === 1 && runs[0].status === "running");
    const upRun = (await s.tool("run_now", { job: "up", wait: true })).run as { id: string; status: string };
    expect(upRun.status).toBe("completed");
    // Before the fix the upstream's chain_due was emptied as soon as the chained run was queued in memory.
    await sleep(1500);
    expect(runsOnDisk(dataDir, up.id)[0].chain_due).toEqual([down.id]);
    const pid = s.pid;
    process.kill(pid, "SIGKILL");
    await waitFor(() => !isAlive(pid), { what: "the server to die" });

    const again = await start({ dataDir });
    const runs = await again.waitForRuns("down", (rs) => rs.length === 2 && rs.every((r) => r.status !== "running") && rs);
    const chained = runs.filter((r) => r.trigger === "after");
    expect(chained).toHaveLength(1);
    expect(chained[0]).toMatchObject({ status: "completed", after_run: upRun.id });
    expect(runs.find((r) => r.trigger === "manual")?.status).toBe("interrupted");
    await waitFor(() => runsOnDisk(dataDir, up.id)[0]?.chain_due?.length === 0, { what: "chain_due to be emptied" });
  });

  it("a chained run queued behind its job's run starts when that run ends, once, and its upstream then owes nothing", async () => {
    const s = await start();
    const up = await s.addJob({ name: "up", schedule: YEARLY, prompt: "the upstream answer", executor: "echo" });
    await s.addJob({ name: "down", schedule: YEARLY, prompt: "1500", executor: "sleep", after: { job: "up" }, overlap: "queue_one" });
    await s.call("run_now", { job: "down" });
    await s.waitForRuns("down", (runs) => runs.length === 1 && runs[0].status === "running");
    const upRun = (await s.tool("run_now", { job: "up", wait: true })).run as { id: string };
    const runs = await s.waitForRuns("down", (rs) => rs.length === 2 && rs.every((r) => r.status === "completed") && rs);
    expect(runs.filter((r) => r.trigger === "after").map((r) => r.after_run)).toEqual([upRun.id]);
    await waitFor(() => runsOnDisk(s.dataDir, up.id)[0]?.chain_due?.length === 0, { what: "chain_due to be emptied" });
  });
});

describe("check: gate checks", () => {
  function gateConfig(stateFile: string, timeout = 60) {
    return { checks: { feed: { program: NODE, args: [fixture("gate-check.mjs"), stateFile], timeout_seconds: timeout } } };
  }

  it("exit 1 records skipped with reason check: nothing to do and starts no agent; exit 0 runs it with the check's stdout", async () => {
    const probe = makeDataDir();
    dirs.push(probe);
    const state = path.join(probe, "feed.state");
    const record = path.join(probe, "agent.jsonl");
    const s = await start({
      config: {
        ...gateConfig(state),
        env_allow: ["FAKE_AGENT_RECORD"],
        executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), sandbox: "none" } },
      },
      env: { FAKE_AGENT_RECORD: record },
    });
    await s.addJob({ name: "watch", schedule: YEARLY, prompt: "Report new items.", executor: "claude", check: "feed" });

    const { run: quiet } = await s.tool("run_now", { job: "watch", wait: true });
    expect(quiet.status).toBe("skipped");
    expect(quiet.error).toBe("check: nothing to do");
    expect(existsSync(record)).toBe(false);
    const [full] = await s.runs("watch");
    expect(full.usage).toBeNull();
    expect(full.attempts).toBe(0);

    writeFileSync(state, "change:3 new items in the feed");
    const { run: busy } = await s.tool("run_now", { job: "watch", wait: true });
    expect(busy.status).toBe("completed");
    const seen = readFileSync(record, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(seen).toHaveLength(1);
    expect(seen[0].stdin).toContain("Check output:\n3 new items in the feed");
    // The check ran in the run's work dir.
    const calls = readFileSync(`${state}.calls`, "utf8").trim().split("\n");
    expect(calls).toHaveLength(2);
    expect(calls[1]).toBe(seen[0].cwd);
    const runs = await s.runs("watch");
    expect(runs.find((r) => r.id === busy.id)?.usage.output_tokens).toBeGreaterThan(0);
  });

  it("another exit code fails the occurrence with the check's stderr; a check past its timeout fails too", async () => {
    const probe = makeDataDir();
    dirs.push(probe);
    const state = path.join(probe, "feed.state");
    writeFileSync(state, "broken");
    const s = await start({ config: gateConfig(state, 1) });
    await s.addJob({ name: "watch", schedule: YEARLY, prompt: "x", executor: "echo", check: "feed", retries: 0 });
    const { run } = await s.tool("run_now", { job: "watch", wait: true });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/^The check "feed" exited with code 3 .*cannot reach the feed/);
    writeFileSync(state, "hang");
    const { run: hung } = await s.tool("run_now", { job: "watch", wait: true });
    expect(hung.status).toBe("failed");
    expect(hung.error).toContain('The check "feed" timed out after 1 s');
  });

  it("a check that the config does not define is refused, listing the configured ones", async () => {
    const s = await start({ config: gateConfig("/nonexistent") });
    const err = await s.toolError("add_cron", { schedule: YEARLY, prompt: "x", executor: "echo", check: "rm-rf" });
    expect(err).toContain('check names "rm-rf", which is not a configured check; the checks are: feed.');
    expect((await s.tool("list_crons", {})).jobs).toEqual([]);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the dashboard shows chained and gated runs plainly", () => {
  it("a chained run links its upstream run; a gated skip says check: nothing to do", async () => {
    const { HttpServer } = await import("../helpers/http.js");
    const { request } = await import("../helpers/dashboard.js");
    const server = await HttpServer.start({ config: { checks: { never: { program: NODE, args: ["-e", "process.exit(1)"] } } } });
    try {
      const client = await server.connect();
      const base = server.url.replace(/\/mcp$/, "");
      await client.tool("add_cron", { name: "up", schedule: YEARLY, prompt: "u", executor: "echo" });
      const { job: down } = await client.tool("add_cron", { name: "down", schedule: YEARLY, prompt: "d", executor: "echo", after: { job: "up" } });
      const { job: gated } = await client.tool("add_cron", { name: "gated", schedule: YEARLY, prompt: "g", executor: "echo", check: "never" });
      const { run: upRun } = await client.tool("run_now", { job: "up", wait: true });
      await client.tool("run_now", { job: "gated", wait: true });
      const downRun = await waitFor(
        async () => (await client.tool("list_runs", { job: "down" })).runs.find((r: { status: string }) => r.status === "completed"),
        { what: "the chained run" },
      );
      const jobPage = (await request(base, `/jobs/${down.id}`)).text;
      expect(jobPage).toContain(`after <a href="/runs/${upRun.id}">run ${upRun.id.slice(0, 8)}</a>`);
      expect((await request(base, `/runs/${downRun.id}`)).text).toContain(`after <a href="/runs/${upRun.id}">`);
      expect((await request(base, `/jobs/${gated.id}`)).text).toContain("check: nothing to do");
    } finally {
      await server.cleanup();
    }
  });
});
