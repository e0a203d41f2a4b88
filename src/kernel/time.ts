/**
 * Time zone arithmetic on top of Intl, without a date library. Every function takes an IANA
 * zone name; callers validate it first with `isValidTimezone`.
 */

import { existsSync, readlinkSync } from "node:fs";
import path from "node:path";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const ZONE_NAME = /^[A-Za-z]+(?:[/_+-][A-Za-z0-9_+-]+)*$/;

/**
 * The machine's zone: TZ, else the zone /etc/localtime links to, else what Intl says. Read
 * from the file system first because the first Intl call loads ICU's zone data, 12-15 ms of
 * every start-up here, which a server whose jobs are all in UTC never needs otherwise.
 */
export function systemTimezone(env: NodeJS.ProcessEnv = process.env): string {
  const named = env.TZ !== undefined ? env.TZ.replace(/^:/, "") : localtimeLink();
  if (named && ZONE_NAME.test(named) && !named.includes("..")) {
    // Intl's name for these (and what a person expects to read) is UTC.
    if (/^(?:Etc\/)?(?:UTC|UCT|Universal|Zulu)$/.test(named)) return "UTC";
    if (existsSync(path.join("/usr/share/zoneinfo", named))) return named;
  }
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** "Europe/Paris" when /etc/localtime links to …/zoneinfo/Europe/Paris. */
function localtimeLink(): string | null {
  try {
    const target = readlinkSync("/etc/localtime");
    const at = target.lastIndexOf("zoneinfo/");
    return at >= 0 ? target.slice(at + "zoneinfo/".length) : null;
  } catch {
    return null;
  }
}

interface Zone {
  /** Formats an instant as its wall clock, "MM/DD/YYYY, HH:MM:SS"; null when the zone is UTC. */
  format: Intl.DateTimeFormat | null;
  /** UTC hour → the offset throughout that hour, or null if it changes within it. */
  hours: Map<number, number | null>;
}

// One formatter per zone: constructing Intl.DateTimeFormat costs far more than using one.
const zones = new Map<string, Zone>();
const validity = new Map<string, boolean>();

function zone(timezone: string): Zone {
  let z = zones.get(timezone);
  if (!z && timezone === "UTC") {
    // Needs no formatter: a server whose jobs are all in UTC never loads ICU's zone data.
    z = { format: null, hours: new Map() };
    zones.set(timezone, z);
  }
  if (!z) {
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    z = { format: format.resolvedOptions().timeZone === "UTC" ? null : format, hours: new Map() };
    zones.set(timezone, z);
  }
  return z;
}

/** True for IANA names (and the aliases Intl knows, such as UTC); false for "", offsets, typos. */
export function isValidTimezone(tz: string): boolean {
  let ok = validity.get(tz);
  if (ok === undefined) {
    // Offsets such as "+01:00" are accepted by newer Intl versions but are not zone names.
    ok = /^[A-Za-z]/.test(tz) && tz.trim() === tz;
    if (ok) {
      try {
        zone(tz);
      } catch {
        ok = false;
      }
    }
    // Bounded because the names come from users.
    if (validity.size >= 1000) validity.clear();
    validity.set(tz, ok);
  }
  return ok;
}

/** True for UTC and its aliases (Etc/UTC, GMT, Zulu...): zones that never change offset. */
export function isUtcZone(timezone: string): boolean {
  return zone(timezone).format === null;
}

/** Date.UTC, but years 0-99 are not moved to the 1900s. */
function utcMs(y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  return y >= 0 && y < 100 ? new Date(t).setUTCFullYear(y) : t;
}

const WALL_CLOCK = /^(\d+)\D+(\d+)\D+(\d+)\D+(\d+)\D+(\d+)\D+(\d+)/;

/** The zone's offset from UTC at `ms`, in milliseconds (east positive). */
export function offsetAt(ms: number, timezone: string): number {
  const z = zone(timezone);
  if (!z.format) return 0;
  // An Intl call costs microseconds, and the times asked about cluster (now, today's runs),
  // so remember each hour whose two ends share an offset: no zone changes offset twice within an hour.
  const hour = Math.floor(ms / HOUR);
  let offset = z.hours.get(hour);
  if (offset === undefined) {
    const start = hour * HOUR;
    const first = readOffset(z.format, start);
    offset = first === readOffset(z.format, start + HOUR - 1000) ? first : null;
    if (z.hours.size >= 10_000) z.hours.clear();
    z.hours.set(hour, offset);
  }
  return offset ?? readOffset(z.format, ms);
}

function readOffset(format: Intl.DateTimeFormat, ms: number): number {
  // format() and a regex are about three times faster than formatToParts().
  const m = WALL_CLOCK.exec(format.format(ms));
  if (!m) throw new Error(`cannot read the wall clock in ${format.resolvedOptions().timeZone}`);
  return utcMs(+m[3], +m[1], +m[2], +m[4], +m[5], +m[6]) - Math.floor(ms / 1000) * 1000;
}

export interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

/** The calendar date and clock time that `date` shows in `timezone`. */
export function wallClockInZone(date: Date, timezone: string): WallClock {
  const local = new Date(date.getTime() + offsetAt(date.getTime(), timezone));
  return {
    year: local.getUTCFullYear(),
    month: local.getUTCMonth() + 1,
    day: local.getUTCDate(),
    hour: local.getUTCHours(),
    minute: local.getUTCMinutes(),
    second: local.getUTCSeconds(),
    millisecond: local.getUTCMilliseconds(),
  };
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** ISO 8601 with milliseconds and the zone's offset, e.g. 2026-12-01T09:00:00.000+01:00 (UTC is +00:00). */
export function toIsoInZone(date: Date, timezone: string): string {
  // Rounded to whole minutes (only pre-1900 local mean times have seconds), and the wall time
  // is derived from that same offset, so the string always reads back as the same instant.
  const offMin = Math.round(offsetAt(date.getTime(), timezone) / MINUTE);
  const wall = new Date(date.getTime() + offMin * MINUTE).toISOString().slice(0, 23);
  const abs = Math.abs(offMin);
  return `${wall}${offMin < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

export function toIsoUtc(date: Date): string {
  return date.toISOString();
}

/**
 * The instant a wall-clock time names in `timezone`. SPEC's DST rule: a time that does not
 * exist (in a spring-forward gap) is the first instant after the gap; an ambiguous one (in a
 * fall-back overlap) is its first occurrence.
 */
export function zonedWallTimeToDate(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number, timezone: string): Date {
  const wall = utcMs(y, mo, d, h, mi, s, ms);
  // A day either side is far enough to see both offsets of any transition near `wall`.
  const before = offsetAt(wall - DAY, timezone);
  const after = offsetAt(wall + DAY, timezone);
  const fits = [wall - before, wall - after].filter((t) => offsetAt(t, timezone) === wall - t);
  if (fits.length) return new Date(Math.min(...fits));
  if (before === after) return new Date(wall - before);
  // In a gap: find the transition, the first instant on the new offset.
  let lo = wall - after; // still on the old offset
  let hi = wall - before; // already on the new one
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(mid, timezone) === before) lo = mid;
    else hi = mid;
  }
  return new Date(hi);
}

/** The instant the calendar day containing `date` began in `timezone` (not always at 00:00). */
export function startOfDayInZone(date: Date, timezone: string): Date {
  const w = wallClockInZone(date, timezone);
  return zonedWallTimeToDate(w.year, w.month, w.day, 0, 0, 0, 0, timezone);
}

/**
 * Monotonic milliseconds, the clock performance.now() reads, without performance: that global
 * loads perf_hooks' modules into the process at its first use (issue 27's RSS).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
