/**
 * Schedule strings (SPEC §3): parsing with errors in words, next occurrences, descriptions.
 * croner computes cron occurrences; everything around it (validation, @every, one-shots) is
 * ours, because croner's messages are terse and sometimes off by one, and a cron that can
 * never fire does not throw there.
 *
 * DST, as croner does it with fixedTimeRule "no-wildcard" (checked in test/core/schedule.test.ts):
 * - A job whose second, minute and hour fields hold no `*` and no step (`30 2 * * *`,
 *   `30 2,14 * * *`) is a fixed-time job: a time in a spring-forward gap runs at the first
 *   instant after the gap (02:30 → 03:00), and a time that occurs twice runs once, at the
 *   first occurrence. That is the SPEC's rule. croner's default rule ("single-value") would
 *   treat `30 2,14 * * *` as an interval job and silently skip its 02:30 on that day.
 * - Every other job (`*\/30 * * * *`, `0 * * * *`, `* 2 * * *`) follows real elapsed time:
 *   times in the gap do not exist and are skipped, and in the repeated hour both 01:00 and
 *   both 01:30 run. Running `*\/30` twice at "03:00" or skipping a repeated half hour would
 *   break the "every 30 minutes" that users expect.
 */
import { Cron } from "croner";
import cronstrue from "cronstrue";
import { UserError } from "../kernel/errors.js";
import { isUtcZone, isValidTimezone, toIsoInZone, zonedWallTimeToDate } from "../kernel/time.js";

export type ScheduleKind = "cron" | "every" | "once";

export interface ParsedSchedule {
  kind: ScheduleKind;
  /** The schedule string as given. */
  source: string;
  timezone: string;
  runAt: Date | null;
  everyMs: number | null;
  /** For @every from `scheduleOfJob`: the job's created_at, used when no anchor is passed. */
  anchor?: Date;
}

export const MAX_SCHEDULE_LENGTH = 200;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const MAX_INTERVAL_MS = 366 * DAY;

const NICKNAMES: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

const FORMS_HINT = "other forms: @daily, @every 15m, 2026-12-01T09:00, in 20m";

// Parsing

/** Throws UserError with a plain-words message on any bad input. `now` resolves delays and checks one-shots are in the future. */
export function parseSchedule(schedule: string, timezone: string, now: Date = new Date()): ParsedSchedule {
  if (typeof schedule !== "string" || !schedule.trim()) {
    throw new UserError(`schedule is empty; give a cron expression such as "0 9 * * 1-5" (${FORMS_HINT})`);
  }
  if (schedule.length > MAX_SCHEDULE_LENGTH) {
    throw new UserError(`schedule is ${schedule.length} characters long; at most ${MAX_SCHEDULE_LENGTH} are allowed`);
  }
  if (!isValidTimezone(timezone)) {
    throw new UserError(`Unknown timezone "${timezone}"; use an IANA name such as Europe/Paris`);
  }
  const s = parse(schedule, timezone, now);
  if (s.kind === "cron" && !cronNext(entryOf(schedule, timezone), now.getTime(), 1).length) {
    throw new UserError(`never fires: ${whyNeverFires(cronPattern(schedule))}`);
  }
  if (s.kind === "once" && s.runAt!.getTime() <= now.getTime()) {
    throw new UserError(
      `one-shot time ${toIsoInZone(s.runAt!, timezone)} is in the past (now is ${toIsoInZone(now, timezone)}); give a future time or a delay such as "in 20m"`,
    );
  }
  return s;
}

/** Rebuilds a stored job's schedule: one-shots use the stored run_at; @every is anchored at created_at. Accepts past one-shots. */
export function scheduleOfJob(job: { schedule: string; timezone: string; run_at: string | null; created_at: string }): ParsedSchedule {
  const key = `${job.timezone}\u0000${job.schedule}`;
  const known = cronSchedules.get(key);
  if (known) return known;
  if (!isValidTimezone(job.timezone)) throw new UserError(`Unknown timezone "${job.timezone}"; use an IANA name such as Europe/Paris`);
  const created = new Date(job.created_at);
  const s = parse(job.schedule, job.timezone, created);
  if (s.kind === "once" && job.run_at) s.runAt = new Date(job.run_at);
  if (s.kind === "every") s.anchor = created;
  if (s.kind === "cron") {
    if (cronSchedules.size >= MAX_CACHED_SCHEDULES) cronSchedules.delete(cronSchedules.keys().next().value!);
    cronSchedules.set(key, Object.freeze(s));
  }
  return s;
}

