import { readdirSync } from "node:fs";
import { readProcFile } from "./proc-file.js";

/**
 * Kills the agents of runs whose server died (kill -9): their process groups outlive it, and
 * an agent still editing files after its run was recorded `interrupted` would be a surprise.
 * Each agent carries AGENT_CRON_RUN_ID in its environment, so the processes are found by
 * that, not by a pid that may have been reused. Linux only (/proc); elsewhere a no-op.
 */
export function killOrphanedRuns(runIds: readonly string[]): number {
  if (!runIds.length || process.platform !== "linux") return 0;
  const wanted = new Set(runIds.map((id) => `AGENT_CRON_RUN_ID=${id}`));
  let killed = 0;
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let environ: string;
    try {
      environ = readProcFile(`/proc/${pid}/environ`);
    } catch {
      continue;
    }
    if (!environ.split("\0").some((v) => wanted.has(v))) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {
      // Already gone.
    }
  }
  return killed;
}

let pending: string[] | null = null;

/**
 * killOrphanedRuns for a run that just ended, run once for all the runs ending in the same
 * stretch of synchronous work and its microtasks: each call reads every process's environ,
 * and a fleet's 64 runs canceled together at shutdown made 64 walks of /proc (11 % of the
 * main thread in a profile of the 300-job fleet, issue 27).
 */
export function killOrphanedRunsSoon(runId: string): void {
  if (!pending) {
    pending = [];
    queueMicrotask(() => {
      const ids = pending ?? [];
      pending = null;
      killOrphanedRuns(ids);
    });
  }
  pending.push(runId);
}
