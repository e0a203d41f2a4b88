/**
 * The jobs view (MCP App, ui://agent-cron/jobs): runs in the host's sandboxed iframe, gets the
 * result of `list_crons` or `get_cron` from the host, shows the jobs, and calls `pause`,
 * `resume` and `run_now` back through the host (`App.callServerTool`). scripts/bundle.mjs
 * bundles it with ext-apps' App into one inline script of view.html: the page makes no
 * request of its own, so it works under the spec's default CSP (no connect-src, nothing remote).
 *
 * Everything shown is set with textContent, never as HTML: names, prompts and answers come
 * from agents. The one exception is a run's answer, which is Markdown: it goes through the
 * dashboard's renderer (src/dashboard/markdown.ts, raw HTML off, links http(s) and mailto only,
 * no images), whose output is escaped text in a fixed set of tags.
 *
 * Rows stay where they are: a button changes its job's row in place, every cell keeps its
 * number of lines whatever the job's state, the columns have fixed widths, and Pause and
 * Resume share one slot of one width. So after a click the pointer is over the same job's
 * button, never a neighbour's (the rows only change order when the result is fetched again).
 */
import "./zod-jitless.js";
import { App, PostMessageTransport, applyDocumentTheme, applyHostFonts, applyHostStyleVariables } from "@modelcontextprotocol/ext-apps";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import MarkdownIt from "markdown-it";
import type { JobRow, RunRow } from "../../core/views.js";
import { markdownRenderer } from "../../dashboard/markdown.js";

// ext-apps' index re-exports its types from an extensionless path that NodeNext does not follow.
type HostContext = NonNullable<ReturnType<App["getHostContext"]>>;

/** The package version, put in by scripts/bundle.mjs. */
declare const AGENT_CRON_VERSION: string;

type ActionTool = "pause" | "resume" | "run_now";
type Data = Record<string, unknown>;

type Shown =
  | { kind: "waiting" }
  | { kind: "message"; text: string; error: boolean }
  | { kind: "list"; summary: string; jobs: JobRow[]; total: number; more: boolean }
  | { kind: "job"; job: JobRow; nextRuns: string[]; runs: RunRow[] };

const root = document.getElementById("root")!;
let shown: Shown = { kind: "waiting" };
/** The arguments of the call whose result is shown, for Refresh. */
let toolArgs: Data = {};
/** What each row says after a button: what happened, or why it failed. */
const rowNotes = new Map<string, { text: string; error: boolean }>();
const busy = new Set<string>();
/** Sent to the model (ui/update-model-context) so that it knows what the user did here. */
const userActions: string[] = [];
let locale: string | undefined;
let viewerZone: string | undefined;
let connected = false;

const renderMarkdown = markdownRenderer(MarkdownIt);

const app = new App({ name: "agent-cron jobs view", version: AGENT_CRON_VERSION }, {});

// Handlers before connect(), so that a result sent right after the handshake is not missed.
app.addEventListener("toolinput", (params) => {
  toolArgs = params.arguments ?? {};
});
app.addEventListener("toolresult", (result) => {
  rowNotes.clear();
  shown = fromResult(result as CallToolResult);
  render();
});
app.addEventListener("toolcancelled", (params) => {
  shown = { kind: "message", text: `The call was cancelled${params.reason ? `: ${params.reason}` : "."}`, error: true };
  render();
});
app.addEventListener("hostcontextchanged", (ctx) => {
  applyHostContext(ctx);
  render();
});
app.onteardown = async () => ({});

app
  .connect(new PostMessageTransport(window.parent, window.parent))
  .then(() => {
    connected = true;
    applyHostContext(app.getHostContext());
    render();
  })
  .catch((err: unknown) => {
    shown = { kind: "message", text: `The view could not connect to its host: ${messageOf(err)}`, error: true };
    render();
  });

