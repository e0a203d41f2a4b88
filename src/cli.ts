#!/usr/bin/env node
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadConfig, defaultDataDir, type Config } from "./config.js";
import { App } from "./core/app.js";
import { UserError, errorMessage } from "./core/errors.js";
import { JobFieldsShape } from "./core/job-input.js";
import { RUN_STATUSES, type Job, type Run, type RunStatus } from "./core/jobs.js";
import { DataDirLock } from "./store/lock.js";
import { formatJob, formatJobsTable, formatRun, formatRunsTable } from "./cli-format.js";

const USAGE = `agent-cron: schedule agent work for later (an MCP server)

Usage:
  agent-cron serve [--http [--host 127.0.0.1] [--port 8765]]   serve MCP over stdio, or streamable HTTP at /mcp
  agent-cron add --schedule S --prompt P [--name N] [...]      add a job (see --help add)
  agent-cron list [--state active|paused|completed] [--query Q]
  agent-cron runs [JOB] [--status S] [--limit N]
  agent-cron show JOB | show-run RUN
  agent-cron pause JOB | resume JOB | remove JOB [--keep-runs]
  agent-cron run JOB                                           run a job now and wait for it
  agent-cron doctor                                            check the configured executors

Common flags:
  --data-dir DIR   data folder (env AGENT_CRON_DATA_DIR, default ~/.agent-cron)
  --config FILE    config file (env AGENT_CRON_CONFIG, default <data-dir>/config.json)
  --json           print JSON instead of tables
Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.`;

const ADD_FLAGS = Object.keys(JobFieldsShape).map((k) => k.replaceAll("_", "-"));
const ADD_USAGE = `agent-cron add --schedule S --prompt P [flags]
Flags (each a job field, see the README): ${ADD_FLAGS.map((f) => `--${f}`).join(" ")}
Lists take commas (--notify-on failed,canceled); --output-schema takes JSON or @file.`;

const common = {
  "data-dir": { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} satisfies ParseArgsConfig["options"];

type Out = { json: boolean };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE + "\n");
    return command ? 0 : 2;
  }
  if (command === "--version" || command === "-v") {
    process.stdout.write("0.1.0\n");
    return 0;
  }
  switch (command) {
    case "serve":
      return serve(rest);
    case "add":
    case "list":
    case "runs":
    case "show":
    case "show-run":
    case "pause":
    case "resume":
    case "remove":
    case "run":
    case "doctor":
      return jobCommand(command, rest);
    default:
      throw new UserError(`Unknown command "${command}"; run agent-cron --help for the list.`);
  }
}

type Values = Record<string, string | boolean | undefined>;

function parse(args: string[], options: ParseArgsConfig["options"], allowPositionals: number): { values: Values; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UserError(errorMessage(err).replace(/^TypeError \[[A-Z_]+\]: /, ""));
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UserError(`Unexpected argument "${parsed.positionals[allowPositionals]}".`);
  }
  return { values: parsed.values as Values, positionals: parsed.positionals };
}

function setup(values: Values): { dataDir: string; config: Config } {
  const dataDir = path.resolve((values["data-dir"] as string | undefined) ?? defaultDataDir());
  mkdirSync(dataDir, { recursive: true });
  const { config } = loadConfig(dataDir, (values.config as string | undefined) ?? process.env.AGENT_CRON_CONFIG);
  return { dataDir, config };
}

