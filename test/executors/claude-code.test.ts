import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ClaudeCodeExecutor, describeDenials, mcpServerProblems } from "../../src/executors/claude-code.js";
import { executorConfigSchema, type ClaudeCodeExecutorConfig } from "../../src/config.js";
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
  const cfg = executorConfigSchema().parse({
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

  it("stream-json: reads the result line even when the transcript before it is larger than max_output_bytes", async () => {
    const r = await executor({ output_format: "stream-json" }).execute(request({ prompt: "MODE=long-transcript read the logs", maxOutputBytes: 64 * 1024 }));
    expect(r.status, r.error ?? "").toBe("completed");
    expect(r.output).toBe("fake answer to: MODE=long-transcript read the logs");
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
      "-p",
      "--output-format",
      "json",
      "--session-id",
      req.sessionId,
      "--model",
      "sonnet",
      "--permission-mode",
      "acceptEdits",
      "--allowedTools",
      "Read,Bash(git log:*)",
      "--disallowedTools",
      "WebFetch",
      "--append-system-prompt",
      "Be brief.",
      "--max-turns",
      "7",
      "--mcp-config",
      "/etc/agent-cron/mcp.json",
      "--json-schema",
      JSON.stringify(schema),
      "--max-budget-usd",
      "0.5",
      "--add-dir",
      "/srv/shared",
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

describe("permission denials (SPEC §13)", () => {
  it("fails a success result that lists denials, not to be retried, naming each denied call", async () => {
    const r = await executor().execute(request({ prompt: "MODE=denied" }));
    expect(r).toMatchObject({ status: "failed", permanent: true, exitCode: 0, output: "" });
    expect(r.error).toBe("blocked: denied Bash(rm -rf build), Write(/etc/hosts)");
    expect(r.warnings).toBeUndefined();
    // Still what the run cost.
    expect(r.usage).toMatchObject({ cost_usd: 0.0123 });
  });

  it("reads the denials of stream-json output alike", async () => {
    const r = await executor({ output_format: "stream-json" }).execute(request({ prompt: "MODE=denied" }));
    expect(r).toMatchObject({ status: "failed", permanent: true, error: "blocked: denied Bash(rm -rf build), Write(/etc/hosts)" });
  });

  it("completes with warnings under on_permission_denied: warn", async () => {
    const r = await executor().execute(request({ prompt: "MODE=denied", onPermissionDenied: "warn" }));
    expect(r).toMatchObject({ status: "completed", error: null, output: "fake answer to: MODE=denied" });
    expect(r.permanent).toBeUndefined();
    expect(r.warnings).toEqual(["denied Bash(rm -rf build)", "denied Write(/etc/hosts)"]);
  });

  it("gives no warnings to a run without denials, and fail is the default", async () => {
    const ok = await executor().execute(request({ onPermissionDenied: "warn" }));
    expect(ok.status).toBe("completed");
    expect(ok.warnings).toBeUndefined();
    const failed = await executor().execute(request({ prompt: "MODE=denied", onPermissionDenied: "fail" }));
    expect(failed.error).toBe("blocked: denied Bash(rm -rf build), Write(/etc/hosts)");
  });

  it("renders each denial by its salient input, one line of at most 80 characters, ten at most", () => {
    const d = (tool_name: string, tool_input: unknown) => ({ tool_name, tool_use_id: "toolu_x", tool_input });
    expect(
      describeDenials([
        d("Bash", { command: "git push\n  --force", description: "Push" }),
        d("Edit", { file_path: "/srv/a.ts", old_string: "a", new_string: "b" }),
        d("Read", { file_path: "/home/me/.ssh/id_ed25519" }),
        d("MultiEdit", { file_path: "/srv/b.ts", edits: [] }),
        d("NotebookEdit", { notebook_path: "/srv/n.ipynb", new_source: "x" }),
        d("WebFetch", { url: "https://example.com/", prompt: "summarise" }),
        d("mcp__github__create_issue", { title: "Bug" }),
        d("Skill", {}),
        d("Bash", { command: "git push\n  --force" }),
      ]),
    ).toEqual([
      "Bash(git push --force)",
      "Edit(/srv/a.ts)",
      "Read(/home/me/.ssh/id_ed25519)",
      "MultiEdit(/srv/b.ts)",
      "NotebookEdit(/srv/n.ipynb)",
      "WebFetch(https://example.com/)",
      'mcp__github__create_issue({"title":"Bug"})',
      "Skill",
    ]);
    const [long] = describeDenials([d("Bash", { command: "x".repeat(200) })]);
    expect(long).toBe(`Bash(${"x".repeat(79)}…)`);
    expect(describeDenials(undefined)).toEqual([]);
    expect(describeDenials([null, 3, { tool_input: { command: "ls" } }])).toEqual(['unknown tool({"command":"ls"})']);
  });

  it("names ten denials and counts the rest", async () => {
    const many = Array.from({ length: 13 }, (_, i) => `Bash(cmd ${i})`);
    const { blocked, warnings } = await denialsThroughExecutor(13);
    expect(blocked).toBe(`blocked: denied ${many.slice(0, 10).join(", ")} and 3 more`);
    expect(warnings).toEqual([...many.slice(0, 10).map((m) => `denied ${m}`), "denied 3 more"]);
  });
});

/** A stub claude that prints one success result with `n` Bash denials. */
async function denialsThroughExecutor(n: number): Promise<{ blocked: string | null; warnings: string[] | undefined }> {
  const bin = path.join(home, "claude-many-denials.mjs");
  const denials = Array.from({ length: n }, (_, i) => ({ tool_name: "Bash", tool_use_id: `toolu_${i}`, tool_input: { command: `cmd ${i}` } }));
  const result = { type: "result", subtype: "success", is_error: false, num_turns: 1, result: "ok", permission_denials: denials };
  writeFileSync(bin, `#!/usr/bin/env node\nprocess.stdin.resume();process.stdin.on("end",()=>console.log(${JSON.stringify(JSON.stringify(result))}));\n`, {
    mode: 0o755,
  });
  const ex = executor({ bin });
  const failed = await ex.execute(request());
  const warned = await ex.execute(request({ onPermissionDenied: "warn" }));
  expect(failed).toMatchObject({ status: "failed", permanent: true });
  expect(warned.status).toBe("completed");
  return { blocked: failed.error, warnings: warned.warnings };
}

describe("requires_mcp (SPEC §13)", () => {
  it("forces stream-json with --verbose, though the executor says json, and completes when all are connected", async () => {
    const r = await executor().execute(request({ prompt: "MODE=mcp-ok", requiresMcp: ["github", "fs"] }));
    expect(r).toMatchObject({ status: "completed", error: null, output: "fake answer to: MODE=mcp-ok" });
    expect(readInvocations(recordFile)[0].argv.slice(0, 4)).toEqual(["-p", "--output-format", "stream-json", "--verbose"]);
  });

  it("keeps the configured format without required servers", async () => {
    await executor().execute(request({ prompt: "MODE=mcp-ok", requiresMcp: [] }));
    expect(readInvocations(recordFile)[0].argv.slice(0, 3)).toEqual(["-p", "--output-format", "json"]);
  });

  it("fails at once, not retried, when a required server failed, and kills the program before it answers", async () => {
    const req = request({ prompt: "MODE=mcp-failed", requiresMcp: ["github", "fs"] });
    const started = Date.now();
    const r = await executor().execute(req);
    const took = Date.now() - started;
    expect(r).toMatchObject({ status: "failed", permanent: true, error: 'MCP server "github" is failed', usage: null, output: "" });
    // The fake prints its result 5 s after the init event.
    expect(took).toBeLessThan(2500);
    expect(r.raw).toContain('"subtype":"init"');
    expect(r.raw).not.toContain('"type":"result"');
    expect(processesWithEnv("AGENT_CRON_RUN_ID", req.runId)).toEqual([]);
  });

  it("names a required server that is not configured, and every problem, joined", async () => {
    const r = await executor().execute(request({ prompt: "MODE=mcp-failed", requiresMcp: ["jira", "fs", "github", "jira"] }));
    expect(r).toMatchObject({ status: "failed", permanent: true });
    expect(r.error).toBe('MCP server "jira" is not configured; MCP server "github" is failed');
    const ok = await executor().execute(request({ prompt: "MODE=mcp-ok", requiresMcp: ["github", "jira"] }));
    expect(ok).toMatchObject({ status: "failed", permanent: true, error: 'MCP server "jira" is not configured' });
  });

  it("reads the servers' statuses as reported", () => {
    const servers = [{ name: "a", status: "needs-auth" }, { name: "b", status: "pending" }, { name: "c", status: "connected" }, { name: "d" }];
    expect(mcpServerProblems(servers, ["a", "b", "c", "d"])).toBe(
      'MCP server "a" is needs-auth; MCP server "b" is pending; MCP server "d" is of unknown status',
    );
    expect(mcpServerProblems(servers, ["c"])).toBeNull();
    expect(mcpServerProblems(undefined, ["c"])).toBe('MCP server "c" is not configured');
  });

  it("fails a run whose program printed no init event, since nothing was checked", async () => {
    const bin = path.join(home, "claude-no-init.mjs");
    const result = { type: "result", subtype: "success", is_error: false, num_turns: 1, result: "ok", permission_denials: [] };
    writeFileSync(bin, `#!/usr/bin/env node\nprocess.stdin.resume();process.stdin.on("end",()=>console.log(${JSON.stringify(JSON.stringify(result))}));\n`, {
      mode: 0o755,
    });
    const r = await executor({ bin }).execute(request({ requiresMcp: ["github"] }));
    expect(r).toMatchObject({ status: "failed", permanent: true });
    expect(r.error).toContain("printed no system/init event, so the required MCP servers (github) could not be checked");
  });

  it("finds the init event however stdout is cut into chunks, after other lines", async () => {
    const bin = path.join(home, "claude-chunked.mjs");
    const init = JSON.stringify({ type: "system", subtype: "init", mcp_servers: [{ name: "github", status: "needs-auth" }] });
    const script = [
      "#!/usr/bin/env node",
      "const w = (t) => process.stdout.write(t);",
      `const init = ${JSON.stringify(init)};`,
      `w("log line " + "y".repeat(100000) + "\\r\\n" + JSON.stringify({ type: "system", subtype: "hook_started" }) + "\\r\\n" + init.slice(0, 20));`,
      "setTimeout(() => w(init.slice(20) + '\\n'), 200);",
      "setTimeout(() => {}, 5000);",
    ].join("\n");
    writeFileSync(bin, script, { mode: 0o755 });
    const started = Date.now();
    // The log line is longer than the output cap, so it is skipped, not held.
    const r = await executor({ bin }).execute(request({ requiresMcp: ["github"], maxOutputBytes: 50_000 }));
    expect(r).toMatchObject({ status: "failed", permanent: true, error: 'MCP server "github" is needs-auth' });
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("is still canceled and timed out as before while it watches the init event", async () => {
    const r = await executor().execute(request({ prompt: "MODE=hang", requiresMcp: ["github"], timeoutMs: 500 }));
    expect(r.status).toBe("timed_out");
  });
});