function applyHostContext(ctx: Partial<HostContext> | undefined): void {
  if (!ctx) return;
  if (ctx.theme) applyDocumentTheme(ctx.theme);
  if (ctx.styles?.variables) applyHostStyleVariables(ctx.styles.variables);
  if (ctx.styles?.css?.fonts) applyHostFonts(ctx.styles.css.fonts);
  if (ctx.locale) locale = ctx.locale;
  if (ctx.timeZone) viewerZone = ctx.timeZone;
}

/** Buttons only where the host passes the view's tool calls on to agent-cron. */
function canCallTools(): boolean {
  return connected && !!app.getHostCapabilities()?.serverTools;
}

// ---------------------------------------------------------------------------------------
// Results → what is shown

/** structuredContent, or the JSON text block the server sends beside it for text-only clients. */
function dataOf(result: CallToolResult): Data | undefined {
  if (result.structuredContent && typeof result.structuredContent === "object") return result.structuredContent as Data;
  for (const block of result.content ?? []) {
    if (block.type !== "text" || !block.text.startsWith("{")) continue;
    try {
      return JSON.parse(block.text) as Data;
    } catch {
      // Not the JSON block.
    }
  }
  return undefined;
}

function firstText(result: CallToolResult): string | undefined {
  for (const block of result.content ?? []) if (block.type === "text") return block.text;
  return undefined;
}

function fromResult(result: CallToolResult): Shown {
  if (result.isError) return { kind: "message", text: firstText(result) ?? "The tool failed.", error: true };
  const data = dataOf(result);
  const summary = typeof data?.summary === "string" ? data.summary : (firstText(result) ?? "");
  if (data && Array.isArray(data.jobs)) {
    // list_crons rows leave out what is at its default: the server's timezone, state active.
    const zone = typeof data.timezone === "string" ? data.timezone : "";
    const jobs = (data.jobs as Data[]).map((j) => rowOf({ timezone: zone, state: "active", ...j }));
    return { kind: "list", summary, jobs, total: typeof data.total === "number" ? data.total : jobs.length, more: !!data.next_cursor };
  }
  if (data?.job && typeof data.job === "object" && Array.isArray(data.recent_runs)) {
    const job = data.job as Data;
    // get_cron's description has the timezone in brackets; the row shows it on its own.
    const described = typeof data.description === "string" ? data.description.replace(` (${String(job.timezone)})`, "") : undefined;
    return {
      kind: "job",
      job: rowOf(job, described),
      nextRuns: Array.isArray(data.next_runs) ? (data.next_runs as string[]) : [],
      runs: data.recent_runs as RunRow[],
    };
  }
  return { kind: "message", text: summary || "Nothing to show.", error: false };
}

/** A job as the list shows it, from a list_crons row or get_cron's whole job. */
function rowOf(job: Data, description?: string): JobRow {
  const text = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: String(job.id),
    name: text(job.name),
    schedule: String(job.schedule ?? ""),
    description: description ?? text(job.description) ?? String(job.schedule ?? ""),
    timezone: String(job.timezone ?? ""),
    state: job.state as JobRow["state"],
    next_run_at: text(job.next_run_at),
    last_run_at: text(job.last_run_at),
    last_status: (text(job.last_status) as JobRow["last_status"]) ?? null,
    prompt: String(job.prompt ?? ""),
  };
}

function runRowOf(run: Data, jobName: string | null): RunRow {
  const text = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: String(run.id),
    job_id: String(run.job_id),
    job_name: jobName,
    status: run.status as RunRow["status"],
    trigger: run.trigger as RunRow["trigger"],
    scheduled_for: text(run.scheduled_for),
    started_at: text(run.started_at),
    duration_ms: typeof run.duration_ms === "number" ? run.duration_ms : null,
    error: text(run.error),
    response: text(run.response),
    response_truncated: false,
    uri: `cron://runs/${String(run.id)}`,
  };
}

// ---------------------------------------------------------------------------------------
// Buttons

const VERBS: Record<ActionTool, string> = { pause: "paused", resume: "resumed", run_now: "started a run of" };

