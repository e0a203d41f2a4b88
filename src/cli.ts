#!/usr/bin/env node
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { alwaysOn, loadConfig, defaultDataDir, type Config } from "./config.js";
import { UnavailableError, UserError, codeOf, errorMessage, kindOf } from "./kernel/errors.js";
import { jobFieldsShape } from "./core/job-input.js";
import { lazily } from "./kernel/lazy.js";
import { RUN_STATUSES, type Job, type RunStatus } from "./core/jobs.js";
import type { CronApi } from "./core/api.js";
import type { AppEventBus } from "./core/events.js";
import { logger } from "./log.js";
import { takeSecrets } from "./backends/files/share/secret-env.js";
import { VERSION } from "./version.js";
import { v8ModeFor } from "./v8-mode.js";
import type { HostOptions } from "./backends/files/share/host.js";
import { ownerStartedByRelay, takingOverFromRelay } from "./mcp/relay.js";

/**
 * The composition root, loaded only by a process that comes to own the data dir (or shares a
 * database): a CLI call that forwards to the owner never loads the App, its stores and executors.
 */
const openApp: HostOptions["openApp"] = async (opts) => (await import("./compose.js")).openApp(opts);

const USAGE = `agent-cron: schedule agent work for later (an MCP server)

Usage:
  agent-cron serve [--http [--host 127.0.0.1] [--port 8765]]   serve MCP over stdio, or streamable HTTP at /mcp
  agent-cron add --schedule S --prompt P [--name N] [...]      add a job
  agent-cron update JOB [--schedule S] [--prompt P] [...]      change some fields of a job
  agent-cron list [--state active|paused|completed|pending_approval] [--query Q] [--limit N]
  agent-cron runs [JOB] [--status S] [--limit N]
  agent-cron show JOB | show-run RUN
  agent-cron pause JOB | resume JOB | remove JOB [--keep-runs] [--yes]
  agent-cron logs JOB|RUN [-f]                                 a run's output; -f waits for the next runs
  agent-cron approve JOB | reject JOB                          decide on a job an agent made (config approval)
  agent-cron run JOB                                           run a job now and wait for it
  agent-cron audit [JOB] [--since 7d]                          check every occurrence has its record
  agent-cron doctor                                            check the configured executors and channels
  agent-cron status                                            the data dir's owner (pid, version, uptime, how started) and next runs
  agent-cron start | stop                                      start or stop the background owner (jobs run with no client open)
  agent-cron service install [--http] | uninstall | status     a user service (systemd, launchd) that starts the owner at login
  agent-cron test-channel NAME                                 send a test message to a delivery channel
  agent-cron mcp-config [--http] [--claude-code]               print the MCP client config for this install
  agent-cron dashboard [--port 8766]                           the browser dashboard for a data dir, on loopback
  agent-cron migrate --to postgres [--data-dir D]              copy a data dir's jobs and runs into the database
  agent-cron run-tools                                         (started by agent-cron for one run: its MCP tools)
  agent-cron import crontab [FILE|-] [--dry-run]              each crontab line a job of a configured command executor
  agent-cron help COMMAND                                      that command's flags

JOB is a job's name, its id, or the first 8+ characters of its id (as list prints it);
RUN likewise for runs.

Common flags (before or after the command):
  --data-dir DIR   data folder (env AGENT_CRON_DATA_DIR, default ~/.agent-cron)
  --config FILE    config file (env AGENT_CRON_CONFIG, default <data-dir>/config.json)
  --json           print JSON instead of tables
Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.`;

const FIELD_NOTE = `Lists take commas (--notify-on failed,canceled); --output-schema takes JSON or @file; --after JOB[:completed|failed|any].`;

/**
 * Each command's own help, for `help COMMAND` and `COMMAND --help`. Made when asked for: the
 * field flags come from the job fields' schemas, which `serve` need not build.
 */
const commandHelp = lazily((): Record<string, string> => {
  const FIELD_FLAGS = Object.keys(jobFieldsShape()).map((k) => `--${k.replaceAll("_", "-")}`);
  return {
    serve: `agent-cron serve [--http] [--host H] [--port N]
Serves MCP over stdio (what an MCP client launches), or with --http streamable HTTP at
http://H:N/mcp (default 127.0.0.1:8765; --port 0 picks a free port). A token in
AGENT_CRON_TOKEN (config http.token_env) is required to listen beyond loopback.
config.json is watched: a valid edit applies without a restart.`,
    add: `agent-cron add --schedule S --prompt P [flags]
Adds a job. Flags, one per job field (see the README's "Job fields"):
  ${FIELD_FLAGS.join(" ")}
${FIELD_NOTE}
Example: agent-cron add --name log-audit --schedule "0 9 * * 1-5" --prompt "Audit yesterday's logs"`,
    update: `agent-cron update JOB [flags] [--clear FIELD,...]
Changes the given fields of a job; the others stay. Flags as for add:
  ${FIELD_FLAGS.filter((f) => f !== "--enabled").join(" ")}
--clear takes field names to reset to none (e.g. --clear work_dir,max_runs).
${FIELD_NOTE}
Example: agent-cron update log-audit --schedule "0 8 * * 1-5"`,
    list: `agent-cron list [--state active|paused|completed|pending_approval] [--query Q] [--limit N]
Lists jobs (at most 100), with the first 8 characters of each id.`,
    runs: `agent-cron runs [JOB] [--status S] [--limit N]
Lists runs, newest first, of one job or of all (default 20, at most 100).`,
    show: `agent-cron show JOB
Shows a job with its next runs and its recent runs.`,
    "show-run": `agent-cron show-run RUN
Shows a run with its whole output.`,
    pause: `agent-cron pause JOB
Stops scheduling a job; a run already going finishes.`,
    resume: `agent-cron resume JOB
Resumes a paused job; scheduling restarts from now.`,
    remove: `agent-cron remove JOB [--keep-runs] [--yes]
Deletes a job and (unless --keep-runs) its run history. Asks first at a terminal; --yes (-y)
skips the question, and is required when no terminal can answer (scripts, pipes).`,
    logs: `agent-cron logs JOB|RUN [-f]
Prints a run's whole output: RUN's, or the newest finished run of JOB. With -f (--follow) it
then waits, and prints each run of the job as it finishes (or RUN once it ends), until Ctrl-C.`,
    approve: `agent-cron approve JOB
Approves a job waiting for a person's approval (state pending_approval, config "approval"):
it becomes active and is scheduled from now. No MCP tool can do this, nor a run: the data dir's
owner checks that the process asking is a person's (this user, outside any sandbox, not started
by a run). The job records who approved it, when and how (agent-cron show JOB --json).`,
    reject: `agent-cron reject JOB
Turns down a job waiting for approval: it is removed, and never ran.`,
    run: `agent-cron run JOB
Runs a job now and waits for it; exits 1 if the run did not complete.`,
    audit: `agent-cron audit [JOB] [--since 7d] [--limit N]
Checks that every occurrence of each job (or of JOB) since --since (default 7d; also 24h, 30m,
2w or an ISO time) has exactly one record (completed, failed, interrupted, skipped, missed,
declined) or is pending now, under the schedule in force at the time, pauses excluded. Prints
the counts per job and each occurrence that was due and has no record; exits 1 when there is
one.`,
    doctor: `agent-cron doctor
Checks that each configured executor's program is there and answers (or its endpoint answers),
and that each delivery channel has what it needs (its environment variables).`,
    "test-channel": `agent-cron test-channel NAME
Sends a test message to the channel NAME from config.json ("channels") and prints what the
receiver answered, attempt by attempt; exits 1 if it did not accept the message.`,
    dashboard: `agent-cron dashboard [--port N]
Serves the browser dashboard (jobs, runs, outputs; pause, resume, run now, cancel; approve and
reject when signed in with the approver secret from AGENT_CRON_APPROVER_TOKEN) at
http://127.0.0.1:N/ (default 8766; --port 0 picks a free port), loopback only, for people who
use agent-cron over stdio. It works through the process that owns the data dir, like the other
commands; when none does, it owns it and schedules the jobs until it stops (Ctrl-C). With a token
in AGENT_CRON_TOKEN (config http.token_env) the page asks for it once.`,
    migrate: `agent-cron migrate --to postgres [--data-dir D] [--json]
Copies the jobs, runs and outputs of a files data dir (default ~/.agent-cron) into the
PostgreSQL database named by AGENT_CRON_DATABASE_URL (or the config's store.url_env). Records
already there are left as they are, so running it twice changes nothing; the data dir is not
changed. Stop the servers on that data dir first.`,
    import: `agent-cron import crontab [FILE|-] [--dry-run] [--json]
Makes a job of each line of a crontab (FILE, - for stdin, or your own: crontab -l). agent-cron
never runs a crontab's command by itself: a line becomes a job only when its command is exactly
the command of an executor of type "command" in config.json (no {prompt} in it), and the job
then names that executor. Each other line is listed with the reason (@reboot, NAME=value
lines, % in a command, shell syntax, an unknown schedule) and, for a plain command that no
executor runs, the executor entry to add. CRON_TZ= lines set the timezone of the lines below.
--dry-run shows the jobs and stores nothing. Exits 1 when a line could not be imported.`,
    status: `agent-cron status [--json]
Says which process owns the data dir (pid, version, uptime, how it was started: daemon, service,
client, http), whether jobs run while no client is open, and the next three occurrences across
jobs. Exits 0 whether or not a process owns the data dir.`,
    start: `agent-cron start
Starts the data dir's background owner (a detached agent-cron serve --background), which runs
the jobs while no client is open, and prints where jobs run. Nothing to do when it runs already;
an older version's background owner is asked to hand over. With always_on "daemon" (the
default) an MCP client's stdio server does this by itself.`,
    stop: `agent-cron stop
Stops the background owner (or an HTTP daemon or dashboard that owns the data dir): no new
occurrence starts, runs in flight finish for up to shutdown_grace_seconds, and it exits. An
MCP client that is still open with always_on "daemon" starts a new one; to stop for good,
set always_on to "client" (or uninstall the service that starts it) first.`,
    service: `agent-cron service install [--http] [--dry-run] [--no-enable] [--platform linux|macos]
agent-cron service uninstall [--dry-run] | service status
A user service that starts the data dir's owner at login and restarts it when it fails: a systemd
user unit (~/.config/systemd/user/agent-cron.service, checked with systemd-analyze --user verify)
on Linux, a LaunchAgent (~/Library/LaunchAgents/io.github.agent-cron.agent-cron.plist) on macOS.
--http serves MCP over HTTP from it too (agent-cron serve --http). --dry-run prints what it
would write and run; --no-enable writes it without telling systemd or launchd. The answer says
when loginctl enable-linger is needed for jobs to run while you are logged out.`,
    "mcp-config": `agent-cron mcp-config [--http] [--claude-code]
Prints the "mcpServers" entry for this install, with absolute paths, to paste into a client's
config (Claude Desktop, Cursor, VS Code). --http prints the entry for the HTTP daemon instead;
--claude-code prints the "claude mcp add" command line.`,
  };
});

