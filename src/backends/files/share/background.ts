import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { toIsoInZone } from "../../../kernel/time.js";
import { SECRETS_FD_ENV, handOverSecrets, ownerEnvironment } from "./secret-env.js";
import { isAlive } from "./owner-file.js";

export { isAlive };

/**
 * The background owner of a data dir (SPEC §17): a detached `agent-cron serve --background`
 * that a stdio server (or a CLI command that adds work) starts when nobody owns the data dir,
 * so that jobs run while no client is open. It outlives every client; it ends with
 * `agent-cron stop`, a hand-over to a newer version, or the service that started it.
 */

/** How the owner of a data dir was started, as owner.json and every "where it runs" sentence say. */
export type StartedAs = "daemon" | "service" | "client" | "http" | "dashboard" | "cli";

export interface StartOwnerOptions {
  dataDir: string;
  /** An explicit --config file, passed on; null for the data dir's own. */
  configPath: string | null;
  env: NodeJS.ProcessEnv;
  /** It takes over from an older owner that took no occurrence after this time (ms). */
  handoverSince?: number | null;
}

/** The built CLI that this code belongs to (dist/cli.js). */
export function cliPath(): string {
  return fileURLToPath(new URL("./cli.js", import.meta.url));
}

/**
 * Starts the background owner: its own session and process group (setsid), no terminal, no
 * stdin, its output nowhere (it writes its own log under <data dir>/logs/), its working
 * directory the data dir (not the client's folder, which it would keep busy), the secrets on
 * a pipe. Returns its pid; the caller then follows it through the socket.
 */
export function startBackgroundOwner(opts: StartOwnerOptions): number {
  // The allow-listed environment, and everything else of the client's on fd 3 (SPEC §20).
  const { env, secrets } = ownerEnvironment(opts.env);
  // The owner is the owner: it starts no other.
  delete secrets.AGENT_CRON_ALWAYS_ON;
  const args = [
    cliPath(),
    "serve",
    "--background",
    "--data-dir",
    opts.dataDir,
    ...(opts.configPath ? ["--config", opts.configPath] : []),
    ...(opts.handoverSince ? ["--handover-since", String(opts.handoverSince)] : []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: opts.dataDir,
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: { ...env, [SECRETS_FD_ENV]: "3" },
  });
  child.on("error", () => {});
  (child.stdio[3] as NodeJS.WritableStream | null)?.on("error", () => {});
  handOverSecrets(child, secrets);
  child.unref();
  return child.pid ?? -1;
}

/** The owner's log: <data dir>/logs/agent-cron.log, rotated at LOG_MAX_BYTES, LOG_KEEP old files. */
export const LOG_MAX_BYTES = Number(process.env.AGENT_CRON_LOG_MAX_BYTES) > 0 ? Number(process.env.AGENT_CRON_LOG_MAX_BYTES) : 1024 * 1024;
const LOG_KEEP = 3;

export function logPathFor(dataDir: string): string {
  return path.join(dataDir, "logs", "agent-cron.log");
}

/**
 * An appending, size-capped log: when the file passes LOG_MAX_BYTES it becomes
 * agent-cron.log.1 (the older ones shift, the oldest goes), so the owner's log never grows
 * without bound however long it runs. Writes are synchronous: a line said just before a crash
 * is on disk.
 */
export class RotatingLog {
  private size: number;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      this.size = statSync(file).size;
    } catch {
      this.size = 0;
    }
  }

  write(line: string): void {
    const text = line.endsWith("\n") ? line : `${line}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > LOG_MAX_BYTES) this.rotate();
    try {
      appendFileSync(this.file, text, { mode: 0o600 });
      this.size += bytes;
    } catch {
      // A full disk must not stop the owner; the line is lost.
    }
  }

  private rotate(): void {
    for (let i = LOG_KEEP - 1; i >= 1; i--) {
      try {
        renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      } catch {
        /* not there yet */
      }
    }
    try {
      renameSync(this.file, `${this.file}.1`);
    } catch {
      /* gone */
    }
    this.size = 0;
  }
}

/** Where the jobs run, for every answer that says so (add_cron, list_crons, doctor, status, the dashboard). */
export interface Residence {
  /** True: jobs run while no client is open; false: only while the owner's client is; null: a fleet (postgres). */
  background: boolean | null;
  pid: number | null;
  started_as: string | null;
  /** When the owner took the data dir (ISO). */
  since: string | null;
  version: string | null;
  /** The owner is the process answering. */
  self: boolean;
  /** The one sentence: "Jobs run in agent-cron's background owner (pid 1234, since 09:12), also while no client is open." */
  sentence: string;
  /** The same, short, for add_cron and list_crons answers (every byte is read by a model). */
  short: string;
}

/** The owner as owner.json describes it, in words. */
export function describeOwner(info: { pid: number; since: string; started_as?: string; version?: string }, self: boolean, timezone: string): Residence {
  const how = info.started_as ?? "client";
  const since = shortTime(info.since, timezone);
  const base = { pid: info.pid, started_as: how, since: info.since, version: info.version ?? null, self };
  if (how === "daemon" || how === "service") {
    const what = how === "service" ? "agent-cron's background owner, started by its user service" : "agent-cron's background owner";
    return {
      ...base,
      background: true,
      sentence: `Jobs run in ${what} (pid ${info.pid}, since ${since}), also while no client is open.`,
      short: `Runs in agent-cron's background owner (pid ${info.pid}, since ${since}), also with no client open.`,
    };
  }
  if (how === "http") {
    return {
      ...base,
      background: true,
      sentence: `Jobs run in agent-cron's HTTP daemon (pid ${info.pid}, since ${since}), also while no client is open, for as long as it runs.`,
      short: `Runs in agent-cron's HTTP daemon (pid ${info.pid}, since ${since}), also with no client open.`,
    };
  }
  const owner =
    how === "dashboard"
      ? "the agent-cron dashboard"
      : how === "cli"
        ? "an agent-cron command"
        : self
          ? "this client's agent-cron server"
          : "another client's agent-cron server";
  const mine = self && how === "client";
  return {
    ...base,
    background: false,
    sentence: `Jobs run only while ${mine ? "this client is" : "a client is"} open (they run in ${owner}, pid ${info.pid}, since ${since}); set always_on to "daemon" (the default) for a background owner that keeps running.`,
    short: mine ? `Runs only while this client is open (always_on "client").` : `Runs only while ${owner} (pid ${info.pid}) is open.`,
  };
}

/** "09:12" today, else "2026-12-05 09:12", in the zone. */
function shortTime(iso: string, timezone: string): string {
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return iso;
  const local = toIsoInZone(new Date(at), timezone);
  const today = toIsoInZone(new Date(), timezone).slice(0, 10);
  return local.slice(0, 10) === today ? local.slice(11, 16) : `${local.slice(0, 10)} ${local.slice(11, 16)}`;
}

/** On Linux, whether the pid runs agent-cron's serve (pids are reused); elsewhere assumed. */
export function looksLikeAgentCron(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("serve");
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT" || process.platform !== "linux";
  }
}

export const NO_OWNER_SHORT = "Runs once an agent-cron process owns the data dir (none does now).";
export const NO_OWNER =
  'No agent-cron process owns the data dir right now, so no job runs until one starts (an MCP client with always_on "daemon", agent-cron start, or the user service).';
