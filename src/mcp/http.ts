import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Config } from "../config.js";
import type { CronApi } from "../core/api.js";
import { DEFAULT_EVENT_LIMITS, MemoryEventStore, type EventStoreLimits } from "./http/event-store.js";
import { createServer } from "./server.js";

export type McpEndpointOptions = Pick<Config["http"], "max_sessions" | "session_idle_seconds"> & {
  eventLimits?: EventStoreLimits;
  /** How long a response stream may sit with its client reading nothing before it is cut. */
  stallMs?: number;
};

/** /mcp, handed its requests by the HTTP server (src/http/server.ts) once they passed its checks. */
export interface McpEndpoint {
  /** A GET, POST or DELETE at /mcp; `body` is a POST's parsed JSON. */
  handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void>;
  close(): Promise<void>;
}

export const MCP_PATH = "/mcp";
/** A stream whose client has read nothing for this long is cut; the client can resume with Last-Event-ID. */
const STALL_MS = 30_000;

interface Session {
  server: McpServer;
  transport: StreamableHTTPServerTransport;
  lastSeen: number;
  /** Responses in flight, SSE streams included: a session with one open is not idle. */
  open: Set<ServerResponse>;
  /** POST requests being answered: a session with one is busy, whatever streams it holds open. */
  calls: number;
}

/**
 * Streamable HTTP at /mcp: one McpServer per session over the shared API, a GET stream per
 * session for notifications, resumable through a bounded in-memory event store.
 */
export function createMcpEndpoint(api: CronApi, opts: McpEndpointOptions): McpEndpoint {
  const events = new MemoryEventStore(opts.eventLimits ?? DEFAULT_EVENT_LIMITS);
  const sessions = new Map<string, Session>();
  const idleMs = opts.session_idle_seconds * 1000;
  const stallMs = opts.stallMs ?? STALL_MS;
  let closing = false;

  /** At http.max_sessions, the session idle longest goes first; one with a request in flight is kept. */
  const makeRoom = async (): Promise<boolean> => {
    if (sessions.size < opts.max_sessions) return true;
    let oldest: Session | undefined;
    for (const s of sessions.values()) if (s.calls === 0 && (!oldest || s.lastSeen < oldest.lastSeen)) oldest = s;
    if (!oldest) return false;
    await oldest.server.close().catch(() => {});
    return true;
  };

  const openSession = async (): Promise<{ id: string; session: Session }> => {
    const id = randomUUID();
    const server = createServer(api);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      eventStore: events.forSession(id),
      onsessioninitialized: () => void sessions.set(id, session),
    });
    const session: Session = { server, transport, lastSeen: Date.now(), open: new Set(), calls: 0 };
    transport.onclose = () => {
      sessions.delete(id);
      events.dropSession(id);
    };
    await server.connect(transport);
    return { id, session };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    const sessionId = req.headers["mcp-session-id"];
    let session: Session | undefined;
    let fresh: string | undefined;
    if (typeof sessionId === "string") {
      session = sessions.get(sessionId);
      if (!session) return jsonRpcError(res, 404, -32001, "Session not found: it ended or expired; start a new one with an initialize request.");
    } else if (req.method === "POST" && (Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body))) {
      if (!(await makeRoom())) {
        return jsonRpcError(res, 503, -32000, `Too many sessions: all ${opts.max_sessions} (http.max_sessions) have a request in flight; try again shortly.`, {
          "retry-after": "1",
        });
      }
      ({ id: fresh, session } = await openSession());
    } else {
      return jsonRpcError(res, 400, -32000, "Bad Request: send an initialize request first, then the Mcp-Session-Id header it returns.");
    }

    const live = session;
    live.lastSeen = Date.now();
    live.open.add(res);
    const call = req.method === "POST";
    if (call) live.calls++;
    res.once("close", () => {
      live.open.delete(res);
      if (call) live.calls--;
      live.lastSeen = Date.now();
    });
    await live.transport.handleRequest(req, res, body);
    // An initialize that failed (bad params) never registered; its server still listens to the app.
    if (fresh !== undefined && (!sessions.has(fresh) || closing)) await live.server.close();
  };

  const stalledSince = new WeakMap<ServerResponse, number>();
  const sweep = () => {
    const now = Date.now();
    for (const session of sessions.values()) {
      if (session.open.size === 0 && now - session.lastSeen > idleMs) void session.server.close().catch(() => {});
      for (const res of session.open) {
        // A client that stopped reading would otherwise make its stream buffer notifications without end.
        if (!res.writableNeedDrain) stalledSince.delete(res);
        else if (!stalledSince.has(res)) stalledSince.set(res, now);
        else if (now - stalledSince.get(res)! > stallMs) {
          // A reset, not a FIN: the kernel then drops the unsent backlog at once.
          res.socket?.resetAndDestroy();
          res.destroy();
        }
      }
    }
  };
  const sweeper = setInterval(sweep, Math.max(250, Math.min(5000, idleMs / 2, stallMs / 2)));
  sweeper.unref();

  return {
    handle,
    close: async () => {
      closing = true;
      clearInterval(sweeper);
      await Promise.allSettled([...sessions.values()].map((s) => s.server.close()));
    },
  };
}

/** An error in JSON-RPC's shape, as MCP clients read every answer at the endpoint. */
export function jsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}
