/**
 * A cold start answers tools/list from the list the build prepared (scripts/bundle.mjs writes
 * dist/tools-list.json; src/mcp/server.ts reads it), so it must be the very list the sources
 * give, and the tools themselves load after that answer.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { toolDefinitions } from "../../src/mcp/tool.js";
import { tools } from "../../src/mcp/tools/index.js";
import { CLI, TestServer } from "../helpers/server.js";

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
});
