/**
 * The MCP Inspector 2.x's schema-portability check (`--cli … --method tools/list --strict`)
 * reports nothing for agent-cron's tools. Needs Node >= 22.19 and the Inspector, which
 * scripts/install-node22.sh puts in .cache/node22 (npm run test:all runs it first).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT, fixture, removeDir } from "../helpers/server.js";

const run = promisify(execFile);
const dir = path.join(ROOT, ".cache", "node22");
const node22 = path.join(dir, "node_modules", ".bin", "node");
const inspector = path.join(dir, "node_modules", "@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js");

async function strictToolsList(command: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  if (!existsSync(node22) || !existsSync(inspector)) throw new Error(`Node 22 and the Inspector are not in ${dir}: run bash scripts/install-node22.sh.`);
  try {
    const r = await run(node22, [inspector, "--cli", ...command, "--method", "tools/list", "--strict"], { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 });
    return { ...r, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe("MCP Inspector --strict", () => {
  const data = mkdtempSync(path.join(os.tmpdir(), "agent-cron-inspector-"));
  // No background owner left behind (always_on): the Inspector starts the server its own way.
  writeFileSync(path.join(data, "config.json"), JSON.stringify({ always_on: "client" }));
  afterAll(() => removeDir(data));

  it("reports no schema-portability finding for agent-cron's tools", async () => {
    const r = await strictToolsList([process.execPath, CLI, "serve", "--data-dir", data]);
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout);
    expect(listed.tools.length).toBe(13);
    expect(listed.schemaFindings).toBeUndefined();
    // The server's own stderr lines (its ready line, the executor notice) pass through.
    const inspectorSaid = r.stderr
      .split("\n")
      .filter((l) => !/^(\S+ )?agent-cron /.test(l))
      .join("\n");
    expect(inspectorSaid).not.toMatch(/Schema portability|warning|error/i);
  });

  it("does report the faults of a server that has them (the check is live)", async () => {
    const r = await strictToolsList([process.execPath, fixture("unportable-server.mjs")]);
    const text = r.stdout + r.stderr;
    expect(text).toMatch(/type-union|`type` is an array/);
    expect(text).toMatch(/untyped-schema|carries no validation keyword/);
  });
});
