import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import lockfile from "proper-lockfile";
import type { Config } from "../config.js";
import { LocalApi, READ_METHODS, type ApiMethod, type CronApi } from "../core/api.js";
import { App } from "../core/app.js";
import { UnavailableError, UserError, errorMessage } from "../core/errors.js";
import { AppEventBus, type AppEvents } from "../core/events.js";
import { OwnerGoneError, RemoteApiClient, serveApi } from "./rpc.js";

/**
 * A lock older than this is stale: its owner died without releasing it (kill -9). The owner
 * refreshes it every LOCK_UPDATE_MS, so a live owner is never taken over.
 */
const LOCK_STALE_MS = 6000;
const LOCK_UPDATE_MS = 1500;
const RETRY_MS = 150;

export interface HostOptions {
  dataDir: string;
  config: Config;
  /** A server schedules while it owns the data dir; the CLI only serves its own call. */
  role: "server" | "cli";
  /** How long to wait for the data dir when another process is between owners. */
  waitMs?: number;
  onNotice?: (level: string, message: string) => void;
}

/**
 * One process's seat on a data dir. The first process takes the lock and owns the data dir:
 * it loads the store, schedules, writes, and serves the API on a local socket. Every other
 * process (a second IDE window, the CLI) forwards each call to the owner, and receives its
 * events, so all answer with the same data and each occurrence runs once. When the owner
 * exits (socket closes) or dies (the lock goes stale), a follower takes over.
 */
export class Host implements CronApi {
  readonly events = new AppEventBus();
  private owner: { app: App; api: LocalApi; release: () => Promise<void>; stopServing: () => Promise<void>; unpipe: () => void } | null = null;
  private remote: RemoteApiClient | null = null;
  private closing = false;
  private takeover: Promise<void> | null = null;
  readonly socketPath: string;

  private constructor(private opts: HostOptions) {
    this.events.setMaxListeners(0);
    this.socketPath = socketPathFor(opts.dataDir);
  }

  static async open(opts: HostOptions): Promise<Host> {
    mkdirSync(opts.dataDir, { recursive: true });
    const host = new Host(opts);
    await host.seat(opts.waitMs ?? 15_000);
    return host;
  }

  get isOwner(): boolean {
    return this.owner !== null;
  }

  /** The owner's App, when this process owns the data dir. */
  get app(): App | null {
    return this.owner?.app ?? null;
  }

  /** A new config (config.json was edited): the owner applies it; a later takeover starts with it. */
  applyConfig(config: Config): void {
    this.opts.config = config;
    this.owner?.app.applyConfig(config);
  }

  /** Becomes owner or follower, whichever the data dir allows first. */
  private async seat(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    let lastError = "";
    while (!this.closing) {
      if (await this.tryOwn()) return;
      try {
        await this.follow();
        return;
      } catch (err) {
        // The owner is there but does not answer: say so now rather than wait to take over.
        if (err instanceof UnavailableError) throw err;
        lastError = errorMessage(err);
      }
      if (Date.now() > deadline) {
        throw new Error(`The data dir ${this.opts.dataDir} is locked, but its owner does not answer on ${this.socketPath} (${lastError}).`);
      }
      await sleep(RETRY_MS);
    }
  }

  private async tryOwn(): Promise<boolean> {
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.opts.dataDir, {
        lockfilePath: path.join(this.opts.dataDir, "agent-cron.lock"),
        stale: LOCK_STALE_MS,
        update: LOCK_UPDATE_MS,
        realpath: false,
        retries: 0,
        onCompromised: (err) => this.compromised(err),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") return false;
      throw err;
    }
    let app: App;
    try {
      app = await App.open({ dataDir: this.opts.dataDir, config: this.opts.config });
    } catch (err) {
      await release().catch(() => {});
      throw err;
    }
    for (const problem of app.startupProblems) this.opts.onNotice?.("error", problem);
    const api = new LocalApi(app);
    const unpipe = pipeEvents(app.events, this.events);
    rmSync(this.socketPath, { force: true });
    const stopServing = await serveApi(api, this.socketPath);
    chmodSync(this.socketPath, 0o600);
    writeFileSync(path.join(this.opts.dataDir, "owner.json"), JSON.stringify({ pid: process.pid, role: this.opts.role, socket: this.socketPath, since: new Date().toISOString() }) + "\n");
    this.owner = { app, api, release, stopServing, unpipe };
    if (this.opts.role === "server") await app.start();
    return true;
  }

  private async follow(): Promise<void> {
    const remote = await RemoteApiClient.connect(this.socketPath, this.events);
    this.remote = remote;
    remote.onClose(() => {
      if (this.remote !== remote) return;
      this.remote = null;
      if (!this.closing) this.takeover = this.seat(60_000).catch((err) => this.opts.onNotice?.("error", errorMessage(err)));
    });
  }

