import { describe, expect, it, vi } from "vitest";
import { FakeClock } from "../helpers/clock.js";
import { forget, memoryBackend, openTestApp } from "../helpers/app.js";

// A restart arms its jobs a slice at a time (Runtime.start), and the host serves calls from the
// moment the store is loaded (issue 27: arming 100,000 jobs held the first answer ~0.2 s).
describe("start-up arming", () => {
  it("answers calls while it arms the jobs, and arms what those calls left, not what the store held", async () => {
    const JOBS = 12_000;
    const first = await openTestApp({ backend: memoryBackend, config: { max_jobs: 100_000 } });
    const { job: template } = await first.app.jobs.add({ name: "far-0", schedule: "0 0 1 1 *", prompt: "p" }, "test");
    for (let i = 1; i < JOBS; i++) await first.app.runtime.jobs.insert({ ...template, id: `job-${i}`, name: `far-${i}` });
    await first.app.runtime.close(0);
    forget(first.app);

    const second = await openTestApp({ backend: memoryBackend, store: first.store, clock: new FakeClock(first.clock.now()), config: { max_jobs: 100_000 } });
    let started = false;
    const starting = second.app.runtime.start().then(() => {
      started = true;
    });
    // A turn of the event loop: the first slices are armed, not the last.
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(false);
    expect(second.app.queries.listJobs({ limit: 1 }).total).toBe(JOBS);
    // The last jobs, in the slice still to come: one removed, one paused, one changed.
    await second.app.jobs.remove(`far-${JOBS - 1}`);
    await second.app.jobs.pause(`far-${JOBS - 2}`);
    await second.app.jobs.update(`far-${JOBS - 3}`, { schedule: "0 0 2 1 *" });
    await starting;

    // biome-ignore lint/complexity/useLiteralKeys: a private member, reached on purpose (TypeScript allows it only by index)
    const scheduler = second.app.runtime["scheduler"];
    const yearStart = Date.parse(template.next_run_at as string);
    expect(scheduler.nextFor(`job-${JOBS - 1}`)).toBeNull();
    expect(scheduler.nextFor(`job-${JOBS - 2}`)).toBeNull();
    expect(scheduler.nextFor(`job-${JOBS - 3}`)).toBe(yearStart + 86_400_000);
    expect(scheduler.nextFor(`job-${JOBS - 4}`)).toBe(yearStart);
    expect(scheduler.nextFor(template.id)).toBe(yearStart);
    expect(scheduler.size).toBe(JOBS - 2);
  });
});

// A job that is on time fires on time even while another job's catch-up is still being written
// (Runtime.start): held until every catch-up was recorded, a start with 1,000 jobs behind on a
// loaded machine fired nothing for over 8 s (issue 27's fleet bench).
describe("start-up catch-up", () => {
  it("fires a job that is on time while another job's catch-up records are still being written", async () => {
    const first = await openTestApp({ backend: memoryBackend, now: "2026-03-02T08:00:00.500Z" });
    await first.app.jobs.add({ name: "behind", schedule: "* * * * *", prompt: "p", catch_up: "latest" }, "test");
    await first.app.runtime.close(0);
    forget(first.app);

    // Ten minutes down. The store then holds the catch-up's first record back until let go.
    const clock = new FakeClock(Date.parse("2026-03-02T08:10:00.500Z"));
    const second = await openTestApp({ backend: memoryBackend, store: first.store, clock });
    const behindId = second.app.queries.resolveJob("behind").id;
    let letGo!: () => void;
    const gate = new Promise<void>((r) => {
      letGo = r;
    });
    let held = 0;
    // biome-ignore lint/complexity/useLiteralKeys: a private member, reached on purpose (TypeScript allows it only by index)
    const runs = second.app.runtime["parts"].runs as { put: (run: { job_id: string }) => Promise<unknown> };
    const put = runs.put.bind(runs);
    runs.put = async (run) => {
      if (run.job_id === behindId) {
        held++;
        await gate;
      }
      return put(run);
    };
    // Added after the restart, before start-up: on time, armed for 08:10:01.
    const { job: onTime } = await second.app.jobs.add({ name: "on-time", schedule: "* * * * * *", prompt: "p" }, "test");
    let started = false;
    const starting = second.app.runtime.start().then(() => {
      started = true;
    });
    await vi.waitFor(() => expect(held).toBeGreaterThan(0));
    clock.advance(1000);
    await vi.waitFor(() => expect(second.exec.calls.map((c) => c.req.jobId)).toContain(onTime.id));
    expect(started).toBe(false);
    // The catch-up goes on once the store takes its records: missed ones, then the latest run.
    letGo();
    await starting;
    await vi.waitFor(() => expect(second.exec.calls.some((c) => c.req.jobId === behindId)).toBe(true));
    const caught = second.app.queries.listRuns({ job: "behind", limit: 100 }).items;
    expect(caught.filter((r) => r.status === "missed").length).toBeGreaterThan(0);
    expect(caught.filter((r) => r.trigger === "catch_up" && r.status === "running")).toHaveLength(1);
    second.exec.finishAll();
  });
});
