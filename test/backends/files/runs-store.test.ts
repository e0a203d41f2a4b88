import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Run } from "../../../src/core/jobs.js";
import { stringifyRecords } from "../../../src/backends/files/store/json-file.js";
import { formatRunLog } from "../../../src/backends/files/store/run-log.js";
import { RunStore } from "../../../src/backends/files/store/runs-store.js";

const dirs: string[] = [];
const stores: RunStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const tmp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), "agent-cron-runs-"));
  dirs.push(d);
  return d;
};
function open(dir: string, runsPerJob = 100, opts: { background?: boolean; onProblem?: (m: string) => void } = {}): RunStore {
  const s = new RunStore(dir, runsPerJob, { onProblem: opts.onProblem });
  s.load({ background: opts.background ?? false });
  stores.push(s);
  return s;
}

let n = 0;
const JOB_A = "00000000-0000-4000-8000-00000000000a";
const JOB_B = "00000000-0000-4000-8000-00000000000b";
const JOB_C = "00000000-0000-4000-8000-00000000000c";
/** A finished run; `at` (ms since the start of 2026) sets its time. */
function run(jobId: string, at: number | null, over: Partial<Run> = {}): Run {
  const iso = at === null ? null : new Date(Date.UTC(2026, 0, 1) + at).toISOString().replace("Z", "+00:00");
  return {
    id: `00000000-0000-4000-9000-${String(++n).padStart(12, "0")}`,
    job_id: jobId,
    status: "completed",
    trigger: "schedule",
    scheduled_for: iso,
    started_at: iso,
    finished_at: iso,
    duration_ms: 1,
    attempts: 1,
    executor: "echo",
    session_id: null,
    work_dir: null,
    exit_code: 0,
    error: null,
    response: "r",
    output_truncated: false,
    usage: null,
    pid: 1,
    delivery: null,
    delivery_due: [],
    output_hash: null,
    warnings: [],
    executor_version: null,
    signal: null,
    tool_calls: null,
    output_sha256: null,
    event_payload: null,
    after_run: null,
    outcome: null,
    outcome_note: null,
    chain_due: [],
    ...over,
  };
}
const logOf = (dir: string, jobId: string) => path.join(dir, "runs", `${jobId}.jsonl`);
const linesOf = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const ids = (runs: readonly Run[]) => runs.map((r) => r.id);

