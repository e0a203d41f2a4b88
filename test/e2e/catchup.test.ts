/**
 * Catch-up after downtime (SPEC §3 catch_up), through the built server: a job every 2 s, the
 * server stopped for about 5 s across two or three occurrences, then started again.
 * latest: the newest missed occurrence runs once (trigger catch_up), the others are recorded
 * missed; all: each missed one runs, oldest first; none: all recorded missed, none run.
 * In every mode each occurrence has exactly one record and scheduling goes on.
 */
import { describe, it } from "vitest";
import type { Run } from "../../src/core/jobs.js";
import { Server, makeDataDir, ms, readDataFiles, removeDir, sleep, waitFor } from "../reliability/helpers.js";

const EVERY = 2000;
const DOWN_MS = 5000;
const brief = (runs: Run[]) => runs.map((r) => `${r.scheduled_for?.slice(11, 23)} ${r.status} ${r.trigger}`).join("\n");
const byOccurrence = (runs: Run[]) => [...runs].sort((a, b) => ms(a.scheduled_for) - ms(b.scheduled_for));

const cases: ["latest" | "all" | "none", string][] = [
  ["latest", "@every 2s"],
  ["latest", "*/2 * * * * *"],
  ["all", "@every 2s"],
  ["all", "*/2 * * * * *"],
  ["none", "@every 2s"],
  ["none", "*/2 * * * * *"],
];

describe.concurrent("catch-up after the server was stopped across occurrences", () => {
  it.for(cases)("catch_up %s (%s)", { timeout: 60_000 }, async ([mode, schedule], { expect, onTestFinished }) => {
    const dir = makeDataDir({}, "agent-cron-catchup-");
    onTestFinished(() => removeDir(dir));

    const first = await Server.start(dir);
    onTestFinished(() => first.kill9());
    // overlap allow: with "all" the caught-up runs may overlap, and each must still run.
    const job = (await first.tool("add_cron", { name: "c", schedule, prompt: "caught", catch_up: mode, overlap: "allow", retries: 0 })).job;
    await waitFor(async () => (await first.runs("c")).some((r) => r.status === "completed"), { timeout: 8000, what: "a first run" });
    await first.close();

    // What the stopped server left: the newest occurrence it handled.
    const left = readDataFiles(dir).jobs.get(job.id)!;
    const lastHandled = ms(left.last_scheduled_for);
    expect(Number.isFinite(lastHandled)).toBe(true);

    await sleep(DOWN_MS);
    const spawnedAt = Date.now();
    const second = await Server.start(dir);
    onTestFinished(() => second.kill9());
    const readyAt = Date.now();

    // The occurrences that fell in the downtime: after lastHandled, up to the restart.
    const missed: number[] = [];
    for (let t = lastHandled + EVERY; t <= readyAt; t += EVERY) missed.push(t);
    // The server's "now" at start-up lies between spawn and ready; allow the last one either way.
    const surelyMissed = missed.filter((t) => t <= spawnedAt);
    expect(surelyMissed.length).toBeGreaterThanOrEqual(2);

    // Let the caught-up runs finish and the schedule go on by one more occurrence.
    const runs = byOccurrence(
      await waitFor(
        async () => {
          const list = await second.runs("c");
          const settled = !list.some((r) => r.status === "running");
          const resumed = list.some((r) => r.trigger === "schedule" && ms(r.scheduled_for) > readyAt && r.status === "completed");
          // A backlog (all) runs one after another in the background, so it may still be going
          // when the schedule resumes; it is done when each missed occurrence has its record.
          const recordedAll = surelyMissed.every((t) => list.some((r) => ms(r.scheduled_for) === t && r.status !== "running"));
          // And the rest of it: a slow start-up's plan also holds the occurrences between the
          // spawn and its "now", each without a record until its turn (pending in the audit).
          const times = byOccurrence(list).map((r) => ms(r.scheduled_for));
          const noGap = times.every((t, i) => i === 0 || t - times[i - 1] === EVERY);
          return settled && resumed && recordedAll && noGap && list;
        },
        { timeout: 30_000, what: "the catch-up to settle and scheduling to resume" },
      ),
    );

    const caught = runs.filter((r) => r.trigger === "catch_up");
    const caughtTimes = caught.map((r) => ms(r.scheduled_for));
    // Every missed occurrence is handled by catch-up, each once, and nothing else is.
    expect(caughtTimes.slice(0, surelyMissed.length), brief(runs)).toEqual(surelyMissed);
    expect(
      caughtTimes.every((t) => missed.includes(t)),
      brief(runs),
    ).toBe(true);
    const ran = caught.filter((r) => r.status !== "missed");
    const recorded = caught.filter((r) => r.status === "missed");

    if (mode === "latest") {
      expect(
        ran.map((r) => r.status),
        brief(runs),
      ).toEqual(["completed"]);
      expect(ms(ran[0].scheduled_for)).toBe(Math.max(...caughtTimes));
      expect(recorded.length).toBe(caught.length - 1);
    } else if (mode === "all") {
      expect(recorded, brief(runs)).toEqual([]);
      expect(
        ran.every((r) => r.status === "completed"),
        brief(runs),
      ).toBe(true);
      // In order: each caught-up run started no earlier than the one before it.
      const starts = ran.map((r) => ms(r.started_at));
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
    } else {
      expect(ran, brief(runs)).toEqual([]);
      expect(recorded.length).toBe(caught.length);
    }
    expect(recorded.every((r) => r.started_at === null || typeof r.started_at === "string")).toBe(true);

    // No occurrence without a record, none with two, from the first run to the last.
    const times = runs.map((r) => ms(r.scheduled_for));
    expect(new Set(times).size, brief(runs)).toBe(times.length);
    expect(
      times.filter((t, i) => i > 0 && t - times[i - 1] !== EVERY),
      brief(runs),
    ).toEqual([]);
    console.log(`catch-up ${mode} (${schedule}): ${caught.length} missed occurrences → ${ran.length} run, ${recorded.length} recorded missed`);
  });
});
