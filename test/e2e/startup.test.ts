/**
 * A cold start answers tools/list from the list the build prepared (scripts/bundle.mjs writes
 * dist/tools-list.json; src/mcp/server.ts reads it), so it must be the very list the sources
 * give, and the tools themselves load after that answer.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import lockfile from "proper-lockfile";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { toolDefinitions } from "../../src/mcp/tool.js";
import { tools } from "../../src/mcp/tools/index.js";
import { CLI, TestServer, makeDataDir, removeDir } from "../helpers/server.js";

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
      const { tools } = await late.client.listTools();
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
});