describe("RunStore: one append-only log per job", () => {
  it("appends one line per put after a header naming the job, and replays it on load", async () => {
    const dir = tmp();
    const s = open(dir);
    const first = run(JOB_A, 1000, { status: "running", finished_at: null });
    await s.put(first);
    await s.put({ ...first, status: "completed", finished_at: first.started_at });
    const second = run(JOB_A, 2000);
    await s.put(second);
    const lines = linesOf(logOf(dir, JOB_A));
    expect(lines[0]).toEqual({ run_log: 1, job_id: JOB_A });
    expect(lines.slice(1).map((l) => [l.put.id, l.put.status])).toEqual([
      [first.id, "running"],
      [first.id, "completed"],
      [second.id, "completed"],
    ]);
    const again = open(dir);
    expect(again.ofJob(JOB_A).map((r) => [r.id, r.status])).toEqual([
      [first.id, "completed"],
      [second.id, "completed"],
    ]);
    expect(again.get(second.id)).toEqual(second);
  });

  it("keeps the newest runs_per_job runs, writing the evicted ids on the same line, and removes evicted outputs", async () => {
    const dir = tmp();
    const s = open(dir, 2);
    const runs = [1, 2, 3].map((i) => run(JOB_A, i * 1000));
    for (const r of runs) {
      await s.put(r);
      await s.writeOutput(r.id, `output of ${r.id}`);
    }
    const fourth = run(JOB_A, 4000);
    await s.put(fourth);
    await s.idle();
    expect(ids(s.ofJob(JOB_A))).toEqual([runs[2].id, fourth.id]);
    expect(linesOf(logOf(dir, JOB_A)).at(-1)).toEqual({ put: fourth, drop: [runs[1].id] });
    expect(existsSync(path.join(dir, "outputs", runs[0].id))).toBe(false);
    expect(existsSync(path.join(dir, "outputs", runs[1].id))).toBe(false);
    const again = open(dir, 2);
    expect(ids(again.ofJob(JOB_A))).toEqual([runs[2].id, fourth.id]);
    expect(await again.readOutput(runs[2].id)).toBe(`output of ${runs[2].id}`);
  });

  it("never evicts a run still going", async () => {
    const dir = tmp();
    const s = open(dir, 2);
    const going = run(JOB_A, 1000, { status: "running" });
    await s.put(going);
    for (let i = 2; i <= 4; i++) await s.put(run(JOB_A, i * 1000));
    expect(s.ofJob(JOB_A)[0].id).toBe(going.id);
    expect(s.ofJob(JOB_A)).toHaveLength(2);
    expect(ids(open(dir, 2).ofJob(JOB_A))).toEqual(ids(s.ofJob(JOB_A)));
  });

  it("drops a torn last line (a write cut by a crash), keeping the rest, and appends cleanly after it", async () => {
    const dir = tmp();
    const s = open(dir);
    const kept = [run(JOB_A, 1000), run(JOB_A, 2000)];
    for (const r of kept) await s.put(r);
    const file = logOf(dir, JOB_A);
    appendFileSync(file, '{"put":{"id":"00000000-0000-4000-9000-0000000');
    const again = open(dir);
    expect(ids(again.ofJob(JOB_A))).toEqual(ids(kept));
    expect(readFileSync(file, "utf8").endsWith("}\n")).toBe(true);
    const later = run(JOB_A, 3000);
    await again.put(later);
    expect(ids(open(dir).ofJob(JOB_A))).toEqual([...ids(kept), later.id]);
  });

  it("compacts a log in the background once it holds more than twice the cap, keeping puts made meanwhile", async () => {
    const dir = tmp();
    const s = open(dir, 5);
    // 2 × 5 + 16 = 26 entries; a running and a final line per run.
    for (let i = 0; i < 14; i++) {
      const r = run(JOB_A, i * 1000, { status: "running" });
      await s.put(r);
      await s.put({ ...r, status: "completed" });
    }
    // The compaction has started but is not done: these lines go to the old log and are carried over.
    const during = run(JOB_A, 99_000);
    await s.put(during);
    await s.idle();
    const lines = linesOf(logOf(dir, JOB_A));
    expect(lines[0]).toEqual({ run_log: 1, job_id: JOB_A });
    expect(lines.length).toBeLessThan(10);
    expect(ids(open(dir, 5).ofJob(JOB_A))).toEqual(ids(s.ofJob(JOB_A)));
    expect(s.ofJob(JOB_A).at(-1)!.id).toBe(during.id);
    expect(readdirSync(path.join(dir, "runs")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("on a full disk, rejects the put with a clear error and keeps memory equal to the files", async () => {
    const dir = tmp();
    const s = open(dir, 2);
    // A run still going stays first, so the eviction below takes a run from the middle.
    const a = run(JOB_A, 1000, { status: "running" });
    const b = run(JOB_A, 2000);
    await s.put(a);
    await s.put(b);
    const file = logOf(dir, JOB_A);
    const saved = path.join(dir, "saved.jsonl");
    copyFileSync(file, saved);
    // The disk fills up: the log is now /dev/full, where every write gets ENOSPC.
    rmSync(file);
    symlinkSync("/dev/full", file);
    // A new run that would evict `b`, and a new copy of `b`: neither may stay in memory.
    await expect(s.put(run(JOB_A, 3000))).rejects.toThrow(/disk is full\. Nothing was changed/);
    await expect(s.put({ ...b, status: "failed" })).rejects.toThrow(/Could not save to .*\.jsonl/);
    expect(s.ofJob(JOB_A)).toEqual([a, b]);
    expect(s.get(a.id)).toEqual(a);
    rmSync(file);
    copyFileSync(saved, file);
    expect(open(dir, 2).ofJob(JOB_A)).toEqual(s.ofJob(JOB_A));
  });

  it("writes the puts of one stretch of work together; a log the disk refuses fails only its own puts, undone in memory", async () => {
    const dir = tmp();
    const s = open(dir, 2);
    const old = [run(JOB_B, 100), run(JOB_B, 200)];
    for (const r of old) await s.put(r);
    const fileB = logOf(dir, JOB_B);
    rmSync(fileB);
    symlinkSync("/dev/full", fileB);
    // A fleet starting together: a run of A starts and ends, B's new run would evict one of its
    // old ones, C's first run opens its log; all in one synchronous stretch.
    const a = run(JOB_A, 1000, { status: "running" });
    const b = run(JOB_B, 1000);
    const c = run(JOB_C, 1000, { status: "running" });
    const results = await Promise.allSettled([s.put(a), s.put(b), s.put({ ...a, status: "completed" }), s.put(c)]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason.message).toMatch(new RegExp(`Could not save to .*${JOB_B}\\.jsonl: the disk is full`));
    expect(s.ofJob(JOB_B)).toEqual(old);
    expect(s.ofJob(JOB_A).map((r) => r.status)).toEqual(["completed"]);
    expect(
      s
        .recent({ limit: 10 })
        .items.map((r) => r.id)
        .sort(),
    ).toEqual([a.id, c.id, ...ids(old)].sort());
    expect(
      linesOf(logOf(dir, JOB_A))
        .slice(1)
        .map((l) => l.put.status),
    ).toEqual(["running", "completed"]);
    rmSync(fileB);
    writeFileSync(fileB, formatRunLog(JOB_B, old));
    const again = open(dir, 2);
    for (const job of [JOB_A, JOB_B, JOB_C]) expect(again.ofJob(job)).toEqual(s.ofJob(job));
    expect(again.running().map((r) => r.id)).toEqual([c.id]);
  });

  it("removes a job's log, outputs and default work dirs with the job", async () => {
    const dir = tmp();
    const s = open(dir);
    const r = run(JOB_A, 1000, { work_dir: path.join(dir, "work", "x") });
    const own = run(JOB_A, 2000);
    own.work_dir = path.join(dir, "work", own.id);
    mkdirSync(own.work_dir, { recursive: true });
    await s.put(r);
    await s.put(own);
    await s.writeOutput(r.id, "out");
    await s.put(run(JOB_B, 1500));
    await s.removeJob(JOB_A);
    expect(existsSync(logOf(dir, JOB_A))).toBe(false);
    expect(existsSync(path.join(dir, "outputs", r.id))).toBe(false);
    expect(existsSync(own.work_dir)).toBe(false);
    expect(s.ofJob(JOB_A)).toEqual([]);
    expect(s.get(r.id)).toBeUndefined();
    expect(s.recent({ limit: 10 }).items.map((x) => x.job_id)).toEqual([JOB_B]);
    expect(open(dir).ofJob(JOB_B)).toHaveLength(1);
  });
});

describe("RunStore: start-up reads only what it needs", () => {
  it("reads the logs of runs left running or owing a delivery at load; the rest in the background", async () => {
    const dir = tmp();
    const s = open(dir);
    const going = run(JOB_A, 1000, { status: "running", finished_at: null });
    const owing = run(JOB_B, 1000, { delivery: "pending", delivery_due: [{ channel: "c", event: "completed" }] });
    const done = run(JOB_C, 1000);
    await s.put(going);
    await s.put(owing);
    await s.put(done);
    await s.put({ ...run(JOB_B, 500), delivery: "delivered" });
    // JOB_C's log is damaged where only a full read would see it.
    appendFileSync(logOf(dir, JOB_C), "not json\n" + JSON.stringify({ put: run(JOB_C, 2000) }) + "\n");

    const problems: string[] = [];
    const again = open(dir, 100, { background: true, onProblem: (m) => problems.push(m) });
    expect(again.running().map((r) => r.id)).toEqual([going.id]);
    expect(again.pendingDelivery().map((r) => r.id)).toEqual([owing.id]);
    await again.whenLoaded();
    expect(problems).toEqual([expect.stringMatching(new RegExp(`${JOB_C}\\.jsonl \\(line 3\\) is not valid JSON`))]);
    // That job's own reads and writes name the file; the others go on.
    expect(() => again.ofJob(JOB_C)).toThrow(/jsonl \(line 3\) is not valid JSON.*left untouched/);
    await expect(again.put(run(JOB_C, 3000))).rejects.toThrow(/line 3\) is not valid JSON/);
    expect(again.ofJob(JOB_B)).toHaveLength(2);
    expect(
      again
        .recent({ limit: 10 })
        .items.map((r) => r.job_id)
        .sort(),
    ).toEqual([JOB_A, JOB_B, JOB_B]);
    expect(readFileSync(logOf(dir, JOB_C), "utf8")).toContain("not json\n");
  });

  it("refuses to load when a log that start-up needs does not parse, naming it and leaving it untouched", async () => {
    const dir = tmp();
    const s = open(dir);
    await s.put(run(JOB_A, 1000, { status: "running" }));
    const file = logOf(dir, JOB_A);
    appendFileSync(file, JSON.stringify({ put: { id: "x", status: "lost" } }) + "\n");
    const bytes = readFileSync(file);
    expect(() => open(dir)).toThrow(new RegExp(`${JOB_A}\\.jsonl \\(line 3\\) holds an invalid run`));
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it("rebuilds runs/open.jsonl from the logs when it is missing or damaged", async () => {
    const dir = tmp();
    const s = open(dir);
    const going = run(JOB_A, 1000, { status: "running" });
    await s.put(going);
    await s.put(run(JOB_B, 1000));
    const index = path.join(dir, "runs", "open.jsonl");
    rmSync(index);
    expect(
      open(dir)
        .running()
        .map((r) => r.id),
    ).toEqual([going.id]);
    expect(linesOf(index)).toEqual([{ open: going.id, job: JOB_A }]);
    writeFileSync(index, "garbage\n");
    expect(
      open(dir)
        .running()
        .map((r) => r.id),
    ).toEqual([going.id]);
  });

  it("closes a run in runs/open.jsonl once it has ended and delivered", async () => {
    const dir = tmp();
    const s = open(dir);
    const r = run(JOB_A, 1000, { status: "running" });
    await s.put(r);
    await s.put({ ...r, status: "completed", delivery: "pending" });
    expect(
      open(dir)
        .pendingDelivery()
        .map((x) => x.id),
    ).toEqual([r.id]);
    await s.put({ ...r, status: "completed", delivery: "delivered" });
    const again = open(dir);
    expect(again.running()).toEqual([]);
    expect(again.pendingDelivery()).toEqual([]);
  });

  it("converts runs/<job_id>.json from before the logs at the first start, keeping every run", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, "runs"));
    const old = [run(JOB_A, 1000), run(JOB_A, 2000, { status: "running" })];
    writeFileSync(path.join(dir, "runs", `${JOB_A}.json`), stringifyRecords({ runs: old }, "runs"));
    const s = open(dir);
    expect(s.ofJob(JOB_A)).toEqual(old);
    expect(s.running().map((r) => r.id)).toEqual([old[1].id]);
    expect(existsSync(path.join(dir, "runs", `${JOB_A}.json`))).toBe(false);
    expect(
      linesOf(logOf(dir, JOB_A))
        .slice(1)
        .map((l) => l.put.id),
    ).toEqual(ids(old));
    const again = open(dir);
    expect(again.ofJob(JOB_A)).toEqual(old);
    expect(again.running().map((r) => r.id)).toEqual([old[1].id]);
  });

  it("refuses an old runs/<job_id>.json that does not parse, naming it and leaving it untouched", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, "runs"));
    const file = path.join(dir, "runs", `${JOB_A}.json`);
    writeFileSync(file, '{"runs":[{"id": oops}]}\n');
    expect(() => open(dir)).toThrow(new RegExp(`${JOB_A}\\.json is not valid JSON`));
    expect(readFileSync(file, "utf8")).toBe('{"runs":[{"id": oops}]}\n');
  });

  it("finishes a conversion cut short, and refuses an old file holding runs its log does not", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, "runs"));
    const old = [run(JOB_A, 1000)];
    const legacy = path.join(dir, "runs", `${JOB_A}.json`);
    writeFileSync(legacy, stringifyRecords({ runs: old }, "runs"));
    writeFileSync(logOf(dir, JOB_A), formatRunLog(JOB_A, old));
    expect(open(dir).ofJob(JOB_A)).toEqual(old);
    expect(existsSync(legacy)).toBe(false);

    writeFileSync(legacy, stringifyRecords({ runs: [...old, run(JOB_A, 2000)] }, "runs"));
    expect(() => open(dir)).toThrow(/both hold runs of job .* holds runs the log does not\. Nothing was changed/);
    expect(existsSync(legacy)).toBe(true);
  });
});

