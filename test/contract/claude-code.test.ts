// Claude Code 2.1.332, the real CLI, run through ClaudeCodeExecutor against a fake Messages
// API on loopback: no network, no account.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { executorConfigSchema, type ClaudeCodeExecutorConfig } from "../../src/config.js";
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

function executor(over: Record<string, unknown> = {}, origin = api.origin) {
  const cfg = executorConfigSchema().parse({
    type: "claude-code",
    bin: pinnedCli("claude"),
    model: "sonnet",
    ...over,
    env: {
      ANTHROPIC_BASE_URL: origin,
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
    expect(await checkOutput("structured", schema, r.output, r.structured)).toEqual({ ok: true, value: STRUCTURED_ANSWER });
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

/**
 * A stdio MCP server in a few lines, for a server that connects: it answers `initialize`
 * and `tools/list`, and nothing else.
 */
const MINI_MCP_SERVER = `
const rl = require("node:readline").createInterface({ input: process.stdin });
const send = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
rl.on("line", (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  if (m.id === undefined) return;
  if (m.method === "initialize") send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "mini", version: "1.0.0" } } });
  else if (m.method === "tools/list") send({ jsonrpc: "2.0", id: m.id, result: { tools: [] } });
  else send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "not implemented" } });
});`;

function mcpConfig(): string {
  const file = path.join(home, "mcp.json");
  writeFileSync(
    file,
    JSON.stringify({
      mcpServers: {
        github: { command: path.join(tmp, "agent-cron-no-such-mcp-server") },
        fs: { command: process.execPath, args: ["-e", MINI_MCP_SERVER] },
      },
    }),
  );
  return file;
}

/** The first system/init event of a stream-json run's raw output. */
function initEvent(raw: string | undefined): Record<string, any> | undefined {
  for (const line of (raw ?? "").split("\n")) {
    try {
      const ev = JSON.parse(line);
      if (ev.type === "system" && ev.subtype === "init") return ev;
    } catch {
      // not JSON
    }
  }
  return undefined;
}

describe("requires_mcp with the real claude CLI (SPEC §13)", () => {
  it("fails at once when a required server's command does not exist, from the init event", async () => {
    // The model never answers: only the stop at the init event ends this run early.
    const req = request({ prompt: "MODEL=hang", requiresMcp: ["github", "fs"] });
    const started = Date.now();
    const r = await executor({ mcp_config: mcpConfig() }).execute(req);
    expect(r).toMatchObject({ status: "failed", permanent: true, error: 'MCP server "github" is failed', usage: null });
    expect(Date.now() - started).toBeLessThan(20_000);
    // 2.1.332 prints name, status and source for each server.
    expect(initEvent(r.raw)?.mcp_servers).toEqual([
      { name: "github", status: "failed", source: "dynamic" },
      { name: "fs", status: "connected", source: "dynamic" },
    ]);
    expect(await waitFor(() => processesWithEnv("AGENT_CRON_RUN_ID", req.runId).length === 0, 2000)).toBe(true);
    expect(liveProcessGroupCount()).toBe(0);
  });

  it("runs to its end when every required server is connected, in stream-json though configured json", async () => {
    const r = await executor({ mcp_config: mcpConfig() }).execute(request({ prompt: "Say hello.", requiresMcp: ["fs"] }));
    expect(r).toMatchObject({ status: "completed", output: "Hello from the fake model (call 1)." });
    expect(initEvent(r.raw)?.claude_code_version).toBe("2.1.332");
  });

  it("names a required server that is not configured", async () => {
    const r = await executor().execute(request({ prompt: "MODEL=hang", requiresMcp: ["github"] }));
    expect(r).toMatchObject({ status: "failed", permanent: true, error: 'MCP server "github" is not configured' });
    expect(initEvent(r.raw)?.mcp_servers).toEqual([]);
  });
});

/**
 * A Messages API whose model asks for `rm -rf build` (Bash, inside the work dir) and a Write
 * of a new file outside it, which `claude -p` in its default permission mode refuses, then
 * answers in text once it has the tool results.
 */
async function startToolUseModelApi(outsideFile: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => {
      if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== "/v1/messages") {
        res.writeHead(404, { "content-type": "application/json" });
        return res.end("{}");
      }
      const body = JSON.parse(text);
      const last = body.messages.at(-1);
      const answered = Array.isArray(last?.content) && last.content.some((c: { type: string }) => c.type === "tool_result");
      type Block = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };
      const blocks: Block[] = answered
        ? [{ type: "text", text: "I could not do it." }]
        : [
            { type: "tool_use", id: "toolu_bash1", name: "Bash", input: { command: "rm -rf build", description: "Remove the build folder" } },
            { type: "tool_use", id: "toolu_write1", name: "Write", input: { file_path: outsideFile, content: "x" } },
          ];
      res.writeHead(200, { "content-type": "text/event-stream" });
      const ev = (type: string, data: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
      const usage = { input_tokens: 10, output_tokens: 1 };
      ev("message_start", {
        message: { id: "msg_1", type: "message", role: "assistant", model: body.model, content: [], stop_reason: null, stop_sequence: null, usage },
      });
      blocks.forEach((b, index) => {
        if (b.type === "text") {
          ev("content_block_start", { index, content_block: { type: "text", text: "" } });
          ev("content_block_delta", { index, delta: { type: "text_delta", text: b.text } });
        } else {
          ev("content_block_start", { index, content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } });
          ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: JSON.stringify(b.input) } });
        }
        ev("content_block_stop", { index });
      });
      ev("message_delta", { delta: { stop_reason: answered ? "end_turn" : "tool_use", stop_sequence: null }, usage: { output_tokens: 5 } });
      ev("message_stop", {});
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe("permission denials with the real claude CLI (SPEC §13)", () => {
  let toolApi: Awaited<ReturnType<typeof startToolUseModelApi>>;
  const outsideFile = path.join(tmp, "outside", "new.txt");
  beforeAll(async () => {
    toolApi = await startToolUseModelApi(outsideFile);
  });
  afterAll(() => toolApi.close());

  it("fails a run whose result lists denials, though the CLI says success", async () => {
    const r = await executor({}, toolApi.origin).execute(request({ prompt: "Clean up." }));
    expect(r).toMatchObject({ status: "failed", permanent: true, exitCode: 0 });
    expect(r.error).toBe(`blocked: denied Bash(rm -rf build), Write(${outsideFile})`);
  });

  it("completes with warnings under warn, in stream-json alike", async () => {
    const r = await executor({ output_format: "stream-json" }, toolApi.origin).execute(request({ prompt: "Clean up.", onPermissionDenied: "warn" }));
    expect(r).toMatchObject({ status: "completed", output: "I could not do it." });
    expect(r.warnings).toEqual(["denied Bash(rm -rf build)", `denied Write(${outsideFile})`]);
  });
});
