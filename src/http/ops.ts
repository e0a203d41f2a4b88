import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { CronApi } from "../core/api.js";
import { UserError, errorMessage } from "../kernel/errors.js";
import { JOB_STATES } from "../core/jobs.js";
import { RequestGuard, defaultAllowedHosts, isLoopback, urlHost } from "./guard.js";
import type { Health, Metrics, MetricsSource } from "../ops/metrics.js";

export type { Health } from "../ops/metrics.js";

export const OPS_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * GET /healthz, /readyz and /metrics (SPEC §22), for the HTTP daemon and for the metrics_port
 * server of a stdio owner. Probes need no token (they say only "ok" or why not); /metrics
 * does when one is set, as every other path does.
 */
export class OpsEndpoints {
  private metrics: Metrics | null = null;
  private loading: Promise<Metrics> | null = null;
  private closing = false;

  constructor(private readonly source: MetricsSource) {}

  /** True when the path is one of these endpoints (the caller then hands the request here). */
  owns(pathname: string): boolean {
    return OPS_PATHS.has(pathname);
  }

  async handle(req: IncomingMessage, res: ServerResponse, pathname: string, authorized: () => boolean, howToAuth: string): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "Use GET.\n", { allow: "GET, HEAD" });
    if (pathname === "/healthz") return text(res, this.closing ? 503 : 200, this.closing ? "shutting down\n" : "ok\n");
    if (pathname === "/readyz") {
      const h = this.health();
      return text(res, h.ready ? 200 : 503, h.ready ? "ready\n" : `not ready: ${h.reason}\n`);
    }
    if (!authorized()) return text(res, 401, `Unauthorized: ${howToAuth}.\n`, { "www-authenticate": 'Bearer realm="agent-cron"' });
    // Loaded at the first scrape: a server nobody scrapes never loads prom-client.
    const metrics = await (this.loading ??= import("../ops/metrics.js").then(({ createMetrics }) => (this.metrics = createMetrics(this.source))));
    return text(res, 200, await metrics.text(), { "content-type": metrics.contentType });
  }

  /**
   * Starts counting now rather than at the first scrape, so the first scrape already holds
   * what happened since the server started.
   */
  async start(): Promise<void> {
    const { createMetrics } = await import("../ops/metrics.js");
    this.loading ??= Promise.resolve((this.metrics = createMetrics(this.source)));
  }

  private health(): Health {
    if (this.closing) return { ready: false, reason: "shutting down", running: null, queued: null, fleet_processes: null };
    return this.source.health?.() ?? { ready: true, reason: null, running: null, queued: null, fleet_processes: null };
  }

  close(): void {
    this.closing = true;
    this.metrics?.close();
  }
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(body);
}

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * The same endpoints on a port of their own (config metrics_port), for a server that speaks
 * MCP over stdio: loopback only unless a token is set, like the HTTP daemon.
 */
export async function serveOps(
  source: MetricsSource,
  opts: { host: string; port: number; token: string | undefined; tokenEnv: string; allowedHosts?: string[]; log: (line: string) => void },
): Promise<OpsServer> {
  const host = opts.token ? opts.host : "127.0.0.1";
  if (!opts.token && !isLoopback(opts.host)) opts.log(`agent-cron warning: metrics_port serves on 127.0.0.1, not ${opts.host}: ${opts.tokenEnv} is not set.`);
  const ops = new OpsEndpoints(source);
  await ops.start();
  let guard: RequestGuard;
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? "/", "http://x").pathname;
    if (!guard.hostAllowed(req.headers.host))
      return text(res, 403, `Host "${req.headers.host ?? ""}" is not allowed; add it to http.allowed_hosts in the config.\n`);
    if (!ops.owns(pathname)) return text(res, 404, "Not found: this port serves /healthz, /readyz and /metrics.\n");
    ops
      .handle(
        req,
        res,
        pathname,
        () => guard.authorized(req.headers.authorization),
        `send "Authorization: Bearer <token>" with the token from ${opts.tokenEnv}`,
      )
      .catch((err) => {
        opts.log(`agent-cron error: metrics ${req.url}: ${errorMessage(err)}`);
        if (!res.headersSent) text(res, 500, "Internal error.\n");
        else res.destroy();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new UserError(`metrics_port ${opts.port} on ${host} is already in use: pick another port in the config (0 picks a free one).`)
          : err,
      ),
    );
    server.listen({ host, port: opts.port }, () => resolve());
  });
  const address = server.address() as AddressInfo;
  guard = new RequestGuard(opts.allowedHosts ?? defaultAllowedHosts(host, address.address), address.port, opts.token);
  const url = `http://${urlHost(host)}:${address.port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        ops.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What the endpoints read of a server's API: its events, its health when it has one, its jobs. */
export function metricsSourceOf(api: CronApi & { health?(): Health; unaccounted?(): number | null }): MetricsSource {
  return {
    events: api.events,
    health: api.health ? () => api.health!() : undefined,
    unaccounted: api.unaccounted ? () => api.unaccounted!() : undefined,
    jobCounts: async () => {
      const counts = await Promise.all(JOB_STATES.map(async (state) => [state, (await api.listCrons({ state, limit: 1 })).total] as const));
      return Object.fromEntries(counts);
    },
  };
}