const common = {
  "data-dir": { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies ParseArgsConfig["options"];

type Out = { json: boolean };

/** The command is the first word that is not a common flag, so `--data-dir D list` works too. */
function splitCommand(argv: string[]): { command: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (command === undefined) {
      if (a === "--data-dir" || a === "--config") {
        rest.push(a, ...(i + 1 < argv.length ? [argv[++i]] : []));
        continue;
      }
      if (a === "--json" || a.startsWith("--data-dir=") || a.startsWith("--config=")) {
        rest.push(a);
        continue;
      }
      command = a;
      continue;
    }
    rest.push(a);
  }
  return { command, rest };
}

async function main(argv: string[]): Promise<number> {
  // Before anything can start a run: the server's secrets leave its environment block (SPEC §20).
  takeSecrets();
  const { command, rest } = splitCommand(argv);
  if (!command) throw new UserError("No command given; run agent-cron --help for the list (agent-cron serve starts the MCP server).");
  if (command === "--help" || command === "-h" || command === "help") {
    const topic = rest.find((a) => !a.startsWith("-"));
    if (topic && !commandHelp()[topic]) throw new UserError(`No command "${topic}"; run agent-cron --help for the list.`);
    process.stdout.write((topic ? commandHelp()[topic] : USAGE) + "\n");
    return 0;
  }
  if (command === "--version" || command === "-v" || command === "version") {
    process.stdout.write(VERSION + "\n");
    return 0;
  }
  // The flags first: the help is made only when asked for.
  if ((rest.includes("--help") || rest.includes("-h")) && commandHelp()[command]) {
    process.stdout.write(commandHelp()[command] + "\n");
    return 0;
  }
  switch (command) {
    case "serve":
      return serve(rest);
    case "mcp-config":
      return mcpConfig(rest);
    case "run-tools": {
      // Started by an agent CLI for one run; lives until that agent closes its stdin.
      const { serveRunTools } = await import("./mcp/run-tools.js");
      await serveRunTools();
      return new Promise<number>(() => {});
    }
    case "test-channel":
      return testChannel(rest);
    case "dashboard":
      return dashboard(rest);
    case "migrate":
      return migrate(rest);
    case "import":
      return importCrontab(rest);
    case "status":
      return status(rest);
    case "start":
      return startOwnerCommand(rest);
    case "stop":
      return stopOwner(rest);
    case "service":
      return service(rest);
    case "add":
    case "update":
    case "list":
    case "runs":
    case "show":
    case "show-run":
    case "pause":
    case "resume":
    case "remove":
    case "logs":
    case "run":
    case "approve":
    case "reject":
    case "doctor":
    case "audit":
      return jobCommand(command, rest);
    default:
      throw new UserError(`Unknown command "${command}"; run agent-cron --help for the list.`);
  }
}

type Values = Record<string, string | boolean | undefined>;

function parse(args: string[], options: ParseArgsConfig["options"], allowPositionals: number): { values: Values; positionals: string[] } {
  // A boolean flag can be set false: --no-silent or --silent=false (node:util's parseArgs on
  // Node 20 has no negation of its own).
  const set: [string, boolean][] = [];
  const booleans = new Set(
    Object.entries(options ?? {})
      .filter(([, o]) => o.type === "boolean")
      .map(([k]) => k),
  );
  args = args.filter((a) => {
    const m = /^--(?:no-([a-z][a-z0-9-]*)|([a-z][a-z0-9-]*)=(false|true))$/.exec(a);
    const name = m?.[1] ?? m?.[2];
    if (!name || !booleans.has(name)) return true;
    set.push([name, m![3] === "true"]);
    return false;
  });
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UserError(errorMessage(err).replace(/^TypeError \[[A-Z_]+\]: /, ""));
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UserError(`Unexpected argument "${parsed.positionals[allowPositionals]}".`);
  }
  const values = parsed.values as Values;
  for (const [key, value] of set) {
    if (values[key] !== undefined) throw new UserError(`--${key} is given twice; give it once (--${key}, --no-${key} or --${key}=false).`);
    values[key] = value;
  }
  return { values, positionals: parsed.positionals };
}

