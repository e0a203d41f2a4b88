import { randomBytes } from "node:crypto";
import fs, { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import lockfile from "proper-lockfile";
import type { Config } from "../../../config.js";
import { ForwardingApi, LocalApi, READ_METHODS, actAsChecked, claimsPerson, type ApiMethod, type CronApi, type PersonCheck } from "../../../core/api.js";
import type { App } from "../../../core/app.js";
import { AgentCronError, LockLostError, UnavailableError, UserError, codeOf, errorMessage, kindOf, type Fence } from "../../../kernel/errors.js";
import { AppEventBus, type AppEvents } from "../../../core/events.js";
import type { Health } from "../../../ops/metrics.js";
import { checkSelf } from "./peer.js";
import { VERSION } from "../../../version.js";
import { NO_OWNER, NO_OWNER_SHORT, describeOwner, isAlive, type Residence, type StartedAs } from "./background.js";
import { OwnerGoneError, RemoteApiClient, fileIdentity, sameFile, serveApi, type McpSessionHandle, type StopServing } from "./rpc.js";
import { unaccountedOccurrences } from "../../../core/ledger.js";
import { LOCK_STALE_MS, configDigest, readConfigText, readOwnerFile, socketPathFor, type OwnerFile } from "./owner-file.js";

export { readOwnerFile, socketPathFor, type OwnerFile };

const LOCK_UPDATE_MS = 1500;
const RETRY_MS = 150;
/** After a failed try to find or become the owner, the next try. */
const RESEAT_RETRY_MS = 1000;

export interface HostOptions {
  dataDir: string;
  config: Config;
  /** The config file, which a sandboxed run must not see; null when there is none. */
  configPath?: string | null;
  /** A server schedules while it owns the data dir; the CLI only serves its own call. */
  role: "server" | "cli";
  /** How long to wait for the data dir when another process is between owners. */
  waitMs?: number;
  onNotice?: (level: string, message: string) => void;
  /** How this process came to be (owner.json says it while this process owns the data dir). Default: "client" for a server, "cli" for the CLI. */
  startedAs?: StartedAs;
  /**
   * A background owner (serve --background): it owns the data dir or nothing. It never
   * follows another owner (seating fails with OwnerPresentError), and when it stops owning
   * (deposed, handed over) `onOwnershipEnded` runs, which ends the process.
   */
  ownerOnly?: boolean;
  onOwnershipEnded?: (why: string) => void;
  /** The previous owner handed over and took no occurrence after this time (serve --background --handover-since). */
  handoverSince?: number;
  /** The environment the App's executors and channels read (the background owner's secrets come from a pipe). */
  env?: NodeJS.ProcessEnv;
  /** A newer agent-cron asked this background owner to hand over: stop owning, then end. */
  onHandOverRequest?: () => void;
  /**
   * always_on "daemon": when nobody owns the data dir, start a background owner (with the
   * time a hand-over began, when this follows one) and follow it, instead of owning the data
   * dir for as long as this process lives. An older background owner is asked to hand over.
   */
  startOwner?: (handoverSince: number | null) => void;
  /**
   * Builds the App over the data dir (or the shared store) once this process owns it: the
   * composition root's openApp, handed in by the entry point (cli.ts), which loads it only then,
   * so a CLI call that forwards to the owner never loads the App, its stores and executors.
   */
  openApp(opts: OpenAppRequest): Promise<App>;
  /** Each time this process takes a seat: it owns the data dir (or the shared store), or forwards to its owner. */
  onRole?: (role: "owner" | "follower") => void;
  /**
   * While this process owns the data dir, it serves the MCP sessions of stdio relays (another
   * client's `agent-cron serve`, src/mcp/relay.ts) over its socket, each over `api`, which checks
   * that relay's process where a call needs a person. Absent (the CLI): relays serve themselves.
   */
  serveMcp?: (socket: import("node:net").Socket, rest: string, api: CronApi & { residence(): Residence }) => McpSessionHandle;
  /**
   * This process serves a client already (a stdio relay whose owner went, src/mcp/relay.ts): a
   * first seat that fails is said and tried again, as a follower's takeover is, instead of
   * failing start-up.
   */
  takingOver?: boolean;
  /** A stdio relay started a background owner at this time (ms) and it has not come yet: wait for it only as long as is left. */
  ownerStartedAt?: number;
}

/** What the Host asks openApp for (compose.ts's OpenAppOptions takes these). */
export interface OpenAppRequest {
  dataDir: string;
  config: Config;
  configPath?: string | null;
  /** Checked before every write: throws once this process no longer owns the data dir. */
  fence?: Fence;
  role?: "server" | "cli";
  env?: NodeJS.ProcessEnv;
}

/** serve --background found the data dir owned already: it has nothing to do. */
export class OwnerPresentError extends AgentCronError {
  constructor(readonly owner: OwnerFile | null) {
    super(
      "AC_OWNER_PRESENT",
      `Another agent-cron process (pid ${owner?.pid ?? "?"}, ${owner?.started_as ?? "unknown"}) owns the data dir; this one is not needed.`,
    );
  }
}

/** A background owner that does not take the data dir within this long is given up on: the process owns it itself. */
const START_OWNER_MS = Number(process.env.AGENT_CRON_START_OWNER_MS) > 0 ? Number(process.env.AGENT_CRON_START_OWNER_MS) : 10_000;
/** How long a hand-over may take: the old owner lets its runs finish for up to its shutdown grace first. */
const HANDOVER_MS = 120_000;

/**
 * One process's seat on a data dir. The first process takes the lock and owns the data dir:
 * it loads the store, schedules, writes, and serves the API on a local socket. Every other
 * process (a second IDE window, the CLI) forwards each call to the owner, and receives its
 * events, so all answer with the same data and each occurrence runs once. When the owner
 * exits (socket closes) or dies (the lock goes stale), a follower takes over.
 */
export class Host extends ForwardingApi implements CronApi {
  readonly events = new AppEventBus();
  /** `gen` is null on a shared store (postgres): no lock, no socket, the database coordinates. */
  private owner: {
    app: App;
    api: LocalApi;
    gen: Generation | null;
    release: () => Promise<void>;
    stopServing: StopServing;
    unpipe: () => void;
  } | null = null;
  private remote: RemoteApiClient | null = null;
  private closing = false;
  private takeover: Promise<void> | null = null;
  /** Relayed MCP sessions served on from an earlier tenure (depose): ended when this process closes. */
  private keptSessions: StopServing[] = [];
  readonly socketPath: string;

  private constructor(private opts: HostOptions) {
    super();
    this.events.setMaxListeners(0);
    this.socketPath = socketPathFor(opts.dataDir);
  }

  static async open(opts: HostOptions): Promise<Host> {
    const host = Host.begin(opts);
    await host.seated;
    return host;
  }

  /**
   * The host at once, taking its seat behind: calls wait for the seat, `seated` settles with
   * it. A stdio server answers `initialize` and `tools/list` meanwhile, instead of after the
   * store loaded or a background owner came up (issue 27: that wait was most of a cold start).
   */
  static begin(opts: HostOptions): Host {
    mkdirSync(opts.dataDir, { recursive: true });
    const host = new Host(opts);
    host.servable = new Promise((resolve) => {
      host.ownerServes = resolve;
    });
    host.seating = host.seat(opts.waitMs ?? 15_000);
    // Already serving a client: its first seat is a takeover like any other.
    if (opts.takingOver) host.seating = host.seating.catch((err) => host.seatFailed(err));
    host.seated = host.seating.finally(() => {
      host.seating = null;
    });
    // Whoever awaits `seated` hears of a failure; a call waiting for the seat gets it too.
    host.seated.catch(() => {});
    return host;
  }

  /** Settles when the first seat is taken (owner or follower); rejects when it cannot be. */
  seated: Promise<void> = Promise.resolve();
  private seating: Promise<void> | null = null;
  /**
   * Resolves once this process owns the data dir with its store loaded and the runs left going
   * recorded interrupted (SPEC §4), before its scheduler has armed every job: calls are served
   * from then on, while `seated` still waits for the scheduler's start (and fails with it).
   */
  private servable: Promise<void> = new Promise(() => {});
  private ownerServes: () => void = () => {};

  get isOwner(): boolean {
    return this.owner !== null;
  }

  /**
   * For /readyz and /metrics: the owner's runtime; a follower is ready while an owner answers
   * it, and counts runs from the owner's events.
   */
  health(): Health {
    const none = { running: null, queued: null, fleet_processes: null };
    if (this.closing) return { ready: false, reason: "shutting down", ...none };
    if (this.owner) return this.owner.app.runtime.health();
    if (this.remote) return { ready: true, reason: null, ...none };
    return { ready: false, reason: "no process owns the data dir at this moment; this one is taking it over", ...none };
  }

  /** For /metrics: what the owner's last audit found unaccounted (SPEC §18); null in a follower or before the first audit. */
  unaccounted(): number | null {
    return this.owner ? unaccountedOccurrences(this.owner.app.queries) : null;
  }

  /** The owner's App, when this process owns the data dir. */
  get app(): App | null {
    return this.owner?.app ?? null;
  }

  private linkBase: string | null = null;

  /**
   * Channel messages link to this dashboard (SPEC §11): the owner's notifier takes it now, and
   * an App this process opens later (a takeover) starts with it. A follower's is not used: the
   * owner sends the messages.
   */
  setLinkBase(url: string | null): void {
    this.linkBase = url;
    this.owner?.app.runtime.delivery.setLinkBase?.(url);
  }

  /** A new config (config.json was edited): the owner applies it; a later takeover starts with it. */
  applyConfig(config: Config): void {
    this.opts.config = config;
    this.owner?.app.runtime.applyConfig(config);
    // A stdio relay serves through this owner only with the config it runs (src/mcp/relay.ts).
    this.owner?.gen?.amend({ config_sha256: configDigest(readConfigText(this.opts.configPath)) });
  }

  /**
   * Becomes owner or follower, whichever the data dir allows first. With `startOwner`
   * (always_on "daemon") it follows a background owner, starting one when nobody owns the
   * data dir, and owns it itself only if that owner never comes.
   */
  private async seat(waitMs: number): Promise<void> {
    if (this.opts.config.store.type !== "files") return this.openShared();
    const deadline = Date.now() + waitMs;
    let lastError = "";
    let startedAt: number | null = this.opts.ownerStartedAt ?? null;
    this.opts.ownerStartedAt = undefined;
    let handoverSince: number | null = null;
    while (!this.closing) {
      if (this.opts.ownerOnly) {
        if (await this.tryOwn()) return;
        throw new OwnerPresentError(readOwnerFile(this.opts.dataDir));
      }
      const startOwner = this.opts.startOwner;
      if (!startOwner || (startedAt !== null && Date.now() - startedAt > START_OWNER_MS)) {
        if (await this.tryOwn()) {
          if (startOwner) {
            this.opts.onNotice?.(
              "warning",
              `The background owner did not start within ${START_OWNER_MS / 1000} s (see ${path.join(this.opts.dataDir, "logs", "agent-cron.log")}); this process owns the data dir, and jobs run only while it is open.`,
            );
          }
          return;
        }
      }
      try {
        const followed = await this.follow();
        if (followed === true) return;
        handoverSince = followed.handoverSince;
        continue;
      } catch (err) {
        // The owner is there but does not answer: say so now rather than wait to take over.
        if (kindOf(err) === "unavailable") throw err;
        lastError = errorMessage(err);
      }
      if (startOwner && startedAt === null && !(await this.locked())) {
        startOwner(handoverSince);
        startedAt = Date.now();
      }
      if (Date.now() > deadline) {
        throw new Error(`The data dir ${this.opts.dataDir} is locked, but its owner does not answer on ${this.socketPath} (${lastError}).`);
      }
      await sleep(RETRY_MS);
    }
  }

  private async tryOwn(): Promise<boolean> {
    const gen = new Generation(this.opts.dataDir);
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.opts.dataDir, {
        lockfilePath: gen.lockDir,
        stale: LOCK_STALE_MS,
        update: LOCK_UPDATE_MS,
        realpath: false,
        retries: 0,
        fs: gen.lockFs,
        onCompromised: (err) => this.depose(gen, `the lock was lost: ${err.message}`),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") return false;
      throw err;
    }
    try {
      gen.taken({
        pid: process.pid,
        role: this.opts.role,
        socket: this.socketPath,
        since: new Date().toISOString(),
        version: VERSION,
        started_as: this.opts.startedAs ?? (this.opts.role === "cli" ? "cli" : "client"),
        config_sha256: configDigest(readConfigText(this.opts.configPath)),
      });
    } catch (err) {
      // owner.json could not be written (a full disk, no file handles left): let the lock go
      // with the error. Kept, its refresh went on, so it never went stale: no process, this one
      // included, could own the data dir, and each said its owner did not answer.
      await release().catch(() => {});
      throw new Error(
        `The data dir ${this.opts.dataDir} could not be taken: ${path.join(this.opts.dataDir, "owner.json")} could not be written (${errorMessage(err)}).`,
      );
    }
    // Before the store loads: that load is an owner's work.
    this.opts.onRole?.("owner");
    let app: App;
    try {
      // Only a process that owns the data dir builds an App (see HostOptions.openApp).
      app = await this.opts.openApp({
        dataDir: this.opts.dataDir,
        config: this.opts.config,
        configPath: this.opts.configPath,
        fence: gen.fence,
        env: this.opts.env,
      });
    } catch (err) {
      gen.removeOwnerFile();
      await release().catch(() => {});
      throw err;
    }
    for (const problem of app.runtime.startupProblems) this.opts.onNotice?.("error", problem);
    app.runtime.delivery.setLinkBase?.(this.linkBase);
    const api = new LocalApi(app);
    const unpipe = pipeEvents(app.runtime.events, this.events);
    const serveMcp = this.opts.serveMcp;
    const stopServing = await serveApi(api, this.socketPath, {
      token: gen.token,
      fence: gen.fence,
      onHandOver: this.opts.onHandOverRequest,
      onMcpSession: serveMcp && ((socket, rest, checkPeer) => serveMcp(socket, rest, new PeerApi(this, checkPeer))),
    });
    this.owner = { app, api, gen, release, stopServing, unpipe };
    gen.onLost = (why) => this.depose(gen, why);
    this.ownerServes();
    if (this.opts.role === "server" && !this.closing) {
      await app.runtime.start({ handoverSince: this.opts.handoverSince });
      // Only the first tenure follows that hand-over.
      this.opts.handoverSince = undefined;
    }
    return true;
  }

  /**
   * A store that a fleet shares (postgres) coordinates its processes itself: every process,
   * server or CLI, opens its own App on it, with no data-dir lock and no socket.
   */
  private async openShared(): Promise<void> {
    this.opts.onRole?.("owner");
    const app = await this.opts.openApp({
      dataDir: this.opts.dataDir,
      config: this.opts.config,
      configPath: this.opts.configPath,
      role: this.opts.role,
      env: this.opts.env,
    });
    for (const problem of app.runtime.startupProblems) this.opts.onNotice?.("error", problem);
    app.runtime.delivery.setLinkBase?.(this.linkBase);
    const unpipe = pipeEvents(app.runtime.events, this.events);
    this.owner = { app, api: new LocalApi(app), gen: null, release: async () => {}, stopServing: async () => {}, unpipe };
    if (this.opts.role === "server") await app.runtime.start();
  }

  /** True while a live process holds the data dir's lock. */
  private async locked(): Promise<boolean> {
    return lockfile
      .check(this.opts.dataDir, { lockfilePath: path.join(this.opts.dataDir, "agent-cron.lock"), stale: LOCK_STALE_MS, realpath: false })
      .catch(() => false);
  }

  /**
   * Follows the owner; true once this process forwards to it. An older background owner met
   * by a process that would start one is first asked to hand over: then this returns when the
   * old one has let go of the data dir, with the time it stopped taking occurrences.
   */
  private async follow(): Promise<true | { handoverSince: number }> {
    const info = readOwnerFile(this.opts.dataDir);
    const remote = await RemoteApiClient.connect(this.socketPath, this.events, info?.token ?? "");
    if (this.opts.startOwner && info && info.started_as === "daemon" && newerVersion(VERSION, info.version)) {
      this.opts.onNotice?.("info", `The background owner (pid ${info.pid}) runs agent-cron ${info.version}; asking it to hand over to ${VERSION}.`);
      let since = Date.now();
      try {
        since = (await remote.handOver()).stopped_at;
      } finally {
        remote.close();
      }
      const until = Date.now() + HANDOVER_MS;
      while (!this.closing && (await this.locked()) && Date.now() < until) await sleep(RETRY_MS / 3);
      return { handoverSince: since };
    }
    this.remote = remote;
    this.opts.onRole?.("follower");
    remote.onClose(() => {
      if (this.remote !== remote) return;
      this.remote = null;
      if (!this.closing) this.reseat();
    });
    return true;
  }

  /**
   * Looks for the data dir's next owner (this process or another) in the background. A try
   * that fails (the data dir cannot be opened right now, nobody answers) is said and tried
   * again a moment later: a process must never stay without an owner until it is restarted.
   */
  private reseat(): void {
    this.takeover = this.seat(60_000).then(
      () => {
        this.takeover = null;
      },
      (err) => this.seatFailed(err),
    );
  }

  /** A try to find or become the owner failed: said, and tried again a moment later. */
  private seatFailed(err: unknown): void {
    this.opts.onNotice?.("error", `${errorMessage(err)} Trying again in ${RESEAT_RETRY_MS / 1000} s.`);
    if (this.closing) return;
    this.takeover = sleep(RESEAT_RETRY_MS).then(() => {
      if (!this.closing && !this.owner && !this.remote) this.reseat();
    });
  }

  /**
   * Another process took the data dir over while this one was stalled (SIGSTOP, a frozen VM):
   * stop owning at once, writing and deleting nothing of the new owner's, and forward to it.
   */
  private depose(gen: Generation, why: string): void {
    gen.lost = true;
    const owner = this.owner;
    if (!owner || owner.gen !== gen) return;
    this.owner = null;
    if (this.opts.ownerOnly) {
      // A background owner that lost the data dir has nothing left to do.
      void owner.app.runtime
        .close(0)
        .catch(() => {})
        .finally(() => this.opts.onOwnershipEnded?.(why));
      return;
    }
    this.opts.onNotice?.("error", `Another agent-cron process took over the data dir while this one was not responding (${why}); this one now forwards to it.`);
    const demote = async () => {
      // The app first: its timer and runs stop at once, instead of going on (retrying,
      // spawning) while the socket waits for calls in flight such as a waitRun.
      await owner.app.runtime.close(0).catch(() => {});
      // Relayed sessions go on through this process, now a follower (rpc.ts StopServing).
      await owner.stopServing({ keepMcpSessions: true }).catch(() => {});
      this.keptSessions.push(owner.stopServing);
      owner.unpipe();
      // The lock's own bookkeeping ends here; its files are the new owner's and stay.
      await owner.release().catch(() => {});
    };
    // Not inside the call that found out: that call is still unwinding.
    this.takeover = new Promise((r) => setImmediate(r))
      .then(demote)
      .catch((err) => this.opts.onNotice?.("error", errorMessage(err)))
      .then(() => {
        if (!this.closing) this.reseat();
      });
  }

  /** A call from a relayed MCP session (PeerApi), its person claims already checked against the relay. */
  callFromPeer<T>(method: ApiMethod, args: unknown): Promise<T> {
    return this.call(method, args);
  }

  protected async call<T>(method: ApiMethod, args: unknown): Promise<T> {
    const deadline = Date.now() + 60_000;
    // At 100,000 jobs arming them took ~0.2 s of a restart (issue 27); a seat that fails
    // before this process serves still fails the call.
    if (this.seating) await Promise.race([this.seating, this.servable]);
    for (;;) {
      if (this.owner) {
        try {
          // Served here: this process is the one to check (a CLI or dashboard that owns the data
          // dir, or any process on a shared store); a call forwarded to an owner is checked there.
          const checked = claimsPerson(method, args) ? actAsChecked(method, args, checkSelf()) : args;
          return await (this.owner.api[method] as (a: unknown) => Promise<T>).call(this.owner.api, checked);
        } catch (err) {
          // Deposed mid-call: nothing was written, so the new owner can take the call.
          if (codeOf(err) !== "AC_LOCK_LOST") throw err;
          continue;
        }
      }
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
        // Sent on: give the owner a moment to go, or the next one to take over.
        if (Date.now() > deadline) throw new UserError("No agent-cron process owns the data dir right now; try again.");
        await sleep(RETRY_MS / 3);
      }
    }
  }

  async close(graceMs = 0): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // A seat being taken ends at its next step; an App it opened meanwhile is closed below.
    await this.seating?.catch(() => {});
    this.remote?.close();
    await Promise.allSettled(this.keptSessions.splice(0).map((stop) => stop()));
    const owner = this.owner;
    if (!owner) return;
    await owner.stopServing();
    await owner.app.runtime.close(graceMs);
    owner.unpipe();
    // Its files go now: a write that comes after (a callback run late on a loaded machine) is
    // refused as this process stopping, not taken for another process's takeover (which said
    // "Another agent-cron process took over…" with no other process there).
    owner.gen?.retire();
    owner.gen?.removeOwnerFile();
    await owner.release().catch(() => {});
  }

  /**
   * Where the jobs run, as owner.json says (SPEC §17): in a background owner, which runs
   * while no client is open, or in a process that ends with its client. Read from the data
   * dir, not asked of the owner: every process answers the same, at no cost to the owner.
   */
  residence(self = true): Residence {
    if (this.opts.config.store.type !== "files") {
      return {
        background: null,
        pid: process.pid,
        started_as: null,
        since: null,
        version: VERSION,
        self: true,
        sentence: "Jobs run in the agent-cron processes that share the database (each occurrence in one of them), while at least one of them runs.",
        short: "Runs in the agent-cron processes that share the database.",
      };
    }
    const info = readOwnerFile(this.opts.dataDir);
    if (!info || !isAlive(info.pid))
      return { background: false, pid: null, started_as: null, since: null, version: null, self: false, sentence: NO_OWNER, short: NO_OWNER_SHORT };
    return describeOwner(info, self && info.pid === process.pid, this.opts.config.timezone);
  }

  /** The executor a job that names none runs with (config default_executor, as edited since). */
  defaultExecutor(): string {
    return this.opts.config.default_executor;
  }
}