async function serve(args: string[]): Promise<number> {
  const { values } = parse(args, { http: { type: "boolean" }, host: { type: "string" }, port: { type: "string" } }, 0);
  const { dataDir, config } = setup(values);
  const lock = new DataDirLock(dataDir);
  const taken = lock.acquire(values.http ? "http" : "stdio");
  if (!taken.ok) {
    throw new UserError(`Another agent-cron server (pid ${taken.holder.pid}, ${taken.holder.mode}) is using ${dataDir}; stop it or pass a different --data-dir.`);
  }
  let app: App;
  try {
    app = await App.open({ dataDir, config });
    await app.start();
  } catch (err) {
    lock.release();
    throw err;
  }
  app.events.on("notice", (level, message) => process.stderr.write(`agent-cron ${level}: ${message}\n`));

  let stopping: Promise<void> | null = null;
  const stop = (graceMs: number, code: number) => {
    stopping ??= (async () => {
      try {
        await closeTransport?.();
        await app.close(graceMs);
      } finally {
        lock.release();
        process.exit(code);
      }
    })();
    return stopping;
  };
  let closeTransport: (() => Promise<void>) | null = null;

  if (values.http) {
    const port = values.port === undefined ? config.http.port : parsePort(String(values.port));
    const { serveHttp } = await import("./mcp/http.js");
    const http = await serveHttp(app, { ...config.http, host: (values.host as string | undefined) ?? config.http.host, port, env: process.env });
    closeTransport = http.close;
    process.stderr.write(`agent-cron ready http ${http.url} data=${dataDir}\n`);
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stop(config.shutdown_grace_seconds * 1000, 0));
  } else {
    const { serveStdio } = await import("./mcp/stdio.js");
    // The client quitting closes stdin: stop at once, interrupting runs in flight.
    closeTransport = await serveStdio(app, () => void stop(0, 0));
    process.stderr.write(`agent-cron ready stdio data=${dataDir}\n`);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop(0, 0));
  }
  return new Promise<number>(() => {});
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port must be a whole number from 0 to 65535, got "${text}".`);
  return port;
}

async function jobCommand(command: string, args: string[]): Promise<number> {
  const addOptions = Object.fromEntries(
    Object.entries(JobFieldsShape).map(([k, schema]) => [k.replaceAll("_", "-"), { type: isBoolean(schema) ? "boolean" : "string" }]),
  ) as ParseArgsConfig["options"];
  const options: ParseArgsConfig["options"] =
    command === "add"
      ? addOptions
      : command === "list"
        ? { state: { type: "string" }, query: { type: "string" }, limit: { type: "string" } }
        : command === "runs"
          ? { status: { type: "string" }, limit: { type: "string" } }
          : command === "remove"
            ? { "keep-runs": { type: "boolean" } }
            : {};
  const { values, positionals } = parse(args, options, command === "add" || command === "list" || command === "doctor" ? 0 : 1);
  if (values.help) {
    process.stdout.write((command === "add" ? ADD_USAGE : USAGE) + "\n");
    return 0;
  }
  const out: Out = { json: !!values.json };
  const { dataDir, config } = setup(values);

  if (command === "doctor") {
    const { doctor, formatDoctorTable } = await import("./doctor.js");
    const rows = await doctor(config, process.env);
    print(out, rows, () => formatDoctorTable(rows));
    return rows.every((r) => r.status === "ok") ? 0 : 1;
  }

  const needsJob = ["show", "pause", "resume", "remove", "run", "show-run"].includes(command);
  const ref = positionals[0];
  if (needsJob && !ref) throw new UserError(`agent-cron ${command} needs a ${command === "show-run" ? "run id" : "job id or name"}.`);

  const lock = new DataDirLock(dataDir);
  const taken = lock.acquire("cli");
  if (!taken.ok) {
    throw new UserError(
      `An agent-cron server (pid ${taken.holder.pid}) is using ${dataDir}; while it runs, use its MCP tools (or stop it) to change jobs.`,
    );
  }
  const app = await App.open({ dataDir, config });
  try {
    switch (command) {
      case "add": {
        const { job, created, warnings } = await app.addJob(addInput(values), "cli");
        const next = app.nextRuns(job, 3).map((d) => app.formatTime(d, job.timezone));
        print(out, { job, created, next_runs: next, description: app.describe(job), warnings }, () =>
          [`${created ? "Added" : "Exists:"} ${job.name ?? job.id} (${job.id})`, `  ${app.describe(job)}`, `  next: ${next.join(", ") || "none"}`, ...warnings.map((w) => `  warning: ${w}`)].join("\n"),
        );
        return 0;
      }
      case "list": {
        const page = app.listJobs({
          state: values.state as Job["state"] | undefined,
          query: values.query as string | undefined,
          limit: values.limit === undefined ? 100 : Number(values.limit),
        });
        print(out, { jobs: page.items, next_cursor: page.next_cursor }, () => formatJobsTable(page.items));
        return 0;
      }
      case "runs": {
        const status = values.status as string | undefined;
        if (status && !RUN_STATUSES.includes(status as RunStatus)) throw new UserError(`--status must be one of ${RUN_STATUSES.join(", ")}.`);
        const page = app.listRuns({ job: ref, status: status as RunStatus | undefined, limit: values.limit === undefined ? 20 : Number(values.limit) });
        print(out, { runs: page.items, next_cursor: page.next_cursor }, () => formatRunsTable(page.items));
        return 0;
      }
      case "show": {
        const job = app.resolveJob(ref);
        const next = app.nextRuns(job, 5).map((d) => app.formatTime(d, job.timezone));
        const recent = app.recentRuns(job.id, 10);
        print(out, { job, description: app.describe(job), next_runs: next, recent_runs: recent }, () => formatJob(job, app.describe(job), next, recent));
        return 0;
      }
      case "show-run": {
        const run = await app.getRun(ref);
        print(out, run, () => formatRun(run));
        return 0;
      }
      case "pause":
      case "resume": {
        const job = command === "pause" ? await app.pause(ref) : await app.resume(ref);
        print(out, { job }, () => `${job.name ?? job.id}: ${job.state}${job.next_run_at ? `, next ${job.next_run_at}` : ""}`);
        return 0;
      }
      case "remove": {
        const id = await app.remove(ref, !!values["keep-runs"]);
        print(out, { removed: id }, () => `Removed ${id}`);
        return 0;
      }
      case "run": {
        const started = await app.runNow(ref);
        const run: Run = await app.waitForRun(started.id);
        print(out, { run }, () => formatRun({ ...run, output: undefined }));
        return run.status === "completed" ? 0 : 1;
      }
    }
    return 2;
  } finally {
    await app.close(0);
    lock.release();
  }
}

function isBoolean(schema: unknown): boolean {
  return (schema as { type?: string }).type === "boolean" || (schema as { def?: { type?: string } }).def?.type === "boolean";
}

/** Flags (kebab-case strings) to the add_cron input; the core validates the result. */
function addInput(values: Record<string, unknown>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [flag, raw] of Object.entries(values)) {
    if (raw === undefined || flag === "data-dir" || flag === "config" || flag === "json" || flag === "help") continue;
    const key = flag.replaceAll("-", "_");
    const schema = (JobFieldsShape as Record<string, { def?: { type?: string } }>)[key];
    const kind = schema?.def?.type;
    if (typeof raw === "boolean") input[key] = raw;
    else if (kind === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new UserError(`--${flag} must be a number, got "${raw}".`);
      input[key] = n;
    } else if (kind === "array") input[key] = String(raw).split(",").map((s) => s.trim()).filter(Boolean);
    else if (key === "output_schema") input[key] = parseJsonFlag(flag, String(raw));
    else input[key] = raw;
  }
  if (input.schedule === undefined || input.prompt === undefined) throw new UserError("agent-cron add needs --schedule and --prompt.");
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

function print(out: Out, value: unknown, human: () => string): void {
  process.stdout.write((out.json ? JSON.stringify(value, null, 2) : human()) + "\n");
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UserError) {
      process.stderr.write(`agent-cron: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`agent-cron: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
