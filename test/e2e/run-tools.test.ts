/**
 * Tools inside a run (SPEC §21), through the built server: the fake agents read the MCP
 * configuration they are given (claude's --mcp-config, codex's -c mcp_servers…), start
 * `agent-cron run-tools` with the SDK's stdio client and call report_nothing, remember,
 * ask_person, pause_me and reschedule_me; deliveries go to a real loopback receiver. A token
 * replayed after its run, or at another run's socket, does nothing.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatReceivers } from "../helpers/chat-receivers.js";
import { CLI, TestServer, fixture, makeDataDir, removeDir, runCli, sleep, waitFor, type Structured } from "../helpers/server.js";

const YEARLY = "0 0 1 1 *";
const servers: TestServer[] = [];
const dirs: string[] = [];
let rx: ChatReceivers;
beforeAll(async () => {
  rx = await ChatReceivers.start();
});
afterAll(async () => {
  await rx.close();
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close().catch(() => {});
  for (const d of dirs.splice(0)) await removeDir(d);
});

/** A server whose claude and codex are the fake CLIs, recording each invocation, with a slack channel on loopback. */
async function start(slackPath: string, config: Record<string, unknown> = {}): Promise<{ s: TestServer; record: string }> {
  const scratch = makeDataDir({ noConfig: true });
  dirs.push(scratch);
  const record = path.join(scratch, "agents.jsonl");
  const s = await TestServer.start({
    config: {
      env_allow: ["FAKE_AGENT_RECORD"],
      executors: {
        claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), sandbox: "none" },
        codex: { type: "codex", bin: fixture("fake-codex.mjs"), sandbox: "none" },
      },
      channels: { team: { type: "slack", url_env: "SLACK_URL" } },
      ...config,
    },
    env: { FAKE_AGENT_RECORD: record, SLACK_URL: rx.url(slackPath) },
  });
  servers.push(s);
  dirs.push(s.dataDir);
  return { s, record };
}