/**
 * A cron schedule says nothing of its job (no anchor, no run_at): jobs with the same schedule
 * and timezone share one, frozen. At start-up each of 100,000 jobs asked for its own (the
 * broken-job check, then catch-up), a parse and two objects each.
 */
const cronSchedules = new Map<string, ParsedSchedule>();
const MAX_CACHED_SCHEDULES = 1024;

function parse(source: string, timezone: string, now: Date): ParsedSchedule {
  const text = source.trim();
  const lower = text.toLowerCase();
  if (lower.startsWith("@every")) {
    const everyMs = parseInterval(text.slice(6).trim(), "an @every interval");
    return { kind: "every", source, timezone, runAt: null, everyMs };
  }
  if (/^in\s/.test(lower)) {
    const runAt = new Date(now.getTime() + parseInterval(text.slice(3).trim(), "a delay"));
    return { kind: "once", source, timezone, runAt, everyMs: null };
  }
  if (/^\d{4}-\d/.test(text)) return { kind: "once", source, timezone, runAt: parseDateTime(text, timezone), everyMs: null };
  entryOf(source, timezone); // validates
  return { kind: "cron", source, timezone, runAt: null, everyMs: null };
}

const UNIT_MS: Record<string, number> = {
  s: SECOND,
  sec: SECOND,
  secs: SECOND,
  second: SECOND,
  seconds: SECOND,
  m: MINUTE,
  min: MINUTE,
  mins: MINUTE,
  minute: MINUTE,
  minutes: MINUTE,
  h: HOUR,
  hr: HOUR,
  hrs: HOUR,
  hour: HOUR,
  hours: HOUR,
  d: DAY,
  day: DAY,
  days: DAY,
};

/** "90s", "15m", "1h30m", "2 hours 30 minutes" → milliseconds, between 1 s and 366 days. */
function parseInterval(text: string, what: string): number {
  const bad = () => new UserError(`${what} must be a duration such as 90s, 15m, 2h or 1h30m (units d, h, m, s), got "${text}"`);
  if (!/^(\d+\s*[a-z]+\s*)+$/i.test(text)) throw bad();
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)\s*([a-z]+)/gi)) {
    const size = UNIT_MS[unit.toLowerCase()];
    if (size === undefined) throw bad();
    ms += Number(n) * size;
  }
  if (ms < SECOND) throw new UserError(`${what} must be at least 1 second, got "${text}"`);
  if (ms > MAX_INTERVAL_MS) {
    throw new UserError(`${what} must be at most 366 days, got "${text}"${what === "a delay" ? "; give a date-time instead" : ""}`);
  }
  return ms;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
const MONTH_LENGTHS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

const daysInMonth = (y: number, mo: number) => (mo === 2 && !(y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)) ? 28 : MONTH_LENGTHS[mo - 1]);

/** An ISO date-time; without an offset it is a wall-clock time in `timezone`. */
function parseDateTime(text: string, timezone: string): Date {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw new UserError(`a one-shot needs a time as well as a date, e.g. ${text}T09:00`);
  }
  const m = ISO.exec(text);
  if (!m) {
    throw new UserError(`"${text}" is not a date-time; write it as 2026-12-01T09:00, optionally with seconds and an offset such as +01:00 or Z`);
  }
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map((v) => Number(v ?? 0));
  const ms = Number((m[7] ?? "").slice(0, 3).padEnd(3, "0"));
  if (mo < 1 || mo > 12) throw new UserError(`month must be 01-12 in "${text}", got ${m[2]}`);
  if (d < 1 || d > daysInMonth(y, mo)) {
    throw new UserError(`"${text}" is not a real date: ${MONTH_NAMES[mo - 1]} ${y} has ${daysInMonth(y, mo)} days`);
  }
  if (h > 23) throw new UserError(`hour must be 00-23 in "${text}", got ${m[4]}`);
  if (mi > 59) throw new UserError(`minute must be 00-59 in "${text}", got ${m[5]}`);
  if (s > 59) throw new UserError(`second must be 00-59 in "${text}", got ${m[6]}`);
  const offset = m[8];
  if (!offset) return zonedWallTimeToDate(y, mo, d, h, mi, s, ms, timezone);
  let offsetMin = 0;
  if (offset.toUpperCase() !== "Z") {
    const digits = offset.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || 0);
    if (oh > 23 || om > 59) throw new UserError(`"${offset}" is not a UTC offset; write it as +01:00 or Z`);
    offsetMin = (offset[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms) - offsetMin * MINUTE);
}

