import { describe, expect, it } from "vitest";
import { isValidTimezone, startOfDayInZone, systemTimezone, toIsoInZone, toIsoUtc, wallClockInZone, zonedWallTimeToDate } from "../../src/kernel/time.js";

const NY = "America/New_York";

describe("isValidTimezone", () => {
  it("accepts IANA names and UTC", () => {
    for (const tz of ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC", "Etc/UTC"]) {
      expect(isValidTimezone(tz), tz).toBe(true);
    }
  });

  it("rejects empty strings, typos, padded names and bare offsets", () => {
    for (const tz of ["", " ", "Mars/Base", "Europe/Pariss", " Europe/Paris", "+01:00", "-05:00"]) {
      expect(isValidTimezone(tz), JSON.stringify(tz)).toBe(false);
    }
  });

  it("gives the same answer when asked again (cached)", () => {
    expect(isValidTimezone("Nowhere/Atall")).toBe(false);
    expect(isValidTimezone("Nowhere/Atall")).toBe(false);
    expect(isValidTimezone("Europe/Berlin")).toBe(true);
    expect(isValidTimezone("Europe/Berlin")).toBe(true);
  });
});

describe("systemTimezone", () => {
  it("returns a zone that is itself valid", () => {
    expect(isValidTimezone(systemTimezone())).toBe(true);
  });

  it("reads TZ (with or without its leading colon) and names UTC as Intl does, without asking Intl", () => {
    expect(systemTimezone({ TZ: "Europe/Paris" })).toBe("Europe/Paris");
    expect(systemTimezone({ TZ: ":America/New_York" })).toBe("America/New_York");
    expect(systemTimezone({ TZ: "Etc/UTC" })).toBe("UTC");
    // Not a zone file: Intl decides (a POSIX rule such as "CET-1" is not an IANA name).
    expect(isValidTimezone(systemTimezone({ TZ: "../../etc/passwd" }))).toBe(true);
    expect(isValidTimezone(systemTimezone({ TZ: "Nowhere/Atlantis" }))).toBe(true);
  });
});

