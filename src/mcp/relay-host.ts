import type net from "node:net";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { McpSessionHandle } from "../backends/files/share/rpc.js";
import type { CronApi } from "../core/api.js";
import { logger } from "../log.js";
import { writeTogether } from "../kernel/together.js";
import { createServer } from "./server.js";

/** The owner's side of a stdio relay (src/mcp/relay.ts): one MCP session per relay, over its socket connection. */
export function serveRelayedSession(socket: net.Socket, rest: string, api: CronApi): McpSessionHandle {
  const transport = new RelayedTransport(socket, rest);
  const server = createServer(api);
  server.connect(transport).catch((err) => {
    logger.log("warning", "relay.session_failed", `A relayed MCP session could not start: ${(err as Error).message}`);
    socket.destroy();
  });
  return {
    drain: () => transport.drain(),
    close: () => void server.close().catch(() => socket.destroy()),
  };
}

/** The SDK's Transport over the relay's connection: newline-delimited JSON-RPC both ways. */
class RelayedTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  private buf: string;
  /** Requests taken and not answered yet. */
  private readonly taken = new Set<string | number>();
  private refusing = false;
  private idle: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    rest: string,
  ) {
    this.buf = rest;
    socket.on("close", () => this.ended());
    socket.on("error", (err) => this.onerror?.(err));
  }

  async start(): Promise<void> {
    this.socket.on("data", (chunk: string) => {
      this.buf += chunk;
      this.lines();
    });
    this.lines();
    this.socket.resume();
  }

  private lines(): void {
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!line.trim()) continue;
      let message: JSONRPCMessage;
      try {
        message = JSON.parse(line);
      } catch (err) {
        // The relay sends only what parsed; say it, as the SDK's stdio transport does, and go on.
        this.onerror?.(err as Error);
        continue;
      }
      if ("method" in message && "id" in message) {
        if (this.refusing) continue;
        this.taken.add(message.id);
      }
      this.onmessage?.(message);
    }
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed || !this.socket.writable) return;
    if (!("method" in message) && "id" in message && message.id !== undefined && this.taken.delete(message.id) && this.taken.size === 0) this.idle?.();
    writeTogether(this.socket, `${JSON.stringify(message)}\n`);
  }

  drain(): Promise<void> {
    this.refusing = true;
    if (this.taken.size === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = resolve;
    });
  }

  async close(): Promise<void> {
    this.socket.end();
    this.ended();
  }

  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.idle?.();
    this.onclose?.();
  }
}