function setup(values: Values): { dataDir: string; config: Config; configPath: string | null } {
  const dataDir = path.resolve((values["data-dir"] as string | undefined) ?? defaultDataDir());
  // Private to the user: it holds prompts, outputs and owner.json's socket secret.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { config, path: configPath } = loadConfig(dataDir, (values.config as string | undefined) ?? process.env.AGENT_CRON_CONFIG);
  return { dataDir, config, configPath };
}

/** The --config a person gave (flag or env), resolved, to pass on to a background owner; null for the data dir's own. */
function explicitConfig(values: Values): string | null {
  const given = (values.config as string | undefined) ?? process.env.AGENT_CRON_CONFIG;
  return given ? path.resolve(given) : null;
}

/**
 * always_on "daemon": how this process starts the data dir's background owner when nobody
 * owns it (SPEC §17). Undefined under "client", or on a shared store (postgres), where every
 * process schedules and there is no owner to start.
 */
async function ownerStarter(values: Values, dataDir: string, config: Config, force = false): Promise<((since: number | null) => void) | undefined> {
  if (config.store.type !== "files") return undefined;
  if (!force && alwaysOn(config) !== "daemon") return undefined;
  const { startBackgroundOwner } = await import("./backends/files/share/background.js");
  const configPath = explicitConfig(values);
  return (handoverSince) => void startBackgroundOwner({ dataDir, configPath, env: process.env, handoverSince });
}

/** config.json is watched: a valid edit applies without a restart. */
async function watchServerConfig(values: Values, dataDir: string, config: Config, host: import("./backends/files/share/host.js").Host) {
  const { watchConfig } = await import("./config-watch.js");
  return watchConfig({
    dataDir,
    explicitPath: (values.config as string | undefined) ?? process.env.AGENT_CRON_CONFIG,
    current: config,
    apply: (next, changed) => {
      host.applyConfig(next);
      logger.setFormat(next.log_format);
      const later = changed.filter((k) => k === "http" || k === "timezone" || k === "metrics_port" || k === "always_on");
      const message = `Config reloaded (${changed.join(", ")} changed)${later.length ? `; ${later.join(" and ")} apply at the next start` : ""}.`;
      host.events.emit("notice", "info", message, { changed });
      void reportExecutors(next, host);
    },
    reject: (message) => host.events.emit("notice", "error", message, {}),
  });
}

async function serve(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      http: { type: "boolean" },
      host: { type: "string" },
      port: { type: "string" },
      background: { type: "boolean" },
      "started-by": { type: "string" },
      "handover-since": { type: "string" },
    },
    0,
  );
  const { dataDir, config, configPath: configFile } = setup(values);
  logger.setFormat(config.log_format);
  if (values.background) return serveBackground(values, dataDir, config, configFile);
  // Loaded while the data dir opens, not after: once its jobs start firing, their file work
  // fills libuv's thread pool, and an import (the ES loader reads through that pool) waited
  // behind it, so a fleet of 1,000 every-second jobs held `initialize` for a minute (issue 27).
  const stdioModule = values.http ? null : import("./mcp/stdio.js");
  const { Host } = await import("./backends/files/share/host.js");
  const host = Host.begin({
    openApp,
    dataDir,
    config,
    configPath: configFile,
    role: "server",
    onNotice: notice,
    startedAs: values.http ? "http" : "client",
    // Over HTTP nothing changes: the daemon is the owner.
    startOwner: values.http ? undefined : await ownerStarter(values, dataDir, config),
    ownerStartedAt: ownerStartedByRelay(),
    takingOver: takingOverFromRelay(),
    onRole: v8ModeFor,
    serveMcp: serveRelayed,
  });

  let watcher: { close(): void } | null = null;
  let closeTransport: (() => Promise<void>) | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (graceMs: number) => {
    stopping ??= (async () => {
      try {
        watcher?.close();
        await closeTransport?.();
        await host.close(graceMs);
      } finally {
        process.exit(0);
      }
    })();
    return stopping;
  };
  if (stdioModule) {
    // A client's first questions (initialize, tools/list) are answered while the data dir is
    // opened or its background owner comes up; tool calls wait for that (Host.begin). The
    // client quitting closes stdin: stop at once, interrupting runs in flight.
    const { serveStdio } = await stdioModule;
    closeTransport = await serveStdio(host, () => void stop(0));
  }
  try {
    await host.seated;
  } catch (err) {
    await closeTransport?.();
    throw err;
  }
  logEvents(host.events);
  watcher = await watchServerConfig(values, dataDir, config, host);

  if (values.http) {
    const port = values.port === undefined ? config.http.port : parsePort(String(values.port));
    const { serveHttp } = await import("./http/server.js");
    const http = await serveHttp(host, {
      ...config.http,
      host: (values.host as string | undefined) ?? config.http.host,
      port,
      env: process.env,
      approverTokenEnv: config.approver_token_env,
    }).catch(async (err) => {
      await host.close(0);
      throw err;
    });
    closeTransport = http.close;
    logger.ready(`agent-cron ready http ${http.url} data=${dataDir}`, { url: http.url, data_dir: dataDir });
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stop(config.shutdown_grace_seconds * 1000));
  } else {
    logger.ready(`agent-cron ready stdio data=${dataDir}`, { data_dir: dataDir });
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop(0));
  }
  if (config.metrics_port !== undefined) {
    const { serveOps, metricsSourceOf } = await import("./http/ops.js");
    const token = process.env[config.http.token_env] || undefined;
    const log = (line: string) => logger.line(line, "metrics");
    const closeFirst = closeTransport;
    await serveOps(metricsSourceOf(host), {
      host: config.http.host,
      port: config.metrics_port,
      token,
      tokenEnv: config.http.token_env,
      allowedHosts: config.http.allowed_hosts,
      log,
    }).then(
      (ops) => {
        log(`agent-cron: metrics at ${ops.url}/metrics (and /healthz, /readyz).`);
        closeTransport = async () => {
          await ops.close();
          await closeFirst?.();
        };
      },
      // Two servers on one data dir with one config: the first to start serves the port.
      (err) => log(`agent-cron: metrics_port ${config.metrics_port} is not served by this process: ${errorMessage(err)}`),
    );
  }
  void reportExecutors(config, host);
  return new Promise<number>(() => {});
}

/**
 * The MCP session of another client's stdio relay (src/mcp/relay.ts), served while this process
 * owns the data dir; the MCP server's modules load with the first one.
 */
const serveRelayed: NonNullable<HostOptions["serveMcp"]> = (socket, rest, api) => {
  const session = import("./mcp/relay-host.js").then((m) => m.serveRelayedSession(socket, rest, api));
  return {
    drain: () => session.then((s) => s.drain()),
    close: () =>
      void session.then(
        (s) => s.close(),
        () => socket.destroy(),
      ),
  };
};

/** A notice (the App's, the host's) as a log line; its data may name the job and run. */
function notice(level: string, message: string, data: Record<string, unknown> = {}): void {
  const lvl = level === "warning" || level === "error" ? level : "info";
  logger.log(lvl, typeof data.event === "string" ? data.event : "notice", message, data);
}

