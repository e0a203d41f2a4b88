import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { executorConfigSchema, type CodexExecutorConfig } from "../../src/config.js";
import { CodexExecutor, readCodexEvents } from "../../src/executors/codex.js";
import { fixture, isAlive, makeRequest, processesWithEnv, readInvocations, waitFor } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-codex-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const serverEnv = {
  PATH: process.env.PATH,
  HOME: "/home/server",
  SECRET: "server-secret",
  OPENAI_API_KEY: "sk-openai",
  ANTHROPIC_API_KEY: "sk-ant",
  CLAUDECODE: "1",
};

let recordFile: string;
let codexHome: string;
let workDir: string;
beforeEach(() => {
  codexHome = mkdtempSync(path.join(tmp, "codex-home-"));
  workDir = mkdtempSync(path.join(tmp, "work-"));
  recordFile = path.join(codexHome, "invocations.jsonl");
});

function executor(over: Record<string, unknown> = {}) {
  const cfg = executorConfigSchema().parse({
    type: "codex",
    bin: fixture("fake-codex.mjs"),
    env: { FAKE_AGENT_RECORD: recordFile, CODEX_HOME: codexHome },
    ...over,
  }) as CodexExecutorConfig;
  return new CodexExecutor("codex", cfg, { serverEnv, envAllow: [], killGraceMs: 300 });
}

const request = (over: Parameters<typeof makeRequest>[1] = {}) => makeRequest(workDir, over);

describe("CodexExecutor against the fake codex", () => {
  it("runs codex exec --json with the prompt on stdin and answers with the last agent message", async () => {
    const req = request({ prompt: "Check the build", session: "isolated" });
    const r = await executor({ model: "gpt-5-codex", sandbox: "read-only" }).execute(req);
    expect(r).toMatchObject({
      status: "completed",
      exitCode: 0,
      error: null,
      output: "final answer to: Check the build",
      usage: { input_tokens: 1200, output_tokens: 80, cost_usd: null },
    });
    expect(r.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const [call] = readInvocations(recordFile);
    expect(call.argv).toEqual(["exec", "--json", "--skip-git-repo-check", "-C", workDir, "-s", "read-only", "--ephemeral", "-m", "gpt-5-codex", "-"]);
    expect(call.stdin).toBe("Check the build");
    expect(call.cwd).toBe(workDir);
  });

  it("gives the child only the allow-listed environment, codex's auth variables and its env map", async () => {
    const req = request();
    await executor().execute(req);
    const [{ env }] = readInvocations(recordFile);
    expect(env).toEqual({
      PATH: process.env.PATH,
      HOME: "/home/server",
      OPENAI_API_KEY: "sk-openai",
      CODEX_HOME: codexHome,
      FAKE_AGENT_RECORD: recordFile,
      AGENT_CRON_RUN_ID: req.runId,
      AGENT_CRON_JOB_ID: "job-1",
      AGENT_CRON_SESSION_ID: req.sessionId,
      AGENT_CRON_SCHEDULED_FOR: "2026-12-01T09:00:00.000+01:00",
    });
  });

  it("passes config pairs as -c key=value and config args before the prompt", async () => {
    const ex = executor({
      config: { model_provider: "local", "model_providers.local.base_url": "http://127.0.0.1:1/v1", "analytics.enabled": false, model_context_window: 8192 },
      args: ["--add-dir", "/srv/shared"],
    });
    await ex.execute(request());
    expect(readInvocations(recordFile)[0].argv.slice(7)).toEqual([
      "-c",
      "model_provider=local",
      "-c",
      "model_providers.local.base_url=http://127.0.0.1:1/v1",
      "-c",
      "analytics.enabled=false",
      "-c",
      "model_context_window=8192",
      "--add-dir",
      "/srv/shared",
      "-",
    ]);
  });

  it("keeps a persistent job's thread and resumes the thread id the first run reported", async () => {
    const ex = executor();
    const first = await ex.execute(request({ session: "persistent" }));
    expect(first.status).toBe("completed");
    const second = await ex.execute(request({ session: "persistent", resume: true, sessionId: first.sessionId! }));
    expect(second).toMatchObject({ status: "completed", sessionId: first.sessionId });
    const [a, b] = readInvocations(recordFile).map((c) => c.argv);
    expect(a).not.toContain("--ephemeral");
    expect(b).not.toContain("--ephemeral");
    expect(b.slice(-3)).toEqual(["resume", first.sessionId, "-"]);
  });

  it("fails resuming a thread codex does not know, with its message", async () => {
    const r = await executor().execute(request({ resume: true, sessionId: "0199a213-81c0-7800-8aa1-bbab2a035a53" }));
    expect(r.status).toBe("failed");
    expect(r.error).toContain("no rollout found for thread id 0199a213-81c0-7800-8aa1-bbab2a035a53");
  });

  it("writes the output schema to a file for --output-schema and removes it afterwards", async () => {
    const schema = { type: "object", properties: { answer: { type: "number" } }, required: ["answer"], additionalProperties: false };
    const r = await executor().execute(request({ prompt: "MODE=structured", outputFormat: "structured", outputSchema: schema }));
    expect(r).toMatchObject({ status: "completed", output: '{"answer":42}' });
    const [call] = readInvocations(recordFile);
    const file = call.argv[call.argv.indexOf("--output-schema") + 1];
    expect(path.dirname(file)).toBe(workDir);
    expect(call.schema).toEqual(schema);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("fails on turn.failed even with exit 0, with the provider's message", async () => {
    const r = await executor().execute(request({ prompt: "MODE=turn-failed" }));
    expect(r).toMatchObject({ status: "failed", exitCode: 0 });
    expect(r.error).toBe("Codex reported an error: fake model error");
  });

  it("succeeds after an error event that a later turn.completed recovered from", async () => {
    const r = await executor().execute(request({ prompt: "MODE=reconnect" }));
    expect(r).toMatchObject({ status: "completed", output: "final answer to: MODE=reconnect" });
  });

  it("fails a turn that ends without an agent message", async () => {
    const r = await executor().execute(request({ prompt: "MODE=no-message" }));
    expect(r).toMatchObject({ status: "failed", exitCode: 0, usage: { input_tokens: 1200 } });
    expect(r.error).toContain("without a final agent message");
  });

  it("kills a hanging codex and its grandchild at the timeout", async () => {
    const req = request({ prompt: "MODE=hang", timeoutMs: 500 });
    const r = await executor().execute(req);
    expect(r.status).toBe("timed_out");
    const [call] = readInvocations(recordFile);
    expect(await waitFor(() => !isAlive(call.grandchild!), 1000)).toBe(true);
    expect(processesWithEnv("AGENT_CRON_RUN_ID", req.runId)).toEqual([]);
  });

  it("names the missing binary and the config key to set", async () => {
    const r = await executor({ bin: "agent-cron-no-such-codex" }).execute(request());
    expect(r.status).toBe("failed");
    expect(r.error).toContain("executors.codex.bin");
  });
});

describe("readCodexEvents", () => {
  it("treats a trailing error event without a completed turn as the failure", () => {
    const events = readCodexEvents(
      [{ type: "thread.started", thread_id: "t1" }, { type: "turn.started" }, { type: "error", message: "stream disconnected" }]
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    expect(events).toEqual({ threadId: "t1", answer: null, usage: null, failure: "stream disconnected", tools: [] });
  });
});
