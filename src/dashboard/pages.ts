import { OUTCOMES, type AuditReport } from "../core/ledger.js";
import type { JobOverview, JobView, RunBrief } from "../core/api.js";
import type { Job, JobState, RunWithOutput } from "../core/jobs.js";
import { JOB_STATES } from "../core/jobs.js";
import { notRunStatus, type JobRow } from "../core/views.js";
import type { Activity } from "../core/activity.js";
import { ICON, SCRIPT_PATH, STYLESHEET_PATH } from "./assets.js";
import { costChart, durationChart, timelineChart } from "./charts.js";
import { type Html, exactTime, formatCost, formatDuration, html, timeTag, trusted, type Interpolation } from "./html.js";

/** What every page needs to draw its header and forms. */
export interface PageContext {
  /** The CSRF field's value for this viewer. */
  csrf: string;
  /** A login exists (token configured): show the log-out button. */
  loginRequired: boolean;
  /** Path and query of this page: where an action sends the browser back to. */
  here: string;
  /**
   * Approving (SPEC §20): "off" without an approver secret; "signed-out" with one, for a
   * viewer not signed in with it; else the CSRF field of the approve and reject forms.
   */
  approver: "off" | "signed-out" | { csrf: string };
}

export const ICON_DATA = ICON;

function layout(opts: { title: string; ctx?: PageContext; watch?: string; job?: string; main: Html }): Html {
  const { ctx } = opts;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${opts.title} · agent-cron</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body${opts.watch ? html` data-watch="${opts.watch}"` : ""}${opts.job ? html` data-job="${opts.job}"` : ""}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/">agent-cron</a>
<nav aria-label="Main">
<a href="/">Jobs</a>
${ctx && typeof ctx.approver === "object" ? html`<form method="post" action="/approver/logout" class="inline"><input type="hidden" name="csrf" value="${ctx.csrf}"><button type="submit">Approver: sign out</button></form>` : ""}
${ctx?.approver === "signed-out" ? html`<a href="/approver?next=${encodeURIComponent(ctx.here)}">Sign in as approver</a>` : ""}
${ctx?.loginRequired ? html`<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="${ctx.csrf}"><button type="submit">Log out</button></form>` : ""}
</nav>
</header>
<main id="main" tabindex="-1">
<p id="flash" role="status" aria-live="polite"></p>
${opts.main}
</main>
</body>
</html>
`;
}

const label = (job: { name: string | null; id: string }) => job.name ?? job.id.slice(0, 8);
const jobHref = (id: string) => `/jobs/${encodeURIComponent(id)}`;
const runHref = (id: string) => `/runs/${encodeURIComponent(id)}`;

/**
 * What the run's agent said of it (SPEC §21), beside its status: `quiet: no new issues`,
 * `needs attention: may I rotate the key?`; and a skip's reason (`check: nothing to do`).
 */
function outcomeNote(r: Pick<RunBrief, "status" | "outcome" | "outcome_note" | "error">): Html | string {
  if (r.status === "completed" && r.outcome) {
    const word = r.outcome === "quiet" ? "quiet" : "needs attention";
    return html` <span class="badge st-${r.outcome === "quiet" ? "skipped" : "paused"}">${word}</span>${r.outcome_note ? html` <span class="small">${r.outcome_note}</span>` : ""}`;
  }
  if (notRunStatus(r.status) && r.error) return html` <span class="small muted">${r.error}</span>`;
  return "";
}

/** `after`, with a link to the upstream run that started it. */
function triggerText(r: Pick<RunBrief, "trigger" | "after_run">): Html | string {
  if (r.trigger === "after" && r.after_run) return html`after <a href="${runHref(r.after_run)}">run ${r.after_run.slice(0, 8)}</a>`;
  return r.trigger.replace("_", " ");
}

function statusBadge(status: string | null): Html {
  if (!status) return html`<span class="badge st-none">none yet</span>`;
  return html`<span class="badge st-${status}">${status.replace("_", " ")}</span>`;
}

function stateBadge(state: JobState): Html {
  return html`<span class="badge state-${state}">${state.replace("_", " ")}</span>`;
}

/** One POST button. `key` names it across refreshes (pause and resume share one), so focus stays. */
function action(
  ctx: PageContext,
  path: string,
  text: string,
  opts: { key: string; back?: string; primary?: boolean; danger?: boolean; labelFor?: string; csrf?: string },
): Html {
  const cls = opts.primary ? "primary" : opts.danger ? "danger" : "";
  return html`<form method="post" action="${path}" class="inline" data-action><input type="hidden" name="csrf" value="${opts.csrf ?? ctx.csrf}"><input type="hidden" name="back" value="${opts.back ?? ctx.here}"><button type="submit" class="${cls}" data-key="${opts.key}"${opts.labelFor ? html` aria-label="${text} ${opts.labelFor}"` : ""}>${text}</button></form>`;
}

function jobActions(ctx: PageContext, job: { id: string; name: string | null; state: JobState }, running: string | null, back: string): Html {
  const base = jobHref(job.id);
  const who = label(job);
  return html`${job.state === "pending_approval" ? approval(ctx, job, back) : ""}${
    job.state === "active" ? action(ctx, `${base}/pause`, "Pause", { key: `toggle-${job.id}`, back, labelFor: who }) : ""
  }${job.state === "paused" ? action(ctx, `${base}/resume`, "Resume", { key: `toggle-${job.id}`, back, labelFor: who }) : ""}${
    job.state === "pending_approval" ? "" : action(ctx, `${base}/run`, "Run now", { key: `run-${job.id}`, back, labelFor: who })
  }${running ? action(ctx, `${runHref(running)}/cancel`, "Cancel run", { key: `cancel-${job.id}`, back, danger: true, labelFor: who }) : ""}`;
}

/**
 * A job waiting for a person: Approve and Reject for a viewer signed in with the approver
 * secret; for anyone else, how a person approves it, and no button (SPEC §20).
 */
function approval(ctx: PageContext, job: { id: string; name: string | null }, back: string): Html {
  const base = jobHref(job.id);
  const who = label(job);
  if (typeof ctx.approver === "object") {
    const csrf = ctx.approver.csrf;
    return html`${action(ctx, `${base}/approve`, "Approve", { key: `approve-${job.id}`, back, primary: true, labelFor: who, csrf })}${action(ctx, `${base}/reject`, "Reject", { key: `reject-${job.id}`, back, danger: true, labelFor: who, csrf })}`;
  }
  const how = ctx.approver === "signed-out" ? html`, or <a href="/approver?next=${encodeURIComponent(ctx.here)}">sign in as approver</a>` : "";
  return html`<span class="hint">Waiting for a person: <code>agent-cron approve ${job.name ?? job.id}</code> at a terminal${how}</span>`;
}

function strip(runs: RunBrief[], timezone: string): Html {
  if (!runs.length) return html`<span class="muted small">no runs yet</span>`;
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const summary = [...counts].map(([s, n]) => `${n} ${s.replace("_", " ")}`).join(", ");
  // Oldest on the left, as a timeline reads; each mark's title says which run it was.
  const marks = [...runs].reverse().map((r) => {
    const when = r.started_at ?? r.scheduled_for;
    const at = when ? exactTime(Date.parse(when), timezone) : "";
    return html`<i class="st-${r.status}" title="${r.status} ${at}${r.duration_ms !== null ? ` · ${formatDuration(r.duration_ms)}` : ""}"></i>`;
  });
  return html`<span class="strip" role="img" aria-label="Last ${runs.length} runs: ${summary}">${marks}</span>`;
}

export interface JobsPageData {
  jobs: JobOverview[];
  total: number;
  next_cursor: string | null;
  state?: JobState;
  query?: string;
  limit: number;
  /** The cursor of this page (null on the first), for the "first page" link. */
  cursor: string | null;
  /** Where the jobs run: a background owner (pid, since when) or only while a client is open. */
  residence?: string;
  /** The audit of the last 7 days (SPEC §18), when it could be made. */
  audit?: AuditReport | null;
  /** What the pictures draw (SPEC §22), when it could be read. */
  activity?: Activity | null;
}

export function jobsPage(ctx: PageContext, data: JobsPageData): Html {
  const params = (extra: Record<string, string | undefined>) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ state: data.state, q: data.query, limit: data.limit === 100 ? undefined : String(data.limit), ...extra }))
      if (v) p.set(k, v);
    const s = p.toString();
    return s ? `/?${s}` : "/";
  };
  const rows = data.jobs.map(({ job, runs }) => jobRowHtml(ctx, job, runs));
  const shown = data.jobs.length;
  const filtered = data.state || data.query;
  return layout({
    title: "Jobs",
    ctx,
    watch: "all",
    main: html`<h1>Jobs</h1>
${data.audit ? html`<p class="notice${data.audit.unaccounted ? " bad" : ""}" id="audit-panel" data-live>${data.audit.summary} <a href="/audit">Audit</a></p>` : ""}
<p class="muted small" id="summary" data-live>${data.total} job${data.total === 1 ? "" : "s"}${filtered ? " match" : ""}${shown < data.total ? `; showing ${shown}` : ""}. Times are from now; point at one for the exact time, in the job's zone and yours.</p>
${data.residence ? html`<p class="muted small" id="residence">${data.residence}</p>` : ""}
<form class="filters" method="get" action="/" role="search">
<label>State<select name="state"><option value="">any</option>${JOB_STATES.map((s) => html`<option value="${s}"${data.state === s ? " selected" : ""}>${s.replace("_", " ")}</option>`)}</select></label>
<label>Name or prompt<input type="search" name="q" value="${data.query ?? ""}" placeholder="search"></label>
${data.limit !== 100 ? html`<input type="hidden" name="limit" value="${data.limit}">` : ""}
<button type="submit">Filter</button>
${filtered ? html`<a class="button" href="/">Clear</a>` : ""}
</form>
<div id="jobs-wrap"${shown ? "" : html` data-live`}>${
      shown
        ? html`<div class="table-wrap cards"><table class="cards">
<thead><tr><th scope="col">Job</th><th scope="col">Schedule</th><th scope="col">State</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col">Recent runs</th><th scope="col"><span class="muted">Actions</span></th></tr></thead>
<tbody id="jobs" data-live-list>
${rows}
</tbody>
</table></div>`
        : html`<p class="notice" id="jobs">${filtered ? "No job matches." : html`No jobs yet. An agent adds them with the <code>add_cron</code> tool; at a terminal, <code>agent-cron add --schedule "0 9 * * 1-5" --prompt "…"</code>.`}</p>`
    }</div>
<nav class="pager" aria-label="Pages">
${data.cursor ? html`<a href="${params({})}">First page</a>` : ""}
${data.next_cursor ? html`<a href="${params({ cursor: data.next_cursor })}" rel="next">Next ${data.limit} jobs</a>` : ""}
</nav>
${data.activity ? html`<h2>Activity</h2><div id="activity" class="charts" data-live>${timelineChart(data.activity)}${costChart(data.activity)}</div>` : ""}`,
  });
}

function jobRowHtml(ctx: PageContext, job: JobRow, runs: RunBrief[]): Html {
  const running = runs.find((r) => r.status === "running")?.id ?? null;
  const back = `${ctx.here.split("#")[0]}#job-${job.id}`;
  return html`<tr id="job-${job.id}" data-live>
<td class="name"><a href="${jobHref(job.id)}">${label(job)}</a><span class="prompt muted" title="${job.prompt}">${job.prompt}</span></td>
<td data-label="Schedule"><div>${job.description}<div class="muted small"><code>${job.schedule}</code> · ${job.timezone}</div></div></td>
<td data-label="State"><div>${stateBadge(job.state)}</div></td>
<td data-label="Next run"><div>${job.state === "active" ? timeTag(job.next_run_at, job.timezone) : html`<span class="muted">—</span>`}</div></td>
<td data-label="Last run"><div>${statusBadge(job.last_status)}${job.last_run_at ? html`<div class="small">${timeTag(job.last_run_at, job.timezone)}</div>` : ""}</div></td>
<td data-label="Runs"><div>${strip(runs, job.timezone)}</div></td>
<td class="actions"><div class="actions">${jobActions(ctx, job, running, back)}</div></td>
</tr>`;
}

