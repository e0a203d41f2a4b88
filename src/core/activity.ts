import type { Job, JobState, Run, RunStatus } from "./jobs.js";
import { startOfDayInZone, toIsoInZone } from "../kernel/time.js";

/**
 * What the dashboard's pictures draw (SPEC §22): the past day's and the next day's occurrences
 * across jobs, by outcome, and the cost per day. Pure: the caller hands in the jobs, their
 * runs and their next occurrences, so any backend serves it the same way.
 */

export const TIMELINE_HOURS = 24;
export const COST_DAYS = 14;
/** Lanes (jobs) drawn at most; the rest are counted. */
export const TIMELINE_LANES = 12;
/** Marks per lane and side at most; beyond, occurrences share a mark per slice of time. */
export const LANE_MARKS = 240;
const HOUR = 3_600_000;

export type MarkStatus = RunStatus | "due";
export interface TimelineMark {
  at: string;
  status: MarkStatus;
  /** How many occurrences the mark stands for (1, or more where a lane was too dense). */
  count: number;
  run_id?: string;
}
export interface TimelineLane {
  job_id: string;
  name: string | null;
  timezone: string;
  state: JobState;
  past: TimelineMark[];
  next: TimelineMark[];
}
export interface CostDay {
  /** YYYY-MM-DD in the server's zone. */
  day: string;
  cost_usd: number;
  /** Runs started that day, and how many of them reported a cost. */
  runs: number;
  priced: number;
}
export interface Activity {
  now: string;
  from: string;
  until: string;
  timezone: string;
  lanes: TimelineLane[];
  more_jobs: number;
  cost_days: CostDay[];
}

/** Where marks share a slice, the slice shows its worst outcome. */
const SEVERITY: MarkStatus[] = ["failed", "timed_out", "interrupted", "canceled", "missed", "declined", "skipped", "running", "completed", "due"];

export interface ActivitySource {
  jobs: Iterable<Job>;
  runsOf(jobId: string): readonly Run[];
  allRuns(): Iterable<Run>;
  nextRuns(job: Job, count: number, from: number): Date[];
  now: number;
  timezone: string;
}

export function activity(src: ActivitySource): Activity {
  const { now } = src;
  const from = now - TIMELINE_HOURS * HOUR;
  const until = now + TIMELINE_HOURS * HOUR;
  const lanes: TimelineLane[] = [];
  let more = 0;
  for (const job of src.jobs) {
    const past: TimelineMark[] = [];
    for (const run of src.runsOf(job.id)) {
      const t = Date.parse(run.scheduled_for ?? run.started_at ?? "");
      if (t >= from && t <= now) past.push({ at: new Date(t).toISOString(), status: run.status, count: 1, run_id: run.id });
    }
    const next = src
      .nextRuns(job, LANE_MARKS + 1, now)
      .filter((d) => d.getTime() <= until)
      .map((d): TimelineMark => ({ at: d.toISOString(), status: "due", count: 1 }));
    if (!past.length && !next.length) continue;
    if (lanes.length === TIMELINE_LANES) {
      more++;
      continue;
    }
    past.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    lanes.push({ job_id: job.id, name: job.name, timezone: job.timezone, state: job.state, past: thin(past, from, now), next: thin(next, now, until) });
  }
  return {
    now: new Date(now).toISOString(),
    from: new Date(from).toISOString(),
    until: new Date(until).toISOString(),
    timezone: src.timezone,
    lanes,
    more_jobs: more,
    cost_days: costDays(src),
  };
}

/** A lane too dense to draw one mark per occurrence: one mark per slice, its worst outcome, with the count. */
function thin(marks: TimelineMark[], from: number, until: number): TimelineMark[] {
  if (marks.length <= LANE_MARKS) return marks;
  const slices = LANE_MARKS / 2;
  const width = (until - from) / slices;
  const out = new Map<number, TimelineMark>();
  for (const m of marks) {
    const i = Math.min(slices - 1, Math.floor((Date.parse(m.at) - from) / width));
    const had = out.get(i);
    if (!had) out.set(i, { at: new Date(from + (i + 0.5) * width).toISOString(), status: m.status, count: m.count });
    else {
      had.count += m.count;
      if (SEVERITY.indexOf(m.status) < SEVERITY.indexOf(had.status)) had.status = m.status;
    }
  }
  return [...out.values()];
}

function costDays(src: ActivitySource): CostDay[] {
  const today = startOfDayInZone(new Date(src.now), src.timezone).getTime();
  // Each day named by its noon, so that a 23- or 25-hour day (DST) keeps its own name.
  const days: CostDay[] = [];
  for (let i = COST_DAYS - 1; i >= 0; i--) days.push({ day: dayOf(today - i * 24 * HOUR + 12 * HOUR, src.timezone), cost_usd: 0, runs: 0, priced: 0 });
  const index = new Map(days.map((d, i) => [d.day, i]));
  const since = startOfDayInZone(new Date(today - (COST_DAYS - 1) * 24 * HOUR + 12 * HOUR), src.timezone).getTime();
  for (const run of src.allRuns()) {
    const t = Date.parse(run.started_at ?? "");
    if (!(t >= since) || t > src.now) continue;
    const day = days[index.get(dayOf(t, src.timezone)) ?? -1];
    if (!day) continue;
    day.runs++;
    const cost = run.usage?.cost_usd;
    if (typeof cost === "number") {
      day.cost_usd += cost;
      day.priced++;
    }
  }
  return days;
}

function dayOf(ms: number, timezone: string): string {
  return toIsoInZone(new Date(ms), timezone).slice(0, 10);
}
