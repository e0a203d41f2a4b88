import { describe, expect, it } from "vitest";
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
