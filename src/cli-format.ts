import type { Job, Run, RunWithOutput } from "./core/jobs.js";
import type { ChannelRow } from "./delivery/channels.js";
import { clipChars, type JobRow, type RunRow } from "./core/views.js";
import { OUTCOMES, type AuditReport } from "./core/ledger.js";
import { relativeTime } from "./core/relative-time.js";

/**
 * Prompts, names and outputs come from callers and agents: a terminal escape in one must not
 * reach the operator's terminal. Control characters print as \x1b-style escapes; newlines and
 * tabs stay where `keepLines` says so (output blocks).
 */
export function escapeControls(text: string, keepLines = false): string {
  const pattern = keepLines ? /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g : /[\u0000-\u001f\u007f-\u009f]/g;
  return text.replace(pattern, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Plain-text tables for people at a terminal; `--json` prints the records instead. */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map((c) => escapeControls(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function clip(text: string, max: number): string {
  return clipChars(text.replace(/\s+/g, " ").trim(), max).text;
}

export function formatChannelTable(rows: ChannelRow[]): string {
  if (rows.length === 0) return "No channels configured (config key channels).";
  return table(
    ["CHANNEL", "TYPE", "STATUS", "DETAIL"],
    rows.map((r) => [r.channel, r.type, r.status, r.detail]),
  );
}

/** A one-shot's schedule as given ("in 20m") says nothing once made: its time is its next run. */
function scheduleCell(j: JobRow): string {
  return /^in\s/i.test(j.schedule) ? "once" : j.schedule;
}

export function formatJobsTable(jobs: JobRow[], now = Date.now()): string {
  if (!jobs.length) return "No jobs.";
  return table(
    ["NAME", "ID", "STATE", "SCHEDULE", "NEXT", "LAST RUN", "PROMPT"],
    jobs.map((j) => [
      j.name ?? "-",
      j.id.slice(0, 8),
      j.state,
      scheduleCell(j),
      // A next run in the past is one the server has yet to take (or a stopped server's): say so.
      j.next_run_at ? (Date.parse(j.next_run_at) < now - 5000 ? `due ${relativeTime(j.next_run_at, now)}` : relativeTime(j.next_run_at, now)) : "-",
      j.last_run_at ? `${relativeTime(j.last_run_at, now)}${j.last_status ? ` (${j.last_status})` : ""}` : "-",
      clip(j.prompt, 40),
    ]),
  );
}

export function formatRunsTable(runs: RunRow[]): string {
  if (!runs.length) return "No runs.";
  return table(
    ["RUN", "JOB", "STATUS", "TRIGGER", "SCHEDULED FOR", "DURATION", "DELIVERY", "RESULT"],
    runs.map((r) => [
      r.id.slice(0, 8),
      r.job_name ?? r.job_id.slice(0, 8),
      r.status,
      r.trigger,
      r.scheduled_for ?? "-",
      r.duration_ms === null ? "-" : `${(r.duration_ms / 1000).toFixed(1)}s`,
      r.delivery ?? "-",
      clip(r.error ?? r.response ?? "", 50),
    ]),
  );
}

export function formatJob(job: Job, description: string, next: string[], recent: RunRow[], defaultExecutor?: string): string {
  const rows: [string, string][] = [
    ["name", job.name ?? "-"],
    ["id", job.id],
    ["state", job.state],
    [
      "schedule",
      job.run_at && /^in\s/i.test(job.schedule)
        ? `once at ${job.run_at} (${relativeTime(job.run_at)}; given as "${job.schedule}")`
        : `${job.schedule}  (${description})`,
    ],
    ["executor", job.executor ?? `${defaultExecutor ?? "the default"} (follows default_executor)`],
    ["work dir", job.work_dir ?? "(fresh folder per run)"],
    ["deliver to", job.deliver_to.length ? `${job.deliver_to.join(", ")} on ${job.deliver_on.join(", ")}` : "-"],
    ["next runs", next.length ? `${next.join(", ")} (${relativeTime(next[0])})` : "-"],
    ["last run", job.last_run_at ? `${job.last_run_at} (${relativeTime(job.last_run_at)}) ${job.last_status ?? ""}`.trim() : "-"],
    ["last error", job.last_error ?? "-"],
    ["prompt", job.prompt],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const head = rows.map(([k, v]) => `${k.padEnd(width)}  ${escapeControls(v)}`).join("\n");
  return recent.length ? `${head}\n\nRecent runs:\n${formatRunsTable(recent)}` : head;
}

export function formatRun(run: RunWithOutput | (Run & { output?: unknown })): string {
  const lines = [
    `run ${run.id} (job ${run.job_id})`,
    `status     ${run.status} after ${run.attempts} attempt(s)${run.executor ? ` (executor ${run.executor})` : ""}`,
    `scheduled  ${run.scheduled_for ?? "-"} (${run.trigger})`,
    `started    ${run.started_at ?? "-"}`,
    `finished   ${run.finished_at ?? "-"}`,
  ];
  if (run.error) lines.push(`error      ${run.error}`);
  for (const w of run.warnings) lines.push(`warning    ${w}`);
  const evidence = [
    run.executor_version && `version ${run.executor_version}`,
    run.exit_code !== null ? `exit code ${run.exit_code}` : run.signal ? `signal ${run.signal}` : null,
    run.output_sha256 && `output sha256 ${run.output_sha256}`,
  ].filter(Boolean);
  if (evidence.length) lines.push(`evidence   ${evidence.join(", ")}`);
  if (run.usage) lines.push(`usage      ${JSON.stringify(run.usage)}`);
  if (run.tool_calls?.length) lines.push(`tools      ${run.tool_calls.map((t) => `${t.name} ×${t.count}`).join(", ")}`);
  if (run.delivery)
    lines.push(`delivery   ${run.delivery}${run.delivery_due.length ? ` (still owed: ${run.delivery_due.map((t) => t.channel).join(", ")})` : ""}`);
  for (const d of run.deliveries ?? []) {
    lines.push(
      `  ${d.ok ? "ok    " : "failed"} ${d.channel} (${d.event}) attempt ${d.attempt}${d.http_status !== null ? ` HTTP ${d.http_status}` : ""}${d.message_id ? ` message ${d.message_id}` : ""}${d.error ? `: ${d.error}` : ""}  ${d.at}`,
    );
  }
  const output = run.output === undefined ? run.response : typeof run.output === "string" ? run.output : JSON.stringify(run.output, null, 2);
  if (output) lines.push("", output);
  return escapeControls(lines.join("\n"), true);
}

/** An audit for a terminal: the summary, then one row per job with its counts, then what has no record. */
export function formatAudit(report: AuditReport): string {
  const shown = OUTCOMES.filter((o) => report.counts[o] || report.jobs.some((j) => j.counts[o]));
  const lines = [
    report.summary,
    "",
    table(
      ["JOB", "FROM", "DUE", ...shown.map((o) => o.toUpperCase()), "UNACCOUNTED"],
      report.jobs.map((j) => [j.name ?? j.job_id.slice(0, 8), j.from, String(j.due), ...shown.map((o) => String(j.counts[o] ?? 0)), String(j.unaccounted)]),
    ),
  ];
  if (report.more_jobs) lines.push(`(${report.more_jobs} more jobs, all accounted for)`);
  for (const j of report.jobs.filter((j) => j.unaccounted)) {
    lines.push(
      "",
      `${j.name ?? j.job_id}: no record for ${j.unaccounted_at.join(", ")}${j.unaccounted > j.unaccounted_at.length ? ` and ${j.unaccounted - j.unaccounted_at.length} more` : ""}`,
    );
  }
  return escapeControls(lines.join("\n"), true);
}
