// Claude Code 2.1.332, the real CLI, run through ClaudeCodeExecutor against a fake Messages
// API on loopback: no network, no account.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ExecutorConfigSchema, type ClaudeCodeExecutorConfig } from "../../src/config.js";
import { checkOutput } from "../../src/core/output.js";
import { ClaudeCodeExecutor } from "../../src/executors/claude-code.js";
import { liveProcessGroupCount } from "../../src/executors/process.js";
import { makeRequest, processesWithEnv, waitFor } from "../executors/helpers.js";
import { startFakeModelApi, STRUCTURED_ANSWER, type FakeModelApi } from "../fixtures/fake-model-api.js";
import { pinnedCli } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-contract-claude-"));
let api: FakeModelApi;
let home: string;
let workDir: string;
beforeAll(async () => {
  api = await startFakeModelApi();
});
afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  home = mkdtempSync(path.join(tmp, "home-"));
  workDir = mkdtempSync(path.join(tmp, "work-"));
  api.requests.length = 0;
});

// The server's own environment: a nesting marker and a secret that must not reach the CLI.
const serverEnv = { PATH: process.env.PATH, LANG: "C.UTF-8", CLAUDECODE: "1", CLAUDE_CODE_ENTRYPOINT: "cli", SECRET: "server-secret" };

function executor() {
  const cfg = ExecutorConfigSchema.parse({
    type: "claude-code",
    bin: pinnedCli("claude"),
    model: "sonnet",
    env: {
      ANTHROPIC_BASE_URL: api.origin,
      ANTHROPIC_API_KEY: "sk-ant-fake",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      HOME: home,
    },
  }) as ClaudeCodeExecutorConfig;
  return new ClaudeCodeExecutor("claude", cfg, { serverEnv, envAllow: [], killGraceMs: 1000 });
}

const request = (over: Parameters<typeof makeRequest>[1] = {}) => makeRequest(workDir, { timeoutMs: 60_000, ...over });
const schema = {
  type: "object",
  properties: { answer: { type: "number" }, unit: { type: "string" } },
  required: ["answer", "unit"],
  additionalProperties: false,
};
const messagesCalls = () => api.requests.filter((r) => r.path === "/v1/messages");

describe("ClaudeCodeExecutor with the real claude CLI", () => {
  it("answers a plain prompt, with usage, cost and the session id it was given", async () => {
    const req = request({ prompt: "Say hello." });
    const r = await executor().execute(req);
    expect(r).toMatchObject({ status: "completed", exitCode: 0, error: null, output: "Hello from the fake model (call 1).", sessionId: req.sessionId });
    // 10 input + 3 cache writes + 4 cache reads; 5 output.
    expect(r.usage).toMatchObject({ input_tokens: 17, output_tokens: 5 });
    expect(r.usage!.cost_usd).toBeGreaterThan(0);
    const [call] = messagesCalls();
    expect(call.headers["x-api-key"]).toBe("sk-ant-fake");
    expect(call.headers["x-claude-code-session-id"]).toBe(req.sessionId);
    expect(call.body.stream).toBe(true);
    expect(JSON.stringify(call.body.messages)).toContain("Say hello.");
  });

  it("resumes a persistent job's session, sending the earlier turns again", async () => {
    const ex = executor();
    const first = request({ prompt: "Remember the number 7.", session: "persistent" });
    expect((await ex.execute(first)).status).toBe("completed");
    const second = await ex.execute(request({ prompt: "Which number?", session: "persistent", resume: true, sessionId: first.sessionId }));
    expect(second).toMatchObject({ status: "completed", sessionId: first.sessionId });
    const history = JSON.stringify(messagesCalls().at(-1)!.body.messages);
    expect(history).toContain("Remember the number 7.");
    expect(history).toContain("Hello from the fake model (call 1).");
    expect(history).toContain("Which number?");
  });

  it("returns structured_output for a structured job, offering the schema as the StructuredOutput tool", async () => {
    const r = await executor().execute(request({ prompt: "Count the widgets. MODEL=structured", outputFormat: "structured", outputSchema: schema }));
    expect(r).toMatchObject({ status: "completed", structured: STRUCTURED_ANSWER });
    expect(checkOutput("structured", schema, r.output, r.structured)).toEqual({ ok: true, value: STRUCTURED_ANSWER });
    const tool = messagesCalls()[0].body.tools.find((t: { name: string }) => t.name === "StructuredOutput");
    expect(tool.input_schema.properties).toEqual(schema.properties);
  });

  it("fails a structured job when the model answers in text, though the CLI says success", async () => {
    const r = await executor().execute(request({ prompt: "Count. MODEL=text-only", outputFormat: "structured", outputSchema: schema }));
    expect(r).toMatchObject({ status: "failed", exitCode: 0 });
    expect(r.error).toContain("no structured_output");
  });

  it("fails with the model's error message", async () => {
    const r = await executor().execute(request({ prompt: "MODEL=error" }));
    expect(r.status).toBe("failed");
    expect(r.error).toContain("fake model error: prompt rejected");
    expect(r.error).toMatch(/^Claude Code reported an error \(exit code \d/);
  });

  it("times out against a model that never answers, and leaves no process behind", async () => {
    const req = request({ prompt: "MODEL=hang", timeoutMs: 3000 });
    const r = await executor().execute(req);
    expect(r.status).toBe("timed_out");
    expect(await waitFor(() => processesWithEnv("AGENT_CRON_RUN_ID", req.runId).length === 0, 2000)).toBe(true);
    expect(liveProcessGroupCount()).toBe(0);
  });
});