function invocations(record: string): Structured[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

const tool = (name: string, args: Record<string, unknown>) => `TOOL ${name} ${JSON.stringify(args)}`;

describe("run tools", () => {
  it("report_nothing: the run completes quiet and is not delivered; with deliver_on always it is, as nothing to report", async () => {
    const { s, record } = await start("/slack/quiet");
    await s.addJob({
      name: "watch",
      schedule: YEARLY,
      executor: "claude",
      deliver_to: ["team"],
      prompt: `Look for news.\n${tool("report_nothing", { reason: "no new issues since yesterday" })}`,
    });
    const { run } = await s.tool("run_now", { job: "watch", wait: true });
    expect(run.status).toBe("completed");
    expect(run.outcome).toBe("quiet");
    expect(run.outcome_note).toBe("no new issues since yesterday");
    const [call] = invocations(record);
    expect(call.run_tools.listed.sort()).toEqual(["ask_person", "remember", "report_nothing"]);
    expect(call.run_tools.results[0]).toMatchObject({ name: "report_nothing", isError: false });
    expect(call.run_tools.results[0].structured.summary).toContain("nothing to report");
    // The token is in the MCP server's config only, never in the agent's own environment.
    expect(Object.keys(call.env).filter((k) => k.startsWith("AGENT_CRON_RUN_TOOLS"))).toEqual([]);
    expect(call.run_tools.server.env.AGENT_CRON_RUN_TOOLS_TOKEN).toMatch(/^[\w-]{40,}$/);
    const [row] = await s.runRows("watch");
    expect(row).toMatchObject({ status: "completed", outcome: "quiet", outcome_note: "no new issues since yesterday" });
    expect(row.delivery).toBeUndefined();
    const shown = await s.call("get_run", { run: run.id });
    expect((shown.structuredContent as Structured).summary).toMatch(/completed in [\d.]+ m?s, quiet: no new issues since yesterday\.$/);
    await sleep(500);
    expect(rx.at("/slack/quiet")).toEqual([]);

    await s.tool("update_cron", { job: "watch", deliver_on: ["always"] });
    await s.tool("run_now", { job: "watch", wait: true });
    const [sent] = await waitFor(() => rx.at("/slack/quiet").length === 1 && rx.at("/slack/quiet"), { what: "the quiet run delivered under always" });
    expect(sent.body).toContain("watch: nothing to report");
  });

  it("remember: notes reach the next runs under Notes from earlier runs:, kept within 8 KiB, oldest dropped first", async () => {
    const { s, record } = await start("/slack/remember");
    const big = "x".repeat(5000);
    await s.addJob({ name: "tracker", schedule: YEARLY, executor: "claude", prompt: `Track.\n${tool("remember", { note: "last seen issue: #4812" })}` });
    await s.tool("run_now", { job: "tracker", wait: true });
    await s.tool("update_cron", { job: "tracker", prompt: `Track again.\n${tool("remember", { note: big })}` });
    await s.tool("run_now", { job: "tracker", wait: true });
    const calls = invocations(record);
    expect(calls[1].stdin).toMatch(/Notes from earlier runs:\n- \S+: last seen issue: #4812/);
    expect((await s.job("tracker")).notes.map((n: Structured) => n.text)).toEqual(["last seen issue: #4812", big]);
    // A third note that does not fit with the others pushes the oldest out.
    await s.tool("update_cron", { job: "tracker", prompt: `Track once more.\n${tool("remember", { note: "y".repeat(4000) })}` });
    await s.tool("run_now", { job: "tracker", wait: true });
    const notes = (await s.job("tracker")).notes.map((n: Structured) => n.text.slice(0, 5));
    expect(notes).toEqual(["yyyyy"]);
    expect(invocations(record)[2].stdin).toContain(`: ${big}`);
  });

  it("ask_person: the run ends needs_attention and the question is delivered", async () => {
    const { s } = await start("/slack/ask");
    await s.addJob({
      name: "deployer",
      schedule: YEARLY,
      executor: "claude",
      deliver_to: ["team"],
      deliver_on: ["failed"],
      prompt: `Deploy.\n${tool("ask_person", { question: "The deploy key expired; should I rotate it?" })}`,
    });
    const { run } = await s.tool("run_now", { job: "deployer", wait: true });
    expect(run).toMatchObject({ status: "completed", outcome: "needs_attention", outcome_note: "The deploy key expired; should I rotate it?" });
    const [sent] = await waitFor(() => rx.at("/slack/ask").length === 1 && rx.at("/slack/ask"), { what: "the question delivered" });
    expect(sent.body).toContain("deployer needs attention: The deploy key expired; should I rotate it?");
    const { summary } = await s.tool("list_runs", { job: "deployer" });
    expect(summary).toContain("deployer needs_attention: The deploy key expired");
  });

  it("pause_me and reschedule_me only with self_service; under approval a reschedule waits for a person", { timeout: 90_000 }, async () => {
    const { s, record } = await start("/slack/self", { approval: "required" });
    await s.addJob({ name: "plain", schedule: YEARLY, executor: "claude", prompt: `x\n${tool("pause_me", { reason: "done" })}` });
    // Under approval "required" a job from an MCP client waits; approve it as a person would.
    const approve = async (name: string) => {
      const r = await runCli(["approve", name, "--data-dir", s.dataDir]);
      expect(r.code, r.stderr).toBe(0);
    };
    await approve("plain");
    await s.tool("run_now", { job: "plain", wait: true });
    const plainCall = invocations(record)[0];
    expect(plainCall.run_tools.listed).not.toContain("pause_me");
    expect(plainCall.run_tools.results[0]).toMatchObject({ isError: true });
    expect((await s.job("plain")).state).toBe("active");

    await s.addJob({
      name: "selfish",
      schedule: YEARLY,
      executor: "claude",
      self_service: true,
      prompt: `x\n${tool("reschedule_me", { schedule: "0 9 * * 1" })}`,
    });
    await approve("selfish");
    await s.tool("run_now", { job: "selfish", wait: true });
    const selfCall = invocations(record)[1];
    expect(selfCall.run_tools.listed).toEqual(expect.arrayContaining(["pause_me", "reschedule_me"]));
    expect(selfCall.run_tools.results[0]).toMatchObject({ isError: false });
    const after = await s.job("selfish");
    expect(after.schedule).toBe("0 9 * * 1");
    expect(after.state).toBe("pending_approval");

    await approve("selfish");
    await s.tool("update_cron", { job: "selfish", prompt: `x\n${tool("pause_me", { reason: "the project was archived" })}` });
    await approve("selfish");
    await s.tool("run_now", { job: "selfish", wait: true });
    const paused = await s.job("selfish");
    expect(paused.state).toBe("paused");
    expect(paused.last_error).toContain("the project was archived");
  });

  it("codex runs get the same tools through -c mcp_servers", async () => {
    const { s, record } = await start("/slack/codex");
    await s.addJob({ name: "cx", schedule: YEARLY, executor: "codex", prompt: `Check.\n${tool("report_nothing", { reason: "all green" })}` });
    const { run } = await s.tool("run_now", { job: "cx", wait: true });
    expect(run).toMatchObject({ status: "completed", outcome: "quiet", outcome_note: "all green" });
    expect(invocations(record)[0].run_tools.results[0]).toMatchObject({ name: "report_nothing", isError: false });
  });

  it("a token replayed after its run, or at another run's socket, is refused and changes nothing", async () => {
    const { s, record } = await start("/slack/replay");
    await s.addJob({ name: "first", schedule: YEARLY, executor: "claude", prompt: `one\n${tool("remember", { note: "from first" })}` });
    await s.addJob({ name: "second", schedule: YEARLY, executor: "claude", prompt: `two\nHOLD 15000` });
    await s.tool("run_now", { job: "first", wait: true });
    const firstServer = invocations(record)[0].run_tools.server;

    // After its run: the same command and environment the agent CLI was given.
    const replay = await callTool(firstServer, "remember", { note: "replayed" });
    expect(replay.isError).toBe(true);
    expect((await s.job("first")).notes.map((n: Structured) => n.text)).toEqual(["from first"]);

    // At another run's socket while that run is going: the first run's token is not its token.
    const { run: held } = await s.tool("run_now", { job: "second" });
    const holding = await waitFor(() => invocations(record).find((c) => c.holding), { what: "the second run to hold with its tools", timeout: 15_000 });
    const socket = holding.run_tools.server.env.AGENT_CRON_RUN_TOOLS_SOCKET;
    expect(holding.run_tools.server.env.AGENT_CRON_RUN_TOOLS_TOKEN).not.toBe(firstServer.env.AGENT_CRON_RUN_TOOLS_TOKEN);
    const crossed = await callTool({ ...firstServer, env: { ...firstServer.env, AGENT_CRON_RUN_TOOLS_SOCKET: socket } }, "report_nothing", {
      reason: "not mine",
    });
    expect(crossed.isError).toBe(true);
    expect(crossed.text).toContain("not valid for this run");
    await s.tool("cancel_run", { run: held.id });
    const ended = await s.waitForRunEnd("second", held.id);
    expect(ended.outcome).toBeNull();
  });
});

/** Starts `agent-cron run-tools` as an agent CLI would and calls one tool. */
async function callTool(server: { command: string; args: string[]; env: Record<string, string> }, name: string, args: Record<string, unknown>) {
  expect(server.args[0]).toBe(CLI);
  const client = new Client({ name: "replay", version: "1.0.0" });
  await client.connect(
    new StdioClientTransport({ command: server.command, args: server.args, env: { PATH: process.env.PATH ?? "", ...server.env }, stderr: "ignore" }),
  );
  try {
    const r = await client.callTool({ name, arguments: args });
    return { isError: r.isError ?? false, text: (r.content as { text?: string }[])[0]?.text ?? "" };
  } finally {
    await client.close();
  }
}
