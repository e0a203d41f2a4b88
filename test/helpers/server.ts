/**
 * End-to-end helpers: a temp data dir whose config runs the fake agents of test/fixtures/,
 * the BUILT server (`node dist/cli.js serve`) driven by the SDK's Client over stdio, and
 * polling waits. Build first (`npm run build`); these tests never import src/.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ElicitRequestSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import { RUN_LOG_SUFFIX, replayRunLog } from "../../src/backends/files/store/run-log.js";
import { afterEach } from "vitest";
import { isAlive } from "./process.js";
export { isAlive };

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "..", "..");
export const CLI = path.join(ROOT, process.env.AGENT_CRON_DIST || "dist", "cli.js");
export const FIXTURES = path.join(ROOT, "test", "fixtures");
export const fixture = (name: string) => path.join(FIXTURES, name);
const NODE = process.execPath;

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" before the e2e tests.`);

/**
 * The executors every e2e data dir gets. Arguments come from the prompt where a fixture takes
 * one, so one executor serves many behaviours: the sleep executor sleeps `prompt` ms, etc.
 */
export function fixtureExecutors(): Record<string, unknown> {
  // Pinned: `npm test` behaves the same whether bubblewrap works on the machine or not ("auto").
  const cmd = (file: string, ...args: string[]) => ({ type: "command", command: [NODE, fixture(file), ...args], sandbox: "none" });
  return {
    /** Prints the prompt, given as an argument; the prompt "ENV" prints the environment as JSON. */
    echo: cmd("echo-agent.mjs", "{prompt}"),
    /** Same agent, prompt written to stdin (no {prompt} placeholder). */
    "echo-stdin": cmd("echo-agent.mjs"),
    /** Prints its argv joined: shows every placeholder expanded. */
    "echo-vars": cmd("echo-agent.mjs", "run={run_id}", "job={job_id}", "session={session_id}", "dir={work_dir}"),
    /** Sleeps `prompt` milliseconds, then prints "done". */
    sleep: cmd("sleep-agent.mjs", "{prompt}"),
    /** Long stderr ending in "fatal: the agent broke", exit code 3. */
    fail: cmd("fail-agent.mjs", "3"),
    /** Ignores SIGTERM, has a grandchild that does too; writes the grandchild's pid to <work_dir>/hang.pid. */
    hang: cmd("hang-agent.mjs", "{work_dir}/hang.pid"),
    /** json-agent.mjs <prompt>: object | invalid | jsonl. */
    json: cmd("json-agent.mjs", "{prompt}"),
    /** Prints about `prompt` bytes of 3-byte characters between START and END. */
    big: cmd("big-agent.mjs", "{prompt}"),
    /** Fails the first run, then succeeds; the counter file is the prompt (an absolute path). */
    flaky: cmd("flaky-agent.mjs", "{prompt}", "1"),
    /** Exits without reading stdin (the prompt goes to stdin). */
    "no-stdin": cmd("no-stdin-agent.mjs"),
  };
}

export interface DataDirOptions {
  /** Merged over the base config (executors are merged, not replaced). */
  config?: Record<string, unknown>;
  /** Write no config.json at all. */
  noConfig?: boolean;
}

/** A fresh temp data dir with a config.json for the fixtures. */
export function makeDataDir(opts: DataDirOptions = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-e2e-"));
  if (!opts.noConfig) writeFileSync(path.join(dir, "config.json"), JSON.stringify(baseConfig(opts.config), null, 2));
  return dir;
}

/**
 * What every process a test starts gets, unless the test says otherwise: no background owner
 * (always_on "client"), so that no test leaves a detached agent-cron running. A test about the
 * background owner passes AGENT_CRON_ALWAYS_ON: "daemon" and stops the owner itself.
 */
export const TEST_ENV: Record<string, string> = { AGENT_CRON_ALWAYS_ON: "client" };

