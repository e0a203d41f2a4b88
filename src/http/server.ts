import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import type { Config } from "../config.js";
import type { CronApi } from "../core/api.js";
import { UserError, errorMessage } from "../kernel/errors.js";
import { logger } from "../log.js";
import type { Dashboard } from "../dashboard/index.js";
import type { EventStoreLimits } from "../mcp/http/event-store.js";
import { listen, readBody } from "./body.js";
import { RequestGuard, defaultAllowedHosts, isLoopback, urlHost } from "./guard.js";
import { handleHook } from "./hooks.js";
import { OpsEndpoints, metricsSourceOf } from "./ops.js";
import { GuessThrottle } from "./throttle.js";

/**
 * The one place that assembles agent-cron's HTTP server: the daemon's checks (Host, Origin,
 * the bearer token, body size) in front of /mcp (src/mcp/), /hooks/{job_id}, the dashboard
 * (src/dashboard/), /healthz, /readyz and /metrics. The parts know nothing of each other.
 */
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

export async function serveHttp(api: CronApi, opts: HttpOptions): Promise<HttpHandle> {
  const token = opts.env[opts.token_env] || undefined;
  if (!token && !isLoopback(opts.host)) {
    throw new UserError(
      `Refusing to serve HTTP on ${opts.host} without a token: set ${opts.token_env} (for example ${opts.token_env}=$(openssl rand -hex 32)) ` +
        `so that clients must send "Authorization: Bearer <token>", or bind to 127.0.0.1.`,
    );
  }
  const log = opts.log ?? ((line: string) => logger.line(line, "http"));
  // Loaded here, not with the module: `agent-cron dashboard` serves no /mcp.
  const { MCP_PATH, createMcpEndpoint, jsonRpcError: reply } = await import("../mcp/http.js");
  let guard: RequestGuard;
  let dashboard: Dashboard | undefined;
  const guesses = new GuessThrottle();
  let closing = false;
  const mcp = createMcpEndpoint(api, opts);
  // Before the port opens: the first scrape counts every run since the start.
  const ops = new OpsEndpoints(metricsSourceOf(api));
  await ops.start();

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
    if (pathname !== MCP_PATH) return reply(res, 404, -32000, `Not found: the MCP endpoint is ${MCP_PATH}.`);
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
    return mcp.handle(req, res, body);
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
  const url = `http://${urlHost(opts.host)}:${address.port}${MCP_PATH}`;
  // Loaded here, not with the module: only the HTTP daemon serves it.
  const { createDashboard } = await import("../dashboard/index.js");
  const approverToken = (opts.approverTokenEnv && opts.env[opts.approverTokenEnv]) || undefined;
  dashboard = createDashboard(api, {
    token,
    approverToken,
    guessed: guessedBy(guesses),
    port: address.port,
    log,
    linkBase: dashboardLinkBase(opts.host, address.port),
  });
  log(`agent-cron: the dashboard is at http://${urlHost(opts.host)}:${address.port}/.`);
  if (!token) {
    log(`agent-cron warning: ${opts.token_env} is not set, so ${url} is open to every local process; set ${opts.token_env} to require a bearer token.`);
  }
  const header = token ? `, header "Authorization: Bearer $${opts.token_env}"` : "";
  log(`agent-cron: MCP clients connect to ${url} (transport type "http"${header}).`);

  let closed: Promise<void> | null = null;
  return {
    url,
    close: () =>
      (closed ??= (async () => {
        closing = true;
        ops.close();
        dashboard?.close();
        const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        await mcp.close();
        // Keep-alive sockets and streams the client never closes would hold close() forever.
        httpServer.closeAllConnections();
        await stopped;
      })()),
  };
}

export interface DashboardServer {
  /** `http://127.0.0.1:PORT/`, with the real port. */
  url: string;
  close(): Promise<void>;
}

/**
 * `agent-cron dashboard`: the dashboard alone, on loopback, for people who use only stdio.
 * The same Host and Origin checks as the daemon; the same token when one is set.
 */
export async function serveDashboard(
  api: CronApi,
  opts: { port: number; token: string | undefined; approverToken?: string; log: (line: string) => void },
): Promise<DashboardServer> {
  const host = "127.0.0.1";
  const { Dashboard } = await import("../dashboard/index.js");
  let dashboard: Dashboard | undefined;
  let guard: RequestGuard | undefined;
  const server = http.createServer((req, res) => {
    if (!dashboard || !guard) return void res.writeHead(503).end();
    if (!guard.hostAllowed(req.headers.host)) {
      req.resume();
      return void res
        .writeHead(403, { "content-type": "text/plain; charset=utf-8" })
        .end(`Host "${req.headers.host ?? ""}" is not allowed; open the dashboard at ${url}.\n`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !guard.originAllowed(origin)) {
      req.resume();
      return void res.writeHead(403, { "content-type": "text/plain; charset=utf-8" }).end(`Origin "${origin}" is not allowed.\n`);
    }
    const pathname = new URL(req.url ?? "/", "http://dashboard").pathname;
    if (!dashboard.owns(pathname)) {
      req.resume();
      return void res
        .writeHead(404, { "content-type": "text/plain; charset=utf-8" })
        .end("Not found: this is the agent-cron dashboard; its pages start at /.\n");
    }
    void dashboard.handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new UserError(`Port ${opts.port} on ${host} is already in use: stop the other dashboard, or pass --port (0 picks a free one).`)
          : err,
      ),
    );
    server.listen({ host, port: opts.port }, () => resolve());
  });
  const address = server.address() as AddressInfo;
  // The token is checked by the dashboard's own login; the guard checks only Host and Origin.
  guard = new RequestGuard(defaultAllowedHosts(host, address.address), address.port, undefined);
  dashboard = new Dashboard(api, {
    token: opts.token,
    approverToken: opts.approverToken,
    guessed: guessedBy(new GuessThrottle()),
    port: address.port,
    log: opts.log,
  });
  const url = `http://${host}:${address.port}/`;
  return {
    url,
    close: async () => {
      dashboard?.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await stopped;
    },
  };
}

/** The dashboard's wrong credentials, counted in the server's line of guesses per client. */
function guessedBy(guesses: GuessThrottle): (req: IncomingMessage, scope: "token" | "approver") => Promise<boolean> {
  return (req, scope) => guesses.failed(GuessThrottle.key(req, scope));
}

/**
 * The base of the links in channel messages: the daemon's address as a person on this
 * machine opens it; a wildcard bind (0.0.0.0, ::) is reached by the machine's name.
 */
export function dashboardLinkBase(boundHost: string, port: number): string {
  const bare = boundHost.replace(/^\[(.*)\]$/, "$1");
  const host = bare === "0.0.0.0" || bare === "::" ? os.hostname() : urlHost(boundHost);
  return `http://${host}:${port}`;
}

/** An answer in OAuth's error format (RFC 6749 §5.2), for clients probing for OAuth. */
function oauthReply(res: ServerResponse, status: number, error: string, description: string): void {
  res.writeHead(status, { "content-type": "application/json", ...(status === 401 ? { "www-authenticate": `Bearer realm="agent-cron"` } : {}) });
  res.end(JSON.stringify({ error, error_description: description }));
}
