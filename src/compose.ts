import type { Config } from "./config.js";
import { createApp, type App, type AppParts } from "./core/app.js";
import type { Fence } from "./kernel/errors.js";
import type { Delivery, Run } from "./core/jobs.js";
import type { Executor, ExecutorRegistry, RunRepo } from "./core/ports.js";
import { systemClock, type Clock } from "./core/scheduler.js";
import { sampleClocks } from "./core/clock-watch.js";
import { defaultWorkRoot } from "./core/work-dirs.js";
import { retryBaseFromEnv } from "./delivery/post.js";
import { channelProblem } from "./delivery/channels.js";
import { DeliveryService } from "./delivery/service.js";
import { checkWebhookUrl } from "./delivery/webhook.js";
import { createExecutors } from "./executors/index.js";
import { ProcessGroups } from "./executors/process.js";
import { resolveProgram, runCheckProcess } from "./executors/cli-agent.js";
import { createRunToolsPort } from "./run-tools/channel.js";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { openFilesBackend } from "./backends/files/index.js";
import { logger } from "./log.js";
import { optimizeHotCode } from "./v8-mode.js";
import { monotonicMs } from "./kernel/time.js";

/**
 * The composition root: reads the config and builds one App from one backend, the executors
 * and the delivery channels. The only place that knows which backend is in use.
 */
export interface OpenAppOptions {
  dataDir: string;
  config: Config;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** Executors by name; built from the config when absent (tests inject in-process ones). */
  executors?: Map<string, Executor>;
  /** First delivery retry delay (tests shorten it; env AGENT_CRON_RETRY_BASE_MS too). */
  webhookRetryBaseMs?: number;
  /** Checked before every write of the files backend: throws once this process no longer owns the data dir. */
  fence?: Fence;
  /** Where runs without a work_dir get their folder; see defaultWorkRoot. */
  workRoot?: string;
  /** The config file, hidden from sandboxed runs with the data dir. */
  configPath?: string | null;
  /**
   * On a shared store (postgres): a server works the fleet's queue of occurrences; the CLI
   * answers its own call only. Default "server".
   */
  role?: "server" | "cli";
}

/** The parts a backend gives the App. */
export type BackendParts = Pick<AppParts, "jobs" | "runs" | "queue" | "orphans" | "jobsLocation" | "sync" | "remoteCancel"> & { exclusive: boolean };

/**
 * A jobs.json this large (~24,000 jobs) is loaded with TurboFan on (optimizeHotCode): at
 * 100,000 jobs that took ~20 % off a restart's CPU; at 10,000 it gained nothing measurable and
 * cost 5 MB of RSS.
 */
const LARGE_STORE_BYTES = 32 * 1024 * 1024;

/** Opens the backend the config names (files unless `store` says otherwise) and builds the App on it. */
export async function openApp(opts: OpenAppOptions): Promise<App> {
  const clock = opts.clock ?? systemClock;
  const workRoot = opts.workRoot ?? defaultWorkRoot(opts.env ?? process.env);
  if (opts.config.store.type === "postgres") {
    optimizeHotCode();
    return openPostgresApp(opts.config.store.url_env, { ...opts, clock, workRoot });
  }
  let app: App | undefined;
  if ((statSync(path.join(opts.dataDir, "jobs.json"), { throwIfNoEntry: false })?.size ?? 0) >= LARGE_STORE_BYTES) optimizeHotCode();
  const files = await openFilesBackend({
    dataDir: opts.dataDir,
    runsPerJob: opts.config.runs_per_job,
    durability: opts.config.durability,
    fence: opts.fence,
    workRoot,
    clock,
    // To the MCP clients and stderr, as notices; before the App exists, to stderr.
    onProblem: (message) => (app ? app.runtime.events.emit("notice", "error", message, {}) : logger.log("error", "store", message)),
  });
  try {
    app = await composeApp({ ...files, exclusive: true }, { ...opts, clock, workRoot });
  } catch (err) {
    // Start-up failed (a write refused during recovery): leave nothing open.
    files.jobs.close();
    await files.runs.close?.();
    throw err;
  }
  return app;
}

/**
 * A fleet's shared store. Its module (and pg, pg-boss) load only here, so the files backend
 * never loads them and keeps working on Node 20.
 */
