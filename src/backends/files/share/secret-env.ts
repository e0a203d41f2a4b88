/**
 * The owner holds no secret in its environment (SPEC §20): a run without a sandbox, as the
 * same user, can read /proc/<its parent>/environ, which is the environment the server was
 * started with (the MCP token, the approver token, channel tokens, API keys named by the
 * config's `*_env` keys, whatever else the user's shell exported).
 *
 * Two halves, both cheap:
 * - A process that starts the owner (the background owner of `always_on`) passes only the
 *   allow-listed environment and hands the rest over a pipe: `ownerEnvironment()` splits,
 *   `handOverSecrets()` writes them to the child's fd 3, and the child's `takeSecrets()`
 *   reads them at start into process.env.
 * - A server started by anyone else (an MCP client launching `agent-cron serve`) cannot be
 *   started differently, and Node 20 cannot exec itself in place; a re-executed child would
 *   leave the parent, secrets and all, as the run's grandparent. So at start the server blanks
 *   the values of every name outside the allow-list in its own environment block (the memory
 *   /proc/<pid>/environ reads), through /proc/self/mem, after copying them into process.env
 *   (setenv keeps values elsewhere, which /proc/<pid>/environ never shows). Nothing else
 *   changes: the server reads its tokens from process.env as before. Linux only; no cost
 *   when no such value is set.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { BASE_ENV_VARS } from "../../../executors/env.js";

/** Names the owner keeps in its environment: a run's own allow-list, plus what tells where and how, never a key. */
const KEEP = new Set<string>([
  ...BASE_ENV_VARS,
  "USER",
  "LOGNAME",
  "SHELL",
  "TERM",
  "COLORTERM",
  "NO_COLOR",
  "FORCE_COLOR",
  "PWD",
  "SHLVL",
  "NODE_ENV",
  "AGENT_CRON_DATA_DIR",
  "AGENT_CRON_CONFIG",
  // A run's marks: an agent-cron started inside a run must keep showing them, since its
  // environment is how the run's processes are found (the stray sweep, the reaper) and how a
  // caller is known to be a run (approval is a person's act).
  "AGENT_CRON_RUN_ID",
  "AGENT_CRON_JOB_ID",
  "AGENT_CRON_SESSION_ID",
  "AGENT_CRON_SCHEDULED_FOR",
]);
const KEEP_PREFIXES = ["LC_", "XDG_"];

/** The variable naming the fd on which an owner's starter hands the secrets over. */
export const SECRETS_FD_ENV = "AGENT_CRON_SECRETS_FD";

/** True for a name the owner may keep in its environment block. */
export function keptInEnvironment(name: string): boolean {
  return KEEP.has(name) || KEEP_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * How to start an owner: `env` (the allow-listed environment) for spawn, and `secrets` (all
 * the rest) for handOverSecrets. Spawn with `stdio[3] = "pipe"` and `env[SECRETS_FD_ENV] = "3"`.
 */
export function ownerEnvironment(env: NodeJS.ProcessEnv = process.env): { env: Record<string, string>; secrets: Record<string, string> } {
  const clean: Record<string, string> = {};
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || name === SECRETS_FD_ENV) continue;
    (keptInEnvironment(name) ? clean : secrets)[name] = value;
  }
  return { env: clean, secrets };
}

/** Writes the secrets to the child's fd 3 (a pipe) and closes it; the child reads them with takeSecrets(). */
export function handOverSecrets(child: ChildProcess, secrets: Record<string, string>): void {
  const pipe = child.stdio[3] as NodeJS.WritableStream | null | undefined;
  if (!pipe) throw new Error('handOverSecrets needs the child spawned with stdio[3] = "pipe"');
  pipe.end(JSON.stringify(secrets));
}

/**
 * At start: takes the secrets handed over on the fd named by AGENT_CRON_SECRETS_FD (if any)
 * into process.env, then blanks whatever secret values are left in this process's own
 * environment block (see above). Returns how many values were blanked.
 */
export function takeSecrets(env: NodeJS.ProcessEnv = process.env): number {
  const fd = env[SECRETS_FD_ENV];
  if (fd !== undefined) {
    delete env[SECRETS_FD_ENV];
    const n = Number(fd);
    if (Number.isInteger(n) && n > 2) {
      try {
        const handed = JSON.parse(readFileSync(n, "utf8") || "{}") as Record<string, unknown>;
        for (const [name, value] of Object.entries(handed)) if (typeof value === "string") env[name] = value;
      } finally {
        closeSync(n);
      }
    }
  }
  return scrubEnvironmentBlock(env);
}

/** Blanks, in this process's environment block, the value of every name outside the allow-list; process.env keeps them. */
function scrubEnvironmentBlock(env: NodeJS.ProcessEnv): number {
  if (process.platform !== "linux") return 0;
  let block: Buffer;
  try {
    block = readFileSync("/proc/self/environ");
  } catch {
    return 0;
  }
  // Each entry NAME=VALUE\0: the offsets of the values to blank.
  const spans: { name: string; start: number; end: number }[] = [];
  for (let at = 0; at < block.length; ) {
    let end = block.indexOf(0, at);
    if (end < 0) end = block.length;
    const eq = block.indexOf(0x3d, at);
    if (eq > at && eq < end - 1) {
      const name = block.toString("latin1", at, eq);
      if (!keptInEnvironment(name)) spans.push({ name, start: eq + 1, end });
    }
    at = end + 1;
  }
  if (!spans.length) return 0;
  const values = new Map(spans.map((s) => [s.name, env[s.name]]));
  try {
    const stat = readFileSync("/proc/self/stat", "latin1");
    // Fields 50 and 51 (env_start, env_end), counted from the state field (3) after "(comm)".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const envStart = Number(fields[47]);
    if (!Number.isSafeInteger(envStart) || envStart <= 0 || Number(fields[48]) - envStart !== block.length) return 0;
    const mem = openSync("/proc/self/mem", "r+");
    try {
      for (const s of spans) writeSync(mem, Buffer.alloc(s.end - s.start), 0, s.end - s.start, envStart + s.start);
    } finally {
      closeSync(mem);
    }
  } catch {
    return 0;
  }
  // getenv now reads the blanked values: set them again, into memory the block does not show.
  for (const [name, value] of values) if (value !== undefined) env[name] = value;
  return spans.length;
}