export function baseConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { executors, ...rest } = extra as { executors?: Record<string, unknown> };
  return {
    timezone: "Europe/Paris",
    // See TEST_ENV: a test about the background owner overrides both.
    always_on: "client",
    default_executor: "echo",
    max_concurrent: 8,
    // A hanging agent ignores SIGTERM; do not wait the default 5 s before SIGKILL.
    kill_grace_seconds: 0.5,
    ...rest,
    executors: { ...fixtureExecutors(), ...(executors ?? {}) },
  };
}

export interface StartOptions extends DataDirOptions {
  /** Reuse a data dir (restart); by default a fresh one is made. */
  dataDir?: string;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
  /** The built CLI to start (default dist/cli.js): a copy installed elsewhere. */
  cli?: string;
  clientName?: string;
  clientVersion?: string;
  /** Declare the elicitation capability and answer each request with this. */
  onElicit?: (params: { message: string; requestedSchema: unknown }) => { action: "accept" | "decline" | "cancel"; content?: Record<string, unknown> };
}

export interface Notice {
  method: string;
  params: Record<string, unknown>;
  at: number;
}

export type Structured = Record<string, any>;

export class TestServer {
  readonly notifications: Notice[] = [];
  private stderrText = "";
  private closed = false;

  private constructor(
    readonly client: Client,
    readonly transport: StdioClientTransport,
    readonly dataDir: string,
  ) {}

