import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "../../../src/core/jobs.js";
import { JobStore, compactAfterLines, journalHeaderLine } from "../../../src/backends/files/store/jobs-store.js";
import { stringifyRecords } from "../../../src/backends/files/store/json-file.js";
import { storedJob, storedJobFields } from "../../helpers/stored-job.js";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), "agent-cron-store-"));
  dirs.push(d);
  return d;
};

const job = (over: Partial<Job> = {}): Job => storedJob({ executor: "x", ...over });
const rawJob = (over: Partial<Job>): Record<string, unknown> => storedJobFields({ executor: "x", ...over });

describe("JobStore", () => {
  it("appends one journal line per change (after the header naming the journal) and replays it on open", async () => {
    const dir = tmp();
    const s = await JobStore.open(dir);
    const a = job({ name: "a" });
    const b = job({ name: "b" });
    await Promise.all([s.put(a), s.put(b)]);
    await s.put({ ...a, prompt: "changed" });
    await s.delete(b.id);
    const lines = readFileSync(path.join(dir, "jobs.journal"), "utf8").trim().split("\n");
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[0]).journal).toBe(JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8")).journal);
    const again = await JobStore.open(dir);
    expect([...again.all()].map((j) => j.prompt)).toEqual(["changed"]);
    expect(again.byName("a")?.id).toBe(a.id);
    expect(again.byName("b")).toBeUndefined();
  });

  it("folds the journal into jobs.json once it grows, keeping every job", async () => {
    const dir = tmp();
    // 4,200 changes: without a sync each (durability "os"), as this is about compaction.
    const s = await JobStore.open(dir, undefined, "os");
    // Past the threshold of a set this size (4,096 lines from 1,024 jobs up).
    const count = 4200;
    expect(compactAfterLines(count)).toBeLessThan(count);
    const jobs = Array.from({ length: count }, () => job());
    for (const j of jobs) await s.put(j);
    // A change made while the snapshot is being written lands in the fresh journal.
    await s.put({ ...jobs[0], prompt: "during compaction" });
    await s.idle();
    const snapshot = JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8"));
    expect(snapshot.jobs.length).toBeGreaterThan(4096);
    expect(readFileSync(path.join(dir, "jobs.journal"), "utf8").split("\n").length).toBeLessThan(200);
    const again = await JobStore.open(dir);
    expect(again.size).toBe(count);
    expect(again.get(jobs[0].id)?.prompt).toBe("during compaction");
  });

  it("with durability fsync, acknowledges changes after a sync off the main thread, shared by the changes made meanwhile, across compactions", async () => {
    // Issue 27: a synchronous fdatasync per change held the event loop of a 1,000-job fleet.
    const dir = tmp();
    const store = await JobStore.open(dir, undefined, "fsync");
    const jobs = Array.from({ length: 200 }, () => job());
    let settled = 0;
    // 1,000 lines pass compactAfterLines(200) (800), so a journal is swapped while syncs of its lines are pending.
    expect(compactAfterLines(200)).toBeLessThan(1000);
    const rounds = [0, 1, 2, 3, 4].flatMap(() => jobs);
    const puts = rounds.map((j, i) => store.put({ ...j, run_count: i }).then(() => void settled++));
    // Written and applied at once, acknowledged only after a sync: none before a turn of the event loop.
    await Promise.resolve();
    expect(settled).toBe(0);
    expect(store.get(jobs[0].id)?.run_count).toBe(800);
    await Promise.all(puts);
    await store.idle();
    store.close();
    const again = await JobStore.open(dir, undefined, "fsync");
    expect(again.size).toBe(200);
    expect(jobs.every((j, i) => again.get(j.id)?.run_count === 800 + i)).toBe(true);
    again.close();
  });

  it("compacts a small, busy job set after thousands of changes, not hundreds", async () => {
    const dir = tmp();
    const s = await JobStore.open(dir);
    const jobs = Array.from({ length: 1000 }, () => job());
    for (const j of jobs) await s.put(j);
    await s.idle();
    // An every-second fleet's changes: each job changed a few times.
    for (let round = 0; round < 2; round++) for (const j of jobs) await s.put({ ...j, run_count: round + 1 });
    await s.idle();
    // 3,000 lines since the start (the threshold was 512): still one journal, jobs.json never
    // rewritten; a few jobs keep the floor.
    expect(readFileSync(path.join(dir, "jobs.journal"), "utf8").trim().split("\n")).toHaveLength(3001);
    expect(compactAfterLines(25)).toBe(512);
    expect(compactAfterLines(100_000)).toBe(25_000);
    expect((await JobStore.open(dir)).get(jobs[5].id)?.run_count).toBe(2);
  });

  it("drops a torn last journal line (a write cut by a crash) but refuses a corrupt one in the middle", async () => {
    const dir = tmp();
    const s = await JobStore.open(dir);
    const a = job();
    await s.put(a);
    appendFileSync(path.join(dir, "jobs.journal"), '{"put":{"id":"half');
    expect((await JobStore.open(dir)).get(a.id)).toBeDefined();
    expect(readFileSync(path.join(dir, "jobs.journal"), "utf8").endsWith("\n")).toBe(true);

    appendFileSync(path.join(dir, "jobs.journal"), "not json\n" + JSON.stringify({ put: job() }) + "\n");
    await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.journal \(line 3\) is not valid JSON/);
  });

  describe("a journal that was emptied, deleted or swapped", () => {
    async function withJobs(): Promise<{ dir: string; a: Job; before: string }> {
      const dir = tmp();
      const s = await JobStore.open(dir);
      const a = job({ name: "since-snapshot" });
      await s.put(a);
      s.close();
      return { dir, a, before: readFileSync(path.join(dir, "jobs.json"), "utf8") };
    }

    it("refuses to start when jobs.journal is empty, naming it, and changes nothing", async () => {
      const { dir, before } = await withJobs();
      writeFileSync(path.join(dir, "jobs.journal"), "");
      await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.journal is empty: the job changes made since .*jobs\.json was written would be lost/);
      expect(readFileSync(path.join(dir, "jobs.journal"), "utf8")).toBe("");
      expect(readFileSync(path.join(dir, "jobs.json"), "utf8")).toBe(before);
    });

    it("refuses to start when jobs.journal is missing", async () => {
      const { dir } = await withJobs();
      rmSync(path.join(dir, "jobs.journal"));
      await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.journal is missing/);
      expect(existsSync(path.join(dir, "jobs.journal"))).toBe(false);
    });

    it("refuses a journal from another data dir or an older copy", async () => {
      const { dir } = await withJobs();
      const other = await withJobs();
      writeFileSync(path.join(dir, "jobs.journal"), readFileSync(path.join(other.dir, "jobs.journal")));
      await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.journal is not the journal jobs\.json was written with/);
    });

    it("refuses to start when jobs.json is gone but the journal only holds what came after it", async () => {
      const dir = tmp();
      const s = await JobStore.open(dir);
      for (let i = 0; i < 4200; i++) await s.put(job());
      await s.idle();
      s.close();
      rmSync(path.join(dir, "jobs.json"));
      await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.json is missing, but .*jobs\.journal holds only the changes made after it/);
    });

    it("says how to accept the loss, and then starts from jobs.json alone", async () => {
      const { dir } = await withJobs();
      writeFileSync(path.join(dir, "jobs.journal"), "");
      await expect(JobStore.open(dir)).rejects.toThrow(/remove the "journal" key from jobs\.json/);
      const snap = JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8"));
      delete snap.journal;
      writeFileSync(path.join(dir, "jobs.json"), JSON.stringify(snap));
      expect((await JobStore.open(dir)).size).toBe(0);
    });

    it("still starts after a compaction cut short, before or after its new journal was made", async () => {
      const { dir, a } = await withJobs();
      // Cut after `.old` was set aside: no journal yet.
      renameSync(path.join(dir, "jobs.journal"), path.join(dir, "jobs.journal.old"));
      const reopened = await JobStore.open(dir);
      expect(reopened.get(a.id)?.name).toBe("since-snapshot");
      // Changes after that start are kept, and the next start accepts them.
      const later = job({ name: "after-the-cut" });
      await reopened.put(later);
      reopened.close();
      expect((await JobStore.open(dir)).get(later.id)?.name).toBe("after-the-cut");

      const { dir: dir2, a: a2 } = await withJobs();
      const expected = JSON.parse(readFileSync(path.join(dir2, "jobs.json"), "utf8")).journal;
      renameSync(path.join(dir2, "jobs.journal"), path.join(dir2, "jobs.journal.old"));
      const b = job({ name: "in-new-journal" });
      writeFileSync(path.join(dir2, "jobs.journal"), JSON.stringify({ journal: "fresh", after: expected }) + "\n" + JSON.stringify({ put: b }) + "\n");
      const store = await JobStore.open(dir2);
      expect(store.get(a2.id)).toBeDefined();
      expect(store.get(b.id)).toBeDefined();
    });

    it("refuses to start when jobs.journal was cut back to its header, naming it, the changes lost and the way out", async () => {
      const dir = tmp();
      const s = await JobStore.open(dir);
      for (const name of ["one", "two", "three"]) await s.put(job({ name }));
      s.close();
      const file = path.join(dir, "jobs.journal");
      const header = readFileSync(file, "utf8").split("\n")[0] + "\n";
      expect(JSON.parse(header)).toMatchObject({ from: 0, rev: 3 });
      writeFileSync(file, header);
      const before = readFileSync(path.join(dir, "jobs.json"), "utf8");
      await expect(JobStore.open(dir)).rejects.toThrow(
        /jobs\.journal was cut back: it holds the job set up to change 0, but its header records change 3, so the last 3 changes would be lost\. Nothing was changed; .*remove the "journal" key from jobs\.json/,
      );
      expect(readFileSync(file, "utf8")).toBe(header);
      expect(readFileSync(path.join(dir, "jobs.json"), "utf8")).toBe(before);
      // Cut back by one line: still refused.
      const full = await (async () => {
        const d = tmp();
        const t = await JobStore.open(d);
        for (const name of ["a", "b"]) await t.put(job({ name }));
        t.close();
        return d;
      })();
      const lines = readFileSync(path.join(full, "jobs.journal"), "utf8").split("\n");
      writeFileSync(path.join(full, "jobs.journal"), lines.slice(0, 2).join("\n") + "\n");
      await expect(JobStore.open(full)).rejects.toThrow(/up to change 1, but its header records change 2, so the last 1 change would be lost/);
    });

    it("refuses a journal holding fewer changes than jobs.json records, even with its header's rev cut back too", async () => {
      const dir = tmp();
      writeFileSync(path.join(dir, "jobs.json"), stringifyRecords({ version: 1, journal: "0123456789abcdef", rev: 7, jobs: [job({ name: "seven" })] }, "jobs"));
      writeFileSync(path.join(dir, "jobs.journal"), journalHeaderLine("0123456789abcdef", null, 5).line);
      await expect(JobStore.open(dir)).rejects.toThrow(/up to change 5, but .*jobs\.json records change 7/);
    });

    it("keeps the header's rev in step across restarts and compactions", async () => {
      const dir = tmp();
      let s = await JobStore.open(dir);
      const a = job({ name: "kept" });
      await s.put(a);
      s.close();
      s = await JobStore.open(dir);
      await s.put({ ...a, prompt: "again" });
      await s.delete(a.id);
      s.close();
      expect(JSON.parse(readFileSync(path.join(dir, "jobs.journal"), "utf8").split("\n")[0])).toMatchObject({ from: 0, rev: 3 });
      s = await JobStore.open(dir);
      for (let i = 0; i < 600; i++) await s.put(job());
      await s.idle();
      s.close();
      const snap = JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8"));
      const head = JSON.parse(readFileSync(path.join(dir, "jobs.journal"), "utf8").split("\n")[0]);
      expect(head.from).toBe(snap.rev);
      expect(head.rev).toBe(603);
      expect((await JobStore.open(dir)).size).toBe(600);
    });

    it("gives a journal whose header has no revision one at start-up (a data dir from before revisions), keeping its jobs", async () => {
      const dir = tmp();
      const a = job({ name: "kept" });
      writeFileSync(path.join(dir, "jobs.json"), stringifyRecords({ version: 1, journal: "0123456789abcdef", jobs: [] }, "jobs"));
      writeFileSync(path.join(dir, "jobs.journal"), JSON.stringify({ journal: "0123456789abcdef", after: null }) + "\n" + JSON.stringify({ put: a }) + "\n");
      const s = await JobStore.open(dir);
      expect(s.get(a.id)?.name).toBe("kept");
      s.close();
      const snap = JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8"));
      expect(snap.jobs).toHaveLength(1);
      expect(JSON.parse(readFileSync(path.join(dir, "jobs.journal"), "utf8").split("\n")[0])).toMatchObject({
        journal: snap.journal,
        from: snap.rev,
        rev: snap.rev,
      });
    });

    it("gives a data dir written before journals had headers one, keeping its jobs", async () => {
      const dir = tmp();
      const a = job({ name: "old" });
      const b = job({ name: "older" });
      writeFileSync(path.join(dir, "jobs.json"), JSON.stringify({ version: 1, jobs: [b] }));
      writeFileSync(path.join(dir, "jobs.journal"), JSON.stringify({ put: a }) + "\n");
      const s = await JobStore.open(dir);
      expect(s.size).toBe(2);
      s.close();
      const snap = JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8"));
      expect(typeof snap.journal).toBe("string");
      expect(JSON.parse(readFileSync(path.join(dir, "jobs.journal"), "utf8").split("\n")[0]).journal).toBe(snap.journal);
      expect((await JobStore.open(dir)).size).toBe(2);
    });
  });

  it("reads jobs.json as the store writes it (a job a line) and as a person may format it, to the same jobs", async () => {
    const dir = tmp();
    const jobs = [job({ name: "a" }), job({ name: "b", prompt: 'ü\u2028, "quoted"\n]}' }), job({ name: "c", notify_on: ["failed"] })];
    const snapshot = { version: 1, journal: "0123456789abcdef", rev: 3, jobs };
    writeFileSync(path.join(dir, "jobs.journal"), journalHeaderLine("0123456789abcdef", null, 3).line);
    writeFileSync(path.join(dir, "jobs.json"), stringifyRecords(snapshot, "jobs"));
    const byLine = await JobStore.open(dir);
    expect([...byLine.all()]).toEqual(jobs);
    byLine.close();
    writeFileSync(path.join(dir, "jobs.json"), JSON.stringify(snapshot, null, 2));
    const whole = await JobStore.open(dir);
    expect([...whole.all()]).toEqual(jobs);
    whole.close();
    writeFileSync(path.join(dir, "jobs.json"), stringifyRecords({ ...snapshot, jobs: [] }, "jobs"));
    expect((await JobStore.open(dir)).size).toBe(0);
    // A bad job on its line is named by its place, as in a whole-file read.
    writeFileSync(path.join(dir, "jobs.json"), stringifyRecords({ ...snapshot, jobs: [jobs[0], { ...jobs[1], state: "sleeping" }] }, "jobs"));
    await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.json \(job #2\) holds an invalid job \(state/);
  });

  it("reads a job line longer than its read buffer, a last line without its newline, and lines that need zod (defaults, a key it strips)", async () => {
    const dir = tmp();
    // Over 1 MB on one line (the reader's first buffer), with characters of 2-4 bytes across its edges.
    const long = job({ name: "long", prompt: "é€😀".repeat(150_000) });
    const old = rawJob({ name: "old" });
    delete old.deliver_on;
    delete old.on_empty;
    const extra = { ...rawJob({ name: "extra" }), gone_field: 1 };
    const text = stringifyRecords({ version: 1, journal: "0123456789abcdef", rev: 0, jobs: [job({ name: "a" }), long, old, extra] }, "jobs");
    writeFileSync(path.join(dir, "jobs.journal"), journalHeaderLine("0123456789abcdef", null, 0).line);
    writeFileSync(path.join(dir, "jobs.json"), text.slice(0, -1));
    const s = await JobStore.open(dir);
    expect(s.byName("long")?.prompt).toBe(long.prompt);
    expect(s.byName("old")).toMatchObject({ deliver_on: ["completed", "failed", "paused"], on_empty: "warn" });
    expect(s.byName("extra")).not.toHaveProperty("gone_field");
    expect(s.byName("extra")).toEqual(job({ ...s.byName("extra") }));
    expect(s.size).toBe(4);
    s.close();
    // A number JSON reads as Infinity is refused, naming the job's place.
    writeFileSync(path.join(dir, "jobs.json"), text.replace('"retries":0', '"retries":1e999'));
    await expect(JobStore.open(dir)).rejects.toThrow(/jobs\.json \(job #1\) holds an invalid job \(retries/);
  });

  it("writes a compaction's snapshot slice by slice in the one layout (a job a line), leaving no temporary file", async () => {
    for (const durability of ["os", "fsync"] as const) {
      const dir = tmp();
      const s = await JobStore.open(dir, undefined, durability);
      // 2,500 jobs (more than two slices) and enough changes after them to compact.
      const jobs = Array.from({ length: 2500 }, (_, i) => job({ name: `j${i}`, prompt: i === 7 ? 'ü\u2028, "quoted"\n]}' : "p" }));
      for (const j of jobs) await s.put(j);
      for (let i = 0; i < 1700; i++) await s.put({ ...jobs[i % 50], run_count: i });
      await s.idle();
      s.close();
      const text = readFileSync(path.join(dir, "jobs.json"), "utf8");
      const snapshot = JSON.parse(text);
      expect(snapshot.jobs).toHaveLength(2500);
      expect(text).toBe(stringifyRecords(snapshot, "jobs"));
      expect(existsSync(path.join(dir, ".jobs.json.tmp"))).toBe(false);
      const again = await JobStore.open(dir);
      expect(again.byName("j7")?.prompt).toBe(jobs[7].prompt);
      expect(again.byName("j49")?.run_count).toBe(1699);
      again.close();
    }
  });

  it("keeps one copy of the lists most jobs share, and a job's own list apart", async () => {
    const dir = tmp();
    const s = await JobStore.open(dir);
    for (let i = 0; i < 600; i++) await s.put(job({ notify_on: i === 7 ? ["failed"] : ["completed"] }));
    await s.idle();
    const again = [...(await JobStore.open(dir)).all()];
    expect(again[0].notify_on).toBe(again[1].notify_on);
    expect(again[0].deliver_on).toBe(again[599].deliver_on);
    // Empty lists of records too, frozen: a job changes by replacing them.
    expect(again[0].notes).toBe(again[599].missed_spans);
    expect(Object.isFrozen(again[0].approvals)).toBe(true);
    expect(again[7].notify_on).toEqual(["failed"]);
    expect(again[8].notify_on).toEqual(["completed"]);
  });

  it("loads every job's strings as they were stored while sharing the equal ones, by line, whole, through zod and from the journal", async () => {
    const created = "2026-03-01T09:00:00.000+01:00";
    const edited = "2026-03-02T10:30:00.000+01:00";
    const born = (tz: string, schedule: string, at = created) => ({ at, state: "active" as const, schedule, timezone: tz });
    const jobs = [
      // Never changed: updated_at and its one schedule entry's time are its created_at.
      job({
        name: "a",
        timezone: "Europe/Paris",
        schedule: "*/15 9-17 * * 1-5",
        created_by: "claude-code/2.1.3",
        work_dir: "/srv/project/one",
        updated_at: created,
        created_at: created,
        schedule_history: [born("Europe/Paris", "*/15 9-17 * * 1-5")],
      }),
      // The same shared strings as the job before, its own times.
      job({
        name: "b",
        timezone: "Europe/Paris",
        schedule: "*/15 9-17 * * 1-5",
        created_by: "claude-code/2.1.3",
        work_dir: "/srv/project/one",
        updated_at: edited,
        created_at: created,
        schedule_history: [born("Europe/Paris", "0 9 * * *"), born("Europe/Paris", "*/15 9-17 * * 1-5", edited)],
      }),
      // Everything different from the job before, and a history that matches none of its fields.
      job({
        name: "c",
        timezone: "America/Los_Angeles",
        schedule: "0 0 1 * *",
        created_by: "codex/0.9",
        executor: null,
        work_dir: null,
        updated_at: edited,
        created_at: created,
        schedule_history: [born("Asia/Tokyo", "0 1 * * *", "2026-02-01T00:00:00.000+09:00")],
      }),
      job({
        name: "d",
        timezone: "Europe/Paris",
        schedule: "*/15 9-17 * * 1-5",
        created_by: "claude-code/2.1.3",
        work_dir: "/srv/project/two",
        updated_at: created,
        created_at: created,
        schedule_history: [],
      }),
    ];
    const dir = tmp();
    const snapshot = { version: 1, journal: "0123456789abcdef", rev: 1, jobs: jobs.slice(0, 3) };
    const journal = journalHeaderLine("0123456789abcdef", null, 1).line + JSON.stringify({ put: jobs[3] }) + "\n";
    writeFileSync(path.join(dir, "jobs.journal"), journal);
    writeFileSync(path.join(dir, "jobs.json"), stringifyRecords(snapshot, "jobs"));
    const byLine = await JobStore.open(dir);
    expect([...byLine.all()]).toEqual(jobs);
    expect(JSON.stringify([...byLine.all()])).toBe(JSON.stringify(jobs));
    byLine.close();
    writeFileSync(path.join(dir, "jobs.journal"), journal);
    writeFileSync(path.join(dir, "jobs.json"), JSON.stringify(snapshot, null, 2));
    const whole = await JobStore.open(dir);
    expect([...whole.all()]).toEqual(jobs);
    whole.close();
    // A line zod fills in (an older line without on_empty) is shared the same way and loses nothing.
    const older = rawJob({ ...jobs[1] });
    delete older.on_empty;
    writeFileSync(path.join(dir, "jobs.journal"), journal);
    writeFileSync(path.join(dir, "jobs.json"), stringifyRecords({ ...snapshot, jobs: [jobs[0], older, jobs[2]] }, "jobs"));
    const viaZod = await JobStore.open(dir);
    expect([...viaZod.all()]).toEqual(jobs);
    // What a compaction writes of them is what was stored, byte for byte.
    for (let i = 0; i < compactAfterLines(4) + 1; i++) await viaZod.put(jobs[i % 4]);
    await viaZod.idle();
    viaZod.close();
    expect(JSON.parse(readFileSync(path.join(dir, "jobs.json"), "utf8")).jobs).toEqual(jobs);
    expect(readFileSync(path.join(dir, "jobs.json"), "utf8")).toContain(`${JSON.stringify(jobs[2])},\n`);
  });

  it("stops on a jobs.json that does not parse, naming it and leaving it byte for byte", async () => {
    const dir = tmp();
    const file = path.join(dir, "jobs.json");
    writeFileSync(file, '{"jobs": [ {"id": 1 ');
    await expect(JobStore.open(dir)).rejects.toThrow(new RegExp(`${file.replace(/[.]/g, "\\.")} is not valid JSON`));
    expect(readFileSync(file, "utf8")).toBe('{"jobs": [ {"id": 1 ');
    writeFileSync(file, JSON.stringify({ jobs: [{ id: "x" }] }));
    await expect(JobStore.open(dir)).rejects.toThrow(/invalid job/);
  });

  it("on a full disk, rejects the change with a clear error and keeps memory equal to the files", async () => {
    const dir = tmp();
    const s = await JobStore.open(dir);
    const a = job({ name: "keep" });
    await s.put(a);
    // The disk fills up: the journal is reopened on /dev/full, where every write gets ENOSPC.
    s.close();
    rmSync(path.join(dir, "jobs.journal"));
    symlinkSync("/dev/full", path.join(dir, "jobs.journal"));
    await expect(s.put({ ...a, prompt: "lost" })).rejects.toThrow(/disk is full\. Nothing was changed/);
    await expect(s.put(job({ name: "new" }))).rejects.toThrow(/disk is full/);
    await expect(s.delete(a.id)).rejects.toThrow(/disk is full/);
    expect(s.get(a.id)?.prompt).toBe("p");
    expect(s.byName("new")).toBeUndefined();
    expect(s.size).toBe(1);
  });
});
