import type { Job, Run, RunWithOutput } from "./core/jobs.js";

/** Plain-text tables for people at a terminal; `--json` prints the records instead. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? one.slice(0, max - 1) + "…" : one;
}

export function formatJobsTable(jobs: Job[]): string {
  if (!jobs.length) return "No jobs.";
  return table(
    ["NAME", "ID", "STATE", "SCHEDULE", "NEXT RUN", "LAST", "PROMPT"],
    jobs.map((j) => [j.name ?? "-", j.id.slice(0, 8), j.state, j.schedule, j.next_run_at ?? "-", j.last_status ?? "-", clip(j.prompt, 40)]),
  );
}

export function formatRunsTable(runs: Run[]): string {
  if (!runs.length) return "No runs.";
  return table(
    ["RUN", "JOB", "STATUS", "TRIGGER", "SCHEDULED FOR", "DURATION", "RESULT"],
    runs.map((r) => [
      r.id,
      r.job_id.slice(0, 8),
      r.status,
      r.trigger,
      r.scheduled_for ?? "-",
      r.duration_ms === null ? "-" : `${(r.duration_ms / 1000).toFixed(1)}s`,
      clip(r.error ?? r.response ?? "", 50),
    ]),
  );
}

export function formatJob(job: Job, description: string, next: string[], recent: Run[]): string {
  const rows: [string, string][] = [
    ["name", job.name ?? "-"],
    ["id", job.id],
    ["state", job.state],
    ["schedule", `${job.schedule}  (${description})`],
    ["executor", job.executor],
    ["work dir", job.work_dir ?? "(fresh folder per run)"],
    ["next runs", next.join(", ") || "-"],
    ["last run", job.last_run_at ? `${job.last_run_at} ${job.last_status}` : "-"],
    ["last error", job.last_error ?? "-"],
    ["prompt", job.prompt],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const head = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
  return recent.length ? `${head}\n\nRecent runs:\n${formatRunsTable(recent)}` : head;
}

export function formatRun(run: RunWithOutput | (Run & { output?: unknown })): string {
  const lines = [
    `run ${run.id} (job ${run.job_id})`,
    `status     ${run.status} after ${run.attempts} attempt(s)`,
    `scheduled  ${run.scheduled_for ?? "-"} (${run.trigger})`,
    `started    ${run.started_at ?? "-"}`,
    `finished   ${run.finished_at ?? "-"}`,
  ];
  if (run.error) lines.push(`error      ${run.error}`);
  if (run.usage) lines.push(`usage      ${JSON.stringify(run.usage)}`);
  const output = run.output === undefined ? run.response : typeof run.output === "string" ? run.output : JSON.stringify(run.output, null, 2);
  if (output) lines.push("", output);
  return lines.join("\n");
}
