// Codex CLI 0.169.0, the real CLI, run through CodexExecutor against a fake Responses API on
// loopback. OPENAI_BASE_URL is ignored by this CLI: the provider is defined with -c options.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { executorConfigSchema, type CodexExecutorConfig } from "../../src/config.js";
import { checkOutput } from "../../src/core/output.js";
import { CodexExecutor } from "../../src/executors/codex.js";
import { liveProcessGroupCount } from "../../src/executors/process.js";
import { makeRequest, processesWithEnv, waitFor } from "../executors/helpers.js";
import { startFakeModelApi, STRUCTURED_ANSWER, type FakeModelApi } from "../fixtures/fake-model-api.js";
import { pinnedCli } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "agent-cron-contract-codex-"));
let api: FakeModelApi;
let codexHome: string;
let workDir: string;
beforeAll(async () => {
  api = await startFakeModelApi();
});
afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  codexHome = mkdtempSync(path.join(tmp, "codex-home-"));
  workDir = mkdtempSync(path.join(tmp, "work-"));
  api.requests.length = 0;
});

const serverEnv = { PATH: process.env.PATH, HOME: tmp, LANG: "C.UTF-8", SECRET: "server-secret" };

function executor() {
  const cfg = executorConfigSchema().parse({
    type: "codex",
    bin: pinnedCli("codex"),
    model: "fake-model",
    sandbox: "read-only",
    config: {
      model_provider: "fake",
      "model_providers.fake": `{ name = "fake", base_url = "${api.origin}/v1", wire_api = "responses", env_key = "FAKE_MODEL_KEY", request_max_retries = 0, stream_max_retries = 0 }`,
      // Without these two it calls hosts outside the loopback.
      "analytics.enabled": false,
      "features.plugins": false,
    },
    env: { CODEX_HOME: codexHome, FAKE_MODEL_KEY: "sk-fake" },
  }) as CodexExecutorConfig;
  return new CodexExecutor("codex", cfg, { serverEnv, envAllow: [], killGraceMs: 1000 });
}

const request = (over: Parameters<typeof makeRequest>[1] = {}) => makeRequest(workDir, { timeoutMs: 60_000, ...over });
const schema = {
  type: "object",
  properties: { answer: { type: "number" }, unit: { type: "string" } },
  required: ["answer", "unit"],
  additionalProperties: false,
};
/** The session files codex keeps to resume a thread. */
const rolloutFiles = () => {
  try {
    return readdirSync(path.join(codexHome, "sessions"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".jsonl"));
  } catch {
    return [];
  }
};
const responsesCalls = () => api.requests.filter((r) => r.path === "/v1/responses");

describe("CodexExecutor with the real codex CLI", () => {
  it("answers a plain prompt with usage and its thread id, keeping an isolated run off disk", async () => {
    const r = await executor().execute(request({ prompt: "Say hello.", session: "isolated" }));
    expect(r).toMatchObject({
      status: "completed",
      exitCode: 0,
      error: null,
      output: "Hello from the fake model (call 1).",
      usage: { input_tokens: 100, output_tokens: 7, cost_usd: null },
    });
    expect(r.sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f-]{27}$/);
    const [call] = responsesCalls();
    expect(call.headers.authorization).toBe("Bearer sk-fake");
    expect(call.body).toMatchObject({ model: "fake-model", stream: true });
    expect(JSON.stringify(call.body.input)).toContain("Say hello.");
    expect(rolloutFiles()).toEqual([]);
  });

  it("resumes a persistent job's thread by the id its first run reported", async () => {
    const ex = executor();
    const first = await ex.execute(request({ prompt: "Remember the number 7.", session: "persistent" }));
    expect(first.status).toBe("completed");
    expect(rolloutFiles()).toHaveLength(1);
    const second = await ex.execute(request({ prompt: "Which number?", session: "persistent", resume: true, sessionId: first.sessionId! }));
    expect(second).toMatchObject({ status: "completed", sessionId: first.sessionId, output: "Hello from the fake model (call 2)." });
    const history = JSON.stringify(responsesCalls().at(-1)!.body.input);
    expect(history).toContain("Remember the number 7.");
    expect(history).toContain("Hello from the fake model (call 1).");
    expect(history).toContain("Which number?");
  });

  it("sends the output schema to the model and returns JSON that validates locally", async () => {
    const r = await executor().execute(request({ prompt: "Count the widgets. MODEL=structured", outputFormat: "structured", outputSchema: schema }));
    expect(r.status).toBe("completed");
    expect(await checkOutput("structured", schema, r.output, r.structured)).toEqual({ ok: true, value: STRUCTURED_ANSWER });
    expect(responsesCalls()[0].body.text.format).toMatchObject({ type: "json_schema", strict: true, schema });
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("fails with the model's error message", async () => {
    const r = await executor().execute(request({ prompt: "MODEL=error" }));
    expect(r.status).toBe("failed");
    expect(r.error).toBe("Codex reported an error: fake model error: prompt rejected");
  });

  it("times out against a model that never answers, and leaves no process behind", async () => {
    const req = request({ prompt: "MODEL=hang", timeoutMs: 3000 });
    const r = await executor().execute(req);
    expect(r.status).toBe("timed_out");
    expect(await waitFor(() => processesWithEnv("AGENT_CRON_RUN_ID", req.runId).length === 0, 2000)).toBe(true);
    expect(liveProcessGroupCount()).toBe(0);
  });
});
