import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import type { CronApi } from "../core/api.js";
import { errorMessage, kindOf } from "../kernel/errors.js";
import { JOB_STATES, type JobState } from "../core/jobs.js";
import { ICON, SCRIPT, STYLESHEET } from "./assets.js";
import { DashboardAuth, sameOrigin } from "./auth.js";
import { escapeHtml, type Html } from "./html.js";
import { renderMarkdown } from "./markdown.js";
import { approverPage, auditPage, bouncePage, jobPage, jobsPage, loginPage, messagePage, runPage, type PageContext } from "./pages.js";
import { EventStreams } from "./sse.js";

export interface DashboardOptions {
  /** The daemon's token (from http.token_env); none: the dashboard is open, like /mcp. */
  token: string | undefined;
  /** The approver secret (config approver_token_env); none: the dashboard cannot approve (SPEC §20). */
  approverToken?: string;
  /**
   * Counts a wrong credential of `scope` from this request's client; false: close the connection
   * unanswered (src/http/throttle.ts). Shared with /mcp on the daemon: guesses of its token wait
   * in one line per client, wherever they are sent.
   */
  guessed(req: IncomingMessage, scope: "token" | "approver"): Promise<boolean>;
  /** The port it is served on: names the login cookie. */
  port: number;
  /** Where request errors go; never given a URL's query (it may hold ?token=). */
  log: (line: string) => void;
  /**
   * The dashboard's own URL, for the links in channel messages (SPEC §11), given to the API
   * when it can take one (`setLinkBase`); null leaves messages pointing at cron://runs/<id>.
   */
  linkBase?: string | null;
}

type LinkBaseTarget = { setLinkBase?: (url: string | null) => void };

/**
 * Points channel messages at the dashboard: through the API's own `setLinkBase` where it has
 * one, else through the owner's App (a Host that owns the data dir, or a LocalApi), whose
 * notifier takes it. A follower cannot: the owner sends the messages, with its own links.
 */
function applyLinkBase(api: CronApi, url: string | null): void {
  const target = api as LinkBaseTarget & { app?: { runtime: { delivery?: LinkBaseTarget } } | null };
  if (target.setLinkBase) return target.setLinkBase(url);
  target.app?.runtime.delivery?.setLinkBase?.(url);
}

const FORM_MAX_BYTES = 16 * 1024;
const JOBS_PAGE_SIZE = 100;
const JOB_RUNS_PAGE_SIZE = 50;
const HISTORY_RUNS = 100;

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on POST.
  "referrer-policy": "same-origin",
};

const ASSETS: Record<string, { type: string; body: Buffer; gz: Buffer }> = Object.fromEntries(
  [
    ["/assets/dashboard.css", "text/css; charset=utf-8", STYLESHEET],
    ["/assets/dashboard.js", "text/javascript; charset=utf-8", SCRIPT],
    ["/favicon.svg", "image/svg+xml", ICON],
  ].map(([path, type, text]) => {
    const body = Buffer.from(text);
    return [path, { type, body, gz: gzipSync(body) }];
  }),
);

const OWNED = /^\/(?:$|login$|logout$|approver(?:\/logout)?$|events$|audit$|favicon\.(?:svg|ico)$|assets\/|jobs(?:\/|$)|runs(?:\/|$))/;

/**
 * The browser dashboard (SPEC §12): server-rendered pages over the CronApi, so it is the same
 * whether this process owns the data dir or forwards to the owner. Mounted by the HTTP
 * daemon before /mcp, and served alone by `agent-cron dashboard`.
 */
export class Dashboard {
  private readonly auth: DashboardAuth;
  private readonly streams: EventStreams;

  constructor(
    private readonly api: CronApi,
    private readonly opts: DashboardOptions,
  ) {
    this.auth = new DashboardAuth(opts.token, opts.port, opts.approverToken);
    if (opts.approverToken && opts.approverToken === opts.token) {
      opts.log(
        "agent-cron warning: the approver secret is the daemon's token; approving on the dashboard is off until approver_token_env names a secret of its own.",
      );
    }
    this.streams = new EventStreams(api.events);
    // A Host keeps it for an App it opens later (a takeover).
    if (opts.linkBase) applyLinkBase(api, opts.linkBase);
  }

  /** The paths the dashboard answers; the daemon keeps the rest (/mcp, /hooks, OAuth probes). */
  owns(pathname: string): boolean {
    return OWNED.test(pathname);
  }

