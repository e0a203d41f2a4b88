import { describe, expect, it } from "vitest";
import { UserError } from "../../src/kernel/errors.js";
import { describeSchedule, latestOccurrenceBetween, nextOccurrences, occurrencesBetween, parseSchedule, scheduleOfJob } from "../../src/core/schedule.js";
import { toIsoInZone } from "../../src/kernel/time.js";

const NY = "America/New_York";
const NOW = new Date("2026-01-01T00:00:00Z");

/** The next `n` occurrences after `after`, as ISO strings in the schedule's zone. */
function next(schedule: string, tz: string, after: string, n: number): string[] {
  const s = parseSchedule(schedule, tz, NOW);
  return nextOccurrences(s, new Date(after), n).map((d) => toIsoInZone(d, tz));
}

function errorOf(schedule: string, tz = "UTC", now = NOW): string {
  try {
    parseSchedule(schedule, tz, now);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error(`"${schedule}" was accepted`);
}

describe("parseSchedule: kinds", () => {
  it("tells cron, @every and one-shots apart and keeps the schedule as given", () => {
    expect(parseSchedule("0 9 * * 1-5", "UTC", NOW)).toMatchObject({ kind: "cron", source: "0 9 * * 1-5", timezone: "UTC", runAt: null, everyMs: null });
    expect(parseSchedule(" @every 15m ", "UTC", NOW)).toMatchObject({ kind: "every", source: " @every 15m ", everyMs: 900_000, runAt: null });
    expect(parseSchedule("2026-12-01T09:00", "UTC", NOW)).toMatchObject({ kind: "once", everyMs: null });
    expect(parseSchedule("in 20m", "UTC", NOW)).toMatchObject({ kind: "once", runAt: new Date("2026-01-01T00:20:00Z") });
  });
});

describe("cron: DST in America/New_York", () => {
  it("runs a fixed time that falls in the spring-forward gap at the first instant after it (30 2 * * *)", () => {
    expect(next("30 2 * * *", NY, "2026-03-07T00:00:00-05:00", 3)).toEqual([
      "2026-03-07T02:30:00.000-05:00",
      "2026-03-08T03:00:00.000-04:00",
      "2026-03-09T02:30:00.000-04:00",
    ]);
  });

  it("runs a fixed time that occurs twice only once, at its first occurrence (30 1 * * *)", () => {
    const runs = next("30 1 * * *", NY, "2026-10-31T00:00:00-04:00", 3);
    expect(runs).toEqual(["2026-10-31T01:30:00.000-04:00", "2026-11-01T01:30:00.000-04:00", "2026-11-02T01:30:00.000-05:00"]);
  });

  it("does not run the repeated fixed time again when asked from between its two occurrences", () => {
    expect(next("30 1 * * *", NY, "2026-11-01T01:00:00-05:00", 1)).toEqual(["2026-11-02T01:30:00.000-05:00"]);
  });

  it("treats a list of hours as fixed times too (30 2,14 * * *): the 02:30 in the gap still runs, at 03:00", () => {
    expect(next("30 2,14 * * *", NY, "2026-03-08T00:00:00-05:00", 2)).toEqual(["2026-03-08T03:00:00.000-04:00", "2026-03-08T14:30:00.000-04:00"]);
  });

  it("runs a repeated time from a list of hours once on fall-back (30 1,13 * * *)", () => {
    // croner's default fixedTimeRule ("single-value") would run 01:30 twice here.
    expect(next("30 1,13 * * *", NY, "2026-11-01T00:00:00-04:00", 2)).toEqual(["2026-11-01T01:30:00.000-04:00", "2026-11-01T13:30:00.000-05:00"]);
  });

  it("runs several fixed times that fall in the same gap once, at its end (0,30 2 * * *)", () => {
    expect(next("0,30 2 * * *", NY, "2026-03-08T00:00:00-05:00", 2)).toEqual(["2026-03-08T03:00:00.000-04:00", "2026-03-09T02:00:00.000-04:00"]);
  });

  it("follows real elapsed time for interval jobs on spring-forward: the times in the gap are skipped (*/30 * * * *)", () => {
    expect(next("*/30 * * * *", NY, "2026-03-08T01:00:00-05:00", 3)).toEqual([
      "2026-03-08T01:30:00.000-05:00",
      "2026-03-08T03:00:00.000-04:00",
      "2026-03-08T03:30:00.000-04:00",
    ]);
  });

  it("follows real elapsed time for interval jobs on fall-back: both repeated half hours run (*/30 * * * *)", () => {
    expect(next("*/30 * * * *", NY, "2026-11-01T00:30:00-04:00", 5)).toEqual([
      "2026-11-01T01:00:00.000-04:00",
      "2026-11-01T01:30:00.000-04:00",
      "2026-11-01T01:00:00.000-05:00",
      "2026-11-01T01:30:00.000-05:00",
      "2026-11-01T02:00:00.000-05:00",
    ]);
  });

  it("keeps occurrences 30 real minutes apart across both changes", () => {
    const s = parseSchedule("*/30 * * * *", NY, NOW);
    for (const from of ["2026-03-08T04:00:00Z", "2026-11-01T03:00:00Z"]) {
      const runs = nextOccurrences(s, new Date(from), 12).map((d) => d.getTime());
      for (let i = 1; i < runs.length; i++) expect(runs[i] - runs[i - 1]).toBe(30 * 60_000);
    }
  });
});

describe("cron: calendar rules", () => {
  it("finds the next Feb 29 in a leap year (0 0 29 2 *)", () => {
    expect(next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2)).toEqual(["2028-02-29T00:00:00.000+00:00", "2032-02-29T00:00:00.000+00:00"]);
  });

  it("skips months without a 31st (0 0 31 * *)", () => {
    expect(next("0 0 31 * *", "UTC", "2026-01-01T00:00:00Z", 5).map((d) => d.slice(0, 10))).toEqual([
      "2026-01-31",
      "2026-03-31",
      "2026-05-31",
      "2026-07-31",
      "2026-08-31",
    ]);
  });

  it("runs on the last day of each month with L, including Feb 29 in leap years", () => {
    expect(next("0 0 L * *", "UTC", "2026-01-01T00:00:00Z", 4).map((d) => d.slice(0, 10))).toEqual(["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]);
    expect(next("0 0 L 2 *", "UTC", "2027-03-01T00:00:00Z", 1)[0].slice(0, 10)).toBe("2028-02-29");
  });

  it("runs on the second Friday of the month with 5#2", () => {
    expect(next("0 9 * * 5#2", "UTC", "2026-01-01T00:00:00Z", 3).map((d) => d.slice(0, 10))).toEqual(["2026-01-09", "2026-02-13", "2026-03-13"]);
  });

  it("runs on the last Friday with 5L and the weekday nearest the 15th with 15W", () => {
    expect(next("0 9 * * 5L", "UTC", "2026-01-01T00:00:00Z", 2).map((d) => d.slice(0, 10))).toEqual(["2026-01-30", "2026-02-27"]);
    // 2026-02-15 is a Sunday: the nearest weekday is Monday the 16th.
    expect(next("0 9 15W * *", "UTC", "2026-02-01T00:00:00Z", 1)[0].slice(0, 10)).toBe("2026-02-16");
  });

  it("combines day of month and day of week with OR, as Vixie cron does (0 9 1 * MON)", () => {
    expect(next("0 9 1 * MON", "UTC", "2026-01-01T00:00:00Z", 7).map((d) => d.slice(0, 10))).toEqual([
      "2026-01-01",
      "2026-01-05",
      "2026-01-12",
      "2026-01-19",
      "2026-01-26",
      "2026-02-01",
      "2026-02-02",
    ]);
  });

  it("accepts month and day names in any case, and 7 for Sunday", () => {
    expect(next("0 9 * * mon-FRI", "UTC", "2026-01-02T10:00:00Z", 2).map((d) => d.slice(0, 10))).toEqual(["2026-01-05", "2026-01-06"]);
    expect(next("0 0 1 JAN,jul *", "UTC", "2026-01-02T00:00:00Z", 2).map((d) => d.slice(0, 10))).toEqual(["2026-07-01", "2027-01-01"]);
    expect(next("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", 1)).toEqual(next("0 0 * * 0", "UTC", "2026-01-01T00:00:00Z", 1));
  });

  it("reads N/S as a step starting at N, and a-b/S as a step within a range", () => {
    expect(next("5/20 * * * *", "UTC", "2026-01-01T00:00:00Z", 3).map((d) => d.slice(11, 16))).toEqual(["00:05", "00:25", "00:45"]);
    expect(next("10-30/10 9 * * *", "UTC", "2026-01-01T00:00:00Z", 4).map((d) => d.slice(11, 16))).toEqual(["09:10", "09:20", "09:30", "09:10"]);
  });

  it("reads 6 fields as seconds first", () => {
    expect(next("*/15 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3).map((d) => d.slice(11, 19))).toEqual(["00:00:15", "00:00:30", "00:00:45"]);
    expect(next("30 0 9 * * *", "UTC", "2026-01-01T00:00:00Z", 1)).toEqual(["2026-01-01T09:00:30.000+00:00"]);
  });

  it("computes a cron in the schedule's timezone", () => {
    expect(next("0 9 * * *", "Europe/Paris", "2026-06-30T12:00:00Z", 1)).toEqual(["2026-07-01T09:00:00.000+02:00"]);
    expect(next("0 9 * * *", "Asia/Kolkata", "2026-06-30T12:00:00Z", 1)).toEqual(["2026-07-01T09:00:00.000+05:30"]);
  });

  it("expands the nicknames", () => {
    const from = "2026-03-15T10:20:00Z";
    const same: [string, string][] = [
      ["@yearly", "0 0 1 1 *"],
      ["@annually", "0 0 1 1 *"],
      ["@monthly", "0 0 1 * *"],
      ["@weekly", "0 0 * * 0"],
      ["@daily", "0 0 * * *"],
      ["@midnight", "0 0 * * *"],
      ["@hourly", "0 * * * *"],
      ["@DAILY", "0 0 * * *"],
    ];
    for (const [nick, cron] of same) expect(next(nick, "UTC", from, 3), nick).toEqual(next(cron, "UTC", from, 3));
    expect(next("@weekly", "UTC", from, 1)).toEqual(["2026-03-22T00:00:00.000+00:00"]);
  });

  it("gives the same answers whatever order the times are asked in", () => {
    const s = parseSchedule("*/7 9-17 * * 1-5", "Europe/Paris", NOW);
    const all = nextOccurrences(s, NOW, 400).map((d) => d.getTime());
    expect(nextOccurrences(s, new Date(NOW.getTime() - 7 * 86_400_000), 1)[0].getTime()).toBeLessThan(all[0]);
    for (const i of [5, 200, 3, 150, 299, 0, 42, 42, 120, 380]) {
      const p = all[i] + 1;
      expect(
        nextOccurrences(s, new Date(p), 3).map((d) => d.getTime()),
        `after #${i}`,
      ).toEqual(all.filter((t) => t > p).slice(0, 3));
    }
    expect(nextOccurrences(s, new Date(all[10]), 1)[0].getTime()).toBe(all[11]);
  });

  it("still answers for a schedule after many other patterns have been used", () => {
    const first = parseSchedule("17 3 * * *", "UTC", NOW);
    for (let i = 0; i < 700; i++) nextOccurrences(parseSchedule(`${i % 60} ${Math.floor(i / 60)} * * *`, "Europe/Paris", NOW), NOW, 1);
    expect(nextOccurrences(first, NOW, 1)[0].toISOString()).toBe("2026-01-01T03:17:00.000Z");
  });
});

describe("@every", () => {
  it("parses seconds, minutes, hours and combinations", () => {
    expect(parseSchedule("@every 90s", "UTC", NOW).everyMs).toBe(90_000);
    expect(parseSchedule("@every 15m", "UTC", NOW).everyMs).toBe(900_000);
    expect(parseSchedule("@every 2h", "UTC", NOW).everyMs).toBe(7_200_000);
    expect(parseSchedule("@every 1h30m", "UTC", NOW).everyMs).toBe(5_400_000);
    expect(parseSchedule("@EVERY 1d", "UTC", NOW).everyMs).toBe(86_400_000);
  });

  it("runs at anchor + k * interval, anchored at the job's creation", () => {
    const s = parseSchedule("@every 15m", "UTC", NOW);
    const created = new Date("2026-01-01T12:00:07Z");
    const runs = nextOccurrences(s, new Date("2026-01-01T12:20:00Z"), 2, created).map((d) => d.toISOString());
    expect(runs).toEqual(["2026-01-01T12:30:07.000Z", "2026-01-01T12:45:07.000Z"]);
  });

  it("does not count the creation instant itself as an occurrence", () => {
    const s = parseSchedule("@every 15m", "UTC", NOW);
    const created = new Date("2026-01-01T12:00:07Z");
    expect(nextOccurrences(s, created, 1, created)[0].toISOString()).toBe("2026-01-01T12:15:07.000Z");
    expect(nextOccurrences(s, new Date("2026-01-01T11:00:00Z"), 1, created)[0].toISOString()).toBe("2026-01-01T12:15:07.000Z");
  });

  it("uses the job's created_at as anchor when rebuilt with scheduleOfJob", () => {
    const s = scheduleOfJob({ schedule: "@every 1h", timezone: "UTC", run_at: null, created_at: "2026-01-01T10:10:10.000Z" });
    expect(nextOccurrences(s, new Date("2026-01-01T12:00:00Z"), 1)[0].toISOString()).toBe("2026-01-01T12:10:10.000Z");
  });

  it("gives jobs with the same cron schedule and timezone one shared schedule, and each @every job its own anchor", () => {
    const a = scheduleOfJob({ schedule: "30 2 * * *", timezone: NY, run_at: null, created_at: "2026-01-01T00:00:00.000Z" });
    const b = scheduleOfJob({ schedule: "30 2 * * *", timezone: NY, run_at: null, created_at: "2026-02-01T00:00:00.000Z" });
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(scheduleOfJob({ schedule: "30 2 * * *", timezone: "UTC", run_at: null, created_at: "2026-01-01T00:00:00.000Z" })).not.toBe(a);
    // The shared one still keeps the DST rule of a fixed-time job: 02:30 in the spring-forward gap runs at 03:00.
    expect(toIsoInZone(nextOccurrences(b, new Date("2026-03-07T12:00:00Z"), 1)[0], NY)).toBe("2026-03-08T03:00:00.000-04:00");
    const e1 = scheduleOfJob({ schedule: "@every 1h", timezone: "UTC", run_at: null, created_at: "2026-01-01T10:10:10.000Z" });
    const e2 = scheduleOfJob({ schedule: "@every 1h", timezone: "UTC", run_at: null, created_at: "2026-01-01T10:20:00.000Z" });
    expect(e1.anchor!.toISOString()).toBe("2026-01-01T10:10:10.000Z");
    expect(e2.anchor!.toISOString()).toBe("2026-01-01T10:20:00.000Z");
    // A timezone this system does not know is still refused, however often the schedule was seen.
    expect(() => scheduleOfJob({ schedule: "30 2 * * *", timezone: "Mars/Olympus", run_at: null, created_at: "2026-01-01T00:00:00.000Z" })).toThrow(UserError);
  });

  it("keeps real elapsed time across DST", () => {
    const s = parseSchedule("@every 1h", NY, NOW);
    const created = new Date("2026-03-08T05:00:00Z");
    const runs = nextOccurrences(s, created, 3, created).map((d) => toIsoInZone(d, NY));
    expect(runs).toEqual(["2026-03-08T01:00:00.000-05:00", "2026-03-08T03:00:00.000-04:00", "2026-03-08T04:00:00.000-04:00"]);
  });
});

describe("one-shots", () => {
  it("reads an ISO time without offset in the schedule's timezone", () => {
    expect(parseSchedule("2026-12-01T09:00", "Europe/Paris", NOW).runAt!.toISOString()).toBe("2026-12-01T08:00:00.000Z");
    expect(parseSchedule("2026-07-01T09:00:30", "Europe/Paris", NOW).runAt!.toISOString()).toBe("2026-07-01T07:00:30.000Z");
    expect(parseSchedule("2026-07-01T09:00:30.25", "UTC", NOW).runAt!.toISOString()).toBe("2026-07-01T09:00:30.250Z");
  });

  it("reads an ISO time with an offset as absolute, whatever the timezone", () => {
    expect(parseSchedule("2026-12-01T09:00:00Z", "Europe/Paris", NOW).runAt!.toISOString()).toBe("2026-12-01T09:00:00.000Z");
    expect(parseSchedule("2026-12-01T09:00+05:30", "Europe/Paris", NOW).runAt!.toISOString()).toBe("2026-12-01T03:30:00.000Z");
    expect(parseSchedule("2026-12-01T09:00:00.000-05:00", "Asia/Kolkata", NOW).runAt!.toISOString()).toBe("2026-12-01T14:00:00.000Z");
  });

  it("applies the DST rule to a one-shot wall time too", () => {
    expect(toIsoInZone(parseSchedule("2026-03-08T02:30", NY, NOW).runAt!, NY)).toBe("2026-03-08T03:00:00.000-04:00");
    expect(toIsoInZone(parseSchedule("2026-11-01T01:30", NY, NOW).runAt!, NY)).toBe("2026-11-01T01:30:00.000-04:00");
  });

  it("resolves a delay from now, case-insensitive and trimmed", () => {
    const at = (s: string) => parseSchedule(s, "UTC", NOW).runAt!.toISOString();
    expect(at("in 2h30m")).toBe("2026-01-01T02:30:00.000Z");
    expect(at("  IN 45S ")).toBe("2026-01-01T00:00:45.000Z");
    expect(at("in 1d")).toBe("2026-01-02T00:00:00.000Z");
    expect(at("in 20 minutes")).toBe("2026-01-01T00:20:00.000Z");
  });

  it("has one occurrence, and none once it has passed", () => {
    const s = parseSchedule("2026-12-01T09:00Z", "UTC", NOW);
    expect(nextOccurrences(s, NOW, 5)).toEqual([new Date("2026-12-01T09:00:00Z")]);
    expect(nextOccurrences(s, new Date("2026-12-01T09:00:00Z"), 5)).toEqual([]);
  });

  it("uses the stored run_at when rebuilt, never re-resolving the delay", () => {
    const job = { schedule: "in 20m", timezone: "UTC", run_at: "2026-01-01T00:20:00.000+00:00", created_at: "2026-01-01T00:00:00.000Z" };
    expect(scheduleOfJob(job).runAt!.toISOString()).toBe("2026-01-01T00:20:00.000Z");
  });

  it("rebuilds a past one-shot without complaining", () => {
    const job = { schedule: "2020-01-01T09:00", timezone: "Europe/Paris", run_at: "2020-01-01T09:00:00.000+01:00", created_at: "2019-12-31T00:00:00.000Z" };
    const s = scheduleOfJob(job);
    expect(s.runAt!.toISOString()).toBe("2020-01-01T08:00:00.000Z");
    expect(nextOccurrences(s, NOW, 1)).toEqual([]);
  });
});

describe("occurrencesBetween and latestOccurrenceBetween", () => {
  it("lists occurrences in (from, to], oldest first", () => {
    const s = parseSchedule("0 * * * *", "UTC", NOW);
    const got = occurrencesBetween(s, new Date("2026-01-01T01:00:00Z"), new Date("2026-01-01T04:00:00Z"), 100);
    expect(got.map((d) => d.toISOString().slice(11, 16))).toEqual(["02:00", "03:00", "04:00"]);
  });

  it("stops at the limit, keeping the oldest", () => {
    const s = parseSchedule("* * * * *", "UTC", NOW);
    const got = occurrencesBetween(s, NOW, new Date("2026-01-02T00:00:00Z"), 3);
    expect(got.map((d) => d.toISOString().slice(11, 16))).toEqual(["00:01", "00:02", "00:03"]);
  });

  it("works for @every and one-shots", () => {
    const every = parseSchedule("@every 10m", "UTC", NOW);
    const got = occurrencesBetween(every, new Date("2026-01-01T00:05:00Z"), new Date("2026-01-01T00:30:00Z"), 100, NOW);
    expect(got.map((d) => d.toISOString().slice(11, 16))).toEqual(["00:10", "00:20", "00:30"]);
    const once = parseSchedule("2026-01-01T00:10Z", "UTC", NOW);
    expect(occurrencesBetween(once, NOW, new Date("2026-01-01T00:10:00Z"), 10)).toEqual([new Date("2026-01-01T00:10:00Z")]);
    expect(occurrencesBetween(once, new Date("2026-01-01T00:10:00Z"), new Date("2026-01-02T00:00:00Z"), 10)).toEqual([]);
  });

  it("finds the newest occurrence of a long downtime without listing them all", () => {
    const from = new Date("2026-01-01T00:00:00Z");
    const to = new Date("2026-03-01T12:34:56Z");
    expect(latestOccurrenceBetween(parseSchedule("* * * * * *", "UTC", NOW), from, to)?.toISOString()).toBe("2026-03-01T12:34:56.000Z");
    expect(latestOccurrenceBetween(parseSchedule("@every 1h", "UTC", NOW), from, to, from)?.toISOString()).toBe("2026-03-01T12:00:00.000Z");
    expect(latestOccurrenceBetween(parseSchedule("0 0 1 1 *", "UTC", NOW), from, to)).toBeNull();
  });

  it("picks the first of a repeated fixed time as the newest occurrence", () => {
    const s = parseSchedule("30 1 * * *", NY, NOW);
    const got = latestOccurrenceBetween(s, new Date("2026-10-31T12:00:00Z"), new Date("2026-11-01T12:00:00Z"));
    expect(toIsoInZone(got!, NY)).toBe("2026-11-01T01:30:00.000-04:00");
  });
});

describe("describeSchedule", () => {
  it("describes a cron in words with its timezone", () => {
    expect(describeSchedule(parseSchedule("0 9 * * MON-FRI", "Europe/Paris", NOW))).toBe("At 09:00 AM, Monday through Friday (Europe/Paris)");
    expect(describeSchedule(parseSchedule("@daily", NY, NOW))).toBe("At 12:00 AM (America/New_York)");
  });

  it("describes @every intervals", () => {
    expect(describeSchedule(parseSchedule("@every 15m", "UTC", NOW))).toBe("Every 15 minutes");
    expect(describeSchedule(parseSchedule("@every 1h", "UTC", NOW))).toBe("Every hour");
    expect(describeSchedule(parseSchedule("@every 1h30m", "UTC", NOW))).toBe("Every 1 hour 30 minutes");
  });

  it("describes a one-shot with its time in the zone", () => {
    expect(describeSchedule(parseSchedule("2026-12-01T09:00", "Europe/Paris", NOW))).toBe("Once, at 2026-12-01T09:00:00.000+01:00 (Europe/Paris)");
  });
});

describe("parseSchedule: errors in words", () => {
  it("names the field and its range for out-of-range cron values", () => {
    expect(errorOf("60 * * * *")).toBe("minute must be 0-59, got 60");
    expect(errorOf("0 24 * * *")).toBe("hour must be 0-23, got 24");
    expect(errorOf("0 0 32 * *")).toBe("day of month must be 1-31, got 32");
    expect(errorOf("0 0 0 * *")).toBe("day of month must be 1-31, got 0");
    expect(errorOf("0 0 * 13 *")).toBe("month must be 1-12 (or JAN-DEC), got 13");
    expect(errorOf("0 0 * * 9")).toBe("day of week must be 0-7 (or SUN-SAT), got 9");
    expect(errorOf("60 0 0 * * *")).toBe("second must be 0-59, got 60");
    expect(errorOf("0 1-60 * * *")).toBe("hour must be 0-23, got 60");
  });

  it("counts the fields", () => {
    expect(errorOf("1 2 3 4 5 6 7")).toBe("a cron schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds first); got 7");
    expect(errorOf("every day")).toMatch(/^a cron schedule has 5 fields .*; got 2; other forms: @daily/);
  });

  it("rejects bad steps, reversed ranges and malformed items", () => {
    expect(errorOf("*/0 * * * *")).toBe('minute step must be 1-60, got 0 in "*/0"');
    expect(errorOf("*/61 * * * *")).toBe('minute step must be 1-60, got 61 in "*/61"');
    expect(errorOf("*/x * * * *")).toBe('minute step must be a whole number, got "*/x"');
    expect(errorOf("/5 * * * *")).toMatch(/needs a start/);
    expect(errorOf("30-10 * * * *")).toMatch(/^minute range 30-10 is reversed/);
    expect(errorOf("0 0 * * FRI-MON")).toMatch(/^day of week range FRI-MON is reversed/);
    expect(errorOf("1,,2 * * * *")).toBe('minute has an empty item in "1,,2"');
    expect(errorOf("1-2-3 * * * *")).toMatch(/not of the form low-high/);
    expect(errorOf("L * * * *")).toBe('minute must be a number, got "L"');
  });

  it("rejects unknown month and day names", () => {
    expect(errorOf("0 0 * FOO *")).toBe('month "FOO" is not a month name (JAN-DEC)');
    expect(errorOf("0 0 * * FOO")).toBe('day of week "FOO" is not a day name (SUN-SAT)');
    expect(errorOf("0 0 * * MONDAY")).toBe('day of week "MONDAY" is not a day name (SUN-SAT)');
    expect(errorOf("0 0 MON * *")).toBe('day of month must be a number, got "MON"');
  });

  it("rejects misused special characters", () => {
    expect(errorOf("0 0 * * 5#6")).toMatch(/must be 1-5/);
    expect(errorOf("0 0 * * +MON")).toMatch(/combine with OR/);
    expect(errorOf("? 0 * * *")).toMatch(/"\?" is only allowed/);
    expect(errorOf("@fortnightly")).toMatch(/^unknown schedule nickname "@fortnightly"/);
  });

  it("rejects a cron that can never fire, saying why", () => {
    expect(errorOf("0 0 30 2 *")).toBe('never fires: February has no day 30 ("0 0 30 2 *")');
    expect(errorOf("0 0 31 4 *")).toBe('never fires: April has no day 31 ("0 0 31 4 *")');
    expect(errorOf("0 0 31 2,4 *")).toMatch(/^never fires: February and April have no day 31/);
  });

  it("rejects a one-shot in the past, saying the time and now", () => {
    expect(errorOf("2025-06-01T09:00", "Europe/Paris")).toBe(
      'one-shot time 2025-06-01T09:00:00.000+02:00 is in the past (now is 2026-01-01T01:00:00.000+01:00); give a future time or a delay such as "in 20m"',
    );
    expect(errorOf("2026-01-01T00:00Z")).toMatch(/is in the past/);
  });

  it("rejects bad date-times", () => {
    expect(errorOf("2026-12-01")).toBe("a one-shot needs a time as well as a date, e.g. 2026-12-01T09:00");
    expect(errorOf("2026-02-30T09:00")).toBe('"2026-02-30T09:00" is not a real date: February 2026 has 28 days');
    expect(errorOf("2026-13-01T09:00")).toMatch(/^month must be 01-12/);
    expect(errorOf("2026-12-01T25:00")).toMatch(/^hour must be 00-23/);
    expect(errorOf("2026-12-01T09:60")).toMatch(/^minute must be 00-59/);
    expect(errorOf("2026-12-01T09:00+25:00")).toMatch(/is not a UTC offset/);
    expect(errorOf("2026-12-1T9:00")).toMatch(/is not a date-time/);
  });

  it("rejects bad durations", () => {
    expect(errorOf("@every 5x")).toBe('an @every interval must be a duration such as 90s, 15m, 2h or 1h30m (units d, h, m, s), got "5x"');
    expect(errorOf("@every")).toMatch(/must be a duration/);
    expect(errorOf("@every 0s")).toBe('an @every interval must be at least 1 second, got "0s"');
    expect(errorOf("@every 367d")).toMatch(/at most 366 days/);
    expect(errorOf("in soon")).toMatch(/^a delay must be a duration/);
    expect(errorOf("in 400d")).toMatch(/^a delay must be at most 366 days.*give a date-time instead/);
  });

  it("rejects unknown timezones", () => {
    expect(errorOf("0 9 * * *", "Mars/Olympus")).toBe('Unknown timezone "Mars/Olympus"; use an IANA name such as Europe/Paris');
    expect(errorOf("0 9 * * *", "")).toMatch(/^Unknown timezone ""/);
  });

  it("rejects empty, blank and over-long schedules", () => {
    expect(errorOf("")).toMatch(/^schedule is empty/);
    expect(errorOf("   \t")).toMatch(/^schedule is empty/);
    expect(errorOf(`0 9 * * *${" ".repeat(200)}`)).toMatch(/^schedule is 209 characters long; at most 200/);
  });
});