function fact(name: string, value: Interpolation): Html {
  return html`<dt>${name}</dt><dd>${value}</dd>`;
}

const orDash = (v: Interpolation) =>
  v === null || v === undefined || v === "" || (Array.isArray(v) && v.length === 0) ? html`<span class="muted">—</span>` : v;

export interface JobPageData {
  view: JobView;
  runs: RunBrief[];
  next_cursor: string | null;
  cursor: string | null;
  defaultExecutor?: string;
  /** The job's last 100 runs, newest first, for its picture (first page only). */
  history?: RunBrief[];
}

export function jobPage(ctx: PageContext, data: JobPageData): Html {
  const { job, description, next_runs_utc } = data.view;
  const running = data.runs.find((r) => r.status === "running")?.id ?? null;
  const base = jobHref(job.id);
  return layout({
    title: label(job),
    ctx,
    watch: `job:${job.id}`,
    main: html`<p class="crumbs"><a href="/">Jobs</a> ›</p>
<div id="job-head" data-live>
<h1>${label(job)} ${stateBadge(job.state)}</h1>
<p>${description}</p>
${job.last_error ? html`<p class="notice bad"><strong>Last error:</strong> ${job.last_error}</p>` : ""}
<div class="bar actions">${jobActions(ctx, job, running, base)}</div>
</div>
<h2>Next runs <span class="muted small">(${job.timezone})</span></h2>
<div id="next-runs" data-live>${
      job.state !== "active"
        ? html`<p class="muted">None: the job is ${job.state.replace("_", " ")}.</p>`
        : next_runs_utc.length
          ? html`<ol>${next_runs_utc.map((t) => html`<li>${timeTag(t, job.timezone)}</li>`)}</ol>`
          : html`<p class="muted">None due.</p>`
    }</div>
${data.history ? html`<div id="job-chart" data-live>${durationChart(data.history, job.timezone)}</div>` : ""}
<h2 id="runs-title">Runs</h2>
${runsTable(ctx, data.runs, job, base)}
<nav class="pager" aria-label="Run pages">
${data.cursor ? html`<a href="${base}">Newest runs</a>` : ""}
${data.next_cursor ? html`<a href="${base}?cursor=${encodeURIComponent(data.next_cursor)}" rel="next">Older runs</a>` : ""}
</nav>
<h2>Definition</h2>
${definition(job, data.defaultExecutor)}`,
  });
}

