// Claude Code 2.1.332, the real CLI, as an MCP client of agent-cron's HTTP daemon with a
// token: `claude mcp list` health-checks the server (no model call, no account).
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpServer } from "../helpers/http.js";
import { removeDir } from "../helpers/server.js";
import { pinnedCli } from "./helpers.js";

const run = promisify(execFile);
const TOKEN = "contract-token-123";

describe("Claude Code as a client of the HTTP daemon with a token", () => {
  let server: HttpServer;
  let home: string;
  const claude = (...args: string[]) =>
    run(pinnedCli("claude"), args, { cwd: home, timeout: 90_000, env: { PATH: process.env.PATH ?? "", HOME: home } }).then((r) => r.stdout + r.stderr);

  beforeAll(async () => {
    server = await HttpServer.start({ env: { AGENT_CRON_TOKEN: TOKEN } });
    home = mkdtempSync(path.join(os.tmpdir(), "agent-cron-cc-client-"));
  });
  afterAll(async () => {
    await server?.cleanup();
    await removeDir(home);
  });

  it("without the header, says to send Authorization: Bearer from AGENT_CRON_TOKEN instead of a bare OAuth failure", async () => {
    await claude("mcp", "add", "--transport", "http", "no-token", server.url);
    const out = await claude("mcp", "list");
    expect(out).toMatch(/no-token: .* Failed to connect/);
    expect(out).toMatch(/agent-cron does not use OAuth; send the header \\?"Authorization: Bearer <token>\\?" with the token from AGENT_CRON_TOKEN/);
    expect(out).not.toContain(TOKEN);
    await claude("mcp", "remove", "no-token");
  });

  it("with the header that the message names, connects", async () => {
    await claude("mcp", "add", "--transport", "http", "with-token", server.url, "--header", `Authorization: Bearer ${TOKEN}`);
    const out = await claude("mcp", "list");
    expect(out).toMatch(/with-token: .*Connected/);
  });
});
