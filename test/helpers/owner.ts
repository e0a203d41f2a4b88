/**
 * The data dir's background owner (SPEC §17), seen from outside: who owns a data dir, what
 * its process looks like in /proc, and stopping it for good after a test (no test may leave
 * a detached agent-cron running).
 */
import { readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { isAlive } from "./process.js";

export interface OwnerInfo {
  pid: number;
  role: string;
  since: string;
  version?: string;
  started_as?: string;
  socket: string;
}

export function ownerOf(dataDir: string): OwnerInfo | null {
  try {
    return JSON.parse(readFileSync(path.join(dataDir, "owner.json"), "utf8"));
  } catch {
    return null;
  }
}

/** The environment a process started with, as /proc shows it to anyone who may read it. */
export function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const i = entry.indexOf("=");
    if (i > 0) out[entry.slice(0, i)] = entry.slice(i + 1);
  }
  return out;
}

/** pid, process group, session and controlling terminal (0: none), from /proc/<pid>/stat. */
export function statOf(pid: number): { ppid: number; pgrp: number; session: number; tty: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(f[1]), pgrp: Number(f[2]), session: Number(f[3]), tty: Number(f[4]) };
}

/** What a process's fd 0, 1, 2 point at. */
export function stdioOf(pid: number): string[] {
  return [0, 1, 2].map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return "(closed)";
    }
  });
}

/** Kills a background owner's whole process group (it leads its own), and waits until it is gone. */
export async function killOwner(pid: number | undefined | null): Promise<void> {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  const until = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Every background owner a test's data dirs had: killed in afterEach, whatever the test did.
 * `remember` a data dir as soon as it is made; the owner is looked up at the end.
 */
export class OwnerReaper {
  private readonly dirs = new Set<string>();
  private readonly pids = new Set<number>();

  remember(dataDir: string): void {
    this.dirs.add(dataDir);
  }

  rememberPid(pid: number): void {
    this.pids.add(pid);
  }

  async reap(): Promise<void> {
    for (const dir of this.dirs) {
      const owner = ownerOf(dir);
      // A client-mode owner is the test's own child, closed with its client.
      if (owner && (owner.started_as === "daemon" || owner.started_as === "service")) this.pids.add(owner.pid);
    }
    for (const pid of this.pids) if (pid !== process.pid) await killOwner(pid);
    this.dirs.clear();
    this.pids.clear();
  }
}