function runsTable(ctx: PageContext, runs: RunBrief[], job: Job, back: string): Html {
  // Empty, the whole part is live, so that the first run's table replaces it.
  if (!runs.length) return html`<div id="runs-wrap" data-live><p class="muted">No runs yet.</p></div>`;
  return html`<div id="runs-wrap" class="table-wrap cards"><table class="cards" aria-labelledby="runs-title">
<thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Duration</th><th scope="col">Cost</th><th scope="col">Error</th><th scope="col"><span class="muted">Actions</span></th></tr></thead>
<tbody id="runs" data-live-list>
${runs.map(
  (r) => html`<tr id="run-${r.id}" data-live>
<td class="name"><a href="${runHref(r.id)}">${r.started_at ? timeTag(r.started_at, job.timezone) : timeTag(r.scheduled_for, job.timezone)}</a></td>
<td data-label="Status"><div>${statusBadge(r.status)}${outcomeNote(r)}${r.attempts > 1 ? html` <span class="muted small">${r.attempts} attempts</span>` : ""}${r.delivery === "failed" ? html` <span class="badge st-failed">delivery failed</span>` : ""}</div></td>
<td data-label="Trigger"><div>${triggerText(r)}</div></td>
<td data-label="Duration"><div>${formatDuration(r.duration_ms)}</div></td>
<td data-label="Cost"><div>${formatCost(r.cost_usd)}</div></td>
<td data-label="Error" class="small"><div>${orDash(r.error)}</div></td>
<td class="actions"><div class="actions">${r.status === "running" ? action(ctx, `${runHref(r.id)}/cancel`, "Cancel", { key: `cancel-${r.id}`, back, danger: true }) : ""}</div></td>
</tr>`,
)}
</tbody></table></div>`;
}

