/**
 * End-to-end helpers: a temp data dir whose config runs the fake agents of test/fixtures/,
 * the BUILT server (`node dist/cli.js serve`) driven by the SDK's Client over stdio, and
 * polling waits. Build first (`npm run build`); these tests never import src/.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { RUN_LOG_SUFFIX, replayRunLog } from "../../src/backends/files/store/run-log.js";
import { afterEach } from "vitest";
import { ISO_MS, McpTestClient, sleep, textOf, waitFor, type Notice, type Structured, type WaitOptions } from "./mcp-client.js";
import { FIXTURES, ROOT, TEST_ENV, baseConfig, fixture, fixtureExecutors, makeDataDir, removeDir, workCacheOf, type DataDirOptions } from "./data-dir.js";
import { groupAlive, isAlive } from "./process.js";
export { FIXTURES, ROOT, TEST_ENV, baseConfig, fixture, fixtureExecutors, makeDataDir, removeDir, workCacheOf, type DataDirOptions };
export { ISO_MS, groupAlive, isAlive, sleep, textOf, waitFor, type Notice, type Structured, type WaitOptions };

const NODE = process.execPath;
export const CLI = path.join(ROOT, process.env.AGENT_CRON_DIST || "dist", "cli.js");
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" before the e2e tests.`);

export interface StartOptions extends DataDirOptions {
  /** Reuse a data dir (restart); by default a fresh one is made. */
  dataDir?: string;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
  /** The built CLI to start (default dist/cli.js): a copy installed elsewhere. */
  cli?: string;
  /** A command the server runs under (e.g. strace and its options): `node dist/cli.js serve …` is appended to it. */
  wrap?: string[];
  clientName?: string;
  clientVersion?: string;
  /** Wait for the server's ready line (default true); false returns once the client is connected. */
  ready?: boolean;
  /** Declare the elicitation capability and answer each request with this. */
  onElicit?: (params: { message: string; requestedSchema: unknown }) => { action: "accept" | "decline" | "cancel"; content?: Record<string, unknown> };
}

export class TestServer extends McpTestClient {
  private stderrText = "";
  private closed = false;

  private constructor(
    client: Client,
    readonly transport: StdioClientTransport,
    dataDir: string,
  ) {
    super(client, dataDir);
  }

  static async start(opts: StartOptions = {}): Promise<TestServer> {
    const dataDir = opts.dataDir ?? makeDataDir(opts);
    const serve = [NODE, opts.cli ?? CLI, "serve", "--data-dir", dataDir];
    const [command, ...args] = [...(opts.wrap ?? []), ...serve];
    const transport = new StdioClientTransport({
      command,
      args,
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
    try {
      await client.connect(transport);
    } catch (err) {
      throw new Error(`The server did not start: ${(err as Error).message}\nstderr:\n${server.stderrText}`);
    }
    if (opts.ready !== false) await server.ready();
    return server;
  }

  /** Resolves when the server printed its ready line: it has its seat on the data dir. */
  async ready(): Promise<void> {
    // The client's connect no longer waits for the data dir (initialize is answered first), so
    // the wait it had (the SDK's 60 s request timeout) is this one's.
    await waitFor(() => this.stderrText.includes("agent-cron ready stdio"), { timeout: 60_000, what: "the ready line" });
  }

  get pid(): number {
    const pid = this.transport.pid;
    if (pid === null) throw new Error("The server process is not running.");
    return pid;
  }

  stderr(): string {
    return this.stderrText;
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

/** The XDG_CACHE_HOME for a command line, from its --data-dir. */
function cacheEnvFor(args: string[]): Record<string, string> {
  const i = args.indexOf("--data-dir");
  return i >= 0 && args[i + 1] ? { XDG_CACHE_HOME: workCacheOf(args[i + 1]) } : {};
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
      {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), ...TEST_ENV, ...cacheEnvFor(args), ...(opts.env ?? {}) },
        timeout: opts.timeout ?? 20_000,
        cwd: opts.cwd ?? os.tmpdir(),
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Starts `serve` without a client (for start-up failures): resolves when it exits or prints its ready line. */
export function startRaw(dataDir: string, opts: { timeout?: number; args?: string[] } = {}): Promise<{ code: number | null; stderr: string; ready: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [CLI, "serve", "--data-dir", dataDir, ...(opts.args ?? [])], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...TEST_ENV, XDG_CACHE_HOME: workCacheOf(dataDir) },
    });
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