  /** Answers one request; never throws (errors become a 500 page and a log line without the query). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://dashboard");
    try {
      await this.route(req, res, url);
    } catch (err) {
      this.opts.log(`agent-cron error: dashboard ${req.method} ${url.pathname}: ${errorMessage(err)}`);
      if (!res.headersSent) this.page(req, res, 500, messagePage("Something went wrong", "The daemon could not answer this page; its log says why."));
      else res.destroy();
    }
  }

  close(): void {
    this.streams.close();
    if (this.opts.linkBase) applyLinkBase(this.api, null);
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? "GET";
    const reading = method === "GET" || method === "HEAD";
    const asset = ASSETS[path === "/favicon.ico" ? "/favicon.svg" : path];
    if (asset && reading) return this.asset(req, res, asset);

    if (url.searchParams.has("token") && reading) return this.tokenInQuery(req, res, url);
    if (path === "/login") return this.login(req, res, url);

    if (!this.auth.authorized(req)) {
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
      if (bearer !== undefined && !(await this.opts.guessed(req, "token"))) return void req.socket.destroy();
      const target = path + url.search;
      if (reading && path !== "/events" && wantsHtml(req)) {
        // A link followed from another site (a chat message) comes without the SameSite=Strict
        // cookie: reload from here, and the browser sends it.
        if (req.headers["sec-fetch-site"] === "cross-site") return this.page(req, res, 200, bouncePage(target));
        return this.page(req, res, 401, loginPage({ next: target }), { "www-authenticate": 'Bearer realm="agent-cron"' });
      }
      req.resume();
      return this.text(res, 401, 'Log in first: open /login in a browser, or send the header "Authorization: Bearer <token>".', {
        "www-authenticate": 'Bearer realm="agent-cron"',
      });
    }

    const approver = !this.auth.approverConfigured ? "off" : this.auth.isApprover(req) ? { csrf: this.auth.approverCsrf() } : "signed-out";
    const ctx: PageContext = { csrf: this.auth.csrfToken(), loginRequired: this.auth.required, here: path + url.search, approver };
    if (path === "/approver" && method !== "POST") return this.approverLogin(req, res, url);
    if (method === "POST") return this.post(req, res, path, ctx, url);
    if (!reading) {
      req.resume();
      return this.text(res, 405, "Use GET for pages and POST for actions.", { allow: "GET, HEAD, POST" });
    }
    if (path === "/") return this.jobs(req, res, url, ctx);
    if (path === "/audit") return this.audit(req, res, url, ctx);
    if (path === "/events") return this.streams.open(req, res, SECURITY_HEADERS);
    if (path === "/jobs" || path === "/runs" || path === "/jobs/" || path === "/runs/") return this.redirect(res, "/");
    const job = /^\/jobs\/([^/]+)$/.exec(path);
    if (job) return this.job(req, res, url, ctx, decodeSegment(job[1]));
    const run = /^\/runs\/([^/]+)(\/output)?$/.exec(path);
    if (run) return run[2] ? this.output(res, decodeSegment(run[1])) : this.run(req, res, ctx, decodeSegment(run[1]));
    return this.page(req, res, 404, messagePage("Not found", `There is no page at ${path}.`, ctx));
  }

  // Pages

  private async jobs(req: IncomingMessage, res: ServerResponse, url: URL, ctx: PageContext): Promise<void> {
    const state = url.searchParams.get("state") || undefined;
    if (state && !JOB_STATES.includes(state as JobState)) {
      return this.page(req, res, 400, messagePage("Bad filter", `state must be one of ${JOB_STATES.join(", ")}, got "${state}".`, ctx));
    }
    const query = url.searchParams.get("q")?.trim() || undefined;
    const limitText = url.searchParams.get("limit");
    const limit = limitText ? Number(limitText) : JOBS_PAGE_SIZE;
    const cursor = url.searchParams.get("cursor") || null;
    const data = await this.userPage(req, res, ctx, 400, () =>
      this.api.overview({ state: state as JobState | undefined, query, limit, cursor: cursor ?? undefined, runs: 20 }),
    );
    if (!data) return;
    // The Host knows where the jobs run (owner.json); SPEC §17 wants the page to say it.
    const residence = (this.api as { residence?: () => { sentence: string } }).residence?.().sentence;
    // The audit's one sentence heads the page (SPEC §18); its details are on /audit.
    const audit = await this.api.audit({ limit: 1 }).catch(() => null);
    const activity = await this.api.activity({}).catch(() => null);
    return this.page(req, res, 200, jobsPage(ctx, { ...data, state: state as JobState | undefined, query, limit, cursor, residence, audit, activity }));
  }

  private async audit(req: IncomingMessage, res: ServerResponse, url: URL, ctx: PageContext): Promise<void> {
    const since = url.searchParams.get("since") || undefined;
    const report = await this.userPage(req, res, ctx, 400, () => this.api.audit({ since, limit: 100 }));
    if (!report) return;
    return this.page(req, res, 200, auditPage(ctx, report));
  }

  private async job(req: IncomingMessage, res: ServerResponse, url: URL, ctx: PageContext, ref: string | null): Promise<void> {
    if (ref === null) return this.page(req, res, 404, messagePage("Not found", "That job id is not valid.", ctx));
    const cursor = url.searchParams.get("cursor") || null;
    const data = await this.userPage(req, res, ctx, 404, async () => {
      const view = await this.api.getCron({ job: ref });
      const runs = await this.api.jobRuns({ job: view.job.id, limit: JOB_RUNS_PAGE_SIZE, cursor: cursor ?? undefined });
      // The picture of the last 100 runs heads the first page of runs only.
      const history = cursor ? undefined : (await this.api.jobRuns({ job: view.job.id, limit: HISTORY_RUNS })).runs;
      return { view, ...runs, history };
    });
    if (!data) return;
    // A Host or LocalApi knows the config's default_executor; the page names it (SPEC §22).
    const defaultExecutor = (this.api as { defaultExecutor?: () => string }).defaultExecutor?.();
    return this.page(req, res, 200, jobPage(ctx, { ...data, cursor, defaultExecutor }));
  }

  private async run(req: IncomingMessage, res: ServerResponse, ctx: PageContext, ref: string | null): Promise<void> {
    if (ref === null) return this.page(req, res, 404, messagePage("Not found", "That run id is not valid.", ctx));
    const run = await this.userPage(req, res, ctx, 404, () => this.api.readRun({ run: ref }));
    if (!run) return;
    const job = await this.api.getCron({ job: run.job_id }).catch(() => null);
    let outputHtml: string | null = null;
    if (run.status !== "running" && run.output !== null && run.output !== undefined && run.output !== "") {
      outputHtml =
        typeof run.output === "string" ? await renderMarkdown(run.output) : `<pre><code>${escapeHtml(JSON.stringify(run.output, null, 2))}</code></pre>`;
    }
    return this.page(req, res, 200, runPage(ctx, { run, timezone: job?.job.timezone ?? "UTC", jobExists: job !== null, outputHtml }));
  }

  /** The whole output as plain text: never rendered, so a hostile output can do nothing here. */
  private async output(res: ServerResponse, ref: string | null): Promise<void> {
    if (ref === null) return this.text(res, 404, "That run id is not valid.");
    let run;
    try {
      run = await this.api.readRun({ run: ref });
    } catch (err) {
      if (kindOf(err) === "user") return this.text(res, 404, errorMessage(err));
      throw err;
    }
    const text = run.output === null || run.output === undefined ? "" : typeof run.output === "string" ? run.output : JSON.stringify(run.output, null, 2);
    return this.text(res, 200, text, { "content-security-policy": "sandbox; default-src 'none'" });
  }