async function openPostgresApp(urlEnv: string, opts: OpenAppOptions & { clock: Clock; workRoot: string }): Promise<App> {
  const { openPostgresBackend } = await import("./backends/postgres/index.js");
  let app: App | undefined;
  const backend = await openPostgresBackend({
    urlEnv,
    env: opts.env ?? process.env,
    role: opts.role ?? "server",
    runsPerJob: opts.config.runs_per_job,
    workRoot: opts.workRoot,
    clock: opts.clock,
    // As the config is now: a reload of config.json changes them for the next occurrence.
    limits: () => {
      const c = app?.runtime.config ?? opts.config;
      return { maxConcurrent: c.max_concurrent, fleetMaxConcurrent: c.fleet_max_concurrent, maxOutputBytes: c.max_output_bytes };
    },
    onNotice: (level, message) => app?.runtime.events.emit("notice", level, message, {}),
  });
  try {
    app = await composeApp({ ...backend, exclusive: false }, opts);
  } catch (err) {
    await backend.close();
    throw err;
  }
  return app;
}

/** Builds the App over a backend: the executors, the delivery channels, the clock. */
export async function composeApp(backend: BackendParts, opts: OpenAppOptions): Promise<App> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? systemClock;
  const workRoot = opts.workRoot ?? defaultWorkRoot(env);
  const retryBaseMs = opts.webhookRetryBaseMs ?? retryBaseFromEnv(env);
  // A sandboxed run sees none of these: the data dir (prompts, outputs, the socket's secret),
  // the config file, and every run's default work dir but its own.
  const hiddenPaths = [opts.dataDir, workRoot, ...(opts.configPath ? [opts.configPath] : [])];
  // This App's agents: closing it kills these, not another App's in the same process.
  const groups = new ProcessGroups();
  const executors = (config: Config): ExecutorRegistry => {
    const map =
      opts.executors ?? createExecutors(config, { serverEnv: env, killGraceMs: config.kill_grace_seconds * 1000, hiddenPaths, processGroups: groups });
    return { get: (name) => map.get(name), names: () => [...map.keys()], programFound: (program) => resolveProgram(program) !== null };
  };
  let app: App | undefined;
  const observe = (store: "jobs" | "runs") => (seconds: number) => app?.runtime.events.emit("store_write", store, seconds);
  timeWrites(backend.jobs, ["insert", "update", "delete"], observe("jobs"));
  timeWrites(backend.runs, ["put", "removeJob", "writeOutput"], observe("runs"));
  announceDeliveries(backend.runs, (run, attempts) => app?.runtime.events.emit("delivery", run, attempts));
  app = await createApp({
    ...backend,
    config: opts.config,
    dataDir: opts.dataDir,
    workRoot,
    clock,
    env,
    executors,
    killProcessGroups: () => void groups.killAll("SIGKILL"),
    runTools: runToolsPort(),
    runCheck: (argv, req) =>
      runCheckProcess(argv, req, {
        serverEnv: env,
        envAllow: opts.config.env_allow,
        killGraceMs: opts.config.kill_grace_seconds * 1000,
        processGroups: groups,
      }),
    // Real clocks only: sleep, wake and clock steps are noticed (a test's fake clock has none).
    sampleClocks: clock === systemClock ? sampleClocks : undefined,
    deliveryChecks: { checkWebhookUrl, channelProblem },
    notifier: ({ config, onError }) => new DeliveryService({ config, env, runs: backend.runs, getJob: (id) => backend.jobs.get(id), onError, retryBaseMs }),
  });
  return app;
}

/** Each durable write's time goes to `observe` (the store write latency of /metrics). */
function timeWrites<T extends object>(repo: T, methods: (keyof T & string)[], observe: (seconds: number) => void): void {
  for (const name of methods) {
    const write = repo[name] as unknown as (...a: unknown[]) => Promise<unknown>;
    if (typeof write !== "function") continue;
    (repo as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      const t0 = monotonicMs();
      try {
        return await write.apply(repo, args);
      } finally {
        observe((monotonicMs() - t0) / 1000);
      }
    };
  }
}

/**
 * Delivery attempts are written into their run's record, whichever part sends them (channels,
 * webhooks, a restart resuming what was owed): the attempts a write adds are announced once it
 * is durable, so /metrics counts each attempt once.
 */
function announceDeliveries(runs: RunRepo, announce: (run: Run, attempts: Delivery[]) => void): void {
  const put = runs.put.bind(runs);
  runs.put = async (run: Run) => {
    const before = runs.get(run.id)?.deliveries?.length ?? 0;
    const outcome = await put(run);
    const added = (run.deliveries ?? []).slice(before);
    if (added.length && outcome.kind === "stored") announce(run, added);
    return outcome;
  };
}

/**
 * The run tools' MCP server is this very install's CLI (`agent-cron run-tools`), started by
 * the agent CLI with the node that runs this server. Absent when not running from the build
 * (in-process tests), where agents get no run tools.
 */
function runToolsPort() {
  const cli = fileURLToPath(new URL("./cli.js", import.meta.url));
  return existsSync(cli) && !cli.includes(`${"/"}src${"/"}`) ? createRunToolsPort({ command: process.execPath, args: [cli, "run-tools"] }) : undefined;
}