/** What a server logs of its jobs and runs (SPEC §22: every line with its job and run ids). */
function logEvents(events: AppEventBus): void {
  events.on("notice", notice);
  events.on(
    "job",
    (job, change) =>
      change !== "updated" &&
      logger.log("info", `job.${change}`, `Job ${job.name ?? job.id} ${change}${job.state === "active" ? "" : ` (${job.state})`}.`, {
        job_id: job.id,
        run_id: null,
        job_name: job.name,
      }),
  );
  events.on("run", (run, change, job, elsewhere) => {
    // Each process logs the runs it runs: a fleet's every run in every process's log read as
    // runs made N times, and cost each process a line per run of the fleet (issue 22).
    if (elsewhere) return;
    const name = job?.name ?? run.job_id;
    const ended = change === "finished";
    const failed = ended && !["completed", "skipped"].includes(run.status);
    const message = ended
      ? `Run of ${name} ${run.status}${run.duration_ms !== null ? ` after ${(run.duration_ms / 1000).toFixed(1)} s` : ""}${run.error ? `: ${run.error.split("\n")[0].slice(0, 200)}` : ""}.`
      : `Run of ${name} started (${run.trigger}).`;
    logger.log(failed ? "warning" : "info", `run.${change}`, message, {
      job_id: run.job_id,
      run_id: run.id,
      job_name: job?.name ?? null,
      status: run.status,
      trigger: run.trigger,
      duration_ms: run.duration_ms,
    });
  });
}

/**
 * The background owner (SPEC §17): owns the data dir and schedules, serves no MCP client (its
 * followers do), and stays until it is stopped (agent-cron stop, SIGTERM, its service), hands
 * over to a newer version, or loses the data dir. It writes its own size-capped log; its
 * secrets (executor keys, channel URLs) came on fd 3 (secret-env.ts, taken at start), never in
 * its environment.
 */
async function serveBackground(values: Values, dataDir: string, config: Config, configFile: string | null): Promise<number> {
  const [{ Host }, bg] = await Promise.all([import("./backends/files/share/host.js"), import("./backends/files/share/background.js")]);
  const log = new bg.RotatingLog(bg.logPathFor(dataDir));
  const say = (level: string, message: string) => {
    const line = `${new Date().toISOString()} agent-cron ${level}: ${message}`;
    log.write(line);
    // Under a service manager stderr is its journal; started detached, it goes nowhere.
    process.stderr.write(line + "\n");
  };
  process.on("uncaughtException", (err) => {
    say("error", `crashed: ${err.stack ?? err.message}`);
    process.exit(1);
  });
  const startedAs = values["started-by"] === "service" ? "service" : "daemon";
  const since = values["handover-since"] === undefined ? undefined : Number(values["handover-since"]);
  let stop: (graceMs: number) => Promise<void> = async () => process.exit(0);
  let host;
  try {
    host = await Host.open({
      openApp,
      dataDir,
      config,
      configPath: configFile,
      role: "server",
      startedAs,
      ownerOnly: true,
      onRole: v8ModeFor,
      serveMcp: serveRelayed,
      handoverSince: Number.isFinite(since) ? since : undefined,
      onNotice: say,
      onOwnershipEnded: (why) => {
        say("info", `No longer the owner of ${dataDir} (${why}); exiting.`);
        process.exit(0);
      },
      onHandOverRequest: () => {
        say(
          "info",
          "Asked to hand over (agent-cron stop, or a newer agent-cron): no occurrence is taken from now; runs in flight finish (up to shutdown_grace_seconds), then this process exits.",
        );
        void stop(config.shutdown_grace_seconds * 1000);
      },
    });
  } catch (err) {
    if (codeOf(err) === "AC_OWNER_PRESENT") {
      say("info", errorMessage(err));
      return 0;
    }
    say("error", errorMessage(err));
    return 1;
  }
  host.events.on("notice", (level, message) => say(level, message));
  const watcher = await watchServerConfig(values, dataDir, config, host);
  let stopping: Promise<void> | null = null;
  stop = (graceMs) => {
    stopping ??= (async () => {
      try {
        watcher.close();
        await host.close(graceMs);
        say("info", "Stopped.");
      } finally {
        process.exit(0);
      }
    })();
    return stopping;
  };
  say("info", `ready background pid=${process.pid} version=${VERSION} started_as=${startedAs} data=${dataDir}`);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop(config.shutdown_grace_seconds * 1000));
  void reportExecutors(config, host);
  return new Promise<number>(() => {});
}

/**
 * Says at start (and after a reload), on stderr and as an MCP log message, which executors
 * can run, using the doctor's own check, and what to set when none can: a first run should
 * not fail silently an hour later.
 */
async function reportExecutors(
  config: Config,
  host: { events: { emit(e: "notice", level: "info" | "warning" | "error", message: string, data: Record<string, unknown>): boolean } },
): Promise<void> {
  const { doctor } = await import("./doctor.js");
  const rows = await doctor(config, process.env);
  const usable = rows.filter((r) => r.status === "ok");
  const line = rows.map((r) => `${r.executor} (${r.type}) ${r.status === "ok" ? "ok" : `${r.status}: ${r.detail}`}`).join("; ");
  const def = rows.find((r) => r.executor === config.default_executor);
  if (!usable.length) {
    host.events.emit(
      "notice",
      "warning",
      `No executor can run jobs yet: ${line}. Install Claude Code (npm install -g @anthropic-ai/claude-code) or Codex, ` +
        `or define an executor in config.json ("executors", and "default_executor"); then check with agent-cron doctor.`,
      { executors: rows },
    );
  } else if (def && def.status !== "ok") {
    host.events.emit(
      "notice",
      "warning",
      `The default executor "${def.executor}" cannot run (${def.detail}); jobs that name no executor will fail. Executors: ${line}.`,
      { executors: rows },
    );
  } else {
    host.events.emit("notice", "info", `Executors: ${line}; default ${config.default_executor}.`, { executors: rows });
  }
  const { autoSandboxWarning, sandboxSettings, sandboxStartupNote } = await import("./executors/sandbox.js");
  const note = sandboxStartupNote(config, process.env);
  if (note) host.events.emit("notice", "info", note, {});
  for (const [name, cfg] of Object.entries(config.executors)) {
    const warning = await autoSandboxWarning(sandboxSettings(name, cfg, {}), process.env);
    if (warning) host.events.emit("notice", "warning", warning, { executor: name });
  }
  const { channelRows } = await import("./delivery/channels.js");
  for (const c of channelRows(config.channels, process.env)) {
    if (c.status !== "ok")
      host.events.emit("notice", "warning", `Channel "${c.channel}" cannot send: ${c.detail}. Jobs cannot deliver to it until that is fixed.`, {
        channel: c.channel,
      });
  }
}

/** The client config snippet for this very install: absolute paths, so it works from any folder. */
function mcpConfig(args: string[]): number {
  const { values } = parse(args, { http: { type: "boolean" }, "claude-code": { type: "boolean" }, port: { type: "string" } }, 0);
  const cli = fileURLToPath(new URL("./cli.js", import.meta.url));
  const dataArgs = values["data-dir"] ? ["--data-dir", path.resolve(String(values["data-dir"]))] : [];
  if (values.http) {
    const port = values.port === undefined ? 8765 : parsePort(String(values.port));
    const url = `http://127.0.0.1:${port}/mcp`;
    if (values["claude-code"]) {
      process.stdout.write(`claude mcp add --transport http agent-cron ${url}\n`);
      return 0;
    }
    process.stdout.write(JSON.stringify({ mcpServers: { "agent-cron": { type: "http", url } } }, null, 2) + "\n");
    return 0;
  }
  const launch = launchCommand(cli, process.env);
  const argv = [...launch.args, "serve", ...dataArgs];
  if (values["claude-code"]) {
    process.stdout.write(`claude mcp add agent-cron -- ${[launch.command, ...argv].map(shellQuote).join(" ")}\n`);
    return 0;
  }
  process.stdout.write(JSON.stringify({ mcpServers: { "agent-cron": { command: launch.command, args: argv } } }, null, 2) + "\n");
  return 0;
}

/**
 * How a client starts this install. Run through npx, this file lives in npm's cache
 * (~/.npm/_npx/<hash>/), which npm empties at will: a config naming it would break some day,
 * so the answer is then npx again, pinned to this version. Elsewhere (a clone, a global
 * install) the absolute path stays where it is.
 */
