import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const script = path.join(root, "scripts/install-agent-clis.sh");
const checked = new Map<string, string>();

/**
 * The pinned real CLI installed by scripts/install-agent-clis.sh (the one place that names
 * the versions). Throws, failing the test, when it is missing or another version: these
 * tests must not pass by being skipped.
 */
export function pinnedCli(name: "claude" | "codex"): string {
  const cached = checked.get(name);
  if (cached) return cached;
  const variable = name === "claude" ? "CLAUDE_CODE_VERSION" : "CODEX_VERSION";
  const version = new RegExp(`^${variable}=(\\S+)$`, "m").exec(readFileSync(script, "utf8"))?.[1];
  if (!version) throw new Error(`${script} does not define ${variable}.`);
  const bin = path.join(root, ".cache/agent-clis/node_modules/.bin", name);
  const fix = "Run `bash scripts/install-agent-clis.sh` first (it installs the pinned agent CLIs into .cache/agent-clis/).";
  if (!existsSync(bin)) throw new Error(`The ${name} CLI ${version} is not installed. ${fix}`);
  let reported: string;
  try {
    reported = execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH ?? "" } }).trim();
  } catch (err) {
    throw new Error(`${bin} --version failed (${(err as Error).message}). ${fix}`);
  }
  if (!reported.includes(version)) throw new Error(`${bin} is "${reported}", not the pinned ${version}. ${fix}`);
  checked.set(name, bin);
  return bin;
}
