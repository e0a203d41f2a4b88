#!/usr/bin/env node
// npm run pack:mcpb: the Claude Desktop extension, agent-cron.mcpb. Stages the built dist/,
// package.json (the version), the launcher and a manifest.json generated here (version from
// package.json, tools from src/mcp/tools/), then packs them with the format's own CLI,
// @anthropic-ai/mcpb, which validates the manifest as it packs.
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const stage = path.join(root, "build", "mcpb");
const out = path.resolve(root, process.env.AGENT_CRON_MCPB_OUT || "agent-cron.mcpb");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));

const tools = readdirSync(path.join(root, "src", "mcp", "tools"))
  .map((f) => readFileSync(path.join(root, "src", "mcp", "tools", f), "utf8"))
  .flatMap((text) => {
    const m = /\bname: "([a-z_]+)",\s*config: \{\s*title: "([^"]+)"/.exec(text);
    return m ? [{ name: m[1], description: m[2] }] : [];
  })
  .sort((a, b) => a.name.localeCompare(b.name));
if (tools.length === 0) throw new Error("pack-mcpb: found no tools in src/mcp/tools/");

const manifest = {
  manifest_version: "0.3",
  name: pkg.name,
  display_name: "agent-cron",
  version: pkg.version,
  description: pkg.description,
  long_description:
    'Lets Claude schedule recurring and one-shot agent work ("every weekday at 9, audit the logs", "in 20 minutes, check the deploy"). Each run starts a fresh agent session (Claude Code or Codex) with a timeout and retries; jobs survive restarts and run in agent-cron\'s background owner while Claude Desktop is closed. Results are kept to read later and can be delivered to Slack, Discord, ntfy and more.',
  author: { name: "agent-cron contributors", url: pkg.homepage.replace(/#.*$/, "") },
  repository: { type: "git", url: pkg.repository.url.replace(/^git\+/, "").replace(/\.git$/, "") },
  homepage: pkg.homepage,
  license: pkg.license,
  keywords: pkg.keywords,
  server: {
    type: "node",
    entry_point: "server/launch.mjs",
    mcp_config: {
      command: "node",
      args: ["${__dirname}/server/launch.mjs"],
      env: {
        AGENT_CRON_DATA_DIR: "${user_config.data_dir}",
        AGENT_CRON_TOKEN: "${user_config.token}",
        AGENT_CRON_MCPB_EXECUTOR: "${user_config.executor}",
        AGENT_CRON_MCPB_AGENT_BIN: "${user_config.agent_bin}",
      },
    },
  },
  tools,
  tools_generated: true,
  compatibility: { platforms: ["darwin", "win32", "linux"], runtimes: { node: pkg.engines.node } },
  user_config: {
    data_dir: {
      type: "directory",
      title: "Data folder",
      description:
        "Where agent-cron keeps its jobs, runs and config.json (the --data-dir of agent-cron). Default ~/.agent-cron, shared with the agent-cron command line.",
      default: "${HOME}/.agent-cron",
      required: false,
    },
    executor: {
      type: "string",
      title: "Agent",
      description:
        'Which agent runs the jobs: "claude" (Claude Code, the default) or "codex". Becomes default_executor; the executors in the data folder\'s config.json are kept.',
      default: "claude",
      required: false,
    },
    agent_bin: {
      type: "file",
      title: "Agent program",
      description: "The agent's program, when it is not on the PATH Claude Desktop sees (for example /opt/homebrew/bin/claude). Becomes that executor's bin.",
      required: false,
    },
    token: {
      type: "string",
      title: "Dashboard token",
      description: "Optional: a token for agent-cron's dashboard and /metrics (AGENT_CRON_TOKEN). Leave empty to keep them on this machine only.",
      sensitive: true,
      required: false,
    },
  },
};

rmSync(stage, { recursive: true, force: true });
mkdirSync(path.join(stage, "server"), { recursive: true });
cpSync(path.join(root, process.env.AGENT_CRON_DIST || "dist"), path.join(stage, "dist"), { recursive: true });
copyFileSync(path.join(root, "scripts", "mcpb-launch.mjs"), path.join(stage, "server", "launch.mjs"));
for (const f of ["README.md", "LICENSE"]) copyFileSync(path.join(root, f), path.join(stage, f));
// The version (dist/ reads ../package.json) and ESM for the launcher; nothing to install.
writeFileSync(path.join(stage, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: "module", license: pkg.license }, null, 2) + "\n");
writeFileSync(path.join(stage, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
rmSync(out, { force: true });
const mcpb = path.join(root, "node_modules", ".bin", "mcpb");
execFileSync(mcpb, ["pack", stage, out], { stdio: "inherit" });