describe("RunStore.recent: every job's runs, newest first, without sorting them on each call", () => {
  /** The order list_runs has always given: by started_at, else scheduled_for, ties by id descending. */
  const reference = (runs: Iterable<Run>) =>
    [...runs]
      .map((r) => ({ r, t: Date.parse(r.started_at ?? r.scheduled_for ?? "") || 0 }))
      .sort((a, b) => b.t - a.t || (a.r.id < b.r.id ? 1 : -1))
      .map((k) => k.r.id);
  const everyPage = (s: RunStore, limit: number, filter?: (r: Run) => boolean) => {
    const out: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = s.recent({ limit, after, filter });
      expect(page.found).toBe(true);
      out.push(...ids(page.items));
      if (!page.more) return out;
      after = page.items.at(-1)!.id;
    }
  };

  it("pages in list_runs order as runs are added, replaced, evicted and removed", async () => {
    const dir = tmp();
    const s = open(dir, 30);
    const jobs = [JOB_A, JOB_B, JOB_C];
    let seed = 7;
    const rand = (k: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % k;
    for (let i = 0; i < 200; i++) {
      // Times collide on purpose (ties go by id), some runs have only an occurrence time or none.
      const t = rand(50) * 1000;
      const r = run(jobs[rand(3)], t, { status: rand(4) === 0 ? "failed" : "completed" });
      if (rand(10) === 0) r.started_at = null;
      if (rand(20) === 0) r.scheduled_for = null;
      await s.put(r);
      if (i === 20) expect(everyPage(s, 7)).toEqual(reference(s.all())); // the index exists from here on
      if (rand(5) === 0) {
        // A newer copy of a run, sometimes moved in time.
        const some = s.ofJob(r.job_id)[rand(s.ofJob(r.job_id).length)];
        await s.put({ ...some, status: "failed", started_at: rand(2) ? some.started_at : run(JOB_A, rand(50) * 1000).started_at });
      }
    }
    expect(everyPage(s, 7)).toEqual(reference(s.all()));
    const failed = (r: Run) => r.status === "failed";
    expect(everyPage(s, 3, failed)).toEqual(reference([...s.all()].filter(failed)));
    await s.removeJob(JOB_B);
    expect(everyPage(s, 11)).toEqual(reference(s.all()));
    expect(everyPage(open(dir, 30), 100)).toEqual(reference(s.all()));
  });

  it("says when the cursor's run has left the history", async () => {
    const dir = tmp();
    const s = open(dir, 1);
    const gone = run(JOB_A, 1000);
    await s.put(gone);
    await s.put(run(JOB_B, 500));
    expect(s.recent({ limit: 1 }).items[0].id).toBe(gone.id);
    await s.put(run(JOB_A, 2000));
    expect(s.recent({ limit: 5, after: gone.id })).toEqual({ items: [], more: false, found: false });
  });
});

