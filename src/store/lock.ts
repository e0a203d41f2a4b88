import { openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import path from "node:path";

export interface LockInfo {
  pid: number;
  started_at: string;
  mode: string;
}

/**
 * One process owns a data dir's scheduling and writing. The lock is a file created with
 * O_EXCL holding the owner's pid; a lock whose pid is gone (kill -9) is stale and taken over.
 */
export class DataDirLock {
  private held = false;
  readonly file: string;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, "agent-cron.lock");
  }

  /** Takes the lock, or returns who holds it. */
  acquire(mode: string): { ok: true } | { ok: false; holder: LockInfo } {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(this.file, "wx");
        writeSync(fd, JSON.stringify({ pid: process.pid, started_at: new Date().toISOString(), mode }));
        closeSync(fd);
        this.held = true;
        return { ok: true };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const holder = this.holder();
      if (holder && holder.pid !== process.pid && pidAlive(holder.pid)) return { ok: false, holder };
      rmSync(this.file, { force: true });
    }
    const holder = this.holder();
    return holder ? { ok: false, holder } : { ok: false, holder: { pid: 0, started_at: "", mode: "unknown" } };
  }

  holder(): LockInfo | null {
    try {
      const info = JSON.parse(readFileSync(this.file, "utf8")) as LockInfo;
      return typeof info.pid === "number" ? info : null;
    } catch {
      return null;
    }
  }

  /** The live holder, if any (for the CLI's "a server is running" check). */
  liveHolder(): LockInfo | null {
    const h = this.holder();
    return h && pidAlive(h.pid) ? h : null;
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    const h = this.holder();
    if (h?.pid === process.pid) rmSync(this.file, { force: true });
  }
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
