#!/usr/bin/env node
// npm start: the HTTP daemon on the default data dir. It builds dist/ only when it is missing or
// older than a source file (a rebuild took 23 s of every start), and then runs the daemon in
// this very process. npm passes SIGTERM to the shell it started the script with, and the shell
// (dash) exits without passing it on: the daemon then watches for its parent to go and stops
// as if it had the signal itself, instead of running on without a parent, holding the port.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.resolve(root, process.env.AGENT_CRON_DIST || "dist");
const built = ["cli.js", "app-view.js"].map((f) => path.join(dist, f));

function newest(p) {
  const s = statSync(p, { throwIfNoEntry: false });
  if (!s) return 0;
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(p).map((name) => newest(path.join(p, name))));
}

const sources = ["src", "scripts/bundle.mjs", "package.json", "tsconfig.json", "tsconfig.build.json"].map((p) => path.join(root, p));
const builtAt = Math.min(...built.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
const changedAt = Math.max(...sources.map(newest));
if (builtAt === 0 || changedAt > builtAt) {
  process.stderr.write(
    `agent-cron: building ${path.relative(root, dist) || "dist"}/ (${builtAt === 0 ? "not built yet" : "the sources changed since the last build"})\n`,
  );
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = spawnSync(npm, ["run", "build"], { cwd: root, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, "SIGTERM");
}, 500).unref();

process.argv = [process.argv[0], built[0], "serve", "--http", ...process.argv.slice(2)];
await import(pathToFileURL(built[0]).href);