  /** Runs a page's API calls; a UserError (no such job, a bad cursor) becomes the page's answer. */
  private async userPage<T>(req: IncomingMessage, res: ServerResponse, ctx: PageContext, status: number, load: () => Promise<T>): Promise<T | null> {
    try {
      return await load();
    } catch (err) {
      if (kindOf(err) !== "user") throw err;
      this.page(req, res, status, messagePage(status === 404 ? "Not found" : "Cannot show this", errorMessage(err), ctx));
      return null;
    }
  }

  // Actions

  private async post(req: IncomingMessage, res: ServerResponse, path: string, ctx: PageContext, url: URL): Promise<void> {
    const json = wantsJson(req);
    const refuse = (status: number, message: string) =>
      json ? this.json(res, status, { ok: false, message }) : this.page(req, res, status, messagePage("Not done", message, ctx));
    if (!sameOrigin(req)) {
      req.resume();
      return refuse(403, "This action did not come from the dashboard's own page (its Origin header is missing or different); use the buttons on the page.");
    }
    const form = await readForm(req);
    if (form === null) return refuse(413, `A form may have at most ${FORM_MAX_BYTES / 1024} KiB.`);
    const decision = /^\/jobs\/[^/]+\/(approve|reject)$/.test(path);
    if (!decision && !this.auth.csrfValid(form.get("csrf")))
      return refuse(403, "This form is out of date (the daemon restarted, or its token changed); reload the page and try again.");
    const back = localPath(form.get("back"));
    if (path === "/logout") return this.redirect(res, "/login", { "set-cookie": this.auth.logoutCookie() });
    if (path === "/approver") return this.approverLogin(req, res, url, form);
    if (path === "/approver/logout") return this.redirect(res, "/", { "set-cookie": this.auth.approverLogoutCookie() });

    const jobAction = /^\/jobs\/([^/]+)\/(pause|resume|run|approve|reject)$/.exec(path);
    // Approving is a person's act (SPEC §20): the daemon's token, a CSRF field and an Origin
    // are not enough; it takes the approver's own sign-in and its own CSRF field.
    if (jobAction && (jobAction[2] === "approve" || jobAction[2] === "reject")) {
      const how = `a person approves at a terminal with: agent-cron approve ${decodeSegment(jobAction[1]) ?? "JOB"}`;
      if (!this.auth.approverConfigured)
        return refuse(403, `This dashboard cannot approve or reject jobs: no approver secret is configured (config approver_token_env); ${how}.`);
      if (!this.auth.isApprover(req) || !this.auth.approverCsrfValid(form.get("csrf"))) {
        return refuse(403, `Approving and rejecting need the approver's sign-in (/approver, with the approver secret); ${how}.`);
      }
    }
    const cancel = /^\/runs\/([^/]+)\/cancel$/.exec(path);
    const ref = decodeSegment((jobAction ?? cancel)?.[1] ?? "");
    if (ref === null || (!jobAction && !cancel)) return refuse(404, `There is no action at ${path}.`);
    let message: string;
    let location: string | undefined;
    try {
      if (cancel) {
        const { run } = await this.api.cancelRun({ run: ref });
        message = run.status === "running" ? "The run is still going." : `The run ended: ${run.status.replace("_", " ")}.`;
      } else {
        const verb = jobAction![2];
        if (verb === "run") {
          const { run, job_name } = await this.api.runNow({ job: ref });
          location = `/runs/${encodeURIComponent(run.id)}`;
          message = `Started a run of ${job_name ?? run.job_id.slice(0, 8)}${run.status === "running" ? "" : `: ${run.status}`}.`;
        } else {
          if (verb === "reject") {
            const { removed } = await this.api.reject({ job: ref, via: "dashboard" });
            message = `Rejected and removed ${removed.slice(0, 8)}.`;
            location = "/";
          } else {
            const { job } =
              verb === "pause"
                ? await this.api.pause({ job: ref })
                : verb === "resume"
                  ? await this.api.resume({ job: ref })
                  : await this.api.approve({ job: ref, via: "dashboard" });
            message = `${job.name ?? job.id.slice(0, 8)} is ${job.state.replace("_", " ")}.`;
          }
        }
      }
    } catch (err) {
      if (kindOf(err) === "user") return refuse(409, errorMessage(err));
      throw err;
    }
    if (json) return this.json(res, 200, { ok: true, message, ...(location ? { location } : {}) });
    // Without the script: a new run's page, else back where the button was.
    return this.redirect(res, location ?? back);
  }

