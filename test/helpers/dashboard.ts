/**
 * Dashboard helpers: plain HTTP requests as a browser sends them (node:http, so a test can
 * set any Host, Origin or Cookie), the CSRF field of a page, and `agent-cron dashboard` in a
 * child process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import os from "node:os";
import { CLI, waitFor, workCacheOf } from "./server.js";

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request; `form` is sent url-encoded. Redirects are not followed. */
export function request(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {},
): Promise<Answer> {
  const u = new URL(path, base);
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? (body !== undefined ? "POST" : "GET"),
        headers: {
          accept: "text/html",
          ...(body !== undefined ? { "content-type": "application/x-www-form-urlencoded" } : {}),
          ...opts.headers,
        },
        agent: false,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The CSRF field every form of a page carries. */
export function csrfOf(page: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(page);
  if (!m) throw new Error(`The page has no CSRF field:\n${page.slice(0, 500)}`);
  return m[1];
}

/** The `name=value` part of a Set-Cookie header, to send back as Cookie. */
export function cookieOf(answer: Answer): string {
  const set = answer.headers["set-cookie"]?.[0];
  if (!set) throw new Error(`No Set-Cookie in the answer (HTTP ${answer.status}).`);
  return set.split(";")[0];
}

/** The attributes an HTML page must never carry: inline handlers, scripts, styles, images. */
export function unsafeMarkup(page: string): string[] {
  const found: string[] = [];
  for (const m of page.matchAll(/<script\b[^>]*>/gi)) if (!/^<script src="\/assets\/dashboard\.js\?v=[0-9a-f]+" defer>$/.test(m[0])) found.push(m[0]);
  for (const m of page.matchAll(/<[a-z][^>]*\s(on[a-z]+|style)\s*=/gi)) found.push(m[0]);
  for (const m of page.matchAll(/<(img|iframe|object|embed|video|audio|source)\b/gi)) found.push(m[0]);
  // The dashboard's own pictures (charts.ts) are the only SVG: a chart, or a legend's swatch.
  for (const m of page.matchAll(/<svg\b[^>]*>/gi)) {
    if (
      !/^<svg class="chart (timeline|durations|cost)" width="100%" height="\d+" role="img" aria-labelledby="[a-z]+-title [a-z]+-summary">$|^<svg width="12" height="12" aria-hidden="true">$/.test(
        m[0],
      )
    )
      found.push(m[0]);
  }
  for (const m of page.matchAll(/\s(?:href|src|action)\s*=\s*"\s*(?:javascript|data|vbscript):/gi)) found.push(m[0]);
  return found;
}

/** `agent-cron dashboard --port 0` on a data dir. */
export class DashboardProcess {
  private stderrText = "";
  private readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stderr!.on("data", (c: Buffer) => (this.stderrText += c.toString()));
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static async start(dataDir: string, env: Record<string, string> = {}): Promise<DashboardProcess> {
    const child = spawn(process.execPath, [CLI, "dashboard", "--port", "0", "--data-dir", dataDir], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? os.homedir(), XDG_CACHE_HOME: workCacheOf(dataDir), ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const d = new DashboardProcess(child);
    let code: number | null | undefined;
    void d.exited.then((c) => (code = c));
    await waitFor(() => d.url || code !== undefined, { timeout: 15_000, what: "the dashboard's ready line", describe: () => d.stderrText });
    if (!d.url) throw new Error(`agent-cron dashboard exited with ${code}:\n${d.stderrText}`);
    return d;
  }

  get url(): string {
    return /agent-cron ready dashboard (\S+)/.exec(this.stderrText)?.[1] ?? "";
  }

  stderr(): string {
    return this.stderrText;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 15_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