function launchCommand(cli: string, env: NodeJS.ProcessEnv): { command: string; args: string[] } {
  const cache = env.npm_config_cache ? path.resolve(env.npm_config_cache) + path.sep : null;
  if (/[\\/]_npx[\\/]/.test(cli) || (cache !== null && cli.startsWith(cache))) return { command: "npx", args: ["-y", `agent-cron@${VERSION}`] };
  return { command: process.execPath, args: [cli] };
}

/**
 * The browser dashboard for a data dir (SPEC §12), for people who use only stdio: it forwards
 * to the owner like the job commands. It takes a server's seat, not the CLI's: when no server
 * runs, this process owns the data dir for as long as it runs, and must then schedule, or no
 * process would.
 */
async function dashboard(args: string[]): Promise<number> {
  const { values } = parse(args, { port: { type: "string" } }, 0);
  const port = values.port === undefined ? 8766 : parsePort(String(values.port));
  const { dataDir, config, configPath } = setup(values);
  logger.setFormat(config.log_format);
  const [{ Host }, { serveDashboard }] = await Promise.all([import("./backends/files/share/host.js"), import("./http/server.js")]);
  const host = await Host.open({ openApp, dataDir, config, configPath, role: "server", onNotice: notice, startedAs: "dashboard" });
  host.events.on("notice", (level, message) => level !== "info" && notice(level, message));
  const token = process.env[config.http.token_env] || undefined;
  const approverToken = process.env[config.approver_token_env] || undefined;
  const server = await serveDashboard(host, { port, token, approverToken, log: (line) => logger.line(line, "dashboard") }).catch(async (err) => {
    await host.close(0);
    throw err;
  });
  const owning = host.isOwner ? " (no server runs on this data dir: this process schedules its jobs until it stops)" : "";
  logger.ready(`agent-cron ready dashboard ${server.url} data=${dataDir}${owning}`, { url: server.url, data_dir: dataDir });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await server.close();
      await host.close(config.shutdown_grace_seconds * 1000);
    } finally {
      process.exit(0);
    }
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop());
  return new Promise<number>(() => {});
}

/** Sends a test message through the same code as a run's delivery, and prints each attempt. */
async function testChannel(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {}, 1);
  const name = positionals[0];
  if (!name) throw new UserError("agent-cron test-channel needs a channel name; agent-cron doctor lists them.");
  const { config } = setup(values);
  const cfg = config.channels[name];
  if (!cfg) {
    const known = Object.keys(config.channels);
    throw new UserError(
      `There is no channel named "${name}"; ${known.length ? `the channels are: ${known.join(", ")}` : "config.json defines none (key channels)"}.`,
    );
  }
  const [{ sendToChannel, testMessage }, { retryBaseFromEnv }] = await Promise.all([import("./delivery/channels.js"), import("./delivery/post.js")]);
  const attempts = await sendToChannel(name, cfg, testMessage(), process.env, { retryBaseMs: retryBaseFromEnv(process.env) });
  const ok = attempts.some((a) => a.ok);
  print({ json: !!values.json }, { channel: name, type: cfg.type, delivered: ok, attempts }, () =>
    [
      `${name} (${cfg.type}): ${ok ? "delivered" : "not delivered"} after ${attempts.length} attempt${attempts.length === 1 ? "" : "s"}`,
      ...attempts.map(
        (a) =>
          `  attempt ${a.attempt}: ${a.ok ? "accepted" : "refused"}${a.http_status !== null ? `, HTTP ${a.http_status}` : ""}${a.error ? ` (${a.error})` : ""}`,
      ),
    ].join("\n"),
  );
  return ok ? 0 : 1;
}

async function importCrontab(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { "dry-run": { type: "boolean" } }, 2);
  if (positionals[0] !== "crontab") throw new UserError(`agent-cron import takes crontab (agent-cron import crontab [FILE|-]), got "${positionals[0] ?? ""}".`);
  const source = positionals[1];
  let text: string;
  if (source === "-") text = readFileSync(0, "utf8");
  else if (source) {
    try {
      text = readFileSync(source, "utf8");
    } catch (err) {
      throw new UserError(`Cannot read ${source}: ${errorMessage(err)}.`);
    }
  } else {
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync("crontab", ["-l"], { encoding: "utf8" });
    if (r.error || r.status !== 0)
      throw new UserError(
        `crontab -l did not list your crontab (${r.error ? errorMessage(r.error) : r.stderr.trim() || `exit ${r.status}`}); give the file: agent-cron import crontab FILE.`,
      );
    text = r.stdout;
  }
  const out: Out = { json: !!values.json };
  const dryRun = !!values["dry-run"];
  const { dataDir, config, configPath } = setup(values);
  const { planCrontab } = await import("./import-crontab.js");
  const { importable, refused } = planCrontab(text, config);
  const jobs: { line: number; name: string; schedule: string; executor: string; description: string; next_run: string | null; created: boolean }[] = [];
  if (importable.length) {
    const { Host } = await import("./backends/files/share/host.js");
    const host = await Host.open({ openApp, dataDir, config, configPath, role: "cli" });
    try {
      for (const l of importable) {
        const input = {
          name: l.name,
          schedule: l.schedule,
          executor: l.executor,
          prompt: `Imported from crontab line ${l.line}: ${l.text}`,
          ...(l.timezone ? { timezone: l.timezone } : {}),
        };
        try {
          const r = await host.addCron({ input, created_by: "cli", origin: "cli", dry_run: dryRun });
          jobs.push({
            line: l.line,
            name: l.name,
            schedule: l.schedule,
            executor: l.executor,
            description: r.description,
            next_run: r.next_runs[0] ?? null,
            created: !dryRun && r.created,
          });
        } catch (err) {
          if (kindOf(err) !== "user") throw err;
          refused.push({ line: l.line, text: l.text, reason: errorMessage(err) });
        }
      }
    } finally {
      await host.close(0);
    }
  }
  refused.sort((a, b) => a.line - b.line);
  const { escapeControls } = await import("./cli-format.js");
  print(out, { dry_run: dryRun, jobs, not_importable: refused }, () => {
    const lines = [
      dryRun
        ? `Would add ${jobs.length} job(s) (--dry-run: nothing stored):`
        : `Added ${jobs.filter((j) => j.created).length} job(s)${jobs.some((j) => !j.created) ? `, ${jobs.filter((j) => !j.created).length} already there` : ""}:`,
    ];
    for (const j of jobs)
      lines.push(`  line ${j.line}: ${j.name}  ${escapeControls(j.schedule)} (${j.description}) → executor ${j.executor}; next ${j.next_run ?? "none"}`);
    if (refused.length) {
      lines.push(`Not importable (${refused.length}):`);
      for (const r of refused) {
        lines.push(`  line ${r.line}: ${escapeControls(r.text)}`, `    ${r.reason}`);
        if (r.suggested_executor)
          lines.push(`    "executors": { ${JSON.stringify(r.suggested_executor.name)}: ${JSON.stringify(r.suggested_executor.config)} }`);
      }
    }
    return lines.join("\n");
  });
  return refused.length ? 1 : 0;
}

