/**
 * What every test that drives agent-cron as an MCP client does, whatever carries the messages:
 * the built server over stdio (server.ts) or the server built in this process over the SDK's
 * in-memory transport (in-process.ts). Calls, answers, errors, resources and polling waits.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";

/** Milliseconds part of an ISO string ("…T09:00:01.000+01:00" → 0). */
export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$/;

export interface Notice {
  method: string;
  params: Record<string, unknown>;
  at: number;
}

export type Structured = Record<string, any>;

/** A connected SDK client and the data dir of the server it talks to. */
export class McpTestClient {
  readonly notifications: Notice[] = [];

  constructor(
    readonly client: Client,
    readonly dataDir: string,
  ) {
    const record = (method: string) => (n: { params?: unknown }) => {
      this.notifications.push({ method, params: (n.params ?? {}) as Record<string, unknown>, at: Date.now() });
    };
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, record("notifications/resources/updated"));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, record("notifications/resources/list_changed"));
    client.setNotificationHandler(LoggingMessageNotificationSchema, record("notifications/message"));
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
    return waitFor(async () => check((last = await this.runs(job))), {
      timeout: 20_000,
      ...opts,
      what: opts.what ?? `runs of ${job}`,
      describe: () => JSON.stringify(last.map(brief)),
    });
  }

  /** Waits for a run to leave `running` and returns it. */
  async waitForRunEnd(job: string, runId: string, opts: WaitOptions = {}): Promise<Structured> {
    return this.waitForRuns(job, (runs) => runs.find((r) => r.id === runId && r.status !== "running"), { what: `run ${runId} to end`, ...opts });
  }

  notificationsOf(method: string): Notice[] {
    return this.notifications.filter((n) => n.method === method);
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
