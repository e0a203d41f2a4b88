import type { Activity, MarkStatus, TimelineLane } from "../core/activity.js";
import type { RunBrief } from "../core/api.js";
import { type Html, exactTime, formatCost, formatDuration, html } from "./html.js";

/**
 * The dashboard's pictures (SPEC §22), drawn on the server as inline SVG: no script, nothing
 * fetched, colours from the stylesheet's variables (light and dark), every mark with a <title>
 * and every picture with a text summary. Horizontal positions are percentages of the width
 * and sizes are pixels, so a picture fills a phone or a desktop without shrinking its text.
 */

const STATUS_WORDS: Record<MarkStatus, string> = {
  completed: "completed",
  failed: "failed",
  timed_out: "timed out",
  canceled: "canceled",
  interrupted: "interrupted",
  skipped: "skipped",
  declined: "declined",
  missed: "missed",
  running: "running",
  due: "due",
};
/** The legend's order: good, bad, idle, to come. */
const LEGEND: MarkStatus[] = ["completed", "failed", "timed_out", "canceled", "interrupted", "skipped", "declined", "missed", "running", "due"];

const pct = (n: number) => `${Math.min(100, Math.max(0, n)).toFixed(3)}%`;
const label = (lane: { name: string | null; job_id: string }) => lane.name ?? lane.job_id.slice(0, 8);

function swatch(status: MarkStatus): Html {
  return html`<svg width="12" height="12" aria-hidden="true"><rect class="m m-${status}" x="1" y="1" width="10" height="10" rx="2"/></svg>`;
}

function legend(statuses: Iterable<MarkStatus>): Html {
  const shown = new Set(statuses);
  return html`<ul class="legend" aria-hidden="true">${LEGEND.filter((s) => shown.has(s)).map((s) => html`<li>${swatch(s)}${STATUS_WORDS[s]}</li>`)}</ul>`;
}

/** "3 completed, 1 failed", from marks' statuses and counts. */
function tally(marks: { status: MarkStatus; count: number }[]): string {
  const counts = new Map<MarkStatus, number>();
  for (const m of marks) counts.set(m.status, (counts.get(m.status) ?? 0) + m.count);
  return (
    LEGEND.filter((s) => counts.has(s))
      .map((s) => `${counts.get(s)} ${STATUS_WORDS[s]}`)
      .join(", ") || "none"
  );
}

const LANE_HEIGHT = 34;
const TOP = 6;
const AXIS = 20;

/** The past day's and the next day's occurrences, one lane per job, "now" in the middle. */
export function timelineChart(a: Activity): Html {
  const from = Date.parse(a.from);
  const span = Date.parse(a.until) - from;
  const x = (iso: string) => pct(((Date.parse(iso) - from) / span) * 100);
  const past = a.lanes.flatMap((l) => l.past);
  const next = a.lanes.flatMap((l) => l.next);
  const summary =
    `Past ${span / 7_200_000} hours: ${tally(past)}. Next ${span / 7_200_000} hours: ${next.reduce((n, m) => n + m.count, 0)} due. ` +
    `${a.lanes.length} job${a.lanes.length === 1 ? "" : "s"}${a.more_jobs ? `, and ${a.more_jobs} more not drawn` : ""}.`;
  if (!a.lanes.length) return html`<p class="muted" id="timeline-summary">Nothing ran in the past day and nothing is due in the next.</p>`;
  const height = TOP + a.lanes.length * LANE_HEIGHT + AXIS;
  const ticks = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => {
    const hours = (i - 4) * 6;
    const text = hours === 0 ? "now" : `${hours > 0 ? "+" : "−"}${Math.abs(hours)}h`;
    const anchor = i === 0 ? "start" : i === 8 ? "end" : "middle";
    return html`<line class="grid${hours === 0 ? " now" : ""}" x1="${pct(i * 12.5)}" x2="${pct(i * 12.5)}" y1="${TOP - 4}" y2="${height - AXIS + 2}"/><text class="tick${i % 2 ? " minor" : ""}" x="${pct(i * 12.5)}" y="${height - 5}" text-anchor="${anchor}">${text}</text>`;
  });
  const lanes = a.lanes.map((lane, i) => laneMarks(lane, TOP + i * LANE_HEIGHT, x));
  return html`<figure class="panel">
<figcaption><strong>Occurrences</strong> <span class="muted small">past day and next day, across jobs</span></figcaption>
<svg class="chart timeline" width="100%" height="${height}" role="img" aria-labelledby="timeline-title timeline-summary"><title id="timeline-title">Occurrences of the past day and the next day, by job and outcome</title>${ticks}${lanes}</svg>
${legend([...past.map((m) => m.status), ...(next.length ? (["due"] as const) : [])])}
<p class="small muted" id="timeline-summary">${summary}</p>
</figure>`;
}

function laneMarks(lane: TimelineLane, top: number, x: (iso: string) => string): Html {
  const y = top + 16;
  const mark = (m: TimelineLane["past"][number]) => {
    const words = `${label(lane)} · ${STATUS_WORDS[m.status]}${m.count > 1 ? ` ×${m.count}` : ""} · ${exactTime(Date.parse(m.at), lane.timezone)}`;
    const rect = html`<rect class="m m-${m.status}" x="${x(m.at)}" y="${y}" width="4" height="12" rx="1"><title>${words}</title></rect>`;
    return m.run_id ? html`<a href="/runs/${encodeURIComponent(m.run_id)}">${rect}</a>` : rect;
  };
  return html`<g class="lane"><text class="lane-label" x="0" y="${top + 11}">${label(lane)}${lane.state === "active" ? "" : ` (${lane.state.replace("_", " ")})`}</text><line class="base" x1="0" x2="100%" y1="${y + 6}" y2="${y + 6}"/>${lane.past.map(mark)}${lane.next.map(mark)}</g>`;
}

