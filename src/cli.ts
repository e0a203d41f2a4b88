#!/usr/bin/env node
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadConfig, defaultDataDir, type Config } from "./config.js";
import { UserError, errorMessage } from "./core/errors.js";
import { JobFieldsShape } from "./core/job-input.js";
import { RUN_STATUSES, type Job, type RunStatus } from "./core/jobs.js";
import { Host } from "./share/host.js";
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
  if (!command) throw new UserError("No command given; run agent-cron --help for the list (agent-cron serve starts the MCP server).");
  if (command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE + "\n");
    return 0;
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
  const notice = (level: string, message: string) => process.stderr.write(`agent-cron ${level}: ${message}\n`);
  const host = await Host.open({ dataDir, config, role: "server", onNotice: notice });
  host.events.on("notice", notice);

  let closeTransport: (() => Promise<void>) | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (graceMs: number) => {
    stopping ??= (async () => {
      try {
        await closeTransport?.();
        await host.close(graceMs);
      } finally {
        process.exit(0);
      }
    })();
    return stopping;
  };

  if (values.http) {
    const port = values.port === undefined ? config.http.port : parsePort(String(values.port));
    const { serveHttp } = await import("./mcp/http.js");
    const http = await serveHttp(host, { ...config.http, host: (values.host as string | undefined) ?? config.http.host, port, env: process.env }).catch(async (err) => {
      await host.close(0);
      throw err;
    });
    closeTransport = http.close;
    process.stderr.write(`agent-cron ready http ${http.url} data=${dataDir}\n`);
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stop(config.shutdown_grace_seconds * 1000));
  } else {
    const { serveStdio } = await import("./mcp/stdio.js");
    // The client quitting closes stdin: stop at once, interrupting runs in flight.
    closeTransport = await serveStdio(host, () => void stop(0));
    process.stderr.write(`agent-cron ready stdio data=${dataDir}\n`);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => void stop(0));
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

  const host = await Host.open({ dataDir, config, role: "cli" });
  try {
    switch (command) {
      case "add": {
        const r = await host.addCron({ input: addInput(values), created_by: "cli" });
        print(out, r, () =>
          [`${r.created ? "Added" : "Exists:"} ${r.job.name ?? r.job.id} (${r.job.id})`, `  ${r.description}`, `  next: ${r.next_runs.slice(0, 3).join(", ") || "none"}`, ...r.warnings.map((w) => `  warning: ${w}`)].join("\n"),
        );
        return 0;
      }
      case "list": {
        const page = await host.listCrons({
          state: values.state as Job["state"] | undefined,
          query: values.query as string | undefined,
          limit: values.limit === undefined ? 100 : Number(values.limit),
        });
        print(out, page, () => formatJobsTable(page.jobs));
        return 0;
      }
      case "runs": {
        const status = values.status as string | undefined;
        if (status && !RUN_STATUSES.includes(status as RunStatus)) throw new UserError(`--status must be one of ${RUN_STATUSES.join(", ")}.`);
        const page = await host.listRuns({ job: ref, status: status as RunStatus | undefined, limit: values.limit === undefined ? 20 : Number(values.limit) });
        print(out, page, () => formatRunsTable(page.runs));
        return 0;
      }
      case "show": {
        const view = await host.getCron({ job: ref });
        print(out, view, () => formatJob(view.job, view.description, view.next_runs, view.recent_runs));
        return 0;
      }
      case "show-run": {
        const run = await host.readRun({ run: ref });
        print(out, run, () => formatRun(run));
        return 0;
      }
      case "pause":
      case "resume": {
        const { job } = command === "pause" ? await host.pause({ job: ref }) : await host.resume({ job: ref });
        print(out, { job }, () => `${job.name ?? job.id}: ${job.state}${job.next_run_at ? `, next ${job.next_run_at}` : ""}`);
        return 0;
      }
      case "remove": {
        const r = await host.remove({ job: ref, keep_runs: !!values["keep-runs"] });
        print(out, r, () => `Removed ${r.removed}`);
        return 0;
      }
      case "run": {
        const started = await host.runNow({ job: ref });
        const { run } = await host.waitRun({ run: started.run.id });
        print(out, { run }, () => formatRun(run));
        return run.status === "completed" ? 0 : 1;
      }
    }
    return 2;
  } finally {
    await host.close(0);
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