function definition(job: Job, defaultExecutor?: string): Html {
  const list = (v: string[]) => (v.length ? v.join(", ") : null);
  return html`<dl class="facts">
${fact("Id", html`<code>${job.id}</code>`)}
${fact("Schedule", html`<code>${job.schedule}</code>`)}
${job.run_at ? fact("Runs at", timeTag(job.run_at, job.timezone)) : ""}
${fact("Time zone", job.timezone)}
${fact("Executor", job.executor ?? (defaultExecutor ? `${defaultExecutor} (default)` : "the default (config default_executor)"))}
${fact("Work dir", orDash(job.work_dir))}
${fact("Session", job.session)}
${fact("Type", job.type)}
${fact("Timeout", formatDuration(job.timeout_seconds * 1000))}
${fact("Retries", `${job.retries} (first after ${job.retry_delay_seconds} s)`)}
${fact("Overlap", job.overlap.replace("_", " "))}
${fact("Catch-up", job.catch_up)}
${fact("Output", job.output_format)}
${fact("Delivers to", orDash(list(job.deliver_to)))}
${job.deliver_to.length ? fact("Delivers on", job.deliver_on.join(", ")) : ""}
${job.max_runs !== null ? fact("Max runs", `${job.run_count} of ${job.max_runs}`) : fact("Runs so far", String(job.run_count))}
${job.expires_at ? fact("Expires", timeTag(job.expires_at, job.timezone)) : ""}
${job.max_cost_usd !== null ? fact("Max cost a run", formatCost(job.max_cost_usd)) : ""}
${fact("Pauses after", `${job.pause_after_failures} failures in a row (now ${job.consecutive_failures})`)}
${job.trigger === "http" ? fact("Event trigger", html`<code>POST /hooks/${job.id}</code>`) : ""}
${job.requires_mcp.length ? fact("Requires MCP", job.requires_mcp.join(", ")) : ""}
${job.jitter_seconds ? fact("Jitter", `up to ${job.jitter_seconds} s`) : ""}
${fact("Created", html`${timeTag(job.created_at, job.timezone)} <span class="muted">by ${job.created_by}</span>`)}
${
  job.approvals.length
    ? fact(
        "Approval",
        html`${job.approvals
          .slice(-5)
          .reverse()
          .map(
            (e) =>
              html`<div>${e.event === "approved" ? "Approved" : `Sent back (${(e.fields ?? []).join(", ")} changed)`} ${timeTag(e.at, job.timezone)} <span class="muted">by ${e.by}, through ${e.via}</span></div>`,
          )}`,
      )
    : ""
}
${fact("Updated", timeTag(job.updated_at, job.timezone))}
</dl>
<h2>Prompt</h2>
<pre>${job.prompt}</pre>`;
}

