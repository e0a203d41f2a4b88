#!/usr/bin/env node
// The entry point of the Claude Desktop extension (agent-cron.mcpb, built by
// scripts/pack-mcpb.mjs). Claude Desktop starts it with the extension's settings in the
// environment (manifest.json, user_config); this maps them onto agent-cron's own config:
//   data_dir  -> AGENT_CRON_DATA_DIR (the data dir, default ~/.agent-cron)
//   token     -> AGENT_CRON_TOKEN (the dashboard's and /metrics' token)
//   executor, agent_bin -> default_executor and that executor's bin, in a config file the
//     extension writes beside the person's config.json (which stays theirs, and is read first)
// and then serves MCP over stdio like `agent-cron serve`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// A setting left empty arrives as "" (or as the unsubstituted placeholder): it means "unset".
const setting = (name) => {
  const v = process.env[name]?.trim();
  return v && !v.startsWith("${") ? v : undefined;
};
for (const name of ["AGENT_CRON_DATA_DIR", "AGENT_CRON_TOKEN"]) if (!setting(name)) delete process.env[name];

const dataDir = path.resolve(setting("AGENT_CRON_DATA_DIR") ?? path.join(os.homedir(), ".agent-cron"));
const executor = setting("AGENT_CRON_MCPB_EXECUTOR");
const bin = setting("AGENT_CRON_MCPB_AGENT_BIN");
const TYPES = { claude: "claude-code", codex: "codex" };

if (executor || bin) {
  const name = executor ?? "claude";
  if (!TYPES[name]) {
    process.stderr.write(
      `agent-cron: the extension's "Agent" setting must be claude or codex, got "${name}"; change it in Claude Desktop (Settings → Extensions → agent-cron).\n`,
    );
    process.exit(2);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const own = path.join(dataDir, "config.json");
  const base = existsSync(own) ? JSON.parse(readFileSync(own, "utf8")) : {};
  const executors = { ...(base.executors ?? {}) };
  executors[name] = { ...(executors[name] ?? { type: TYPES[name] }), ...(bin ? { bin } : {}) };
  const file = path.join(dataDir, "desktop-extension.config.json");
  writeFileSync(file, JSON.stringify({ ...base, default_executor: name, executors }, null, 2) + "\n", { mode: 0o600 });
  process.env.AGENT_CRON_CONFIG = file;
}
process.env.AGENT_CRON_DATA_DIR = dataDir;

const cli = path.join(here, "..", "dist", "cli.js");
process.argv = [process.argv[0], cli, "serve"];
await import(pathToFileURL(cli).href);
