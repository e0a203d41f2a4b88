import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import { doctor, formatDoctorTable } from "../../src/doctor.js";
import { fixture } from "./helpers.js";

let server: http.Server;
let baseUrl: string;
const seen: http.IncomingHttpHeaders[] = [];
beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(req.headers.authorization ? 200 : 401, { "content-type": "application/json" });
    res.end('{"data":[]}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => new Promise((r) => server.close(r)));

const env = { PATH: `${path.dirname(fixture("fake-claude.mjs"))}${path.delimiter}${process.env.PATH}`, LOCAL_KEY: "k" };

describe("doctor", () => {
  it("finds binaries and their versions, checks endpoints, and reports what is missing or down", async () => {
    const config = parseConfig({
      executors: {
        claude: { type: "claude-code", bin: "fake-claude.mjs", sandbox: "none" },
        codex: { type: "codex", bin: fixture("fake-codex.mjs"), sandbox: "none" },
        gone: { type: "codex", bin: "agent-cron-no-such-codex", sandbox: "none" },
        broken: { type: "claude-code", bin: fixture("fail-agent.mjs"), sandbox: "none" },
        script: { type: "command", command: ["node", "my-agent.mjs", "{prompt}"], sandbox: "none" },
        local: { type: "openai", base_url: baseUrl, model: "llama3.2", api_key_env: "LOCAL_KEY" },
        open: { type: "openai", base_url: baseUrl + "/", model: "llama3.2" },
        down: { type: "openai", base_url: "http://127.0.0.1:1/v1", model: "x" },
      },
    });
    const rows = await doctor(config, env);
    const by = Object.fromEntries(rows.map((r) => [r.executor, r]));
    expect(rows.map((r) => r.executor)).toEqual(["claude", "codex", "gone", "broken", "script", "local", "open", "down"]);
    expect(by.claude).toEqual({
      executor: "claude",
      type: "claude-code",
      program: fixture("fake-claude.mjs"),
      endpoint: null,
      status: "ok",
      version: "2.1.332 (Claude Code)",
      detail: "found",
    });
    expect(by.codex).toMatchObject({ status: "ok", version: "codex-cli 0.169.0" });
    expect(by.gone).toMatchObject({ status: "missing", program: "agent-cron-no-such-codex", version: null });
    expect(by.gone.detail).toContain("executors.gone.bin");
    expect(by.broken).toMatchObject({ status: "error" });
    expect(by.broken.detail).toMatch(/^".*fail-agent\.mjs --version" exited with code 1: \S/);
    expect(by.script).toMatchObject({
      status: "ok",
      program: process.execPath.endsWith("/node") ? expect.stringMatching(/node$/) : expect.any(String),
      version: null,
    });
    expect(by.local).toMatchObject({ status: "ok", endpoint: `${baseUrl}/models`, program: null, detail: "reachable: HTTP 200" });
    expect(by.open).toMatchObject({ status: "ok", endpoint: `${baseUrl}/models`, detail: "reachable: HTTP 401 (check the API key)" });
    expect(by.down).toMatchObject({ status: "unreachable" });
    expect(seen.map((h) => h.authorization).sort()).toEqual(["Bearer k", undefined]);

    const table = formatDoctorTable(rows).split("\n");
    expect(table[0]).toMatch(/^EXECUTOR\s+TYPE\s+PROGRAM \/ ENDPOINT\s+STATUS\s+VERSION\s+DETAIL$/);
    expect(table).toHaveLength(rows.length + 1);
    expect(table[3]).toMatch(/^gone\s+codex\s+agent-cron-no-such-codex\s+missing\s+-\s+/);
  });

  it("gives up on a --version that hangs after 5 s", async () => {
    const config = parseConfig({ executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), env: { FAKE_MODE: "hang" } } } });
    const started = Date.now();
    const [row] = await doctor(config, env);
    expect(row).toMatchObject({ status: "error", detail: '"' + fixture("fake-claude.mjs") + ' --version" did not answer within 5 s' });
    expect(Date.now() - started).toBeLessThan(8000);
  }, 15_000);

  it("says so when nothing is configured", () => {
    expect(formatDoctorTable([])).toBe("No executors configured.");
  });
});