export interface RunPageData {
  run: RunWithOutput & { job_name: string | null };
  /** The job's zone, when the job still exists (else UTC). */
  timezone: string;
  jobExists: boolean;
  /** The output as HTML (Markdown rendered, or JSON in a pre), or null while running. */
  outputHtml: string | null;
}

export function runPage(ctx: PageContext, data: RunPageData): Html {
  const { run, timezone } = data;
  const tz = timezone;
  const jobName = run.job_name ?? run.job_id.slice(0, 8);
  const usage = run.usage;
  const here = runHref(run.id);
  return layout({
    title: `${jobName} run`,
    ctx,
    watch: `run:${run.id}`,
    job: run.job_id,
    main: html`<p class="crumbs"><a href="/">Jobs</a> › ${data.jobExists ? html`<a href="${jobHref(run.job_id)}">${jobName}</a>` : html`${jobName} <span class="muted">(removed)</span>`} ›</p>
<div id="run-head" data-live>
<h1>Run of ${jobName} ${statusBadge(run.status)}</h1>
${run.status === "running" ? html`<div class="bar">${action(ctx, `${here}/cancel`, "Cancel run", { key: `cancel-${run.id}`, danger: true })}</div>` : ""}
<dl class="facts">
${fact("Status", html`${run.status.replace("_", " ")}${outcomeNote(run)}`)}
${fact("Trigger", triggerText(run))}
${run.scheduled_for ? fact("Scheduled for", timeTag(run.scheduled_for, tz)) : ""}
${fact("Started", timeTag(run.started_at, tz))}
${fact("Finished", timeTag(run.finished_at, tz))}
${fact("Duration", formatDuration(run.duration_ms))}
${fact("Attempts", String(run.attempts))}
${fact("Executor", run.executor_version ? `${run.executor ?? "-"} (${run.executor_version})` : orDash(run.executor))}
${run.exit_code !== null ? fact("Exit code", String(run.exit_code)) : ""}
${run.signal ? fact("Signal", run.signal) : ""}
${run.tool_calls?.length ? fact("Tool calls", run.tool_calls.map((t) => `${t.name} ×${t.count}`).join(", ")) : ""}
${run.output_sha256 ? fact("Output SHA-256", html`<code>${run.output_sha256}</code>`) : ""}
${run.session_id ? fact("Session", html`<code>${run.session_id}</code>`) : ""}
${run.work_dir ? fact("Work dir", html`<code>${run.work_dir}</code>`) : ""}
${fact("Usage", usage ? `${usage.input_tokens ?? "?"} tokens in, ${usage.output_tokens ?? "?"} out, ${formatCost(usage.cost_usd)}` : orDash(null))}
${fact("Delivery", orDash(run.delivery))}
${fact("Id", html`<code>${run.id}</code>`)}
</dl>
${run.error ? html`<h2>Error</h2><pre class="error">${run.error}</pre>` : ""}
${run.warnings.length ? html`<h2>Warnings</h2><ul>${run.warnings.map((w) => html`<li>${w}</li>`)}</ul>` : ""}
</div>
<h2>Output</h2>
<div id="output" data-live>${
      data.outputHtml === null
        ? html`<p class="muted">${run.status === "running" ? "Running; the output shows here when the run ends." : "No output."}</p>`
        : html`<div class="md">${trusted(data.outputHtml)}</div><p class="small"><a href="${here}/output">Plain text</a>${run.output_truncated ? " · the output was cut at the executor's max_output_bytes" : ""}</p>`
    }</div>
<div id="deliveries" data-live>${
      run.deliveries?.length
        ? html`<h2>Deliveries</h2><div class="table-wrap cards"><table class="cards"><thead><tr><th scope="col">Channel</th><th scope="col">Event</th><th scope="col">Attempt</th><th scope="col">Result</th><th scope="col">HTTP</th><th scope="col">Message id</th><th scope="col">Error</th><th scope="col">At</th></tr></thead><tbody>${run.deliveries.map(
            (d) =>
              html`<tr><td class="name">${d.channel}</td><td data-label="Event"><div>${d.event}</div></td><td data-label="Attempt"><div>${d.attempt}</div></td><td data-label="Result"><div>${d.ok ? html`<span class="badge st-completed">accepted</span>` : html`<span class="badge st-failed">refused</span>`}</div></td><td data-label="HTTP"><div>${orDash(d.http_status === null ? null : String(d.http_status))}</div></td><td data-label="Message id"><div>${orDash(d.message_id ?? null)}</div></td><td data-label="Error" class="small"><div>${orDash(d.error)}</div></td><td data-label="At"><div>${timeTag(d.at, tz)}</div></td></tr>`,
          )}</tbody></table></div>`
        : ""
    }</div>
${run.event_payload ? html`<h2>Event payload</h2><pre>${run.event_payload}</pre>` : ""}`,
  });
}

