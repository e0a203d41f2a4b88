/**
 * The server as `agent-cron serve` builds it (a Host that owns a files data dir in tmp, the
 * MCP server over it, real command executors without a sandbox), in this process, driven by
 * the SDK's Client over the SDK's in-memory transport. No build and no child process for the
 * server: tests of what a tool answers run in milliseconds. What needs a real process (stdio
 * framing, signals, restarts, several processes on one data dir) stays in test/e2e/.
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client, type ClientOptions } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { parseConfig } from "../../src/config.js";
import { createServer } from "../../src/mcp/server.js";
import { Host } from "../../src/backends/files/share/host.js";
import { openApp } from "../../src/compose.js";
import { baseConfig, removeDir, workCacheOf } from "./data-dir.js";
import { ISO_MS, McpTestClient, sleep, textOf, waitFor, type Structured } from "./mcp-client.js";
import { groupAlive, isAlive } from "./process.js";
export { ISO_MS, groupAlive, isAlive, removeDir, sleep, textOf, waitFor, type Structured };

export interface InProcessOptions {
  /** Merged over the e2e base config (executors are merged, not replaced). */
  config?: Record<string, unknown>;
  /** The SDK Client's options (its jsonSchemaValidator, say). */
  client?: ClientOptions;
}

export class InProcessServer extends McpTestClient {
  private closed = false;

  private constructor(
    client: Client,
    dataDir: string,
    readonly host: Host,
    private readonly server: McpServer,
  ) {
    super(client, dataDir);
  }

  static async start(opts: InProcessOptions = {}): Promise<InProcessServer> {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-inproc-"));
    const config = parseConfig(baseConfig(opts.config));
    // Default work dirs go under XDG_CACHE_HOME: the test's own, removed with the data dir.
    const env = { ...process.env, XDG_CACHE_HOME: workCacheOf(dataDir) };
    const host = await Host.open({ dataDir, config, role: "server", env, openApp });
    const server = createServer(host);
    const client = new Client({ name: "in-process-client", version: "1.0.0" }, opts.client);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const s = new InProcessServer(client, dataDir, host, server);
    try {
      await server.connect(serverSide);
      await client.connect(clientSide);
    } catch (err) {
      await s.cleanup();
      throw err;
    }
    return s;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close().catch(() => {});
    await this.server.close().catch(() => {});
    await this.host.close();
  }

  /** Close and delete the data dir and the runs' work dirs. */
  async cleanup(): Promise<void> {
    await this.close();
    await removeDir(this.dataDir);
  }
}
