import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Config } from "../config.js";
import type { CronApi } from "../core/api.js";
import { UserError, codeOf, errorMessage, kindOf } from "../kernel/errors.js";
import { DEFAULT_EVENT_LIMITS, MemoryEventStore, type EventStoreLimits } from "./http/event-store.js";
import { RequestGuard, defaultAllowedHosts, isLoopback, urlHost } from "./http/guard.js";
import { createServer } from "./server.js";
import { GuessThrottle } from "./http/throttle.js";
import type { Dashboard } from "../dashboard/index.js";
import { OpsEndpoints, metricsSourceOf } from "../ops/endpoints.js";
import { logger } from "../log.js";

export type HttpOptions = Config["http"] & {
  /** Where the token variable (`token_env`) is read. */
  env: Record<string, string | undefined>;
  /** The variable holding the approver secret (config approver_token_env), read from `env`. */
  approverTokenEnv?: string;
  eventLimits?: EventStoreLimits;
  /** How long a response stream may sit with its client reading nothing before it is cut. */
  stallMs?: number;
  /** Where start-up hints, warnings and request errors go (default stderr). */
  log?: (line: string) => void;
};

export interface HttpHandle {
  /** The endpoint, `http://HOST:PORT/mcp`, with the real port. */
  url: string;
  close(): Promise<void>;
}