  /** The lock was lost (the process stalled past the stale time): stop owning at once. */
  private compromised(err: Error): void {
    this.opts.onNotice?.("error", `Lost the data dir lock (${err.message}); stopping.`);
    void this.close(0).finally(() => process.exit(1));
  }

  private async call<T>(method: ApiMethod, args: unknown): Promise<T> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.owner) return (this.owner.api[method] as (a: unknown) => Promise<T>).call(this.owner.api, args);
      if (this.takeover) await this.takeover;
      if (this.closing) throw new Error("agent-cron is shutting down.");
      const remote = this.remote;
      if (!remote || remote.stopping) {
        // Between owners: wait for the next one (this process or another).
        if (Date.now() > deadline) throw new UserError("No agent-cron process owns the data dir right now; try again.");
        await sleep(RETRY_MS / 3);
        continue;
      }
      try {
        return (await remote.call(method, args)) as T;
      } catch (err) {
        // A read is safe to repeat on the next owner, and so is a call the owner refused
        // unapplied; a write cut off mid-call may have been applied, so say so instead.
        if (!(err instanceof OwnerGoneError)) throw err;
        if (err.mayHaveApplied && !READ_METHODS.has(method)) throw new UserError(err.message);
      }
    }
  }

  async close(graceMs = 0): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.remote?.close();
    const owner = this.owner;
    if (!owner) return;
    await owner.stopServing();
    await owner.app.close(graceMs);
    owner.unpipe();
    rmSync(path.join(this.opts.dataDir, "owner.json"), { force: true });
    await owner.release().catch(() => {});
  }

  addCron = (a: Parameters<CronApi["addCron"]>[0]) => this.call<Awaited<ReturnType<CronApi["addCron"]>>>("addCron", a);
  listCrons = (a: Parameters<CronApi["listCrons"]>[0]) => this.call<Awaited<ReturnType<CronApi["listCrons"]>>>("listCrons", a);
  listRuns = (a: Parameters<CronApi["listRuns"]>[0]) => this.call<Awaited<ReturnType<CronApi["listRuns"]>>>("listRuns", a);
  pause = (a: Parameters<CronApi["pause"]>[0]) => this.call<Awaited<ReturnType<CronApi["pause"]>>>("pause", a);
  resume = (a: Parameters<CronApi["resume"]>[0]) => this.call<Awaited<ReturnType<CronApi["resume"]>>>("resume", a);
  remove = (a: Parameters<CronApi["remove"]>[0]) => this.call<Awaited<ReturnType<CronApi["remove"]>>>("remove", a);
  getCron = (a: Parameters<CronApi["getCron"]>[0]) => this.call<Awaited<ReturnType<CronApi["getCron"]>>>("getCron", a);
  updateCron = (a: Parameters<CronApi["updateCron"]>[0]) => this.call<Awaited<ReturnType<CronApi["updateCron"]>>>("updateCron", a);
  runNow = (a: Parameters<CronApi["runNow"]>[0]) => this.call<Awaited<ReturnType<CronApi["runNow"]>>>("runNow", a);
  waitRun = (a: Parameters<CronApi["waitRun"]>[0]) => this.call<Awaited<ReturnType<CronApi["waitRun"]>>>("waitRun", a);
  cancelRun = (a: Parameters<CronApi["cancelRun"]>[0]) => this.call<Awaited<ReturnType<CronApi["cancelRun"]>>>("cancelRun", a);
  previewSchedule = (a: Parameters<CronApi["previewSchedule"]>[0]) => this.call<Awaited<ReturnType<CronApi["previewSchedule"]>>>("previewSchedule", a);
  readRun = (a: Parameters<CronApi["readRun"]>[0]) => this.call<Awaited<ReturnType<CronApi["readRun"]>>>("readRun", a);
  allJobs = (a: Parameters<CronApi["allJobs"]>[0]) => this.call<Awaited<ReturnType<CronApi["allJobs"]>>>("allJobs", a);
  completeIds = (a: Parameters<CronApi["completeIds"]>[0]) => this.call<Awaited<ReturnType<CronApi["completeIds"]>>>("completeIds", a);
}

/** Unix socket paths are limited to ~107 bytes; a long data dir path gets a hashed one in tmp. */
export function socketPathFor(dataDir: string): string {
  const inDir = path.join(dataDir, "agent-cron.sock");
  if (Buffer.byteLength(inDir) < 100) return inDir;
  const hash = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 16);
  return path.join(os.tmpdir(), `agent-cron-${hash}.sock`);
}

function pipeEvents(from: AppEventBus, to: AppEventBus): () => void {
  const names: (keyof AppEvents)[] = ["job", "run", "notice"];
  const offs = names.map((name) => {
    const fn = (...args: unknown[]) => (to.emit as (e: string, ...a: unknown[]) => boolean)(name, ...args);
    from.on(name, fn as never);
    return () => from.off(name, fn as never);
  });
  return () => offs.forEach((off) => off());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

