/**
 * A cold start answers tools/list from the list the build prepared (scripts/bundle.mjs writes
 * dist/tools-list.json; src/mcp/server.ts reads it), so it must be the very list the sources
 * give, and the tools themselves load after that answer.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import lockfile from "proper-lockfile";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { initializeAnswer } from "../../src/mcp/server.js";
import { toolDefinitions } from "../../src/mcp/tool.js";
import { tools } from "../../src/mcp/tools/index.js";
import { CLI, TEST_ENV, TestServer, makeDataDir, removeDir, waitFor } from "../helpers/server.js";

describe("start-up", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await TestServer.start();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("answers tools/list with the list the build prepared, which is the list the sources give", async () => {
    const file = JSON.parse(readFileSync(path.join(path.dirname(CLI), "tools-list.json"), "utf8"));
    const computed = JSON.parse(JSON.stringify(toolDefinitions(tools)));
    expect(file.tools).toEqual(computed);
    const { tools: answered } = await s.client.request({ method: "tools/list", params: {} }, ListToolsResultSchema);
    expect(answered).toEqual(computed);
  });

  it("answers initialize and tools/list before it has its seat on the data dir; a tool call waits for the seat", async () => {
    // The data dir is locked by a process (this one) that serves no socket: the server can
    // neither own it nor follow an owner until the lock goes. Before, nothing was answered
    // until then (a background owner's start-up was most of a cold start, issue 27).
    const dataDir = makeDataDir();
    const release = await lockfile.lock(dataDir, { lockfilePath: path.join(dataDir, "agent-cron.lock"), realpath: false, stale: 6000, update: 1000 });
    let late: TestServer | null = null;
    try {
      late = await TestServer.start({ dataDir, ready: false });
      // The raw request: the SDK client's listTools() also compiles validators, seconds on a
      // loaded machine, and the server gives up on a data dir locked for 15 s.
      const { tools } = await late.client.request({ method: "tools/list", params: {} }, ListToolsResultSchema);
      expect(tools.map((t) => t.name)).toContain("list_crons");
      expect(late.stderr()).not.toContain("agent-cron ready stdio");
      const listed = late.client.callTool({ name: "list_crons", arguments: {} });
      await release();
      const answer = await listed;
      expect(answer.isError).toBeFalsy();
      expect((answer.structuredContent as { jobs: unknown[] }).jobs).toEqual([]);
      await late.ready();
    } finally {
      await late?.close();
      await removeDir(dataDir);
    }
  });

  it("answers initialize as the SDK server does, before loading it, and the server it hands over to answers the rest once", async () => {
    const file = JSON.parse(readFileSync(path.join(path.dirname(CLI), "tools-list.json"), "utf8"));
    const expected = await initializeAnswer();
    expect(file.initialize).toEqual(expected);
    const dataDir = makeDataDir();
    const child = spawn(process.execPath, [CLI, "serve", "--data-dir", dataDir], { env: { ...process.env, ...TEST_ENV }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const answers = () =>
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    const send = (m: object) => child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...m })}\n`);
    try {
      // An older protocol version a client asks for is the one answered, as the SDK negotiates.
      send({ id: 7, method: "initialize", params: { protocolVersion: "2024-11-05", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
      send({ method: "notifications/initialized" });
      send({ id: 8, method: "tools/list" });
      send({ id: 9, method: "tools/call", params: { name: "list_crons", arguments: {} } });
      await waitFor(() => answers().some((a) => a.id === 9), { what: "the list_crons answer" });
      const byId = (id: number) => answers().filter((a) => a.id === id);
      expect(byId(7)).toEqual([{ jsonrpc: "2.0", id: 7, result: { protocolVersion: "2024-11-05", ...expected.result } }]);
      expect(byId(8).map((a) => a.result.tools)).toEqual([file.tools]);
      expect(byId(9)).toHaveLength(1);
      expect(byId(9)[0].result.structuredContent.jobs).toEqual([]);
      // Asked again after the hand-over, the SDK server itself answers (once).
      send({ id: 10, method: "tools/list" });
      await waitFor(() => byId(10).length > 0, { what: "the second tools/list" });
      expect(byId(10).map((a) => a.result.tools)).toEqual([file.tools]);
      expect(byId(7)).toHaveLength(1);
    } finally {
      child.kill();
      await new Promise((r) => child.once("exit", r));
      await removeDir(dataDir);
    }
  });
});