const ENDPOINT = "/mcp";
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
export async function serveHttp(api: CronApi, opts: HttpOptions): Promise<HttpHandle> {
  const token = opts.env[opts.token_env] || undefined;
  if (!token && !isLoopback(opts.host)) {
    throw new UserError(
      `Refusing to serve HTTP on ${opts.host} without a token: set ${opts.token_env} (for example ${opts.token_env}=$(openssl rand -hex 32)) ` +
        `so that clients must send "Authorization: Bearer <token>", or bind to 127.0.0.1.`,
    );
  }
  const log = opts.log ?? ((line: string) => logger.line(line, "http"));
  const events = new MemoryEventStore(opts.eventLimits ?? DEFAULT_EVENT_LIMITS);
  const sessions = new Map<string, Session>();
  const idleMs = opts.session_idle_seconds * 1000;
  const stallMs = opts.stallMs ?? STALL_MS;
  let guard: RequestGuard;
  let dashboard: Dashboard | undefined;
  const guesses = new GuessThrottle();
  let closing = false;
  // Before the port opens: the first scrape counts every run since the start.
  const ops = new OpsEndpoints(metricsSourceOf(api));
  await ops.start();

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

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (closing) return reply(res, 503, -32000, "The server is shutting down.", { connection: "close" });
    if (!guard.hostAllowed(req.headers.host)) {
      return reply(res, 403, -32000, `Host "${req.headers.host ?? ""}" is not allowed; add it to http.allowed_hosts in the config.`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !guard.originAllowed(origin)) {
      return reply(res, 403, -32000, `Origin "${origin}" is not allowed; add its host to http.allowed_hosts in the config.`);
    }
    const pathname = new URL(req.url ?? "/", "http://x").pathname;
    const howToAuth = `send the header "Authorization: Bearer <token>" with the token from ${opts.token_env}`;
    // A client that gets a 401 looks for OAuth (Claude Code fetches the .well-known documents,
    // then tries Dynamic Client Registration at /register and shows that answer's body).
    // agent-cron uses a static token: say so where such a client looks.
    if (pathname.startsWith("/.well-known/")) {
      return oauthReply(res, 404, "not_found", `agent-cron does not use OAuth; ${howToAuth}.`);
    }
    if (pathname === "/register" || pathname === "/authorize" || pathname === "/token") {
      return oauthReply(
        res,
        401,
        "invalid_client",
        `agent-cron does not use OAuth; ${howToAuth}. With Claude Code: claude mcp add --transport http agent-cron <url> --header "Authorization: Bearer $${opts.token_env}".`,
      );
    }
    // Event triggers carry their job's own token, not the daemon's: a CI system that starts
    // one job must not hold the key to every tool.
    const hook = /^\/hooks\/([^/]+)$/.exec(pathname);
    if (hook) {
      let jobId: string;
      try {
        jobId = decodeURIComponent(hook[1]);
      } catch {
        return reply(res, 404, -32000, "Not found: no such event trigger.");
      }
      return handleHook(api, req, res, jobId, guesses);
    }
    // Probes answer without a token; /metrics asks for it (SPEC §22).
    if (ops.owns(pathname)) return ops.handle(req, res, pathname, () => guard.authorized(req.headers.authorization), howToAuth);
    // The browser dashboard (SPEC §12) has its own login (a cookie) and CSRF checks.
    if (dashboard?.owns(pathname)) return dashboard.handle(req, res);
    if (!guard.authorized(req.headers.authorization)) {
      // A wrong token is a guess: its answer waits (GuessThrottle); a missing one is not.
      if (req.headers.authorization && !(await guesses.failed(GuessThrottle.key(req, "token")))) return void req.socket.destroy();
      const error = req.headers.authorization ? ', error="invalid_token"' : "";
      const description = req.headers.authorization ? "the token does not match" : `no token: ${howToAuth}`;
      return reply(res, 401, -32000, `Unauthorized: ${howToAuth}.`, {
        "www-authenticate": `Bearer realm="agent-cron"${error}, error_description="${description.replaceAll('"', "'")}"`,
      });
    }
    if (pathname !== ENDPOINT) return reply(res, 404, -32000, `Not found: the MCP endpoint is ${ENDPOINT}.`);
    if (req.method !== "GET" && req.method !== "POST" && req.method !== "DELETE") {
      return reply(res, 405, -32000, "Method not allowed: use GET, POST or DELETE.", { allow: "GET, POST, DELETE" });
    }

    let body: unknown;
    if (req.method === "POST") {
      const text = await readBody(req, opts.max_body_bytes);
      if (text === null) return reply(res, 413, -32000, `Payload too large: a request body may have at most ${opts.max_body_bytes} bytes.`);
      try {
        body = JSON.parse(text);
      } catch (err) {
        return reply(res, 400, -32700, `Parse error: the body is not valid JSON (${errorMessage(err)}).`);
      }
    }

    const sessionId = req.headers["mcp-session-id"];
    let session: Session | undefined;
    let fresh: string | undefined;
    if (typeof sessionId === "string") {
      session = sessions.get(sessionId);
      if (!session) return reply(res, 404, -32001, "Session not found: it ended or expired; start a new one with an initialize request.");
    } else if (req.method === "POST" && (Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body))) {
      if (!(await makeRoom())) {
        return reply(res, 503, -32000, `Too many sessions: all ${opts.max_sessions} (http.max_sessions) have a request in flight; try again shortly.`, { "retry-after": "1" });
      }
      ({ id: fresh, session } = await openSession());
    } else {
      return reply(res, 400, -32000, "Bad Request: send an initialize request first, then the Mcp-Session-Id header it returns.");
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

  const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      log(`agent-cron error: HTTP ${req.method} ${req.url}: ${errorMessage(err)}`);
      if (!res.headersSent) reply(res, 500, -32603, "Internal error.");
      else res.destroy();
    });
  });

  await listen(httpServer, opts.host, opts.port);
  const address = httpServer.address() as AddressInfo;
  guard = new RequestGuard(opts.allowed_hosts ?? defaultAllowedHosts(opts.host, address.address), address.port, token);
  const url = `http://${urlHost(opts.host)}:${address.port}${ENDPOINT}`;
  // Loaded here, not with the module: only the HTTP daemon serves it.
  const { createDashboard, dashboardLinkBase } = await import("../dashboard/index.js");
  const approverToken = (opts.approverTokenEnv && opts.env[opts.approverTokenEnv]) || undefined;
  dashboard = createDashboard(api, { token, approverToken, guesses, port: address.port, log, linkBase: dashboardLinkBase(opts.host, address.port) });
  log(`agent-cron: the dashboard is at http://${urlHost(opts.host)}:${address.port}/.`);
  if (!token) {
    log(`agent-cron warning: ${opts.token_env} is not set, so ${url} is open to every local process; set ${opts.token_env} to require a bearer token.`);
  }
  const header = token ? `, header "Authorization: Bearer $${opts.token_env}"` : "";
  log(`agent-cron: MCP clients connect to ${url} (transport type "http"${header}).`);

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

  let closed: Promise<void> | null = null;
  return {
    url,
    close: () =>
      (closed ??= (async () => {
        closing = true;
        ops.close();
        clearInterval(sweeper);
        dashboard?.close();
        const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        await Promise.allSettled([...sessions.values()].map((s) => s.server.close()));
        // Keep-alive sockets and streams the client never closes would hold close() forever.
        httpServer.closeAllConnections();
        await stopped;
      })()),
  };
}