/**
 * One tenure as owner of a data dir. A process that stalls past the lock's stale time can be
 * taken over while it sleeps; when it wakes it must not write, acknowledge or delete anything.
 * So every write is fenced: the lock directory must still be the one this tenure created
 * (same inode and birth time: a new owner's mkdir makes a new one) and `owner.json` must
 * still hold this tenure's token. The token is also the secret the socket asks for, kept in a
 * mode-600 file that a sandboxed run cannot see. Lock and owner file are removed only while
 * they are still this tenure's.
 */
class Generation {
  readonly lockDir: string;
  readonly token = randomBytes(16).toString("hex");
  lost = false;
  onLost: (why: string) => void = () => {};
  private readonly ownerPath: string;
  private identity: string | null = null;

  constructor(private readonly dataDir: string) {
    this.lockDir = path.join(dataDir, "agent-cron.lock");
    this.ownerPath = path.join(dataDir, "owner.json");
  }

  /** The lock directory's identity; null when it is gone. Other I/O errors are thrown. */
  private currentIdentity(): string | null {
    return fileIdentity(this.lockDir);
  }

  /**
   * True while the lock and owner file are still this tenure's. Only a missing or different
   * lock or token means another owner; a transient I/O error (EMFILE, EIO) is thrown as it
   * is, failing that one write, rather than deposing a healthy owner.
   */
  holds(): boolean {
    if (this.lost || this.identity === null) return false;
    if (this.currentIdentity() !== this.identity) return false;
    let text: string;
    try {
      text = readFileSync(this.ownerPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    try {
      return JSON.parse(text)?.token === this.token;
    } catch {
      return false;
    }
  }

  /** Just after the lock was taken: remember it, and say who owns the data dir. */
  taken(info: Omit<OwnerFile, "token">): void {
    this.identity = this.currentIdentity();
    this.info = info;
    this.writeOwnerFile();
  }

  /** What owner.json says beside the token; null before the lock is taken. */
  private info: Omit<OwnerFile, "token"> | null = null;

  /**
   * Changes what owner.json says of this owner, while it is still this tenure's. A write that
   * fails is let go: owner.json then says what it said (a relay serves itself instead).
   */
  amend(fields: Partial<Omit<OwnerFile, "token">>): void {
    try {
      if (!this.info || !this.holds()) return;
      this.info = { ...this.info, ...fields };
      this.writeOwnerFile();
    } catch {
      /* see above */
    }
  }

  private writeOwnerFile(): void {
    const tmp = `${this.ownerPath}.${this.token.slice(0, 8)}`;
    writeFileSync(tmp, JSON.stringify({ ...this.info, token: this.token }) + "\n", { mode: 0o600 });
    renameSync(tmp, this.ownerPath);
  }

  /** True from a check that passed until the current run of synchronous work and its microtasks is over. */
  private heldNow = false;

  /**
   * Checked once per stretch of synchronous work: a fleet timer firing 1,000 jobs appends 1,000
   * journal lines in one stretch, and the check (a stat and a read) before each was 6 % of the
   * main thread (issue 27). Nothing else runs meanwhile, and the check was only ever as fresh
   * as the moment before the write (the run store's batches have one check for many lines).
   */
  fence: Fence = () => {
    if (this.retired)
      throw new UnavailableError(`This agent-cron process is shutting down and no longer writes to the data dir ${this.dataDir}; nothing was changed.`);
    if (this.heldNow && !this.lost) return;
    if (this.holds()) {
      this.heldNow = true;
      queueMicrotask(() => {
        this.heldNow = false;
      });
      return;
    }
    this.lost = true;
    this.onLost("another process owns the data dir now");
    throw new LockLostError(this.dataDir);
  };

  /** Set once the owner closes, before its owner file and lock go: from then on every write is refused quietly. */
  private retired = false;

  retire(): void {
    this.retired = true;
  }

  removeOwnerFile(): void {
    if (readOwnerFile(this.dataDir)?.token === this.token) rmSync(this.ownerPath, { force: true });
  }

  /**
   * proper-lockfile removes the lock directory on release and at process exit; once another
   * process has taken the lock, that directory is theirs, so those removals are skipped.
   * Before this tenure holds the lock, removal is proper-lockfile taking over a stale one.
   */
  readonly lockFs = {
    ...fs,
    rmdir: (p: fs.PathLike, cb: (err: NodeJS.ErrnoException | null) => void) => {
      if (!this.mayRemoveLock()) return cb(null);
      fs.rmdir(p, cb);
    },
    rmdirSync: (p: fs.PathLike) => {
      if (this.mayRemoveLock()) fs.rmdirSync(p);
    },
  };

  /** Before this tenure holds the lock, removal is a stale takeover; after, only our own lock. */
  private mayRemoveLock(): boolean {
    return this.identity === null || sameFile(this.lockDir, this.identity);
  }
}

/**
 * The API as a relayed MCP session (another client's stdio relay) sees it: a call that claims a
 * person (a job its user accepted) is checked against the relay's process, as a forwarded call
 * is (rpc.ts), never vouched for by this process; where the jobs run is said as to another
 * process.
 */
class PeerApi extends ForwardingApi implements CronApi {
  constructor(
    private readonly host: Host,
    private readonly checkPeer: () => Promise<PersonCheck>,
  ) {
    super();
  }

  get events(): AppEventBus {
    return this.host.events;
  }

  residence(): Residence {
    return this.host.residence(false);
  }

  protected async call<T>(method: ApiMethod, args: unknown): Promise<T> {
    const checked = claimsPerson(method, args) ? actAsChecked(method, args, await this.checkPeer()) : args;
    return this.host.callFromPeer<T>(method, checked);
  }
}

function pipeEvents(from: AppEventBus, to: AppEventBus): () => void {
  const names: (keyof AppEvents)[] = ["job", "run", "notice", "delivery", "store_write"];
  const offs = names.map((name) => {
    const fn = (...args: unknown[]) => (to.emit as (e: string, ...a: unknown[]) => boolean)(name, ...args);
    from.on(name, fn as never);
    return () => from.off(name, fn as never);
  });
  return () => offs.forEach((off) => off());
}

/** True when version `a` is newer than `b` (x.y.z, numerically; a missing `b` is older). */
export function newerVersion(a: string, b: string | undefined): boolean {
  if (!b) return false;
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] > pb[i];
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