describe("toIsoInZone", () => {
  it("uses +01:00 in Paris winter and +02:00 in Paris summer", () => {
    expect(toIsoInZone(new Date("2026-12-01T08:00:00Z"), "Europe/Paris")).toBe("2026-12-01T09:00:00.000+01:00");
    expect(toIsoInZone(new Date("2026-07-01T07:00:00.250Z"), "Europe/Paris")).toBe("2026-07-01T09:00:00.250+02:00");
  });

  it("writes UTC as +00:00, not Z", () => {
    expect(toIsoInZone(new Date("2026-01-02T03:04:05.006Z"), "UTC")).toBe("2026-01-02T03:04:05.006+00:00");
  });

  it("handles half-hour offsets (Asia/Kolkata +05:30) and negative ones", () => {
    expect(toIsoInZone(new Date("2026-12-01T03:30:00Z"), "Asia/Kolkata")).toBe("2026-12-01T09:00:00.000+05:30");
    expect(toIsoInZone(new Date("2026-12-01T14:00:00Z"), NY)).toBe("2026-12-01T09:00:00.000-05:00");
  });

  it("changes date across midnight in the zone", () => {
    expect(toIsoInZone(new Date("2026-12-31T23:30:00Z"), "Asia/Kolkata")).toBe("2027-01-01T05:00:00.000+05:30");
  });

  it("is exact at both ends of a DST change", () => {
    expect(toIsoInZone(new Date("2026-03-08T06:59:59.999Z"), NY)).toBe("2026-03-08T01:59:59.999-05:00");
    expect(toIsoInZone(new Date("2026-03-08T07:00:00.000Z"), NY)).toBe("2026-03-08T03:00:00.000-04:00");
    expect(toIsoInZone(new Date("2026-11-01T05:59:59.999Z"), NY)).toBe("2026-11-01T01:59:59.999-04:00");
    expect(toIsoInZone(new Date("2026-11-01T06:00:00.000Z"), NY)).toBe("2026-11-01T01:00:00.000-05:00");
  });

  it("is exact at a transition that is not on a UTC hour (Lord Howe, +10:30/+11:00)", () => {
    // DST starts on 2026-10-04 at 02:00 local (+10:30), which is 2026-10-03T15:30Z; clocks go to 02:30.
    expect(toIsoInZone(new Date("2026-10-03T15:29:59Z"), "Australia/Lord_Howe")).toBe("2026-10-04T01:59:59.000+10:30");
    expect(toIsoInZone(new Date("2026-10-03T15:30:00Z"), "Australia/Lord_Howe")).toBe("2026-10-04T02:30:00.000+11:00");
  });

  it("reads back as the same instant", () => {
    for (const tz of ["Europe/Paris", NY, "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]) {
      for (let t = Date.parse("2026-01-01T00:00:00Z"); t < Date.parse("2027-01-01T00:00:00Z"); t += 7 * 3_600_000 + 123) {
        expect(Date.parse(toIsoInZone(new Date(t), tz))).toBe(t);
      }
    }
  });
});

describe("toIsoUtc", () => {
  it("is Date#toISOString", () => {
    expect(toIsoUtc(new Date("2026-12-01T08:00:00.123Z"))).toBe("2026-12-01T08:00:00.123Z");
  });
});

describe("zonedWallTimeToDate", () => {
  it("reads an ordinary wall time in the zone", () => {
    expect(zonedWallTimeToDate(2026, 12, 1, 9, 0, 0, 0, "Europe/Paris").toISOString()).toBe("2026-12-01T08:00:00.000Z");
    expect(zonedWallTimeToDate(2026, 7, 1, 9, 0, 0, 500, "Europe/Paris").toISOString()).toBe("2026-07-01T07:00:00.500Z");
    expect(zonedWallTimeToDate(2026, 12, 1, 9, 0, 0, 0, "Asia/Kolkata").toISOString()).toBe("2026-12-01T03:30:00.000Z");
  });

  it("moves a time in the spring-forward gap to the first instant after the gap", () => {
    // 02:30 does not exist on 2026-03-08 in New York: clocks jump from 02:00 EST to 03:00 EDT.
    expect(zonedWallTimeToDate(2026, 3, 8, 2, 30, 0, 0, NY).toISOString()).toBe("2026-03-08T07:00:00.000Z");
    expect(zonedWallTimeToDate(2026, 3, 8, 2, 0, 0, 0, NY).toISOString()).toBe("2026-03-08T07:00:00.000Z");
    expect(zonedWallTimeToDate(2026, 3, 29, 2, 15, 0, 0, "Europe/Paris").toISOString()).toBe("2026-03-29T01:00:00.000Z");
  });

  it("reads an ambiguous fall-back time as its first occurrence", () => {
    // 01:30 happens twice on 2026-11-01 in New York: first in EDT (05:30Z), then in EST (06:30Z).
    expect(zonedWallTimeToDate(2026, 11, 1, 1, 30, 0, 0, NY).toISOString()).toBe("2026-11-01T05:30:00.000Z");
  });

  it("reads the first wall time after the overlap normally", () => {
    expect(zonedWallTimeToDate(2026, 11, 1, 2, 0, 0, 0, NY).toISOString()).toBe("2026-11-01T07:00:00.000Z");
  });
});

describe("startOfDayInZone", () => {
  it("is local midnight of the day the instant falls on in the zone", () => {
    // 23:30 UTC on Dec 31 is already Jan 1 in Kolkata.
    expect(startOfDayInZone(new Date("2026-12-31T23:30:00Z"), "Asia/Kolkata").toISOString()).toBe("2026-12-31T18:30:00.000Z");
    expect(startOfDayInZone(new Date("2026-07-01T23:30:00Z"), NY).toISOString()).toBe("2026-07-01T04:00:00.000Z");
    expect(startOfDayInZone(new Date("2026-07-01T23:30:00Z"), "UTC").toISOString()).toBe("2026-07-01T00:00:00.000Z");
  });

  it("uses the offset in force at midnight, not the one later that day", () => {
    // On the spring-forward day New York's midnight is still EST (-05:00).
    expect(startOfDayInZone(new Date("2026-03-08T20:00:00Z"), NY).toISOString()).toBe("2026-03-08T05:00:00.000Z");
  });

  it("starts a day with no midnight at the first instant after the gap (Asia/Beirut spring-forward)", () => {
    // Beirut moves from 00:00 to 01:00 on the last Sunday of March: 2026-03-29 begins at 01:00 EEST = 22:00Z.
    expect(startOfDayInZone(new Date("2026-03-29T12:00:00Z"), "Asia/Beirut").toISOString()).toBe("2026-03-28T22:00:00.000Z");
  });

  it("gives the wall clock parts that toIsoInZone prints", () => {
    const w = wallClockInZone(new Date("2026-12-01T03:31:02.345Z"), "Asia/Kolkata");
    expect(w).toEqual({ year: 2026, month: 12, day: 1, hour: 9, minute: 1, second: 2, millisecond: 345 });
  });
});
