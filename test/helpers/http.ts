/**
 * HTTP end-to-end helpers: the BUILT server (`node dist/cli.js serve --http --port 0`) in a
 * child process, SDK clients over streamable HTTP, and raw requests for what a well-behaved
 * client never sends (foreign Host, bad token, huge bodies). Build first (`npm run build`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import os from "node:os";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import { CLI, TEST_ENV, makeDataDir, removeDir, textOf, workCacheOf, waitFor, type DataDirOptions } from "./server.js";

export interface HttpStartOptions extends DataDirOptions {
  dataDir?: string;
  env?: Record<string, string>;
  args?: string[];
}

export class HttpServer {
  private stderrText = "";
  private readonly exited: Promise<number | null>;
  readonly clients: HttpClient[] = [];

  private constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
  ) {
    child.stderr!.on("data", (c: Buffer) => (this.stderrText += c.toString()));
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  /** Spawns the server and resolves once it prints its ready line. */
  static async start(opts: HttpStartOptions = {}): Promise<HttpServer> {
    const dataDir = opts.dataDir ?? makeDataDir(opts);
    const child = spawn(process.execPath, [CLI, "serve", "--http", "--port", "0", "--data-dir", dataDir, ...(opts.args ?? [])], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), ...TEST_ENV, XDG_CACHE_HOME: workCacheOf(dataDir), ...opts.env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const server = new HttpServer(child, dataDir);
    let code: number | null | undefined;
    void server.exited.then((c) => (code = c));
    await waitFor(() => server.url || code !== undefined, { timeout: 30_000, what: "the ready line", describe: () => server.stderrText });
    if (!server.url) throw new Error(`The server exited with ${code}:\n${server.stderrText}`);
    return server;
  }

  get url(): string {
    return /agent-cron ready http (\S+)/.exec(this.stderrText)?.[1] ?? "";
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  stderr(): string {
    return this.stderrText;
  }

  async connect(opts: { token?: string; name?: string } = {}): Promise<HttpClient> {
    const client = await HttpClient.connect(this.url, opts);
    this.clients.push(client);
    return client;
  }

  /** Sends a signal and resolves with the exit code (null when it had to be killed after `timeout` ms). */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeout = 15_000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeout);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    await this.stop("SIGTERM");
    await removeDir(this.dataDir);
  }
}

export interface Notice {
  method: string;
  params: Record<string, any>;
}

/** An SDK client over streamable HTTP that records every notification it receives. */
export class HttpClient {
  readonly notifications: Notice[] = [];

  private constructor(
    readonly client: Client,
    readonly transport: StreamableHTTPClientTransport,
  ) {}

  static async connect(url: string, opts: { token?: string; name?: string } = {}): Promise<HttpClient> {
    const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
    const client = new Client({ name: opts.name ?? "http-e2e", version: "1.0.0" });
    const self = new HttpClient(client, transport);
    for (const [schema, method] of [
      [ResourceUpdatedNotificationSchema, "notifications/resources/updated"],
      [ResourceListChangedNotificationSchema, "notifications/resources/list_changed"],
      [LoggingMessageNotificationSchema, "notifications/message"],
    ] as const) {
      client.setNotificationHandler(
        schema,
        (n: { params?: unknown }) => void self.notifications.push({ method, params: (n.params ?? {}) as Record<string, any> }),
      );
    }
    await client.connect(transport);
    return self;
  }

  get sessionId(): string {
    return this.transport.sessionId ?? "";
  }

  /** Calls a tool that must succeed and returns its structuredContent. */
  async tool(name: string, args: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const result = (await this.client.callTool({ name, arguments: args })) as CallToolResult;
    if (result.isError) throw new Error(`${name} failed: ${textOf(result)}`);
    return result.structuredContent as Record<string, any>;
  }

  async read(uri: string): Promise<any> {
    const res = await this.client.readResource({ uri });
    return JSON.parse((res.contents[0] as { text: string }).text);
  }

  updatesFor(uri: string): Notice[] {
    return this.notifications.filter((n) => n.method === "notifications/resources/updated" && n.params.uri === uri);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json(): any;
}

/**
 * One request with node:http, which (unlike fetch) lets a test set any Host header.
 * MCP's Accept and Content-Type headers are added unless given.
 */
export function rawRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; path?: string } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: u.port,
        path: opts.path ?? u.pathname,
        method: opts.method ?? "POST",
        headers: { accept: "application/json, text/event-stream", "content-type": "application/json", ...opts.headers },
        agent: false,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

export function jsonRpc(id: number | null, method: string, params: Record<string, unknown> = {}): string {
  return JSON.stringify(id === null ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id, method, params });
}

export const INITIALIZE = jsonRpc(1, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } });

/** A session opened by hand: initialize, then the initialized notification. */
export async function rawSession(url: string, headers: Record<string, string> = {}) {
  const init = await rawRequest(url, { body: INITIALIZE, headers });
  if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
  const sessionId = String(init.headers["mcp-session-id"]);
  const session = { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25", ...headers };
  await rawRequest(url, { body: jsonRpc(null, "notifications/initialized"), headers: session });
  let nextId = 2;
  const call = async (method: string, params: Record<string, unknown> = {}) => {
    const res = await rawRequest(url, { body: jsonRpc(nextId++, method, params), headers: session });
    if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status} ${res.text}`);
    return sseMessages(res.text).find((m) => "result" in m || "error" in m);
  };
  return { sessionId, headers: session, call };
}

export interface SseEvent {
  id?: string;
  data: string;
}

/** Parses a finished SSE body (a POST's response stream) into its JSON-RPC messages. */
export function sseMessages(text: string): any[] {
  return parseSse(text)
    .events.filter((e) => e.data.trim())
    .map((e) => JSON.parse(e.data));
}

function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? "";
  const events = blocks
    .map((block) => {
      const event: SseEvent = { data: "" };
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("id:")) event.id = line.slice(3).trim();
        else if (line.startsWith("data:")) event.data += line.slice(5).trim();
      }
      return event;
    })
    .filter((e) => e.id !== undefined || e.data);
  return { events, rest };
}

/** A raw GET stream of a session: every event it delivers, until `close()`. */
export class RawStream {
  readonly events: SseEvent[] = [];
  private constructor(
    readonly status: number,
    private readonly abort: AbortController,
  ) {}

  static async open(url: string, headers: Record<string, string>): Promise<RawStream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal });
    const stream = new RawStream(res.status, abort);
    if (res.ok && res.body) {
      void (async () => {
        const decoder = new TextDecoder();
        let buffer = "";
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            const parsed = parseSse((buffer += decoder.decode(chunk, { stream: true })));
            buffer = parsed.rest;
            stream.events.push(...parsed.events);
          }
        } catch {
          // aborted
        }
      })();
    } else abort.abort();
    return stream;
  }

  messages(): { id?: string; message: any }[] {
    return this.events.filter((e) => e.data.trim()).map((e) => ({ id: e.id, message: JSON.parse(e.data) }));
  }

  close(): void {
    this.abort.abort();
  }
}