  /** `/login`: the form, and its POST, which sets the cookie. */
  private async login(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const next = localPath(url.searchParams.get("next"));
    if (!this.auth.required) {
      req.resume();
      return this.redirect(res, next);
    }
    if (req.method === "GET" || req.method === "HEAD") return this.page(req, res, 200, loginPage({ next }));
    if (req.method !== "POST") {
      req.resume();
      return this.text(res, 405, "Use GET or POST for /login.", { allow: "GET, HEAD, POST" });
    }
    if (!sameOrigin(req)) {
      req.resume();
      return this.page(req, res, 403, loginPage({ next, error: "This login did not come from the dashboard's own page; open /login and try again." }));
    }
    const form = await readForm(req);
    const target = localPath(form?.get("next"));
    const typed = form?.get("token") ?? "";
    if (!form || !this.auth.tokenMatches(typed)) {
      if (!(await this.opts.guessed(req, "token"))) return void req.socket.destroy();
      return this.page(req, res, 401, loginPage({ next: target, error: "That token does not match the daemon's." }));
    }
    return this.redirect(res, target, { "set-cookie": this.auth.loginCookie() });
  }

  /**
   * `/approver`: the approver's sign-in form, and its POST (already past Origin and CSRF
   * checks), which sets the approver's cookie when the approver secret matches.
   */
  private async approverLogin(req: IncomingMessage, res: ServerResponse, url: URL, form?: URLSearchParams): Promise<void> {
    const next = localPath(form?.get("next") ?? url.searchParams.get("next"));
    if (!this.auth.approverConfigured) {
      req.resume();
      return this.page(
        req,
        res,
        404,
        messagePage(
          "No approver",
          "This dashboard has no approver secret (config approver_token_env), so it cannot approve; a person approves at a terminal with agent-cron approve JOB.",
        ),
      );
    }
    const csrf = this.auth.csrfToken();
    if (!form) return this.page(req, res, 200, approverPage({ next, csrf }));
    const typed = form.get("secret") ?? "";
    if (!this.auth.approverMatches(typed)) {
      if (!(await this.opts.guessed(req, "approver"))) return void req.socket.destroy();
      return this.page(req, res, 401, approverPage({ next, csrf, error: "That is not the approver secret." }));
    }
    return this.redirect(res, next, { "set-cookie": this.auth.approverCookie() });
  }