async function act(job: JobRow, tool: ActionTool): Promise<void> {
  busy.add(job.id);
  rowNotes.delete(job.id);
  render();
  try {
    const result = await app.callServerTool({ name: tool, arguments: { job: job.id } });
    const data = dataOf(result);
    if (result.isError || !data) {
      rowNotes.set(job.id, { text: firstText(result) ?? `${tool} failed.`, error: true });
      return;
    }
    if (tool === "run_now" && data.run && typeof data.run === "object") {
      const run = data.run as Data;
      updateJob(job.id, {
        last_status: run.status as JobRow["last_status"],
        last_run_at: typeof run.started_at === "string" ? run.started_at : job.last_run_at,
      });
      if (shown.kind === "job" && shown.job.id === job.id) shown.runs.unshift(runRowOf(run, job.name));
    } else if (data.job && typeof data.job === "object") {
      updateJob(job.id, rowOf(data.job as Data), Array.isArray(data.next_runs) ? (data.next_runs as string[]) : undefined);
    }
    rowNotes.set(job.id, { text: doneNote(tool, data), error: false });
    // The model gets the server's own sentence, ids and all.
    tellModel(`${VERBS[tool]} ${label(job)}: ${typeof data.summary === "string" ? data.summary : `${tool} done.`}`);
  } catch (err) {
    rowNotes.set(job.id, { text: `${tool} did not reach agent-cron: ${messageOf(err)}`, error: true });
  } finally {
    busy.delete(job.id);
    render();
  }
}

/** What the row says after a button, for the person who pressed it. */
function doneNote(tool: ActionTool, data: Data): string {
  if (tool === "run_now") {
    const run = (data.run ?? {}) as Data;
    return run.status === "running" ? `Run ${shortId(String(run.id))} started.` : `Run ${shortId(String(run.id))} ${String(run.status)}.`;
  }
  if (tool === "pause") return "Paused.";
  const next = ((data.job ?? {}) as Data).next_run_at;
  return typeof next === "string" ? `Resumed; next run ${format(next, viewerZone)}.` : "Resumed.";
}

function updateJob(id: string, change: Partial<JobRow>, nextRuns?: string[]): void {
  if (shown.kind === "list") shown.jobs = shown.jobs.map((j) => (j.id === id ? { ...j, ...change } : j));
  if (shown.kind === "job" && shown.job.id === id) {
    shown.job = { ...shown.job, ...change };
    if (nextRuns) shown.nextRuns = nextRuns;
  }
}

/** Calls the tool whose result is shown again, with the same arguments. */
async function refresh(): Promise<void> {
  const call = shown.kind === "job" ? { name: "get_cron", arguments: { job: shown.job.id } } : { name: "list_crons", arguments: toolArgs };
  try {
    const result = await app.callServerTool(call);
    rowNotes.clear();
    shown = fromResult(result);
  } catch (err) {
    shown = { kind: "message", text: `${call.name} did not reach agent-cron: ${messageOf(err)}`, error: true };
  }
  render();
}

function tellModel(action: string): void {
  userActions.push(`In the agent-cron jobs view, the user ${action}`);
  if (!app.getHostCapabilities()?.updateModelContext) return;
  // The host keeps the latest context only: send every action taken here.
  void app.updateModelContext({ content: [{ type: "text", text: userActions.join("\n") }] }).catch(() => {});
}

// ---------------------------------------------------------------------------------------
// Rendering

type Child = Node | string | null | undefined | false;