// Cron validation

interface CronField {
  label: string;
  min: number;
  max: number;
  /** Names of the values from `min` up. */
  names?: string[];
  hint?: string;
}

const SECONDS: CronField = { label: "second", min: 0, max: 59 };
const FIELDS: CronField[] = [
  { label: "minute", min: 0, max: 59 },
  { label: "hour", min: 0, max: 23 },
  { label: "day of month", min: 1, max: 31 },
  {
    label: "month",
    min: 1,
    max: 12,
    hint: " (or JAN-DEC)",
    names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  },
  { label: "day of week", min: 0, max: 7, hint: " (or SUN-SAT)", names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] },
];
const [, , DOM, MONTH, DOW] = FIELDS;

/** Nickname expanded, whitespace normalised: the string croner gets. */
function cronPattern(schedule: string): string {
  const text = schedule.trim();
  if (!text.startsWith("@")) return text.split(/\s+/).join(" ");
  const expanded = NICKNAMES[text.toLowerCase()];
  if (!expanded) {
    throw new UserError(`unknown schedule nickname "${text}"; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>`);
  }
  return expanded;
}

/** Checks every field and returns the plain numbers each one selects (for "never fires" messages). */
function validateCron(pattern: string): number[][] {
  const parts = pattern.split(" ");
  if (parts.length !== 5 && parts.length !== 6) {
    throw new UserError(
      `a cron schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds first); got ${parts.length}` +
        (parts.length < 5 ? `; ${FORMS_HINT}` : ""),
    );
  }
  const fields = parts.length === 6 ? [SECONDS, ...FIELDS] : FIELDS;
  return parts.map((part, i) => validateField(fields[i], part));
}

function validateField(f: CronField, text: string): number[] {
  const { label } = f;
  const values: number[] = [];
  const isDom = f === DOM;
  const isDow = f === DOW;
  if (text === "?" && (isDom || isDow)) return values;
  if (text.includes("?")) throw new UserError(`${label}: "?" is only allowed as the whole day-of-month or day-of-week field`);
  if (isDow && text.startsWith("+")) {
    throw new UserError(`day of week: "+" (AND with day of month) is not supported; the two fields combine with OR`);
  }
  if (isDom && text.toUpperCase() === "LW") return values;

  const value = (v: string, item: string): number => {
    let n: number;
    if (/^\d+$/.test(v)) n = Number(v);
    else if (f.names && /^[a-z]+$/i.test(v)) {
      n = f.names.indexOf(v.toUpperCase());
      if (n < 0) throw new UserError(`${label} "${v}" is not a ${f === MONTH ? "month name (JAN-DEC)" : "day name (SUN-SAT)"}`);
      n += f.min;
    } else throw new UserError(`${label} must be a number${f.hint ?? ""}, got "${item}"`);
    if (n < f.min || n > f.max) throw new UserError(`${label} must be ${f.min}-${f.max}${f.hint ?? ""}, got ${v}`);
    return n;
  };

  for (const item of text.split(",")) {
    if (!item) throw new UserError(`${label} has an empty item in "${text}"`);
    const up = item.toUpperCase();
    if (isDom && up === "L") continue;
    if (isDom && up === "LW") throw new UserError(`day of month: LW must be the whole field, not part of "${text}"`);
    if (isDom && /^\d+W$/.test(up)) {
      value(item.slice(0, -1), item);
      continue;
    }
    if (isDow && item.includes("#")) {
      const [day, nth, extra] = item.split("#");
      value(day, item);
      if (extra !== undefined || !/^[1-5]$/.test(nth)) {
        throw new UserError(`day of week "${item}": the number after # is the week of the month and must be 1-5`);
      }
      continue;
    }
    if (isDow && /^[A-Z0-9]+L$/.test(up)) {
      value(item.slice(0, -1), item);
      continue;
    }
    const [range, step, extra] = item.split("/");
    if (extra !== undefined) throw new UserError(`${label} "${item}" has more than one "/"`);
    let lo = f.min;
    let hi = f.max;
    if (range === "") throw new UserError(`${label} step "${item}" needs a start, e.g. */${step}`);
    if (range !== "*") {
      const ends = range.split("-");
      if (ends.length > 2 || ends.some((e) => e === "")) throw new UserError(`${label} range "${range}" is not of the form low-high`);
      lo = value(ends[0], item);
      hi = ends.length === 2 ? value(ends[1], item) : step === undefined ? lo : f.max;
      if (lo > hi) {
        throw new UserError(`${label} range ${range} is reversed (ranges do not wrap around); write the smaller value first or use a list`);
      }
    }
    let by = 1;
    if (step !== undefined) {
      const span = f.max - f.min + 1;
      if (!/^\d+$/.test(step)) throw new UserError(`${label} step must be a whole number, got "${item}"`);
      by = Number(step);
      if (by < 1 || by > span) throw new UserError(`${label} step must be 1-${span}, got ${by} in "${item}"`);
    }
    for (let n = lo; n <= hi; n += by) values.push(n);
  }
  return values;
}