/** An answer in OAuth's error format (RFC 6749 §5.2), for clients probing for OAuth. */
/** An event's body may be at most this large; it is appended to the prompt. */
export const MAX_EVENT_BYTES = 64 * 1024;

/** POST /hooks/{job_id} with "Authorization: Bearer <trigger_token>": 202 {run_id}. */
async function handleHook(api: CronApi, req: IncomingMessage, res: ServerResponse, jobId: string, guesses: GuessThrottle): Promise<void> {
  const answer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  if (req.method !== "POST") return answer(405, { error: "Use POST to start a run of this job." }, { allow: "POST" });
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
  if (!auth) {
    req.resume();
    return answer(401, { error: 'Send "Authorization: Bearer <trigger_token>", the token add_cron showed for this job.' }, { "www-authenticate": 'Bearer realm="agent-cron-hooks"' });
  }
  const body = await readBody(req, MAX_EVENT_BYTES);
  if (body === null) return answer(413, { error: `The event payload is larger than ${MAX_EVENT_BYTES / 1024} KiB; send less, or a reference to where the rest is.` });
  try {
    const { run } = await api.triggerEvent({ job_id: jobId, token: auth, payload: body });
    return answer(202, run ? { run_id: run.id, status: run.status } : { run_id: null, status: "queued" });
  } catch (err) {
    const code = codeOf(err);
    if (code === "AC_UNAUTHORIZED" && !(await guesses.failed(GuessThrottle.key(req, "hooks")))) return void req.socket.destroy();
    if (code === "AC_UNAUTHORIZED") return answer(401, { error: errorMessage(err), code }, { "www-authenticate": 'Bearer realm="agent-cron-hooks", error="invalid_token"' });
    if (kindOf(err) === "user") return answer(409, { error: errorMessage(err), code });
    return answer(500, { error: errorMessage(err) });
  }
}

function oauthReply(res: ServerResponse, status: number, error: string, description: string): void {
  res.writeHead(status, { "content-type": "application/json", ...(status === 401 ? { "www-authenticate": `Bearer realm="agent-cron"` } : {}) });
  res.end(JSON.stringify({ error, error_description: description }));
}

function reply(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/** The body as text, or null when it is larger than `max` bytes (the rest is discarded, not buffered). */
function readBody(req: IncomingMessage, max: number): Promise<string | null> {
  if (Number(req.headers["content-length"]) > max) {
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      chunks.length = 0;
      resolve(null);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") reject(new UserError(`Port ${port} on ${host} is already in use: stop the other server, or pass --port (0 picks a free one).`));
      else if (err.code === "EACCES") reject(new UserError(`Not allowed to listen on port ${port}: pick a port above 1023 with --port.`));
      else if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") {
        reject(new UserError(`Cannot listen on host "${host}": it is not an address of this machine (${err.code}).`));
      } else reject(err);
    });
    server.listen({ host, port }, () => resolve());
  });
}