function el(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function render(): void {
  root.replaceChildren(...view().filter((c): c is Node | string => !!c));
}

function view(): Child[] {
  switch (shown.kind) {
    case "waiting":
      return [el("p", { class: "note" }, "Waiting for the tool's result…")];
    case "message":
      return [el("p", { class: shown.error ? "note error" : "note" }, shown.text)];
    case "list":
      return listView(shown);
    case "job":
      return jobView(shown);
  }
}

function heading(title: string): HTMLElement {
  return el("header", {}, el("h1", {}, title), el("span", { class: "spacer" }), canCallTools() && button("Refresh", "refresh", false, () => void refresh()));
}

function listView(s: Extract<Shown, { kind: "list" }>): Child[] {
  const title = `Scheduled jobs · ${s.total}`;
  if (!s.jobs.length) return [heading(title), el("p", { class: "summary" }, s.summary || "No jobs match.")];
  const rows = s.jobs.map((job) =>
    el(
      "tr",
      { "data-job": job.id },
      el("td", {}, el("span", { class: "name" }, job.name ?? shortId(job.id)), el("span", { class: "prompt" }, job.prompt)),
      el("td", { "data-label": "Schedule" }, job.description, el("span", { class: "sub" }, job.timezone)),
      el("td", { "data-label": "State" }, stateBadge(job.state)),
      el(
        "td",
        { "data-label": "Next run" },
        job.state === "active" ? when(job.next_run_at, job.timezone) : twoLines("—", `none while ${job.state.replace("_", " ")}`),
      ),
      el(
        "td",
        { "data-label": "Last run" },
        statusBadge(job.last_status),
        el("span", { class: "sub nowrap" }, job.last_run_at ? relative(job.last_run_at) : "—"),
      ),
      el("td", { class: "actions" }, ...actions(job)),
    ),
  );
  return [
    heading(title),
    el("p", { class: "summary" }, s.summary),
    el(
      "table",
      { class: "jobs" },
      el("colgroup", {}, ...["job", "schedule", "state", "next", "last", "actions"].map((c) => el("col", { class: `c-${c}` }))),
      el("thead", {}, el("tr", {}, ...["Job", "Schedule", "State", "Next run", "Last run", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows),
    ),
    s.more && el("p", { class: "note" }, `Showing ${s.jobs.length} of ${s.total}: ask for the next page to see more.`),
    hostNote(),
  ];
}

function jobView(s: Extract<Shown, { kind: "job" }>): Child[] {
  const job = s.job;
  const runs = s.runs.map((run) =>
    el(
      "tr",
      { "data-run": run.id },
      el("td", {}, statusBadge(run.status)),
      el("td", { "data-label": "Started" }, run.started_at ? when(run.started_at, job.timezone) : "—", el("span", { class: "sub" }, run.trigger)),
      el("td", { "data-label": "Took" }, run.duration_ms === null ? "—" : duration(run.duration_ms)),
      el("td", {}, run.error ? el("span", { class: "error" }, run.error) : answer(run.response)),
    ),
  );
  return [
    // No summary line: the card says all of it, in words and local times.
    heading(job.name ?? shortId(job.id)),
    el(
      "section",
      { class: "card", "data-job": job.id },
      el("header", {}, stateBadge(job.state), el("span", { class: "spacer" }), el("span", { class: "actions" }, ...actions(job))),
      el(
        "dl",
        {},
        el("dt", {}, "Schedule"),
        el("dd", {}, job.description, " ", el("code", {}, job.schedule), el("span", { class: "sub" }, job.timezone)),
        el("dt", {}, "Next runs"),
        el("dd", {}, ...(job.state === "active" && s.nextRuns.length ? s.nextRuns.slice(0, 3).map((t) => el("div", {}, when(t, job.timezone))) : ["—"])),
        el("dt", {}, "Last run"),
        el("dd", {}, statusBadge(job.last_status), job.last_run_at && el("span", { class: "sub" }, relative(job.last_run_at))),
        el("dt", {}, "Prompt"),
        el("dd", { class: "prompt" }, job.prompt),
      ),
    ),
    el("h2", {}, `Recent runs · ${s.runs.length}`),
    s.runs.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ...["Status", "Started", "Took", "Answer"].map((h) => el("th", {}, h)))), el("tbody", {}, ...runs))
      : el("p", { class: "note" }, "It has not run yet."),
    hostNote(),
  ];
}