async function migrate(args: string[]): Promise<number> {
  const { values } = parse(args, { to: { type: "string" } }, 0);
  if (values.to !== "postgres") throw new UserError(`migrate needs --to postgres (the only store to migrate to)${values.to ? `, got "${values.to}"` : ""}.`);
  // Checked before setup(), which would make an empty data dir.
  const dir = path.resolve((values["data-dir"] as string | undefined) ?? defaultDataDir());
  if (!existsSync(path.join(dir, "jobs.json")) && !existsSync(path.join(dir, "runs"))) {
    throw new UserError(`${dir} holds no agent-cron data (no jobs.json); pass the data dir to copy with --data-dir.`);
  }
  const { dataDir, config } = setup(values);
  const { loadPostgres } = await import("./backends/postgres/index.js");
  const { migrateDataDir, describeReport } = await loadPostgres(() => import("./backends/postgres/migrate-files.js"));
  const { where, report } = await migrateDataDir(dataDir, config, process.env);
  print({ json: !!values.json }, { data_dir: dataDir, database: where, ...report }, () => describeReport(dataDir, where, report));
  return 0;
}

/** Where the jobs run, from owner.json, without opening the data dir (doctor, status). */
async function residenceOf(
  dataDir: string,
  config: Config,
): Promise<Pick<import("./backends/files/share/background.js").Residence, "sentence" | "background"> & { pid: number | null; started_as: string | null }> {
  const [{ readOwnerFile }, { describeOwner, isAlive, NO_OWNER }] = await Promise.all([
    import("./backends/files/share/host.js"),
    import("./backends/files/share/background.js"),
  ]);
  if (config.store.type !== "files")
    return {
      sentence: "Jobs run in the agent-cron processes that share the database, while at least one of them runs.",
      background: null,
      pid: null,
      started_as: null,
    };
  const found = existsSync(dataDir) ? readOwnerFile(dataDir) : null;
  if (!found || !isAlive(found.pid)) return { sentence: NO_OWNER, background: false, pid: null, started_as: null };
  const r = describeOwner(found, false, config.timezone);
  return { sentence: r.sentence, background: r.background, pid: r.pid, started_as: r.started_as };
}

/** The data dir a command names, without making it (status and stop only look). */
function dataDirOf(values: Values): string {
  return path.resolve((values["data-dir"] as string | undefined) ?? defaultDataDir());
}

/** Seconds as "3 h 12 min" / "42 s". */
function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} days ${h % 24} h`;
}

/** Who owns the data dir and what runs next (SPEC §17), read through the owner like every command. */
async function ownerStatus(values: Values): Promise<Record<string, unknown> & { sentence: string; lines: string[] }> {
  const dataDir = dataDirOf(values);
  const [{ Host, readOwnerFile }, { isAlive }] = await Promise.all([import("./backends/files/share/host.js"), import("./backends/files/share/background.js")]);
  // Read before this command opens the data dir (which, with no owner, it then owns itself).
  const found = existsSync(dataDir) ? readOwnerFile(dataDir) : null;
  const owner = found && isAlive(found.pid) ? found : null;
  const { config, configPath } = setup(values);
  const where = await residenceOf(dataDir, config);
  const host = await Host.open({ openApp, dataDir, config, configPath, role: "cli" });
  try {
    const { occurrences } = await host.upcoming({ count: 3 });
    const uptime = owner ? Date.now() - Date.parse(owner.since) : null;
    const lines = [
      owner
        ? `owner: pid ${owner.pid}, agent-cron ${owner.version ?? "(before 0.2)"}, up ${duration(uptime!)}, started as ${owner.started_as ?? "client"}`
        : "owner: none (no agent-cron process owns this data dir)",
      where.sentence,
      `data dir: ${dataDir}`,
      occurrences.length
        ? `next: ${occurrences.map((o) => `${o.at} ${o.name ?? o.job_id.slice(0, 8)}`).join("; ")}`
        : "next: no occurrence is due (no active job)",
    ];
    return {
      sentence: where.sentence,
      lines,
      data_dir: dataDir,
      owner: owner
        ? {
            pid: owner.pid,
            version: owner.version ?? null,
            started_as: owner.started_as ?? "client",
            since: owner.since,
            uptime_seconds: Math.round(uptime! / 1000),
          }
        : null,
      runs_without_client: where.background,
      next: occurrences,
    };
  } finally {
    await host.close(0);
  }
}

async function status(args: string[]): Promise<number> {
  const { values } = parse(args, {}, 0);
  const st = await ownerStatus(values);
  const { sentence, lines, ...rest } = st;
  print({ json: !!values.json }, { summary: sentence, ...rest }, () => lines.join("\n"));
  return 0;
}

async function startOwnerCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {}, 0);
  const { dataDir, config, configPath } = setup(values);
  if (config.store.type !== "files")
    throw new UserError(
      "With the postgres store every agent-cron server schedules; there is no background owner to start. Run agent-cron serve --http (or a service) on a machine.",
    );
  const { Host } = await import("./backends/files/share/host.js");
  const host = await Host.open({ openApp, dataDir, config, configPath, role: "cli", startOwner: await ownerStarter(values, dataDir, config, true) });
  const where = host.residence();
  await host.close(0);
  print({ json: !!values.json }, where, () => where.sentence);
  return 0;
}

async function stopOwner(args: string[]): Promise<number> {
  const { values } = parse(args, {}, 0);
  const dataDir = dataDirOf(values);
  const [{ readOwnerFile }, { isAlive, looksLikeAgentCron }] = await Promise.all([
    import("./backends/files/share/host.js"),
    import("./backends/files/share/background.js"),
  ]);
  const info = existsSync(dataDir) ? readOwnerFile(dataDir) : null;
  const done = (text: string, stopped: number | null) => {
    print({ json: !!values.json }, { summary: text, stopped_pid: stopped }, () => text);
    return 0;
  };
  // owner.json outlives an owner that crashed; its pid may be another program's by now.
  if (!info || !isAlive(info.pid) || !looksLikeAgentCron(info.pid)) return done(`No agent-cron process owns ${dataDir}; nothing to stop.`, null);
  const how = info.started_as ?? "client";
  if (how === "client" || how === "cli") {
    throw new UserError(
      `The data dir is owned by ${how === "cli" ? "an agent-cron command" : "an MCP client's stdio server"} (pid ${info.pid}), which ends with its client; close that client instead.`,
    );
  }
  const { config } = setup(values);
  if (how === "daemon" || how === "service") {
    // Asked through the socket (with owner.json's secret): only the real owner hears it.
    const [{ RemoteApiClient }, { AppEventBus }] = await Promise.all([import("./backends/files/share/rpc.js"), import("./core/events.js")]);
    const remote = await RemoteApiClient.connect(info.socket, new AppEventBus(), info.token);
    try {
      await remote.handOver();
    } finally {
      remote.close();
    }
  } else {
    process.kill(info.pid, "SIGTERM");
  }
  const until = Date.now() + (config.shutdown_grace_seconds + 15) * 1000;
  while (isAlive(info.pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(info.pid))
    throw new UnavailableError(`The owner (pid ${info.pid}) was asked to stop but is still running after ${config.shutdown_grace_seconds + 15} s.`);
  const later =
    how === "service"
      ? " Its user service starts it again at the next login; agent-cron service uninstall removes the service."
      : alwaysOn(config) === "daemon"
        ? ' An MCP client still open (or the next one) starts a new background owner while always_on is "daemon".'
        : "";
  return done(
    `Stopped the ${how === "daemon" ? "background owner" : how === "service" ? "background owner started by the user service" : how === "http" ? "HTTP daemon" : "dashboard"} (pid ${info.pid}) of ${dataDir}.${later}`,
    info.pid,
  );
}

async function service(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { http: { type: "boolean" }, "dry-run": { type: "boolean" }, "no-enable": { type: "boolean" }, platform: { type: "string" } },
    1,
  );
  const action = positionals[0];
  if (action !== "install" && action !== "uninstall" && action !== "status") {
    throw new UserError(`agent-cron service needs install, uninstall or status${action ? `, got "${action}"` : ""}; see agent-cron help service.`);
  }
  const svc = await import("./service.js");
  const platform = svc.platformOf(values.platform as string | undefined);
  const out: Out = { json: !!values.json };
  const opts = { dryRun: !!values["dry-run"], enable: !values["no-enable"] };
  if (action === "status") {
    const dataDir = dataDirOf(values);
    const installed = await svc.serviceStatus({ platform, dataDir, env: process.env });
    const owner = await ownerStatus(values);
    const { sentence, lines, ...rest } = owner;
    const head = installed.installed
      ? `service: ${installed.file} (${installed.http ? "serve --http" : "background owner"}), ${installed.state ?? "state unknown: the service manager cannot be asked here"}`
      : `service: not installed (${installed.file} does not exist); agent-cron service install adds it`;
    print(out, { summary: sentence, service: installed, ...rest }, () => [head, ...lines].join("\n"));
    return 0;
  }
  if (action === "uninstall") {
    const report = await svc.uninstallService({ platform, dataDir: dataDirOf(values), env: process.env }, opts);
    print(out, report, () => formatServiceReport(report));
    return report.commands.every((c) => c.ok) ? 0 : 1;
  }
  const { dataDir, config } = setup(values);
  const { cliPath } = await import("./backends/files/share/background.js");
  const spec = {
    platform,
    dataDir,
    configPath: explicitConfig(values),
    http: !!values.http,
    node: process.execPath,
    cli: cliPath(),
    env: process.env,
    shutdownGraceSeconds: config.shutdown_grace_seconds,
  };
  const report = await svc.installService(spec, opts);
  print(out, report, () => formatServiceReport(report));
  return report.verify?.ran && !report.verify.ok ? 1 : 0;
}

function formatServiceReport(r: import("./service.js").ServiceReport): string {
  const lines = [
    `${r.action === "install" ? (r.dry_run ? "Would write" : "Wrote") : r.dry_run ? "Would remove" : "Uninstall"} ${r.file} (${r.platform === "macos" ? "launchd LaunchAgent" : "systemd user unit"} ${r.name})`,
  ];
  if (r.dry_run && r.content) lines.push("", r.content);
  if (r.verify)
    lines.push(r.verify.ran ? `systemd-analyze --user verify: ${r.verify.ok ? "ok" : `failed: ${r.verify.output}`}` : `not verified: ${r.verify.output}`);
  for (const c of r.commands) lines.push(`$ ${c.command}: ${c.ok ? "ok" : `failed: ${c.output.split("\n")[0]}`}`);
  lines.push(...r.notes);
  return lines.join("\n");
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port must be a whole number from 0 to 65535, got "${text}".`);
  return port;
}