function whyNeverFires(pattern: string): string {
  const fields = validateCron(pattern);
  const [dom, months] = fields.slice(-3);
  const parts = pattern.split(" ").slice(-3);
  const plainDom = /^[\d,\-/]+$/.test(parts[0]) && (parts[2] === "*" || parts[2] === "?");
  if (plainDom) {
    const names = months.map((m) => MONTH_NAMES[m - 1]);
    const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)} have` : `${names[0]} has`;
    const days = [...new Set(dom)].sort((a, b) => a - b).join(" or ");
    return `${list} no day ${days} ("${pattern}")`;
  }
  return `no date matches "${pattern}"`;
}

// croner instances

interface CronEntry {
  cron: Cron;
  /** A memo of consecutive occurrences (ms) strictly after `from`: at start-up thousands of
   * jobs share a few patterns and ask about the same instant, and croner takes 5-100 µs per step. */
  from: number;
  times: number[];
}

// Bounded: each croner instance holds ~80 KB (a 10,000-entry year table).
const MAX_CACHED = 256;
const cache = new Map<string, CronEntry>();

function entryOf(schedule: string, timezone: string): CronEntry {
  // Keyed by the string as given, so a hit costs no parsing.
  const key = `${timezone}\u0000${schedule}`;
  let entry = cache.get(key);
  if (entry) return entry;
  const pattern = cronPattern(schedule);
  validateCron(pattern);
  let cron: Cron;
  try {
    cron = new Cron(pattern, {
      // UTC through an offset is exact (no DST) and 5-10x faster than through Intl.
      ...(isUtcZone(timezone) ? { utcOffset: 0 } : { timezone }),
      mode: "5-or-6-parts",
      domAndDow: false, // Vixie cron: day of month OR day of week
      fixedTimeRule: "no-wildcard",
      sloppyRanges: true, // lets "5/15" mean "5-59/15"; validateCron rejects a bare "/15"
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new UserError(`invalid cron schedule "${pattern}": ${msg.replace(/^CronPattern:\s*/, "")}`);
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  entry = { cron, from: 0, times: [] };
  cache.set(key, entry);
  return entry;
}

function cronNext(entry: CronEntry, after: number, count: number): number[] {
  const { times } = entry;
  let i: number;
  if (times.length && after >= entry.from && after <= times[times.length - 1]) {
    i = upperBound(times, after);
  } else {
    entry.from = after;
    entry.times = [];
    i = 0;
  }
  // Keep the memo short when callers walk forward through it.
  if (i > 256) {
    entry.from = entry.times[i - 1];
    entry.times = entry.times.slice(i);
    i = 0;
  }
  while (entry.times.length < i + count) {
    const last = entry.times.length ? entry.times[entry.times.length - 1] : entry.from;
    const next = entry.cron.nextRun(new Date(last));
    if (!next) break;
    entry.times.push(next.getTime());
  }
  return entry.times.slice(i, i + count);
}

/** Index of the first element greater than `x`. */
function upperBound(xs: number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Occurrences

function anchorMs(s: ParsedSchedule, anchor?: Date): number {
  return (anchor ?? s.anchor)?.getTime() ?? 0;
}

/** The first k ≥ 1 with anchor + k*every > after. */
function firstStep(anchor: number, every: number, after: number): number {
  return Math.max(1, Math.floor((after - anchor) / every) + 1);
}

/** The next `count` occurrences strictly after `after`. @every runs at anchor + k*everyMs (k ≥ 1; anchor = the job's created_at). */
export function nextOccurrences(s: ParsedSchedule, after: Date, count: number, anchor?: Date): Date[] {
  if (count <= 0) return [];
  const t = after.getTime();
  switch (s.kind) {
    case "once":
      return s.runAt && s.runAt.getTime() > t ? [s.runAt] : [];
    case "every": {
      const a = anchorMs(s, anchor);
      const every = s.everyMs!;
      const k = firstStep(a, every, t);
      const out: Date[] = [];
      for (let i = 0; i < count; i++) out.push(new Date(a + (k + i) * every));
      return out;
    }
    case "cron":
      return cronNext(entryOf(s.source, s.timezone), t, count).map((ms) => new Date(ms));
  }
}

/** Occurrences in (from, to], oldest first, at most `limit` (the oldest ones). */
export function occurrencesBetween(s: ParsedSchedule, from: Date, to: Date, limit: number, anchor?: Date): Date[] {
  const end = to.getTime();
  if (s.kind !== "cron") {
    const n = s.kind === "once" ? 1 : Math.min(limit, Math.ceil((end - from.getTime()) / s.everyMs!));
    return nextOccurrences(s, from, n, anchor)
      .filter((d) => d.getTime() <= end)
      .slice(0, limit);
  }
  const out: Date[] = [];
  const { cron } = entryOf(s.source, s.timezone);
  let prev: Date | null = from;
  while (out.length < limit && (prev = cron.nextRun(prev)) && prev.getTime() <= end) out.push(prev);
  return out;
}

/** The newest occurrence in (from, to], or null: what catch_up "latest" runs, however many were missed. */
export function latestOccurrenceBetween(s: ParsedSchedule, from: Date, to: Date, anchor?: Date): Date | null {
  const start = from.getTime();
  const end = to.getTime();
  let latest: number | null = null;
  if (s.kind === "once") latest = s.runAt?.getTime() ?? null;
  else if (s.kind === "every") {
    const a = anchorMs(s, anchor);
    const k = Math.floor((end - a) / s.everyMs!);
    latest = k >= 1 ? a + k * s.everyMs! : null;
  } else {
    // previousRuns is strictly before its reference, so step 1 ms past `to`.
    latest =
      entryOf(s.source, s.timezone)
        .cron.previousRuns(1, new Date(end + 1))[0]
        ?.getTime() ?? null;
  }
  return latest !== null && latest > start && latest <= end ? new Date(latest) : null;
}

// Description

/**
 * The schedule in words, e.g. "At 09:00 AM, Monday through Friday (Europe/Paris)": with its
 * timezone where the zone matters (a time of day or date), unless `withZone` is false (a
 * row that has the zone in a field of its own).
 */
export function describeSchedule(s: ParsedSchedule, withZone = true): string {
  const zone = withZone ? ` (${s.timezone})` : "";
  switch (s.kind) {
    case "once":
      return `Once, at ${toIsoInZone(s.runAt!, s.timezone)}${zone}`;
    case "every":
      return `Every ${describeInterval(s.everyMs!)}`;
    case "cron": {
      const pattern = cronPattern(s.source);
      let words: string;
      try {
        words = cronstrue.toString(pattern);
      } catch {
        words = `On cron schedule "${pattern}"`;
      }
      return `${words}${zone}`;
    }
  }
}

function describeInterval(ms: number): string {
  const units: [string, number][] = [
    ["day", DAY],
    ["hour", HOUR],
    ["minute", MINUTE],
    ["second", SECOND],
  ];
  const parts: string[] = [];
  for (const [name, size] of units) {
    const n = Math.floor(ms / size);
    ms -= n * size;
    if (n) parts.push(`${n} ${name}${n === 1 ? "" : "s"}`);
  }
  return parts.length === 1 && parts[0].startsWith("1 ") ? parts[0].slice(2) : parts.join(" ");
}