  static async start(opts: StartOptions = {}): Promise<TestServer> {
    const dataDir = opts.dataDir ?? makeDataDir(opts);
    const transport = new StdioClientTransport({
      command: NODE,
      args: [opts.cli ?? CLI, "serve", "--data-dir", dataDir],
      env: { ...TEST_ENV, XDG_CACHE_HOME: workCacheOf(dataDir), ...(opts.env ?? {}) },
      stderr: "pipe",
      cwd: dataDir,
    });
    const client = new Client(
      { name: opts.clientName ?? "e2e-client", version: opts.clientVersion ?? "1.0.0" },
      opts.onElicit ? { capabilities: { elicitation: {} } } : undefined,
    );
    if (opts.onElicit) {
      const answer = opts.onElicit;
      client.setRequestHandler(ElicitRequestSchema, async (req) => answer(req.params as { message: string; requestedSchema: unknown }));
    }
    const server = new TestServer(client, transport, dataDir);
    transport.stderr!.on("data", (chunk: Buffer) => (server.stderrText += chunk.toString()));
    const record = (method: string) => (n: { params?: unknown }) => {
      server.notifications.push({ method, params: (n.params ?? {}) as Record<string, unknown>, at: Date.now() });
    };
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, record("notifications/resources/updated"));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, record("notifications/resources/list_changed"));
    client.setNotificationHandler(LoggingMessageNotificationSchema, record("notifications/message"));
    try {
      await client.connect(transport);
    } catch (err) {
      throw new Error(`The server did not start: ${(err as Error).message}\nstderr:\n${server.stderrText}`);
    }
    await waitFor(() => server.stderrText.includes("agent-cron ready stdio"), { timeout: 10_000, what: "the ready line" });
    return server;
  }

  get pid(): number {
    const pid = this.transport.pid;
    if (pid === null) throw new Error("The server process is not running.");
    return pid;
  }

  stderr(): string {
    return this.stderrText;
  }

  /** Calls a tool; the raw result, errors included. */
  async call(name: string, args: Record<string, unknown> = {}, options?: Parameters<Client["callTool"]>[2]): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
  }

  /** Calls a tool that must succeed and returns its structuredContent. */
  async tool(name: string, args: Record<string, unknown> = {}): Promise<Structured> {
    const result = await this.call(name, args);
    if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
    if (!result.structuredContent) throw new Error(`${name} returned no structuredContent: ${JSON.stringify(result)}`);
    return result.structuredContent as Structured;
  }

  /** Calls a tool that must fail and returns its error text. */
  async toolError(name: string, args: Record<string, unknown> = {}): Promise<string> {
    const result = await this.call(name, args);
    if (!result.isError) throw new Error(`${name} was expected to fail but returned ${JSON.stringify(result.structuredContent)}`);
    return textOf(result);
  }

  /** Reads a JSON resource. */
  async read(uri: string): Promise<Structured> {
    const res = await this.client.readResource({ uri });
    const first = res.contents[0] as { text?: string };
    return JSON.parse(first.text ?? "null");
  }

  /** Adds a job and returns its whole record (add_cron answers with a compact row). */
  async addJob(args: Record<string, unknown>): Promise<Structured> {
    const { job } = await this.tool("add_cron", args);
    return this.job(job.id);
  }

  /** list_runs' compact rows. */
  async runRows(job?: string, extra: Record<string, unknown> = {}): Promise<Structured[]> {
    return (await this.tool("list_runs", { ...(job ? { job } : {}), limit: 100, ...extra })).runs;
  }

  /** The whole records of the runs list_runs lists, each through get_run. */
  async runs(job?: string, extra: Record<string, unknown> = {}): Promise<Structured[]> {
    const rows = await this.runRows(job, extra);
    const full = await Promise.all(
      rows.map(async (row) => {
        const r = await this.call("get_run", { run: row.id });
        // A run may leave the capped history between the list and the read.
        return r.isError ? null : (r.structuredContent as Structured).run;
      }),
    );
    return full.filter((r) => r !== null);
  }

  async job(ref: string): Promise<Structured> {
    return (await this.tool("get_cron", { job: ref })).job;
  }

  /** Polls a job's runs until `check` returns something truthy, which is returned. */
  async waitForRuns<T>(job: string, check: (runs: Structured[]) => T | undefined | false | null, opts: WaitOptions = {}): Promise<T> {
    let last: Structured[] = [];
    return waitFor(
      async () => check((last = await this.runs(job))),
      { timeout: 20_000, ...opts, what: opts.what ?? `runs of ${job}`, describe: () => JSON.stringify(last.map(brief)) },
    );
  }

  /** Waits for a run to leave `running` and returns it. */
  async waitForRunEnd(job: string, runId: string, opts: WaitOptions = {}): Promise<Structured> {
    return this.waitForRuns(job, (runs) => runs.find((r) => r.id === runId && r.status !== "running"), { what: `run ${runId} to end`, ...opts });
  }

  notificationsOf(method: string): Notice[] {
    return this.notifications.filter((n) => n.method === method);
  }

  /**
   * Ends the server's stdin (what a quitting client does) and resolves with the milliseconds
   * until the process exited. Unlike client.close(), it never signals the process, so a server
   * that lingers is measured, not killed (after `timeout` ms it is SIGKILLed and -1 returned).
   */
  async endStdin(timeout = 10_000): Promise<number> {
    // The SDK keeps the child private; client.close() would SIGTERM it after 2 s.
    const child = (this.transport as unknown as { _process?: import("node:child_process").ChildProcess })._process;
    if (!child || child.exitCode !== null) throw new Error("The server process is not running.");
    const t0 = Date.now();
    const exited = new Promise<number>((resolve) => child.once("exit", () => resolve(Date.now() - t0)));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    const ms = await exited;
    clearTimeout(timer);
    this.closed = true;
    await this.client.close().catch(() => {});
    return ms >= timeout ? -1 : ms;
  }

  /** Closes the client, which closes the server's stdin; resolves when the process is gone. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close().catch(() => {});
  }

  /** Close and delete the data dir. */
  async cleanup(): Promise<void> {
    await this.close();
    await removeDir(this.dataDir);
  }
}