function actions(job: JobRow): Child[] {
  const note = rowNotes.get(job.id);
  const noteNode = note && el("span", { class: note.error ? "row-note error" : "row-note" }, note.text);
  if (!canCallTools()) return [noteNode];
  if (job.state === "pending_approval") return [el("span", { class: "row-note" }, "Waiting for a person to approve it (agent-cron approve)."), noteNode];
  const working = busy.has(job.id);
  // Pause and Resume take turns in one slot of one width (view.css .toggle).
  const toggle =
    job.state === "active"
      ? button("Pause", "pause", working, () => void act(job, "pause"), "toggle")
      : job.state === "paused"
        ? button("Resume", "resume", working, () => void act(job, "resume"), "toggle")
        : el("span", { class: "toggle" });
  return [toggle, button("Run now", "run_now", working, () => void act(job, "run_now")), noteNode];
}

/** A cell's two lines, the second one smaller: every state of a job fills the same lines. */
function twoLines(first: string, second: string): Node {
  return el("span", {}, first, el("span", { class: "sub" }, second));
}

/** A run's answer (its first 500 characters) as Markdown; links open through the host. */
function answer(text: string | null): HTMLElement {
  const div = el("div", { class: "md" });
  // markdown-it with html off: everything from the answer arrives escaped (see the file's head).
  div.innerHTML = renderMarkdown(text ?? "");
  div.addEventListener("click", (event) => {
    const link = (event.target as Element).closest("a[href]");
    if (!link) return;
    // The view is a sandboxed frame: following a link would replace it. The host opens it.
    event.preventDefault();
    void app.openLink({ url: link.getAttribute("href")! }).catch(() => {});
  });
  return div;
}

function button(text: string, action: string, disabled: boolean, onClick: () => void, cls?: string): HTMLElement {
  const b = el("button", { type: "button", "data-action": action, ...(cls ? { class: cls } : {}) }, text) as HTMLButtonElement;
  b.disabled = disabled;
  b.addEventListener("click", onClick);
  return b;
}

function hostNote(): Child {
  if (!connected || canCallTools()) return null;
  return el("p", { class: "note" }, "This host does not pass the view's calls on to agent-cron; ask the agent to pause, resume or run a job.");
}

function stateBadge(state: JobRow["state"]): HTMLElement {
  return el("span", { class: `badge s-${state}`, "data-state": state }, state.replace("_", " "));
}

function statusBadge(status: JobRow["last_status"]): HTMLElement {
  if (!status) return el("span", { class: "badge s-none" }, "never run");
  // "completed" is green for a run, grey for a job.
  return el("span", { class: `badge s-${status === "completed" ? "completed-run" : status}`, "data-status": status }, status.replace("_", " "));
}

// ---------------------------------------------------------------------------------------
// Words for times

function label(job: JobRow): string {
  return job.name ? `"${job.name}"` : job.id;
}

function shortId(id: string): string {
  return id.slice(0, 8);
}

const FULL: Intl.DateTimeFormatOptions = { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
const SHORT: Intl.DateTimeFormatOptions = { weekday: "short", hour: "2-digit", minute: "2-digit" };

function format(iso: string, timeZone: string | undefined, options = FULL): string {
  try {
    return new Intl.DateTimeFormat(locale, { ...options, timeZone }).format(new Date(iso));
  } catch {
    // An unknown locale or zone: the browser's own.
    return new Date(iso).toLocaleString(undefined, options);
  }
}

/** The time in the viewer's zone, how far off it is, and the job's own wall clock when that differs. */
function when(iso: string | null, jobZone: string): Node {
  if (!iso) return twoLines("—", "none due");
  const mine = format(iso, viewerZone);
  const sub = format(iso, jobZone) === mine ? relative(iso) : `${relative(iso)} · ${format(iso, jobZone, SHORT)} ${jobZone}`;
  return el("span", { title: iso }, mine, el("span", { class: "sub" }, sub));
}

function relative(iso: string): string {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  const [value, unit]: [number, Intl.RelativeTimeFormatUnit] =
    abs < 60 ? [seconds, "second"] : abs < 3600 ? [seconds / 60, "minute"] : abs < 86400 ? [seconds / 3600, "hour"] : [seconds / 86400, "day"];
  try {
    return new Intl.RelativeTimeFormat(locale, { numeric: "auto" }).format(Math.round(value), unit);
  } catch {
    return new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(Math.round(value), unit);
  }
}

function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
