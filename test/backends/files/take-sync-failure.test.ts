/**
 * A take whose journal line is written but whose sync fails (fdatasync: EIO). The line is in
 * the file and in memory, so this process and the next start both hold the occurrence as
 * handled, with next_run_at already past it: it must still run (or get its record), or it is
 * passed over by the retry, by catch-up and by a restart's armStored alike.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { codeOf, kindOf } from "../../../src/kernel/errors.js";
import { filesBackend, forget, openTestApp } from "../../helpers/app.js";
import { FakeClock } from "../../helpers/clock.js";

const io = vi.hoisted(() => ({ failJournalSyncs: 0, failJournalWrites: 0, journalSyncDelayMs: 0 }));

// Making a real fdatasync fail needs root (dm-flakey): instead the next sync of jobs.journal
// fails, as a disk's write-back error would (or its next write, as a full disk would), or its
// syncs are slowed down; every other file's I/O goes through. (It finds the file by
// /proc/self/fd: Linux, as the fsync tests are.)
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const isJournal = (fd: number) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith("/jobs.journal");
    } catch {
      return false;
    }
  };
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    if (!isJournal(fd)) return fs.fdatasync(fd, cb);
    if (io.failJournalSyncs > 0) {
      io.failJournalSyncs--;
      const err = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO", errno: -5, syscall: "fdatasync" });
      setImmediate(() => cb(err));
      return;
    }
    fs.fdatasync(fd, (err) => setTimeout(() => cb(err), io.journalSyncDelayMs));
  };
  const writeSync = ((fd: number, ...rest: unknown[]) => {
    if (io.failJournalWrites > 0 && isJournal(fd)) {
      io.failJournalWrites--;
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
    }
    return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.writeSync;
  return { ...fs, fdatasync, writeSync, default: { ...fs, fdatasync, writeSync } };
});

const until = (fn: () => boolean) => vi.waitFor(() => expect(fn()).toBe(true), { timeout: 15_000, interval: 5 });
const settle = () => new Promise((r) => setTimeout(r, 20));

describe("a take whose journal sync fails", () => {
  it("still runs its occurrence: none is left without a record, in this process or after a restart", async () => {
    const clock = new FakeClock("2026-03-02T08:59:59.500Z");
    const { app, exec, dir } = await openTestApp({ backend: filesBackend, clock, config: { runs_per_job: 100 } });
    const errors: string[] = [];
    app.runtime.events.on("notice", (level, message) => level === "error" && errors.push(message));
    await app.jobs.add({ name: "m", schedule: "* * * * *", prompt: "p", retries: 0 }, "test");
    await app.runtime.start();

    io.failJournalSyncs = 1;
    clock.advance(500); // 09:00:00 fires; its take's line is written, its sync fails
    await until(() => io.failJournalSyncs === 0);
    await settle();
    // The failure is said, and the occurrence runs all the same.
    expect(errors.some((e) => /EIO|i\/o error/i.test(e))).toBe(true);
    await until(() => exec.calls.length === 1);
    exec.finishAll();
    const at = () => app.queries.listRuns({ job: "m", limit: 100 }).items.map((r) => `${r.scheduled_for} ${r.status}`);
    await until(() => at().includes("2026-03-02T09:00:00.000+00:00 completed"));

    // The next occurrence is taken as usual, and nothing is unaccounted.
    clock.advance(60_000);
    await until(() => exec.calls.length === 2);
    exec.finishAll();
    await until(() => at().includes("2026-03-02T09:01:00.000+00:00 completed"));
    clock.advance(30_000);
    expect(app.queries.audit({ job: "m" }).jobs[0]).toMatchObject({ unaccounted: 0, unaccounted_at: [] });

    // A restart finds the same: what the journal holds has its record.
    forget(app);
    await app.runtime.close(0);
    const again = await openTestApp({ backend: filesBackend, dir, clock, config: { runs_per_job: 100 } });
    await again.app.runtime.start();
    await settle();
    expect(again.app.queries.audit({ job: "m" }).jobs[0]).toMatchObject({ unaccounted: 0, unaccounted_at: [] });
    expect(again.app.queries.resolveJob("m")).toMatchObject({
      last_scheduled_for: "2026-03-02T09:01:00.000+00:00",
      next_run_at: "2026-03-02T09:02:00.000+00:00",
    });
  });

  it("never stores a next_run_at past an occurrence not yet taken: every journal line of the job, any of which a kill may leave last", async () => {
    const clock = new FakeClock("2026-03-02T08:59:59.500Z");
    const { app, exec, dir } = await openTestApp({ backend: filesBackend, clock, config: { runs_per_job: 100, max_concurrent: 8 } });
    const job = (await app.jobs.add({ name: "s", schedule: "* * * * * *", prompt: "p", retries: 0, overlap: "allow" }, "test")).job;
    await app.runtime.start();
    // Takes stay in flight (their sync slowed) while earlier runs end and write next_run_at.
    io.journalSyncDelayMs = 15;
    for (let i = 0; i < 24; i++) {
      if (i === 6) io.failJournalWrites = 1; // this second's take is refused (a full disk)
      if (i === 12) io.failJournalSyncs = 1; // this second's take is written but not confirmed
      clock.advance(i === 0 ? 500 : 1000);
      exec.finishAll();
      await new Promise((r) => setTimeout(r, 5 + (i % 4) * 10));
      exec.finishAll();
    }
    io.journalSyncDelayMs = 0;
    expect(io).toMatchObject({ failJournalWrites: 0, failJournalSyncs: 0 }); // both faults happened
    // A take still in its slowed sync may start its run after any one finishAll (a loaded
    // machine): each run is finished as it comes until none is left running.
    await until(() => {
      exec.finishAll();
      return app.queries.listRuns({ job: "s", limit: 100 }).items.every((r) => r.status !== "running");
    });

    const lines = readFileSync(path.join(dir, "jobs.journal"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { put?: { id: string; last_scheduled_for: string | null; next_run_at: string | null; created_at: string } })
      .flatMap((e) => (e.put?.id === job.id ? [e.put] : []));
    expect(lines.length).toBeGreaterThan(24);
    for (const l of lines) {
      // The first occurrence not handled in this state of the job: a start from it must not pass it.
      const handled = Date.parse(l.last_scheduled_for ?? l.created_at);
      const firstDue = Math.floor(handled / 1000) * 1000 + 1000;
      if (l.next_run_at !== null) expect(Date.parse(l.next_run_at), JSON.stringify(l)).toBeLessThanOrEqual(firstDue);
    }
    // And every occurrence has its record, the one taken as its sync failed too (the audit
    // calls the last 15 s pending: the job is paused, then time moves past them).
    await app.jobs.pause("s");
    clock.advance(20_000);
    expect(app.queries.audit({ job: "s" }).jobs[0]).toMatchObject({ due: 24, unaccounted: 0, unaccounted_at: [] });
  });

  it("says a change the disk did not confirm is in effect (its own code), and one it refused is not", async () => {
    const clock = new FakeClock("2026-03-02T08:59:59.500Z");
    const { app } = await openTestApp({ backend: filesBackend, clock });
    await app.jobs.add({ name: "c", schedule: "0 9 * * *", prompt: "p" }, "test");
    io.failJournalSyncs = 1;
    const unconfirmed = await app.jobs.pause("c").catch((err: unknown) => err);
    expect([codeOf(unconfirmed), kindOf(unconfirmed)]).toEqual(["AC_NOT_CONFIRMED", "unavailable"]);
    expect(app.queries.resolveJob("c").state).toBe("paused");
    io.failJournalWrites = 1;
    const refused = await app.jobs.resume("c").catch((err: unknown) => err);
    expect(codeOf(refused)).toBe("AC_BAD_REQUEST");
    expect(app.queries.resolveJob("c").state).toBe("paused");
  });
});