/** Flags for each job field, as node:util parseArgs takes them. */
function fieldOptions(exclude: string[] = []): ParseArgsConfig["options"] {
  return Object.fromEntries(
    Object.entries(jobFieldsShape())
      .filter(([k]) => !exclude.includes(k))
      .map(([k, schema]) => [k.replaceAll("_", "-"), { type: isBoolean(schema) ? "boolean" : "string" }]),
  ) as ParseArgsConfig["options"];
}

/** Each job command's flags; add's and update's come from the job fields, built when asked for. */
const COMMAND_OPTIONS: Record<string, () => ParseArgsConfig["options"]> = {
  add: () => fieldOptions(),
  update: () => ({ ...fieldOptions(["enabled"]), clear: { type: "string" } }),
  list: () => ({ state: { type: "string" }, query: { type: "string" }, limit: { type: "string" } }),
  runs: () => ({ status: { type: "string" }, limit: { type: "string" } }),
  remove: () => ({ "keep-runs": { type: "boolean" }, yes: { type: "boolean", short: "y" } }),
  logs: () => ({ follow: { type: "boolean", short: "f" } }),
  audit: () => ({ since: { type: "string" }, limit: { type: "string" } }),
};

/** The job commands that make work to do: under always_on "daemon" they start the background owner. */
const OWNER_STARTING = new Set(["add", "update", "resume", "approve", "run"]);

async function jobCommand(command: string, args: string[]): Promise<number> {
  const noPositional = command === "add" || command === "list" || command === "doctor";
  const { values, positionals } = parse(args, COMMAND_OPTIONS[command]?.() ?? {}, noPositional ? 0 : 1);
  const out: Out = { json: !!values.json };
  const { dataDir, config, configPath } = setup(values);

  if (command === "doctor") {
    const [{ doctor, formatDoctorTable }, { channelRows }, { formatChannelTable }] = await Promise.all([
      import("./doctor.js"),
      import("./delivery/channels.js"),
      import("./cli-format.js"),
    ]);
    const rows = await doctor(config, process.env);
    const channels = channelRows(config.channels, process.env);
    const where = await residenceOf(dataDir, config);
    if (out.json) print(out, { executors: rows, channels, owner: where }, () => "");
    else
      process.stdout.write(`${formatDoctorTable(rows)}

${formatChannelTable(channels)}

${where.sentence}
`);
    return rows.every((r) => r.status === "ok") && channels.every((c) => c.status === "ok") ? 0 : 1;
  }

  const ref = positionals[0];
  if (!noPositional && command !== "runs" && command !== "audit" && !ref) {
    throw new UserError(`agent-cron ${command} needs a ${command === "show-run" ? "run id" : "job id or name"}; see agent-cron help ${command}.`);
  }
  // Checked before the data dir is opened: bad flags change nothing.
  const input = command === "add" ? fieldsInput(values, "add") : command === "update" ? fieldsInput(values, "update") : null;
  const limit = values.limit === undefined ? undefined : parseLimit(String(values.limit));
  const status = values.status as string | undefined;
  if (status && !RUN_STATUSES.includes(status as RunStatus)) throw new UserError(`--status must be one of ${RUN_STATUSES.join(", ")}, got "${status}".`);

  const [{ Host }, fmt] = await Promise.all([import("./backends/files/share/host.js"), import("./cli-format.js")]);
  // A command that makes work to do starts the background owner (always_on "daemon"), as a
  // stdio server does: a job added from a terminal runs when no client is open, too.
  const startOwner = OWNER_STARTING.has(command) ? await ownerStarter(values, dataDir, config) : undefined;
  const host = await Host.open({ openApp, dataDir, config, configPath, role: "cli", startOwner });
  try {
    switch (command) {
      case "add":
      case "update": {
        const r =
          command === "add"
            ? await host.addCron({ input, created_by: "cli", origin: "cli" })
            : await host.updateCron({ job: ref, patch: input, origin: "cli" });
        const created = "created" in r ? (r.created as boolean) : null;
        const warnings = "warnings" in r ? (r.warnings as string[]) : [];
        const verb = created === null ? "Updated" : created ? "Added" : "Exists:";
        print(out, r, () =>
          fmt.escapeControls(
            [
              `${verb} ${r.job.name ?? r.job.id} (${r.job.id.slice(0, 8)})`,
              `  ${r.description}`,
              `  next: ${r.next_runs.slice(0, 3).join(", ") || "none"}`,
              ...warnings.map((w) => `  warning: ${w}`),
              `  ${host.residence().sentence}`,
            ].join("\n"),
            true,
          ),
        );
        return 0;
      }
      case "list": {
        const page = await host.listCrons({ state: values.state as Job["state"] | undefined, query: values.query as string | undefined, limit: limit ?? 100 });
        print(out, page, () => fmt.formatJobsTable(page.jobs) + (page.next_cursor ? `\n(${page.total} jobs; showing the first ${page.jobs.length})` : ""));
        return 0;
      }
      case "runs": {
        const page = await host.listRuns({ job: ref, status: status as RunStatus | undefined, limit: limit ?? 20 });
        print(out, page, () => fmt.formatRunsTable(page.runs));
        return 0;
      }
      case "show": {
        const view = await host.getCron({ job: ref });
        print(out, view, () => fmt.formatJob(view.job, view.description, view.next_runs, view.recent_runs, config.default_executor));
        return 0;
      }
      case "audit": {
        const report = await host.audit({ job: ref, since: values.since as string | undefined, limit: limit ?? 100 });
        print(out, report, () => fmt.formatAudit(report));
        return report.unaccounted ? 1 : 0;
      }
      case "show-run": {
        const run = await host.readRun({ run: ref });
        print(out, run, () => fmt.formatRun(run));
        return 0;
      }
      case "approve":
      case "pause":
      case "resume": {
        const { job } =
          command === "pause" ? await host.pause({ job: ref }) : command === "resume" ? await host.resume({ job: ref }) : await host.approve({ job: ref });
        print(out, { job }, () => fmt.escapeControls(`${job.name ?? job.id}: ${job.state}${job.next_run_at ? `, next ${job.next_run_at}` : ""}`));
        return 0;
      }
      case "remove": {
        if (!values.yes) {
          const { job } = await host.getCron({ job: ref });
          const what = `job ${fmt.escapeControls(job.name ?? job.id)} (${job.id.slice(0, 8)})${values["keep-runs"] ? "" : " and its run history"}`;
          if (!process.stdin.isTTY) throw new UserError(`agent-cron remove would delete ${what}; add --yes to confirm (no terminal here to ask).`);
          if (!(await confirm(`Remove ${what}? [y/N] `))) {
            process.stderr.write("Not removed.\n");
            return 1;
          }
        }
        const r = await host.remove({ job: ref, keep_runs: !!values["keep-runs"] });
        print(out, r, () => `Removed ${r.removed}`);
        return 0;
      }
      case "logs":
        return await logs(host, ref, !!values.follow, out, fmt);
      case "reject": {
        const r = await host.reject({ job: ref });
        print(out, r, () => `Rejected and removed ${r.removed}`);
        return 0;
      }
      case "run": {
        const started = await host.runNow({ job: ref });
        const run = await host.readRun({ run: (await host.waitRun({ run: started.run.id })).run.id });
        print(out, { run }, () => fmt.formatRun(run));
        return run.status === "completed" ? 0 : 1;
      }
    }
    return 2;
  } finally {
    await host.close(0);
  }
}