export function loginPage(opts: { next: string; error?: string }): Html {
  return layout({
    title: "Log in",
    main: html`<form class="login" method="post" action="/login">
<h1>Log in</h1>
<p>This dashboard needs the daemon's token (the variable named by <code>http.token_env</code>, <code>AGENT_CRON_TOKEN</code> by default).</p>
${opts.error ? html`<p class="notice bad" role="alert">${opts.error}</p>` : ""}
<input type="hidden" name="next" value="${opts.next}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit" class="primary">Log in</button>
</form>`,
  });
}

/** The approver's sign-in: the approver secret, not the daemon's token. */
export function approverPage(opts: { next: string; csrf: string; error?: string }): Html {
  return layout({
    title: "Sign in as approver",
    main: html`<form class="login" method="post" action="/approver">
<h1>Sign in as approver</h1>
<p>Approving and rejecting jobs that agents made needs the approver secret (the variable named by <code>approver_token_env</code>, <code>AGENT_CRON_APPROVER_TOKEN</code> by default), which is not the daemon's token.</p>
${opts.error ? html`<p class="notice bad" role="alert">${opts.error}</p>` : ""}
<input type="hidden" name="next" value="${opts.next}">
<input type="hidden" name="csrf" value="${opts.csrf}">
<label for="secret">Approver secret</label>
<input id="secret" name="secret" type="password" autocomplete="current-password" required autofocus>
<button type="submit" class="primary">Sign in</button>
</form>`,
  });
}

