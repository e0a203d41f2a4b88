/**
 * A temp data dir whose config runs the fake agents of test/fixtures/ (each a command executor
 * without a sandbox), for the built server (server.ts) and the in-process one (in-process.ts).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "..", "..");
export const FIXTURES = path.join(ROOT, "test", "fixtures");
export const fixture = (name: string) => path.join(FIXTURES, name);
const NODE = process.execPath;

/**
 * The executors every e2e data dir gets. Arguments come from the prompt where a fixture takes
 * one, so one executor serves many behaviours: the sleep executor sleeps `prompt` ms, etc.
 */
export function fixtureExecutors(): Record<string, unknown> {
  // Pinned: `npm test` behaves the same whether bubblewrap works on the machine or not ("auto").
  const cmd = (file: string, ...args: string[]) => ({ type: "command", command: [NODE, fixture(file), ...args], sandbox: "none" });
  return {
    /** Prints the prompt, given as an argument; the prompt "ENV" prints the environment as JSON. */
    echo: cmd("echo-agent.mjs", "{prompt}"),
    /** Same agent, prompt written to stdin (no {prompt} placeholder). */
    "echo-stdin": cmd("echo-agent.mjs"),
    /** Prints its argv joined: shows every placeholder expanded. */
    "echo-vars": cmd("echo-agent.mjs", "run={run_id}", "job={job_id}", "session={session_id}", "dir={work_dir}"),
    /** Sleeps `prompt` milliseconds, then prints "done". */
    sleep: cmd("sleep-agent.mjs", "{prompt}"),
    /** Long stderr ending in "fatal: the agent broke", exit code 3. */
    fail: cmd("fail-agent.mjs", "3"),
    /** Ignores SIGTERM, has a grandchild that does too; writes the grandchild's pid to <work_dir>/hang.pid. */
    hang: cmd("hang-agent.mjs", "{work_dir}/hang.pid"),
    /** json-agent.mjs <prompt>: object | invalid | jsonl. */
    json: cmd("json-agent.mjs", "{prompt}"),
    /** Prints about `prompt` bytes of 3-byte characters between START and END. */
    big: cmd("big-agent.mjs", "{prompt}"),
    /** Fails the first run, then succeeds; the counter file is the prompt (an absolute path). */
    flaky: cmd("flaky-agent.mjs", "{prompt}", "1"),
    /** Exits without reading stdin (the prompt goes to stdin). */
    "no-stdin": cmd("no-stdin-agent.mjs"),
  };
}

export interface DataDirOptions {
  /** Merged over the base config (executors are merged, not replaced). */
  config?: Record<string, unknown>;
  /** Write no config.json at all. */
  noConfig?: boolean;
}

/** A fresh temp data dir with a config.json for the fixtures. */
export function makeDataDir(opts: DataDirOptions = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-e2e-"));
  if (!opts.noConfig) writeFileSync(path.join(dir, "config.json"), JSON.stringify(baseConfig(opts.config), null, 2));
  return dir;
}

/**
 * What every process a test starts gets, unless the test says otherwise: no background owner
 * (always_on "client"), so that no test leaves a detached agent-cron running. A test about the
 * background owner passes AGENT_CRON_ALWAYS_ON: "daemon" and stops the owner itself.
 */
export const TEST_ENV: Record<string, string> = { AGENT_CRON_ALWAYS_ON: "client" };

export function baseConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { executors, ...rest } = extra as { executors?: Record<string, unknown> };
  return {
    timezone: "Europe/Paris",
    // See TEST_ENV: a test about the background owner overrides both.
    always_on: "client",
    default_executor: "echo",
    max_concurrent: 8,
    // A hanging agent ignores SIGTERM; do not wait the default 5 s before SIGKILL.
    kill_grace_seconds: 0.5,
    ...rest,
    executors: { ...fixtureExecutors(), ...(executors ?? {}) },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 }).catch(() => {});
  await rm(workCacheOf(dir), { recursive: true, force: true, maxRetries: 3, retryDelay: 100 }).catch(() => {});
}

/**
 * The XDG_CACHE_HOME a test's processes get: default work dirs live outside the data dir
 * (under $XDG_CACHE_HOME/agent-cron/work), and a test must not leave them in the real one.
 */
export const workCacheOf = (dataDir: string) => `${dataDir.replace(/\/+$/, "")}-cache`;