function parseLimit(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new UserError(`--limit must be a whole number from 1 to 100, got "${text}".`);
  return n;
}

function isBoolean(schema: unknown): boolean {
  return (schema as { type?: string }).type === "boolean" || (schema as { def?: { type?: string } }).def?.type === "boolean";
}

const NOT_FIELDS = new Set(["data-dir", "config", "json", "help", "clear"]);

/** Flags (kebab-case strings) to add_cron or update_cron input; the core validates the result. */
function fieldsInput(values: Record<string, unknown>, mode: "add" | "update"): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [flag, raw] of Object.entries(values)) {
    if (raw === undefined || NOT_FIELDS.has(flag)) continue;
    const key = flag.replaceAll("-", "_");
    const schema = (jobFieldsShape() as Record<string, { def?: { type?: string } }>)[key];
    const kind = schema?.def?.type;
    if (typeof raw === "boolean") input[key] = raw;
    else if (kind === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n) || String(raw).trim() === "") throw new UserError(`--${flag} must be a number, got "${raw}".`);
      input[key] = n;
    } else if (kind === "array")
      input[key] = String(raw)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    else if (key === "output_schema") input[key] = parseJsonFlag(flag, String(raw));
    else if (key === "after") {
      // --after fetch (on completed) or --after fetch:failed / fetch:any
      const m = /^(.*):(completed|failed|any)$/.exec(String(raw));
      input[key] = m ? { job: m[1], on: m[2] } : { job: String(raw) };
    } else input[key] = raw;
  }
  if (mode === "add" && (input.schedule === undefined || input.prompt === undefined)) throw new UserError("agent-cron add needs --schedule and --prompt.");
  if (mode === "update") {
    for (const name of String(values.clear ?? "")
      .split(",")
      .map((s) => s.trim().replaceAll("-", "_"))
      .filter(Boolean)) {
      if (!(name in jobFieldsShape())) throw new UserError(`--clear: unknown field "${name}"; fields are ${Object.keys(jobFieldsShape()).join(", ")}.`);
      if (name in input) throw new UserError(`--clear ${name} and --${name.replaceAll("_", "-")} contradict each other; give one.`);
      input[name] = null;
    }
    if (!Object.keys(input).length) throw new UserError("agent-cron update needs at least one field to change; see agent-cron help update.");
  }
  return input;
}

function parseJsonFlag(flag: string, text: string): unknown {
  let source = text;
  if (text.startsWith("@")) {
    try {
      source = readFileSync(text.slice(1), "utf8");
    } catch (err) {
      throw new UserError(`--${flag}: cannot read ${text.slice(1)}: ${errorMessage(err)}`);
    }
  }
  try {
    return JSON.parse(source);
  } catch (err) {
    throw new UserError(`--${flag} must be JSON (or @file): ${errorMessage(err)}`);
  }
}

/** Asks a yes/no question at the terminal; only "y" or "yes" is a yes. */
async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

type Fmt = typeof import("./cli-format.js");

/** agent-cron logs JOB|RUN [-f]: a run's whole output, and with -f each later run of the job. */
async function logs(host: CronApi, ref: string, follow: boolean, out: Out, fmt: Fmt): Promise<number> {
  const show = async (runId: string) => {
    const run = await host.readRun({ run: runId });
    if (out.json) return print(out, run, () => "");
    const when = run.started_at ?? run.scheduled_for ?? "";
    process.stdout.write(`== ${fmt.escapeControls(run.job_name ?? run.job_id)} · run ${run.id.slice(0, 8)} · ${run.status} · ${when}\n`);
    const text =
      run.output === null || run.output === undefined ? (run.error ?? "") : typeof run.output === "string" ? run.output : JSON.stringify(run.output, null, 2);
    process.stdout.write(fmt.escapeControls(text, true) + (text.endsWith("\n") || !text ? "" : "\n"));
  };
  // A run id (or its first 8+ hex digits) first; names cannot look like one.
  const asRun = /^[0-9a-f-]{8,}$/i.test(ref) ? await host.readRun({ run: ref }).catch(() => null) : null;
  if (asRun) {
    if (asRun.status === "running" && follow) await host.waitRun({ run: asRun.id });
    await show(asRun.id);
    return 0;
  }
  const { job } = await host.getCron({ job: ref });
  const { runs } = await host.listRuns({ job: job.id, limit: 20 });
  const last = runs.find((r) => r.status !== "running");
  if (last) await show(last.id);
  else if (!follow) process.stderr.write(`No finished run of ${fmt.escapeControls(job.name ?? job.id)} yet; -f waits for the next.\n`);
  if (!follow) return 0;
  return new Promise<number>((resolve) => {
    let chain = Promise.resolve();
    host.events.on("run", (run, change) => {
      if (change === "finished" && run.job_id === job.id) chain = chain.then(() => show(run.id)).catch(() => {});
    });
    process.once("SIGINT", () => resolve(0));
  });
}

function print(out: Out, value: unknown, human: () => string): void {
  process.stdout.write((out.json ? JSON.stringify(value, null, 2) : human()) + "\n");
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const kind = kindOf(err);
    if (kind !== "internal") {
      process.stderr.write(`agent-cron: ${errorMessage(err)}\n`);
      process.exit(kind === "user" ? 2 : 1);
    }
    process.stderr.write(`agent-cron: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