  /** `?token=` on any page: checked, turned into the cookie, and dropped from the address. */
  private async tokenInQuery(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const token = url.searchParams.get("token") ?? "";
    url.searchParams.delete("token");
    const target = url.pathname + url.search;
    if (!this.auth.required) return this.redirect(res, target);
    if (!this.auth.tokenMatches(token)) {
      if (!(await this.opts.guessed(req, "token"))) return void req.socket.destroy();
      return this.page(req, res, 401, loginPage({ next: target, error: "That token does not match the daemon's." }));
    }
    return this.redirect(res, target, { "set-cookie": this.auth.loginCookie() });
  }

  // Answers

  private page(req: IncomingMessage, res: ServerResponse, status: number, body: Html, headers: Record<string, string> = {}): void {
    const buf = Buffer.from(body.value);
    const gzip = buf.length > 1024 && acceptsGzip(req);
    const out = gzip ? gzipSync(buf, { level: 6 }) : buf;
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      vary: "Accept-Encoding, Cookie",
      "content-length": String(out.length),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      ...headers,
    });
    res.end(req.method === "HEAD" ? undefined : out);
  }

  private asset(req: IncomingMessage, res: ServerResponse, asset: { type: string; body: Buffer; gz: Buffer }): void {
    const gzip = acceptsGzip(req);
    const out = gzip ? asset.gz : asset.body;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": asset.type,
      // Pages name them with a hash of their content (?v=): a new version has a new URL.
      "cache-control": "public, max-age=31536000, immutable",
      vary: "Accept-Encoding",
      "content-length": String(out.length),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    res.end(req.method === "HEAD" ? undefined : out);
  }

  private text(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
    const body = Buffer.from(text.endsWith("\n") || text === "" ? text : text + "\n");
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      "content-length": String(body.length),
      ...headers,
    });
    res.end(body);
  }

  private json(res: ServerResponse, status: number, value: unknown): void {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "application/json", "cache-control": "no-store", "content-length": String(body.length) });
    res.end(body);
  }

  private redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
    res.writeHead(303, { ...SECURITY_HEADERS, location, "cache-control": "no-store", "content-length": "0", ...headers });
    res.end();
  }
}

export function createDashboard(api: CronApi, opts: DashboardOptions): Dashboard {
  return new Dashboard(api, opts);
}

// Request helpers

function decodeSegment(segment: string): string | null {
  try {
    const s = decodeURIComponent(segment);
    return s && !/[\u0000-\u001f]/.test(s) ? s : null;
  } catch {
    return null;
  }
}

/** Only a path on this server: never `//elsewhere`, a scheme, or a header break. */
function localPath(value: string | null | undefined): string {
  if (!value?.startsWith("/") || value.startsWith("//") || value.startsWith("/\\") || /[\u0000-\u001f\\]/.test(value)) return "/";
  return value;
}

function wantsHtml(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? "";
  return accept === "" || accept.includes("text/html") || accept.includes("*/*");
}

function wantsJson(req: IncomingMessage): boolean {
  return (req.headers.accept ?? "").includes("application/json");
}

function acceptsGzip(req: IncomingMessage): boolean {
  return /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
}

function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > FORM_MAX_BYTES) over = true;
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(over ? null : new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}
