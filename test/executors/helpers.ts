import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ExecutionRequest } from "../../src/core/ports.js";
import { isAlive } from "../helpers/process.js";
export { isAlive };

export const fixture = (name: string) => path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", name);

export async function waitFor(check: () => boolean, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

/**
 * Live processes whose environment has `NAME=value`. Every agent process gets
 * AGENT_CRON_RUN_ID, so this finds whatever a run left behind, however deep its tree.
 */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(needle) && isAlive(pid)) found.push(pid);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

export interface Invocation {
  argv: string[];
  env: Record<string, string>;
  stdin: string;
  cwd: string;
  pid: number;
  grandchild?: number;
  schema?: unknown;
}

/** What the fake CLIs recorded, one invocation per line. */
export function readInvocations(file: string): Invocation[] {
  try {
    return readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Invocation);
  } catch {
    return [];
  }
}

/** An attempt's request with test defaults; `workDir` doubles as the scratch dir. */
export function makeRequest(workDir: string, over: Partial<ExecutionRequest> = {}): ExecutionRequest {
  return {
    runId: `run-${randomUUID()}`,
    jobId: "job-1",
    sessionId: randomUUID(),
    resume: false,
    scheduledFor: "2026-12-01T09:00:00.000+01:00",
    prompt: "hello agent",
    workDir,
    timeoutMs: 10_000,
    outputFormat: "text",
    outputSchema: null,
    maxCostUsd: null,
    signal: new AbortController().signal,
    scratchDir: workDir,
    maxOutputBytes: 1024 * 1024,
    ...over,
  };
}

/**
 * A fresh folder for sandbox tests outside /tmp and HOME: the sandbox hides both whole, so
 * what is hidden under this folder is hidden because it was named (hiddenPaths). /var/tmp
 * when the checkout itself is under /tmp or HOME (as a CI clone may be), else the checkout's
 * .cache/.
 */
export function sandboxTestDir(prefix: string): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const home = process.env.HOME ?? "/nonexistent";
  const inside = (dir: string, parent: string) => dir === parent || dir.startsWith(parent + path.sep);
  const parent = inside(root, "/tmp") || inside(root, home) ? "/var/tmp" : path.join(root, ".cache");
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(path.join(parent, prefix));
}
