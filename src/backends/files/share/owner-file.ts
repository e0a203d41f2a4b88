import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * What a process needs to find a data dir's owner, apart from the rest of the Host: the stdio
 * relay (src/mcp/relay.ts) reads it before anything else of agent-cron is loaded.
 */

/**
 * Unix socket paths are limited to ~107 bytes; a long data dir path gets a hashed one in tmp.
 * (The owner binds `<path>.<random>` first and renames it into place, hence the margin.)
 */
export function socketPathFor(dataDir: string): string {
  const inDir = path.join(dataDir, "agent-cron.sock");
  if (Buffer.byteLength(inDir) < 90) return inDir;
  const hash = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 16);
  return path.join(os.tmpdir(), `agent-cron-${hash}.sock`);
}

/**
 * A lock older than this is stale: its owner died without releasing it (kill -9). The owner
 * refreshes it more often (host.ts), so a live owner is never taken over.
 */
export const LOCK_STALE_MS = 6000;

/** A change sent to an owner that went before it answered: it may have been made. */
export const OWNER_STOPPED_MID_CALL =
  "The agent-cron process that owned the data dir stopped during the call; check whether the change was made (list_crons) before trying again.";

export interface OwnerFile {
  pid: number;
  role: string;
  socket: string;
  since: string;
  /** agent-cron's version; absent in files written before 0.2. */
  version?: string;
  /** How the owner was started (background.ts StartedAs); absent before 0.2. */
  started_as?: string;
  /**
   * The config file the owner started with, as configDigest gives it: a stdio relay whose
   * config is the same bytes can let the owner serve its client (src/mcp/relay.ts).
   */
  config_sha256?: string;
  /** Proves the caller may use the socket, and fences the owner's writes (host.ts Generation). */
  token: string;
}

export function readOwnerFile(dataDir: string): OwnerFile | null {
  try {
    const value = JSON.parse(readFileSync(path.join(dataDir, "owner.json"), "utf8"));
    return typeof value?.token === "string" ? value : null;
  } catch {
    return null;
  }
}

/** The config's bytes, hashed; "none" when there is no config file. */
export function configDigest(text: string | null): string {
  return text === null ? "none" : createHash("sha256").update(text).digest("hex");
}

/** The config file's text (what loadConfig read), or null when there is none or it cannot be read. */
export function readConfigText(configPath: string | null | undefined): string | null {
  if (!configPath) return null;
  try {
    return readFileSync(configPath, "utf8");
  } catch {
    return null;
  }
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}
