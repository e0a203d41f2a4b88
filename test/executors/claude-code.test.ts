import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ClaudeCodeExecutor } from "../../src/executors/claude-code.js";
import { ExecutorConfigSchema, type ClaudeCodeExecutorConfig } from "../../src/config.js";
import { fixture, isAlive, makeRequest, processesWithEnv, readInvocations, waitFor } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-claude-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const serverEnv = {
  PATH: process.env.PATH,
  HOME: "/home/server",
  LANG: "C.UTF-8",
  SECRET: "server-secret",
  AGENT_CRON_TOKEN: "http-token",
  OPENAI_API_KEY: "sk-openai",
  ANTHROPIC_API_KEY: "sk-ant-test",
  CLAUDE_CONFIG_DIR: "/home/server/.claude-alt",
  CLAUDECODE: "1",
  CLAUDE_CODE_ENTRYPOINT: "cli",
};

let recordFile: string;
let home: string;
beforeEach(() => {
  home = mkdtempSync(path.join(tmp, "home-"));
  recordFile = path.join(home, "invocations.jsonl");
});

function executor(over: Record<string, unknown> = {}) {
  const cfg = ExecutorConfigSchema.parse({
    type: "claude-code",
    bin: fixture("fake-claude.mjs"),
    env: { FAKE_AGENT_RECORD: recordFile, HOME: home, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1" },
    ...over,
  }) as ClaudeCodeExecutorConfig;
  return new ClaudeCodeExecutor("claude", cfg, { serverEnv, envAllow: [], killGraceMs: 300 });
}

const request = (over: Parameters<typeof makeRequest>[1] = {}) => makeRequest(tmp, over);
const schema = { type: "object", properties: { answer: { type: "number" } }, required: ["answer"] };

describe("ClaudeCodeExecutor against the fake claude", () => {
  it("runs claude -p with the prompt on stdin and a fresh --session-id, and reads result, usage and cost", async () => {
    const req = request({ prompt: "Summarise the news" });
    const r = await executor().execute(req);
    expect(r).toMatchObject({
      status: "completed",
      exitCode: 0,
      error: null,
      output: "fake answer to: Summarise the news",
      sessionId: req.sessionId,
      usage: { input_tokens: 150, output_tokens: 50, cost_usd: 0.0123 },
    });
    const [call] = readInvocations(recordFile);
    expect(call.argv).toEqual(["-p", "--output-format", "json", "--session-id", req.sessionId]);
    expect(call.stdin).toBe("Summarise the news");
    expect(call.cwd).toBe(tmp);
  });

  it("gives the child only the allow-listed environment, its auth variables and its env map", async () => {
    const req = request();
    await executor().execute(req);
    const [{ env }] = readInvocations(recordFile);
    expect(env).toEqual({
      PATH: process.env.PATH,
      HOME: home,
      LANG: "C.UTF-8",
      ANTHROPIC_API_KEY: "sk-ant-test",
      CLAUDE_CONFIG_DIR: "/home/server/.claude-alt",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      FAKE_AGENT_RECORD: recordFile,
      AGENT_CRON_RUN_ID: req.runId,
      AGENT_CRON_JOB_ID: "job-1",
      AGENT_CRON_SESSION_ID: req.sessionId,
      AGENT_CRON_SCHEDULED_FOR: "2026-12-01T09:00:00.000+01:00",
    });
  });

  it("passes every configured option, the schema, the budget and config args, in order", async () => {
    const ex = executor({
      model: "sonnet",
      permission_mode: "acceptEdits",
      allowed_tools: ["Read", "Bash(git log:*)"],
      disallowed_tools: ["WebFetch"],
      append_system_prompt: "Be brief.",
      max_turns: 7,
      mcp_config: "/etc/agent-cron/mcp.json",
      args: ["--add-dir", "/srv/shared"],
    });
    const req = request({ prompt: "MODE=structured", outputFormat: "structured", outputSchema: schema, maxCostUsd: 0.5 });
    const r = await ex.execute(req);
    expect(r.status).toBe("completed");
    expect(readInvocations(recordFile)[0].argv).toEqual([
      "-p", "--output-format", "json",
      "--session-id", req.sessionId,
      "--model", "sonnet",
      "--permission-mode", "acceptEdits",
      "--allowedTools", "Read,Bash(git log:*)",
      "--disallowedTools", "WebFetch",
      "--append-system-prompt", "Be brief.",
      "--max-turns", "7",
      "--mcp-config", "/etc/agent-cron/mcp.json",
      "--json-schema", JSON.stringify(schema),
      "--max-budget-usd", "0.5",
      "--add-dir", "/srv/shared",
    ]);
  });

  it("uses a fresh session id per run and --resume for a persistent job's later runs", async () => {
    const ex = executor();
    const first = request({ session: "persistent" });
    const second = request({ session: "persistent", sessionId: first.sessionId, resume: true });
    const other = request();
    expect((await ex.execute(first)).status).toBe("completed");
    expect(await ex.execute(second)).toMatchObject({ status: "completed", sessionId: first.sessionId });
    expect((await ex.execute(other)).status).toBe("completed");
    const calls = readInvocations(recordFile).map((c) => c.argv.slice(3, 5));
    expect(calls).toEqual([
      ["--session-id", first.sessionId],
      ["--resume", first.sessionId],
      ["--session-id", other.sessionId],
    ]);
    expect(other.sessionId).not.toBe(first.sessionId);
  });

  it("retries of one run never reuse a created session id, which the CLI would refuse", async () => {
    const ex = executor();
    const req = request({ prompt: "MODE=is-error" });
    const a = await ex.execute(req);
    const b = await ex.execute(req);
    expect(a.status).toBe("failed");
    expect(b.error).not.toContain("already in use");
    expect(b.sessionId).not.toBe(a.sessionId);
    expect(a.sessionId).toBe(req.sessionId);
  });

  it("fails a resumed session the CLI does not know, with its message", async () => {
    const r = await executor().execute(request({ resume: true, sessionId: randomUUID() }));
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/exited with code 1: No conversation found with session ID/);
  });

  it("returns structured_output as the parsed answer of a structured job", async () => {
    const r = await executor().execute(request({ prompt: "MODE=structured", outputFormat: "structured", outputSchema: schema }));
    expect(r).toMatchObject({ status: "completed", structured: { answer: 42, schema_keys: ["answer"] } });
    expect(JSON.parse(r.output)).toEqual({ answer: 42, schema_keys: ["answer"] });
  });

  it("fails a structured job whose result has structured_output null, though the CLI says success", async () => {
    const r = await executor().execute(request({ prompt: "MODE=structured-null", outputFormat: "structured", outputSchema: schema }));
    expect(r.status).toBe("failed");
    expect(r.exitCode).toBe(0);
    expect(r.error).toContain("no structured_output");
    expect(r.error).toContain("Here is my answer in prose.");
    expect(r.usage).toMatchObject({ cost_usd: 0.0123 });
  });

  it("fails on is_error even when the CLI exits 0, with the error from the JSON", async () => {
    const r = await executor().execute(request({ prompt: "MODE=is-error" }));
    expect(r).toMatchObject({ status: "failed", exitCode: 0 });
    expect(r.error).toBe("Claude Code reported an error (exit code 0, after 1 turn): API Error: 500 Internal server error");
  });

  it("fails on error_max_turns (exit 1) with the subtype and the errors list", async () => {
    const r = await executor().execute(request({ prompt: "MODE=max-turns" }));
    expect(r).toMatchObject({ status: "failed", exitCode: 1 });
    expect(r.error).toBe("Claude Code reported error_max_turns (exit code 1, after 3 turns): Reached maximum number of turns (3)");
  });

  it("passes max_cost_usd as --max-budget-usd and reports error_max_budget_usd with its cost", async () => {
    const r = await executor().execute(request({ maxCostUsd: 0.001 }));
    expect(r.status).toBe("failed");
    expect(r.error).toContain("error_max_budget_usd");
    expect(r.error).toContain("Reached maximum budget ($0.001)");
    // The CLI zeroes `usage` here; the tokens come from modelUsage.
    expect(r.usage).toEqual({ input_tokens: 100, output_tokens: 50, cost_usd: 0.0123 });
  });

  it("fails when stdout is not the result JSON, even with exit 0", async () => {
    const r = await executor().execute(request({ prompt: "MODE=garbage" }));
    expect(r).toMatchObject({ status: "failed", exitCode: 0, usage: null });
    expect(r.error).toContain("printed no result JSON");
    expect(r.raw).toContain("this is not JSON");
  });

  it("reads the last line of stream-json output, adding --verbose", async () => {
    const r = await executor({ output_format: "stream-json" }).execute(request({ prompt: "stream me" }));
    expect(r).toMatchObject({ status: "completed", output: "fake answer to: stream me" });
    expect(readInvocations(recordFile)[0].argv.slice(0, 4)).toEqual(["-p", "--output-format", "stream-json", "--verbose"]);
  });

  it("kills a hanging claude and its grandchild at the timeout", async () => {
    const req = request({ prompt: "MODE=hang", timeoutMs: 500 });
    const started = Date.now();
    const r = await executor().execute(req);
    expect(r.status).toBe("timed_out");
    expect(r.error).toBe("Timed out after 0.5s; the process group was killed.");
    expect(Date.now() - started).toBeLessThan(3000);
    const [call] = readInvocations(recordFile);
    expect(await waitFor(() => !isAlive(call.grandchild!), 1000)).toBe(true);
    expect(processesWithEnv("AGENT_CRON_RUN_ID", req.runId)).toEqual([]);
  });

  it("is canceled through the request's signal", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await executor().execute(request({ prompt: "MODE=hang", signal: ac.signal }));
    expect(r.status).toBe("canceled");
  });

  it("names the missing binary and the config key to set", async () => {
    const r = await executor({ bin: "agent-cron-no-such-claude" }).execute(request());
    expect(r.status).toBe("failed");
    expect(r.error).toContain('"agent-cron-no-such-claude"');
    expect(r.error).toContain("executors.claude.bin");
  });
});