describe('RunStore: one run journal for every log (durability "fsync")', () => {
  const journals = (dir: string) =>
    readdirSync(path.join(dir, "runs"))
      .filter((n) => n.startsWith("journal-"))
      .sort();
  const journalLines = (dir: string) => journals(dir).flatMap((n) => linesOf(path.join(dir, "runs", n)));

  it("acknowledges the puts of many jobs with one journal, each line naming its job, while each log gets its own line", async () => {
    const dir = tmp();
    const s = open(dir);
    const jobs = Array.from({ length: 50 }, (_, i) => `00000000-0000-4000-8000-${String(i + 100).padStart(12, "0")}`);
    const runs = jobs.map((j, i) => run(j, 1000 + i, { status: "running", finished_at: null }));
    await Promise.all(runs.map((r) => s.put(r)));
    expect(journals(dir)).toEqual(["journal-1.jsonl"]);
    const lines = journalLines(dir);
    expect(lines.map((l) => [l.job, l.put.id, l.put.status])).toEqual(runs.map((r) => [r.job_id, r.id, "running"]));
    for (const r of runs)
      expect(
        linesOf(logOf(dir, r.job_id))
          .slice(1)
          .map((l) => l.put.id),
      ).toEqual([r.id]);
  });

  it("after a crash that took a log's last lines, replays them from the journal at the next start, once", async () => {
    const dir = tmp();
    const s = open(dir);
    const going = run(JOB_A, 1000, { status: "running", finished_at: null });
    await s.put(going);
    const kept = run(JOB_B, 1500);
    await s.put(kept);
    // Not closed: a crash. The disk had the first line of A's log, not its last one (or half of it).
    const file = logOf(dir, JOB_A);
    const before = readFileSync(file, "utf8");
    await s.put({ ...going, status: "completed", finished_at: going.started_at });
    writeFileSync(file, `${before}{"put":{"id":"${going.id}","sta`);
    const again = open(dir);
    expect(again.ofJob(JOB_A).map((r) => [r.id, r.status])).toEqual([[going.id, "completed"]]);
    expect(again.ofJob(JOB_B).map((r) => r.id)).toEqual([kept.id]);
    const log = linesOf(file);
    // The torn line cut off; of the journal's lines, only the one the log did not end with appended.
    expect(log.slice(1).map((l) => l.put.status)).toEqual(["running", "completed"]);
    // A third start finds the log ending with what the journal holds: nothing is appended again.
    open(dir);
    expect(linesOf(file)).toHaveLength(log.length);
  });

  it("lists a run that the journal leaves running in runs/open.jsonl, so start-up finds it", async () => {
    const dir = tmp();
    const s = open(dir);
    const going = run(JOB_A, 1000, { status: "running", finished_at: null });
    await s.put(going);
    // The index lost its line (it is not synced), the journal has it.
    writeFileSync(path.join(dir, "runs", "open.jsonl"), "");
    rmSync(logOf(dir, JOB_A));
    const again = open(dir);
    expect(again.running().map((r) => r.id)).toEqual([going.id]);
  });

  it("does not bring back the history of a job removed before the crash", async () => {
    const dir = tmp();
    const s = open(dir);
    await s.put(run(JOB_A, 1000));
    await s.put(run(JOB_B, 1000));
    await s.removeJob(JOB_A);
    const again = open(dir);
    expect(existsSync(logOf(dir, JOB_A))).toBe(false);
    expect(again.ofJob(JOB_A)).toEqual([]);
    expect(again.ofJob(JOB_B)).toHaveLength(1);
  });

  it("past its size, starts a new journal and removes the old one once the logs it covered are synced", async () => {
    const dir = tmp();
    const s = new RunStore(dir, 100, { checkpointBytes: 4096 });
    s.load({ background: false });
    stores.push(s);
    for (let i = 0; i < 12; i++) await s.put(run(i % 2 ? JOB_A : JOB_B, 1000 + i, { response: "x".repeat(400) }));
    await s.idle();
    await s.put(run(JOB_A, 2000));
    const names = journals(dir);
    expect(names).toHaveLength(1);
    expect(Number(/journal-(\d+)/.exec(names[0])![1])).toBeGreaterThan(1);
    // Every run is in its log, whatever the journal still holds.
    const again = open(dir);
    expect(again.ofJob(JOB_A)).toHaveLength(7);
    expect(again.ofJob(JOB_B)).toHaveLength(6);
  });

  it("a stop after writing a few logs syncs them and removes the journal; one after many leaves it to the next start", async () => {
    const dir = tmp();
    const s = new RunStore(dir, 100);
    s.load({ background: false });
    await s.put(run(JOB_A, 1000));
    await s.put(run(JOB_B, 1000));
    await s.close();
    expect(journals(dir)).toEqual([]);
    expect(open(dir).ofJob(JOB_A)).toHaveLength(1);

    const many = tmp();
    const t = new RunStore(many, 100);
    t.load({ background: false });
    const jobs = Array.from({ length: 20 }, (_, i) => `00000000-0000-4000-8000-${String(i + 200).padStart(12, "0")}`);
    await Promise.all(jobs.map((j) => t.put(run(j, 1000))));
    await t.close();
    expect(journals(many)).toHaveLength(1);
    // The next start finds every log whole (nothing appended), and removes the journal once it has synced them.
    const again = open(many);
    for (const j of jobs) expect(linesOf(logOf(many, j))).toHaveLength(2);
    await again.idle();
    expect(journals(many)).toEqual([]);
  });

  it('with durability "os" keeps no journal', async () => {
    const dir = tmp();
    const s = new RunStore(dir, 100, { durability: "os" });
    s.load({ background: false });
    stores.push(s);
    await s.put(run(JOB_A, 1000));
    expect(journals(dir)).toEqual([]);
    expect(linesOf(logOf(dir, JOB_A))).toHaveLength(2);
  });
});
