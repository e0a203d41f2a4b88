// Claude Code 2.1.332, the real CLI, against a scripted model on loopback: a run's model sees
// agent-cron's run tools (through the --mcp-config the executor adds) and calls
// report_nothing, which reaches the run's own channel with its one-time token.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executorConfigSchema, type ClaudeCodeExecutorConfig } from "../../src/config.js";
import { ClaudeCodeExecutor } from "../../src/executors/claude-code.js";
import { createRunToolsPort } from "../../src/run-tools/channel.js";
import { makeRequest } from "../executors/helpers.js";
import { REPORT_NOTHING_TOOL, startFakeModelApi, type FakeModelApi } from "../fixtures/fake-model-api.js";
import { CLI } from "../helpers/server.js";
import { pinnedCli } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-contract-runtools-"));
let api: FakeModelApi;
beforeAll(async () => {
  api = await startFakeModelApi();
});
afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("run tools with the real claude CLI", () => {
  it("the model is offered report_nothing and its call reaches the run's channel; the run's answer follows", { timeout: 120_000 }, async () => {
    const home = mkdtempSync(path.join(tmp, "home-"));
    const workDir = mkdtempSync(path.join(tmp, "work-"));
    const cfg = executorConfigSchema().parse({
      type: "claude-code",
      bin: pinnedCli("claude"),
      model: "sonnet",
      sandbox: "none",
      env: { ANTHROPIC_BASE_URL: api.origin, ANTHROPIC_API_KEY: "sk-ant-fake", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1", HOME: home },
    }) as ClaudeCodeExecutorConfig;
    const executor = new ClaudeCodeExecutor("claude", cfg, { serverEnv: { PATH: process.env.PATH, LANG: "C.UTF-8" }, envAllow: [], killGraceMs: 1000 });
    const calls: { tool: string; args: Record<string, unknown> }[] = [];
    const port = createRunToolsPort({ command: process.execPath, args: [CLI, "run-tools"] });
    const req = makeRequest(workDir, { prompt: "Check the feed. MODEL=report-nothing", timeoutMs: 90_000 });
    const tools = await port.open(
      { runId: req.runId, jobId: req.jobId, dir: workDir, tools: ["report_nothing", "remember", "ask_person"] },
      async (tool, args) => {
        calls.push({ tool, args });
        return { summary: "Recorded: nothing to report.", outcome: "quiet" };
      },
    );
    try {
      const r = await executor.execute({ ...req, runTools: tools.server });
      expect(r.status, r.error ?? "").toBe("completed");
      expect(calls).toEqual([{ tool: "report_nothing", args: { reason: "nothing changed since the last run" } }]);
      const seen = api.requests.filter((q) => q.path === "/v1/messages").map((q) => JSON.stringify(q.body));
      // The model saw the tool (offered, or found through the tool search) and got its result back.
      expect(seen.some((b) => b.includes(REPORT_NOTHING_TOOL))).toBe(true);
      expect(seen.some((b) => b.includes("Recorded: nothing to report."))).toBe(true);
    } finally {
      await tools.close();
    }
  });
});