const BARS_TOP = 18;
const BARS_HEIGHT = 80;

/** A job's last runs (at most 100), oldest on the left: bar height the duration, colour the outcome. */
export function durationChart(runs: RunBrief[], timezone: string): Html {
  if (!runs.length) return html`<p class="muted">No runs yet to draw.</p>`;
  const oldestFirst = [...runs].reverse();
  const durations = oldestFirst.map((r) => r.duration_ms).filter((d): d is number => d !== null);
  const longest = Math.max(1, ...durations);
  const sorted = [...durations].sort((p, q) => p - q);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
  // At least 20 slots: two runs are two slim bars, not two slabs.
  const slot = 100 / Math.max(20, oldestFirst.length);
  const base = BARS_TOP + BARS_HEIGHT;
  const bars = oldestFirst.map((r, i) => {
    const h = r.duration_ms === null ? 3 : Math.max(3, Math.round((r.duration_ms / longest) * BARS_HEIGHT));
    const when = r.started_at ?? r.scheduled_for;
    const words = `${STATUS_WORDS[r.status]} · ${r.duration_ms === null ? "no duration" : formatDuration(r.duration_ms)}${when ? ` · ${exactTime(Date.parse(when), timezone)}` : ""}`;
    return html`<a href="/runs/${encodeURIComponent(r.id)}"><rect class="m m-${r.status}" x="${pct(i * slot + slot * 0.15)}" y="${base - h}" width="${pct(slot * 0.7)}" height="${h}" rx="1"><title>${words}</title></rect></a>`;
  });
  const summary = `Last ${runs.length} run${runs.length === 1 ? "" : "s"}, oldest on the left: ${tally(oldestFirst.map((r) => ({ status: r.status, count: 1 })))}.${median !== null ? ` Median duration ${formatDuration(median)}, longest ${formatDuration(longest)}.` : ""}`;
  return html`<figure class="panel">
<figcaption><strong>Duration and outcome</strong> <span class="muted small">last ${runs.length} run${runs.length === 1 ? "" : "s"}, oldest on the left</span></figcaption>
<svg class="chart durations" width="100%" height="${base + 16}" role="img" aria-labelledby="durations-title durations-summary"><title id="durations-title">Duration and outcome of the last ${runs.length} runs</title><line class="grid" x1="0" x2="100%" y1="${BARS_TOP}" y2="${BARS_TOP}"/><text class="tick" x="0" y="${BARS_TOP - 5}">${formatDuration(longest)}</text><line class="base" x1="0" x2="100%" y1="${base}" y2="${base}"/>${bars}<text class="tick" x="0" y="${base + 13}">older</text><text class="tick" x="100%" y="${base + 13}" text-anchor="end">newer</text></svg>
${legend(oldestFirst.map((r) => r.status))}
<p class="small muted" id="durations-summary">${summary}</p>
</figure>`;
}

/** Cost per day over the last days (the server's zone), from the runs that reported one. */
export function costChart(a: Activity): Html {
  const days = a.cost_days;
  const total = days.reduce((n, d) => n + d.cost_usd, 0);
  const runs = days.reduce((n, d) => n + d.runs, 0);
  const priced = days.reduce((n, d) => n + d.priced, 0);
  const most = Math.max(...days.map((d) => d.cost_usd), 0);
  const slot = 100 / days.length;
  const base = BARS_TOP + BARS_HEIGHT;
  const dayName = (day: string) => new Date(`${day}T12:00:00Z`).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  const bars = days.map((d, i) => {
    const h = most > 0 ? Math.max(2, Math.round((d.cost_usd / most) * BARS_HEIGHT)) : 0;
    const words = `${dayName(d.day)}: ${formatCost(d.cost_usd)} from ${d.priced} of ${d.runs} run${d.runs === 1 ? "" : "s"}`;
    const bar =
      d.cost_usd > 0
        ? html`<rect class="m m-cost" x="${pct(i * slot + slot * 0.2)}" y="${base - h}" width="${pct(slot * 0.6)}" height="${h}" rx="1"><title>${words}</title></rect>`
        : "";
    const tick = html`<text class="tick${(days.length - 1 - i) % 2 ? " minor" : ""}" x="${pct(i * slot + slot / 2)}" y="${base + 13}" text-anchor="middle">${dayName(d.day)}</text>`;
    return html`${bar}${tick}`;
  });
  const summary = priced
    ? `${formatCost(total)} over the last ${days.length} days, from ${priced} of ${runs} runs that reported a cost; the most in a day ${formatCost(most)}.`
    : `No run reported a cost in the last ${days.length} days (${runs} runs; executors that report usage, such as claude-code, give one).`;
  return html`<figure class="panel">
<figcaption><strong>Cost per day</strong> <span class="muted small">last ${days.length} days, ${a.timezone}</span></figcaption>
<svg class="chart cost" width="100%" height="${base + 18}" role="img" aria-labelledby="cost-title cost-summary"><title id="cost-title">Cost per day over the last ${days.length} days</title><line class="grid" x1="0" x2="100%" y1="${BARS_TOP}" y2="${BARS_TOP}"/><text class="tick" x="0" y="${BARS_TOP - 5}">${most > 0 ? formatCost(most) : "$0"}</text><line class="base" x1="0" x2="100%" y1="${base}" y2="${base}"/>${bars}</svg>
<p class="small muted" id="cost-summary">${summary}</p>
</figure>`;
}
