// Codex CLI 0.169.0, the real CLI, run by the built agent-cron server against a scripted
// Responses API on loopback: the run's model is offered agent-cron's run tools (the MCP server
// the codex executor adds with `-c mcp_servers.agent_cron_run={…}`, which Codex offers as the
// namespace mcp__agent_cron_run) and calls remember, then report_nothing. The run record says
// quiet with the reason, the job keeps the note, and the model got each tool's result back.
// Once as configured by default, once under "sandbox": "bwrap". A run-tools server that cannot
// start fails the run, saying so, instead of the run going on without its tools.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { executorConfigSchema, type CodexExecutorConfig } from "../../src/config.js";
import { CodexExecutor } from "../../src/executors/codex.js";
import { makeRequest } from "../executors/helpers.js";
import { CODEX_RUN_TOOL_CALLS, RUN_TOOLS_NAMESPACE, startFakeModelApi, type FakeModelApi } from "../fixtures/fake-model-api.js";
import { TestServer, type Structured } from "../helpers/server.js";
import { pinnedCli } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-contract-codex-tools-"));
let api: FakeModelApi;
beforeAll(async () => {
  api = await startFakeModelApi();
});
afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
});
const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.cleanup().catch(() => {});
});

/** The real codex against the scripted model, as a codex executor's config. */
function codexConfig(sandbox: "none" | "bwrap") {
  return {
    type: "codex",
    bin: pinnedCli("codex"),
    model: "fake-model",
    sandbox,
    config: {
      model_provider: "fake",
      "model_providers.fake": `{ name = "fake", base_url = "${api.origin}/v1", wire_api = "responses", env_key = "FAKE_MODEL_KEY", request_max_retries = 0, stream_max_retries = 0 }`,
      // Without these two it calls hosts outside the loopback.
      "analytics.enabled": false,
      "features.plugins": false,
    },
    env: { CODEX_HOME: mkdtempSync(path.join(tmp, "codex-home-")), FAKE_MODEL_KEY: "sk-fake" },
  };
}

/** A server whose codex executor is the real CLI against the scripted model. */
async function start(sandbox: "none" | "bwrap"): Promise<TestServer> {
  const s = await TestServer.start({ config: { executors: { codex: codexConfig(sandbox) } } });
  servers.push(s);
  return s;
}

describe("run tools with the real codex CLI", () => {
  for (const sandbox of ["none", "bwrap"] as const) {
    it(`the model calls remember and report_nothing: the run is quiet, the note kept (sandbox ${sandbox})`, { timeout: 120_000 }, async () => {
      api.requests.length = 0;
      const s = await start(sandbox);
      await s.addJob({ name: "feed", schedule: "@yearly", executor: "codex", prompt: "Check the feed. MODEL=report-nothing", retries: 0 });
      const { run } = await s.tool("run_now", { job: "feed", wait: true });
      expect(run.status, run.error).toBe("completed");
      expect(run).toMatchObject({ outcome: "quiet", outcome_note: "nothing changed since the last run" });
      expect((await s.job("feed")).notes.map((n: Structured) => n.text)).toEqual(["feed seen up to item #17"]);
      // Codex reported both MCP calls in its event stream (the run's evidence).
      const [full] = await s.runs("feed");
      expect(full.tool_calls).toEqual([
        { name: "agent_cron_run.remember", count: 1 },
        { name: "agent_cron_run.report_nothing", count: 1 },
      ]);
      const calls = api.requests.filter((q) => q.path === "/v1/responses");
      // Offered as Codex offers an MCP server's tools: a namespace with the three run tools.
      const offered = calls[0].body.tools.find((t: Structured) => t.type === "namespace" && t.name === RUN_TOOLS_NAMESPACE);
      expect(offered.tools.map((t: Structured) => t.name).sort()).toEqual(["ask_person", "remember", "report_nothing"]);
      // Each call's structured answer came back to the model, summary first.
      const outputs = calls
        .at(-1)!
        .body.input.filter((i: Structured) => i.type === "function_call_output")
        .map((i: Structured) => String(i.output));
      expect(outputs).toHaveLength(CODEX_RUN_TOOL_CALLS.length);
      expect(outputs[0]).toContain('"summary":"Remembered. The job keeps 1 note;');
      expect(outputs[1]).toContain('"summary":"Recorded: nothing to report.');
      expect(outputs[1]).toContain('"outcome":"quiet"');
    });
  }

  it("fails the run, naming the server, when the run tools' server cannot start", { timeout: 120_000 }, async () => {
    api.requests.length = 0;
    const executor = new CodexExecutor("codex", executorConfigSchema().parse(codexConfig("none")) as CodexExecutorConfig, {
      serverEnv: { PATH: process.env.PATH, HOME: tmp, LANG: "C.UTF-8" },
      envAllow: [],
      killGraceMs: 1000,
    });
    const workDir = mkdtempSync(path.join(tmp, "work-"));
    const broken = { name: "agent_cron_run", command: "/bin/false", args: [], env: {}, sandbox: { programs: [], socket: path.join(workDir, "none.sock") } };
    const r = await executor.execute(makeRequest(workDir, { prompt: "Check the feed. MODEL=report-nothing", timeoutMs: 60_000, runTools: broken }));
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/required MCP servers failed to initialize: agent_cron_run/);
    // No turn went to the model without the tools.
    expect(api.requests.filter((q) => q.path === "/v1/responses")).toEqual([]);
  });
});