export function messagePage(title: string, message: string, ctx?: PageContext, back?: string): Html {
  return layout({
    title,
    ctx,
    main: html`<h1>${title}</h1><p class="notice bad" role="alert">${message}</p><p><a href="${back ?? "/"}">Back</a></p>`,
  });
}

/**
 * A cross-site link (a chat message pointing at a run) arrives without the SameSite=Strict
 * cookie; this page reloads itself from the dashboard's own origin, which then sends it.
 */
export function bouncePage(target: string): Html {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${target}"><title>agent-cron</title></head><body><p><a href="${target}">Continue to the dashboard</a></p></body></html>`;
}

/** The audit panel (SPEC §18): per job, counts by outcome and every occurrence due with no record. */
export function auditPage(ctx: PageContext, report: AuditReport): Html {
  const outcomes = OUTCOMES.filter((o) => report.counts[o]);
  return layout({
    title: "Audit",
    ctx,
    main: html`<p class="crumbs"><a href="/">Jobs</a> ›</p>
<h1>Audit</h1>
<p class="notice${report.unaccounted ? " bad" : ""}" id="audit-summary">${report.summary}</p>
<p class="muted small">From ${report.since} to ${report.until}. <a href="/audit?since=24h">Last 24 hours</a> · <a href="/audit">Last 7 days</a> · <a href="/audit?since=30d">Last 30 days</a></p>
<div class="table-wrap cards"><table class="cards"><thead><tr><th scope="col">Job</th><th scope="col">From</th><th scope="col">Due</th>${outcomes.map((o) => html`<th scope="col">${o}</th>`)}<th scope="col">No record</th></tr></thead><tbody>${report.jobs.map(
      (j) =>
        html`<tr><td class="name"><a href="${jobHref(j.job_id)}">${j.name ?? j.job_id.slice(0, 8)}</a></td><td data-label="From"><div>${j.from}</div></td><td data-label="Due"><div>${String(j.due)}</div></td>${outcomes.map((o) => html`<td data-label="${o}"><div>${String(j.counts[o] ?? 0)}</div></td>`)}<td data-label="No record"><div>${j.unaccounted ? html`<span class="badge st-failed">${String(j.unaccounted)}</span><div class="small">${j.unaccounted_at.join(", ")}</div>` : "0"}</div></td></tr>`,
    )}</tbody></table></div>
${report.more_jobs ? html`<p class="muted small">${report.more_jobs} more jobs, every occurrence accounted for.</p>` : ""}`,
  });
}
