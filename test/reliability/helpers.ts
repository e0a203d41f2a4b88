/**
 * Small, self-contained helpers for the reliability and multi-process tests: they start the
 * BUILT server (`node dist/cli.js serve`) the way an MCP client does, kill it for real, and
 * read the data dir's files without going through the server. Build first (`npm run build`).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { waitFor as pollUntil, type WaitOptions } from "../helpers/mcp-client.js";
import {
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import { JobSchema, RunSchema, type Job, type Run } from "../../src/core/jobs.js";
import { isAlive } from "../helpers/process.js";
export { isAlive };

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "..", "..");
/** RELIABILITY_CLI points the tests at another build (e.g. a patched copy) without touching dist/. */
export const CLI = process.env.RELIABILITY_CLI ?? path.join(ROOT, process.env.AGENT_CRON_DIST || "dist", "cli.js");
export const NODE = process.execPath;
export const fixture = (name: string) => path.join(ROOT, "test", "fixtures", name);

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first.`);

export type Json = Record<string, any>;

/** A command executor over a fixture script, run with this very node binary. */
export const fixtureExecutor = (file: string, ...args: string[]) => ({ type: "command", command: [NODE, fixture(file), ...args], sandbox: "none" });

/** A fresh temp data dir with a config.json: the echo fixture as default executor, plus `extra`. */
export function makeDataDir(extra: Json = {}, prefix = "agent-cron-rel-"): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const { executors, ...rest } = extra;
  const config = {
    timezone: "UTC",
    // No background owner: no test may leave a detached agent-cron running (see TEST_ENV).
    always_on: "client",
    default_executor: "echo",
    kill_grace_seconds: 0.5,
    ...rest,
    executors: { echo: fixtureExecutor("echo-agent.mjs", "{prompt}"), ...(executors ?? {}) },
  };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  return dir;
}

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

/** What every process these tests start gets unless a test says otherwise: no background owner. */
export const TEST_ENV: Record<string, string> = { AGENT_CRON_ALWAYS_ON: "client" };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The shared poll (test/helpers/mcp-client.ts), polling every 50 ms here unless told otherwise. */
export function waitFor<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, opts: WaitOptions = {}): Promise<T> {
  return pollUntil(check, { interval: 50, ...opts });
}

export interface Notice {
  method: string;
  params: Json;
  at: number;
}

/** One `agent-cron serve` process on stdio with an SDK client attached. */
export class Server {
  readonly notifications: Notice[] = [];
  private stderrText = "";
  private exited: Promise<void>;

  private constructor(
    readonly client: Client,
    readonly transport: StdioClientTransport,
    readonly dataDir: string,
  ) {
    this.exited = new Promise((resolve) => {
      const prev = transport.onclose;
      transport.onclose = () => {
        prev?.();
        resolve();
      };
    });
  }

  static async start(dataDir: string, opts: { env?: Record<string, string>; name?: string; readyTimeout?: number } = {}): Promise<Server> {
    const transport = new StdioClientTransport({
      command: NODE,
      args: [CLI, "serve", "--data-dir", dataDir],
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), ...TEST_ENV, XDG_CACHE_HOME: workCacheOf(dataDir), ...(opts.env ?? {}) },
      stderr: "pipe",
      cwd: dataDir,
    });
    const client = new Client({ name: opts.name ?? "reliability", version: "1.0.0" });
    const server = new Server(client, transport, dataDir);
    transport.stderr!.on("data", (chunk: Buffer) => (server.stderrText += chunk.toString()));
    const record = (method: string) => (n: { params?: unknown }) => {
      server.notifications.push({ method, params: (n.params ?? {}) as Json, at: Date.now() });
    };
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, record("notifications/resources/updated"));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, record("notifications/resources/list_changed"));
    client.setNotificationHandler(LoggingMessageNotificationSchema, record("notifications/message"));
    try {
      await client.connect(transport);
      void server.pid;
      // connect no longer waits for the data dir (initialize is answered first): the wait the
      // SDK's connect had (60 s) is this one's.
      await waitFor(() => server.stderrText.includes("agent-cron ready stdio"), { timeout: opts.readyTimeout ?? 60_000, what: "the ready line" });
    } catch (err) {
      await client.close().catch(() => {});
      throw new Error(`The server did not start: ${(err as Error).message}\nstderr:\n${server.stderrText}`);
    }
    return server;
  }

  private startedPid: number | null = null;

  /** The server's pid (still known after it has exited). */
  get pid(): number {
    const pid = this.transport.pid ?? this.startedPid;
    if (pid === null) throw new Error("The server process is not running.");
    return (this.startedPid = pid);
  }

  stderr(): string {
    return this.stderrText;
  }

  /** The raw result of a tool call, errors included. */
  async call(name: string, args: Json = {}): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args }, undefined, { timeout: 30_000 })) as CallToolResult;
  }

  /** A tool call that must succeed; its structuredContent. */
  async tool(name: string, args: Json = {}): Promise<Json> {
    const result = await this.call(name, args);
    if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
    return result.structuredContent as Json;
  }

  async read(uri: string): Promise<Json> {
    const res = await this.client.readResource({ uri });
    return JSON.parse((res.contents[0] as { text?: string }).text ?? "null");
  }

  /** Every job, from the cron://jobs resource, page by page. */
  async jobs(): Promise<Job[]> {
    const out: Job[] = [];
    let uri: string | null = "cron://jobs";
    while (uri) {
      const page = await this.read(uri);
      out.push(...(page.jobs as Job[]));
      uri = page.next_uri;
    }
    return out;
  }

  /** The whole records of every run list_runs lists (its rows are compact), each through get_run. */
  async runs(job?: string): Promise<Run[]> {
    const rows = await this.runRows(job);
    const full = await Promise.all(
      rows.map(async (row) => {
        const r = await this.call("get_run", { run: row.id });
        // A run may leave the capped history between the list and the read.
        return r.isError ? null : ((r.structuredContent as Json).run as Run);
      }),
    );
    return full.filter((r): r is Run => r !== null);
  }

  /** list_runs' compact rows, every page. */
  async runRows(job?: string): Promise<Json[]> {
    const out: Json[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.tool("list_runs", { ...(job ? { job } : {}), limit: 100, ...(cursor ? { cursor } : {}) });
      out.push(...(page.runs as Json[]));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return out;
  }

  /** kill -9, then waits until the process is gone. */
  async kill9(): Promise<void> {
    const pid = this.transport.pid;
    if (pid !== null) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    await this.exited;
    await this.client.close().catch(() => {});
  }

  /** Closes the client (the server's stdin ends) and waits for the process to go. */
  async close(): Promise<void> {
    await this.client.close().catch(() => {});
    await this.exited;
  }

  whenExited(): Promise<void> {
    return this.exited;
  }
}

export function textOf(result: CallToolResult): string {
  return (result.content ?? [])
    .filter((c): c is { type: "text"; text: string } => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

/** The owner of a data dir, as it wrote itself into owner.json. */
export function readOwner(dataDir: string): { pid: number; role: string } | null {
  try {
    return JSON.parse(readFileSync(path.join(dataDir, "owner.json"), "utf8"));
  } catch {
    return null;
  }
}

/**
 * After a kill -9 the data dir lock stays until it is stale (about 6 s). Back-dating it
 * makes the next server see it stale at once, through the same path a real wait takes.
 */
export function expireLock(dataDir: string): void {
  const lock = path.join(dataDir, "agent-cron.lock");
  if (!existsSync(lock)) return;
  const past = new Date(Date.now() - 60_000);
  utimesSync(lock, past, past);
}

export interface DataFiles {
  /** The job set the files hold (snapshot, then journal replayed). */
  jobs: Map<string, Job>;
  /** Runs per job file. */
  runs: Map<string, Run[]>;
  /** Problems found: files or lines that do not parse or do not validate. */
  problems: string[];
  /** A last journal line cut short by a crash (allowed: it was never acknowledged). */
  tornJournalLine: boolean;
  journalLines: number;
  snapshotJobs: number;
  filesChecked: number;
}

/**
 * Reads the data dir as a person (or the next start-up) would: jobs.json must parse, every
 * line of jobs.journal must parse except a torn final one, each runs/*.json(l) and owner.json must parse; every
 * job and run must pass its schema.
 */
export function readDataFiles(dataDir: string): DataFiles {
  const out: DataFiles = { jobs: new Map(), runs: new Map(), problems: [], tornJournalLine: false, journalLines: 0, snapshotJobs: 0, filesChecked: 0 };
  const checkJob = (raw: unknown, where: string): Job | null => {
    const r = JobSchema.safeParse(raw);
    if (!r.success) {
      out.problems.push(`${where}: invalid job: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
      return null;
    }
    return r.data;
  };
  const snapshot = path.join(dataDir, "jobs.json");
  if (existsSync(snapshot)) {
    out.filesChecked++;
    try {
      const data = JSON.parse(readFileSync(snapshot, "utf8"));
      if (!Array.isArray(data?.jobs)) out.problems.push(`jobs.json has no jobs array`);
      else {
        out.snapshotJobs = data.jobs.length;
        data.jobs.forEach((raw: unknown, i: number) => {
          const job = checkJob(raw, `jobs.json #${i + 1}`);
          if (job) out.jobs.set(job.id, job);
        });
      }
    } catch (err) {
      out.problems.push(`jobs.json does not parse: ${(err as Error).message}`);
    }
  }
  // As the store replays them: snapshot, the journal a compaction set aside (`.old`, present
  // when a kill came before the new snapshot was on disk), then the journal.
  for (const name of ["jobs.journal.old", "jobs.journal"]) {
    const journal = path.join(dataDir, name);
    if (!existsSync(journal)) continue;
    out.filesChecked++;
    const lines = readFileSync(journal, "utf8").split("\n");
    const last = lines.pop();
    if (last) out.tornJournalLine = true;
    lines.forEach((line, i) => {
      if (!line) return;
      out.journalLines++;
      let entry: { put?: unknown; del?: unknown; journal?: unknown };
      try {
        entry = JSON.parse(line);
      } catch (err) {
        out.problems.push(`${name} line ${i + 1} does not parse: ${(err as Error).message}`);
        return;
      }
      // The header naming the journal.
      if (i === 0 && typeof entry.journal === "string") return;
      if (typeof entry.del === "string") out.jobs.delete(entry.del);
      else if (entry.put) {
        const job = checkJob(entry.put, `${name} line ${i + 1}`);
        if (job) out.jobs.set(job.id, job);
      } else out.problems.push(`${name} line ${i + 1} is neither put nor del`);
    });
  }
  const owner = path.join(dataDir, "owner.json");
  if (existsSync(owner)) {
    out.filesChecked++;
    try {
      JSON.parse(readFileSync(owner, "utf8"));
    } catch (err) {
      out.problems.push(`owner.json does not parse: ${(err as Error).message}`);
    }
  }
  const runsDir = path.join(dataDir, "runs");
  if (existsSync(runsDir)) {
    for (const name of readdirSync(runsDir)) {
      // The run journal (runs/journal-<n>.jsonl, every log's recent lines with their job):
      // each whole line parses; a torn last line is allowed.
      if (/^journal-\d+\.jsonl$/.test(name)) {
        out.filesChecked++;
        const lines = readFileSync(path.join(runsDir, name), "utf8").split("\n");
        lines.pop();
        lines.forEach((line, i) => {
          try {
            if (typeof JSON.parse(line).job !== "string") out.problems.push(`runs/${name} line ${i + 1} names no job`);
          } catch (err) {
            out.problems.push(`runs/${name} line ${i + 1} does not parse: ${(err as Error).message}`);
          }
        });
        continue;
      }
      // A job's run log (runs/<job_id>.jsonl): a header, then puts (and drops) replayed in
      // order; a torn last line is allowed (never acknowledged). runs/open.jsonl is an index.
      if (name.endsWith(".jsonl") && name !== "open.jsonl") {
        out.filesChecked++;
        const byId = new Map<string, Run>();
        const lines = readFileSync(path.join(runsDir, name), "utf8").split("\n");
        lines.pop();
        lines.forEach((line, i) => {
          if (!line || i === 0) return;
          try {
            const entry = JSON.parse(line);
            const r = RunSchema.safeParse(entry.put);
            if (!r.success)
              return out.problems.push(`runs/${name} line ${i + 1}: invalid run: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
            byId.set(r.data.id, r.data);
            for (const id of entry.drop ?? []) byId.delete(id);
          } catch (err) {
            out.problems.push(`runs/${name} line ${i + 1} does not parse: ${(err as Error).message}`);
          }
        });
        out.runs.set(name.slice(0, -".jsonl".length), [...byId.values()]);
        continue;
      }
      if (!name.endsWith(".json") || name.startsWith(".")) continue;
      out.filesChecked++;
      try {
        const data = JSON.parse(readFileSync(path.join(runsDir, name), "utf8"));
        if (!Array.isArray(data?.runs)) {
          out.problems.push(`runs/${name} has no runs array`);
          continue;
        }
        const runs: Run[] = [];
        data.runs.forEach((raw: unknown, i: number) => {
          const r = RunSchema.safeParse(raw);
          if (r.success) runs.push(r.data);
          else out.problems.push(`runs/${name} #${i + 1}: invalid run: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
        });
        out.runs.set(name.slice(0, -5), runs);
      } catch (err) {
        out.problems.push(`runs/${name} does not parse: ${(err as Error).message}`);
      }
    }
  }
  return out;
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI to completion. */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeout?: number } = {}): Promise<CliResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(
      NODE,
      [CLI, ...args],
      {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), ...TEST_ENV, ...cacheEnvFor(args), ...(opts.env ?? {}) },
        timeout: opts.timeout ?? 20_000,
        cwd: os.tmpdir(),
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - t0 });
      },
    );
  });
}

/** Milliseconds since the epoch of an ISO time (null → NaN). */
export const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);