export function textOf(result: CallToolResult): string {
  return result.content
    .filter((c): c is { type: "text"; text: string } => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

function brief(run: Structured) {
  return { id: String(run.id).slice(0, 8), status: run.status, attempts: run.attempts, error: run.error?.slice?.(0, 80) };
}

export interface WaitOptions {
  timeout?: number;
  interval?: number;
  what?: string;
  describe?: () => string;
}

/** Polls until `check` returns something truthy (which is returned); throws after `timeout` ms. */
export async function waitFor<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, opts: WaitOptions = {}): Promise<T> {
  const timeout = opts.timeout ?? 15_000;
  const interval = opts.interval ?? 100;
  const until = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > until) {
      const detail = opts.describe?.() ?? (lastError ? String(lastError) : "");
      throw new Error(`Timed out after ${timeout} ms waiting for ${opts.what ?? "a condition"}${detail ? `: ${detail}` : ""}`);
    }
    await sleep(interval);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 }).catch(() => {});
  await rm(workCacheOf(dir), { recursive: true, force: true, maxRetries: 3, retryDelay: 100 }).catch(() => {});
}

/**
 * The XDG_CACHE_HOME a test's processes get: default work dirs live outside the data dir
 * (under $XDG_CACHE_HOME/agent-cron/work), and a test must not leave them in the real one.
 */
export const workCacheOf = (dataDir: string) => `${dataDir.replace(/\/+$/, "")}-cache`;

/** The XDG_CACHE_HOME for a command line, from its --data-dir. */
function cacheEnvFor(args: string[]): Record<string, string> {
  const i = args.indexOf("--data-dir");
  return i >= 0 && args[i + 1] ? { XDG_CACHE_HOME: workCacheOf(args[i + 1]) } : {};
}


/** True while any process of the group is alive (and not a zombie). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  // Signal 0 reaches zombies too; look for a live member in /proc.
  try {
    for (const entry of readdirSafe("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") return true;
    }
    return false;
  } catch {
    return true;
  }
}

/** Live (non-zombie) processes whose working directory is `dir` or inside it: a run's agents. */
export function pidsWorkingIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSafe("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${entry}/cwd`);
    } catch {
      continue;
    }
    if ((cwd === dir || cwd.startsWith(dir + path.sep)) && isAlive(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to completion. */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeout?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), ...TEST_ENV, ...cacheEnvFor(args), ...(opts.env ?? {}) }, timeout: opts.timeout ?? 20_000, cwd: opts.cwd ?? os.tmpdir(), maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Starts `serve` without a client (for start-up failures): resolves when it exits or prints its ready line. */
export function startRaw(dataDir: string, opts: { timeout?: number; args?: string[] } = {}): Promise<{ code: number | null; stderr: string; ready: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CLI, "serve", "--data-dir", dataDir, ...(opts.args ?? [])], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...TEST_ENV, XDG_CACHE_HOME: workCacheOf(dataDir) } });
    let stderr = "";
    let settled = false;
    const done = (v: { code: number | null; stderr: string; ready: boolean }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes("agent-cron ready")) {
        child.stdin.end();
        done({ code: null, stderr, ready: true });
      }
    });
    child.on("exit", (code) => done({ code, stderr, ready: false }));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      done({ code: null, stderr, ready: false });
    }, opts.timeout ?? 10_000);
  });
}

/** Milliseconds part of an ISO string ("…T09:00:01.000+01:00" → 0). */
export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$/;

/**
 * A job's run records as its run log on disk holds them (runs/<job_id>.jsonl, replayed as the
 * store does): what the owner wrote, not what a server says. Empty when there is no log.
 */
export function runsOnDisk(dataDir: string, jobId: string): Structured[] {
  const file = path.join(dataDir, "runs", `${jobId}${RUN_LOG_SUFFIX}`);
  if (!existsSync(file)) return [];
  return replayRunLog(file, jobId, readFileSync(file, "utf8")).runs as unknown as Structured[];
}


/**
 * Servers a test file starts, each stopped (and its data dir removed) after its test: call
 * once at the top of the file, beside the tests.
 */
export function serversPerTest(): (opts?: StartOptions) => Promise<TestServer> {
  const started: TestServer[] = [];
  afterEach(async () => {
    for (const s of started.splice(0).reverse()) await s.cleanup().catch(() => {});
  });
  return async (opts = {}) => {
    const s = await TestServer.start(opts);
    started.push(s);
    return s;
  };
}
