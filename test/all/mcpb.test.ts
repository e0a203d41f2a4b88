/**
 * The Claude Desktop extension (SPEC §22): `npm run pack:mcpb` builds agent-cron.mcpb, the
 * format's own CLI (@anthropic-ai/mcpb) validates its manifest, and the unpacked extension,
 * started the way its manifest says with the user's settings, serves MCP with those settings
 * mapped onto agent-cron's config.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, fixture, removeDir } from "../helpers/server.js";

const run = promisify(execFile);
const mcpb = path.join(ROOT, "node_modules", ".bin", "mcpb");
const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));

describe("agent-cron.mcpb", () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "agent-cron-mcpb-"));
  afterAll(() => removeDir(work));
  const out = path.join(work, "agent-cron.mcpb");

  it("npm run pack:mcpb builds an extension whose manifest the format's validator accepts", { timeout: 180_000 }, async () => {
    // What pack:mcpb runs after `npm run build` (test-all.sh built dist/ already; building again
    // here would pull dist/ from under the tests running beside this one).
    const packed = await run(process.execPath, [path.join(ROOT, "scripts", "pack-mcpb.mjs")], {
      cwd: ROOT,
      env: { ...process.env, AGENT_CRON_MCPB_OUT: out },
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(packed.stdout).toContain("Manifest schema validation passes!");
    expect(existsSync(out)).toBe(true);

    const unpacked = path.join(work, "unpacked");
    await run(mcpb, ["unpack", out, unpacked]);
    const validated = await run(mcpb, ["validate", path.join(unpacked, "manifest.json")]);
    console.log(`mcpb validate: ${validated.stdout.trim()}`);
    expect(validated.stdout).toContain("Manifest schema validation passes!");
    // The check is real: the validator refuses a manifest without its server.
    const manifest = JSON.parse(readFileSync(path.join(unpacked, "manifest.json"), "utf8"));
    const broken = path.join(work, "broken.json");
    await import("node:fs").then((fs) => fs.writeFileSync(broken, JSON.stringify({ ...manifest, server: undefined })));
    await expect(run(mcpb, ["validate", broken])).rejects.toThrow();

    expect(manifest).toMatchObject({ name: "agent-cron", version: pkg.version, server: { type: "node", entry_point: "server/launch.mjs" } });
    expect(manifest.tools.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(["add_cron", "list_crons", "run_now", "get_run"]));
    expect(Object.keys(manifest.user_config).sort()).toEqual(["agent_bin", "data_dir", "executor", "token"]);
    expect(manifest.user_config.token.sensitive).toBe(true);
    for (const file of ["dist/cli.js", "dist/app-view.js", "server/launch.mjs", "package.json"]) expect(existsSync(path.join(unpacked, file)), file).toBe(true);

    // Started as Claude Desktop starts it: the manifest's command, ${__dirname} and the settings put in.
    const dataDir = path.join(work, "data");
    const settings: Record<string, string> = { data_dir: dataDir, executor: "codex", agent_bin: fixture("fake-codex.mjs"), token: "" };
    const fill = (s: string) => s.replaceAll("${__dirname}", unpacked).replace(/\$\{user_config\.(\w+)\}/g, (_, k: string) => settings[k] ?? "");
    const { command, args, env } = manifest.server.mcp_config as { command: string; args: string[]; env: Record<string, string> };
    const transport = new StdioClientTransport({
      command: command === "node" ? process.execPath : command,
      args: args.map(fill),
      env: {
        PATH: process.env.PATH ?? "",
        HOME: work,
        AGENT_CRON_ALWAYS_ON: "client",
        ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, fill(v)])),
      },
      stderr: "pipe",
      cwd: work,
    });
    let stderr = "";
    transport.stderr?.on("data", (c: Buffer) => (stderr += c));
    const client = new Client({ name: "mcpb-test", version: "1" });
    await client.connect(transport);
    try {
      expect(client.getServerVersion()?.version).toBe(pkg.version);
      expect((await client.listTools()).tools.map((t) => t.name)).toContain("add_cron");
      const config = JSON.parse(readFileSync(path.join(dataDir, "desktop-extension.config.json"), "utf8"));
      expect(config).toMatchObject({ default_executor: "codex", executors: { codex: { type: "codex", bin: fixture("fake-codex.mjs") } } });
      const added = await client.callTool({ name: "add_cron", arguments: { name: "from-desktop", schedule: "0 9 * * *", prompt: "hi" } });
      expect(added.isError).toBeFalsy();
      expect(existsSync(path.join(dataDir, "jobs.json"))).toBe(true);
    } finally {
      await client.close();
    }
    expect(stderr).toContain(`agent-cron ready stdio data=${dataDir}`);
  });
});
