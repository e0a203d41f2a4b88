import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ISO_MS, InProcessServer, groupAlive, isAlive, waitFor, type Structured } from "../helpers/in-process.js";

/** Far in the future: these jobs run only when run_now asks. */
const YEARLY = "0 0 1 1 *";

describe("the tools, each through a real MCP client", () => {
  let s: InProcessServer;

  beforeAll(async () => {
    s = await InProcessServer.start();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("lists the thirteen tools, each with input and output schemas (summary first) and annotations", async () => {
    const { tools } = await s.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      "add_cron",
      "audit",
      "cancel_run",
      "get_cron",
      "get_run",
      "list_crons",
      "list_runs",
      "pause",
      "preview_schedule",
      "remove",
      "resume",
      "run_now",
      "update_cron",
    ]);
    for (const t of tools) {
      expect(t.inputSchema.type).toBe("object");
      expect(t.outputSchema?.type).toBe("object");
      expect(Object.keys(t.outputSchema!.properties!)[0]).toBe("summary");
      expect(t.outputSchema!.required).toContain("summary");
      expect(t.annotations).toBeDefined();
      expect(t.description!.length).toBeGreaterThan(20);
    }
    const init = s.client.getInstructions();
    expect(init).toMatch(/preview_schedule/);
    expect(init).toMatch(/get_run/);
    // A model that also sees a client's session timers is told why to pick a durable job.
    expect(init).toMatch(/CronCreate/);
    expect(tools.find((t) => t.name === "add_cron")!.description).toMatch(/durable.*survives restarts/);
  });

  it("add_cron with an existing name and the same definition returns that job with created: false", async () => {
    const args = { name: "idem", schedule: YEARLY, prompt: "same thing", timezone: "Europe/Paris" };
    const first = await s.tool("add_cron", args);
    const again = await s.tool("add_cron", args);
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.job.id).toBe(first.job.id);
    const { jobs } = await s.tool("list_crons", { query: "idem" });
    expect(jobs.length).toBe(1);
  });

  it("add_cron with an existing name and a different definition is an error that points to update_cron", async () => {
    const err = await s.toolError("add_cron", { name: "idem", schedule: YEARLY, prompt: "something else" });
    expect(err).toMatch(/idem/);
    expect(err).toMatch(/update_cron/);
    const { job } = await s.tool("get_cron", { job: "idem" });
    expect(job.prompt).toBe("same thing");
  });

  it("update_cron changes only the given fields, and a new schedule gives new next runs", async () => {
    const before = await s.job("idem");
    const updated = await s.tool("update_cron", { job: "idem", prompt: "a new prompt", schedule: "30 9 * * *", retries: 0 });
    expect(updated.summary).toMatch(/^Updated "idem": /);
    expect(updated.job.id).toBe(before.id);
    expect(updated.job.prompt).toBe("a new prompt");
    expect(updated.job.schedule).toBe("30 9 * * *");
    const after = await s.job("idem");
    expect(after.retries).toBe(0);
    expect(after.timeout_seconds).toBe(before.timeout_seconds);
    expect(after.created_at).toBe(before.created_at);
    expect(updated.next_runs.length).toBe(3);
    for (const t of updated.next_runs) expect(t).toMatch(/T09:30:00\.000\+0[12]:00$/);
    expect(updated.job.next_run_at).toBe(updated.next_runs[0]);
    // The stored job changed too.
    expect((await s.job("idem")).prompt).toBe("a new prompt");
    // add_cron with the new definition is now the idempotent case.
    const same = await s.tool("add_cron", { name: "idem", schedule: "30 9 * * *", prompt: "a new prompt", retries: 0 });
    expect(same.created).toBe(false);
  });

  it("update_cron refuses a bad schedule, a taken name and an unknown job, and changes nothing", async () => {
    await s.tool("add_cron", { name: "other", schedule: YEARLY, prompt: "x" });
    expect(await s.toolError("update_cron", { job: "idem", schedule: "0 25 * * *" })).toMatch(/hour/);
    expect(await s.toolError("update_cron", { job: "idem", name: "other" })).toMatch(/other/);
    expect(await s.toolError("update_cron", { job: "nope", prompt: "y" })).toMatch(/No job/);
    expect((await s.job("idem")).schedule).toBe("30 9 * * *");
  });

  it("get_cron takes a name or an id and returns the job, its description, next runs and recent runs", async () => {
    const byName = await s.tool("get_cron", { job: "idem" });
    const byId = await s.tool("get_cron", { job: byName.job.id });
    expect(byId.job).toEqual(byName.job);
    expect(byName.description).toMatch(/09:30|9:30/);
    expect(byName.next_runs.length).toBe(5);
    expect(byName.next_runs_utc.length).toBe(5);
    for (const t of byName.next_runs_utc) expect(t).toMatch(/Z$/);
    expect(byName.recent_runs).toEqual([]);
  });

  it("preview_schedule shows next runs in the given timezone and in UTC, and stores nothing", async () => {
    const jobsBefore = (await s.tool("list_crons")).jobs.length;
    const files = () =>
      readdirSync(s.dataDir).sort().join(",") +
      ":" +
      (existsSync(path.join(s.dataDir, "jobs.journal")) ? readFileSync(path.join(s.dataDir, "jobs.journal"), "utf8").length : 0);
    const filesBefore = files();
    const p = await s.tool("preview_schedule", { schedule: "0 9 * * 1-5", timezone: "America/New_York", count: 3 });
    expect(p.valid).toBe(true);
    expect(p.description).toMatch(/09:00|9:00/);
    expect(p.next_runs.length).toBe(3);
    for (const [i, t] of p.next_runs.entries()) {
      expect(t).toMatch(/T09:00:00\.000-0[45]:00$/);
      expect(Date.parse(t)).toBe(Date.parse(p.next_runs_utc[i]));
      const day = new Date(Date.parse(t) - 5 * 3600_000).getUTCDay();
      expect(day).toBeGreaterThanOrEqual(1);
      expect(day).toBeLessThanOrEqual(5);
    }
    const bad = await s.tool("preview_schedule", { schedule: "61 * * * *" });
    expect(bad.valid).toBe(false);
    expect(bad.error).toMatch(/minute must be 0-59, got 61/);
    expect(bad.next_runs).toEqual([]);
    const never = await s.tool("preview_schedule", { schedule: "0 0 30 2 *" });
    expect(never.valid).toBe(false);
    expect(never.error).toMatch(/never/);
    expect((await s.tool("list_crons")).jobs.length).toBe(jobsBefore);
    expect(files()).toBe(filesBefore);
  });

  it("list_crons pages with limit and cursor, each job once, and filters by state and query", async () => {
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await s.addJob({ name: `page-${i}`, schedule: YEARLY, prompt: `paging job ${i}` })).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await s.tool("list_crons", { query: "paging", limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.jobs.map((j: Structured) => j.id));
      cursor = page.next_cursor ?? undefined;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(ids);

    await s.tool("pause", { job: "page-3" });
    const paused = await s.tool("list_crons", { state: "paused" });
    expect(paused.jobs.map((j: Structured) => j.name)).toEqual(["page-3"]);
    expect(paused.next_cursor).toBeNull();
    const byQuery = await s.tool("list_crons", { query: "PAGE-4" });
    expect(byQuery.jobs.map((j: Structured) => j.name)).toEqual(["page-4"]);
    const all = await s.tool("list_crons", {});
    expect(all.jobs.length).toBeGreaterThanOrEqual(7);
    expect(all.next_cursor).toBeNull();
    expect(await s.toolError("list_crons", { limit: 101 })).toMatch(/limit|100/);
  });

  it("run_now with wait returns the finished run", async () => {
    await s.tool("add_cron", { name: "manual", schedule: YEARLY, prompt: "by hand" });
    const { run } = await s.tool("run_now", { job: "manual", wait: true });
    expect(run.status).toBe("completed");
    expect(run.trigger).toBe("manual");
    expect(run.scheduled_for).toBeNull();
    expect(run.response).toBe("by hand");
    expect(run.finished_at).toMatch(ISO_MS);
    expect(run.duration_ms).toBeGreaterThanOrEqual(0);
    const job = await s.job("manual");
    expect(job.run_count).toBe(1);
    expect(job.last_status).toBe("completed");
  });

  it("run_now without wait returns the running record at once", async () => {
    await s.tool("add_cron", { name: "manual-slow", schedule: YEARLY, prompt: "1500", executor: "sleep" });
    const t0 = Date.now();
    const { run } = await s.tool("run_now", { job: "manual-slow" });
    expect(Date.now() - t0).toBeLessThan(1400);
    expect(run.status).toBe("running");
    const ended = await s.waitForRunEnd("manual-slow", run.id);
    expect(ended.status).toBe("completed");
  });

  it("list_runs filters by job and status and pages with a cursor", async () => {
    await s.tool("add_cron", { name: "fails", schedule: YEARLY, prompt: "x", executor: "fail", retries: 0 });
    await s.tool("run_now", { job: "fails", wait: true });
    await s.tool("run_now", { job: "manual", wait: true });
    await s.tool("run_now", { job: "manual", wait: true });

    const failed = await s.tool("list_runs", { status: "failed" });
    expect(failed.runs.length).toBe(1);
    expect(failed.runs[0].status).toBe("failed");
    const manual = await s.tool("list_runs", { job: "manual" });
    expect(manual.runs.length).toBe(3);
    expect(manual.runs.every((r: Structured) => r.status === "completed")).toBe(true);
    // Newest first.
    const started = manual.runs.map((r: Structured) => Date.parse(r.started_at));
    expect([...started].sort((a, b) => b - a)).toEqual(started);
    expect((await s.tool("list_runs", { job: "manual", status: "failed" })).runs).toEqual([]);

    const p1 = await s.tool("list_runs", { job: "manual", limit: 2 });
    expect(p1.runs.length).toBe(2);
    expect(p1.next_cursor).toEqual(expect.any(String));
    const p2 = await s.tool("list_runs", { job: "manual", limit: 2, cursor: p1.next_cursor });
    expect(p2.runs.length).toBe(1);
    expect(p2.next_cursor).toBeNull();
    expect([...p1.runs, ...p2.runs].map((r: Structured) => r.id)).toEqual(manual.runs.map((r: Structured) => r.id));
  });

  it("run_now with wait and a progress token sends progress notifications while the run goes on", async () => {
    await s.tool("add_cron", { name: "progress", schedule: YEARLY, prompt: "2500", executor: "sleep" });
    const progress: { progress: number; message?: string }[] = [];
    const result = await s.call("run_now", { job: "progress", wait: true }, { onprogress: (p) => void progress.push(p), timeout: 20_000 });
    expect(result.isError).toBeFalsy();
    expect((result.structuredContent as Structured).run.status).toBe("completed");
    expect(progress.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < progress.length; i++) expect(progress[i].progress).toBeGreaterThan(progress[i - 1].progress);
    expect(progress[0].message).toMatch(/still going/);
  });

  it("cancel_run stops a hanging run: the run is canceled and its whole process group is gone", async () => {
    await s.tool("add_cron", { name: "hang", schedule: YEARLY, prompt: "hang", executor: "hang", retries: 2 });
    const { run } = await s.tool("run_now", { job: "hang" });
    // The default work dir is made once the run starts: data/work/<run id>.
    const workDir = await s.waitForRuns("hang", (runs) => runs.find((r) => r.id === run.id)?.work_dir, { what: "the run's work dir" });
    const pidFile = path.join(workDir, "hang.pid");
    const grandchild = await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")), { what: "the hang agent's pid file" });
    const pgid = Number(readFileSync(`/proc/${grandchild}/stat`, "utf8").split(") ")[1].split(" ")[2]);
    expect(groupAlive(pgid)).toBe(true);

    const { run: canceled } = await s.tool("cancel_run", { run: run.id });
    expect(canceled.status).toBe("canceled");
    expect(canceled.attempts).toBe(1);
    await waitFor(() => !groupAlive(pgid), { timeout: 5000, what: `process group ${pgid} to be gone` });
    expect(isAlive(grandchild)).toBe(false);
    // Canceled runs are not retried, and cancelling again returns the record as it is.
    expect((await s.tool("cancel_run", { run: run.id })).run.status).toBe("canceled");
    const runs = await s.runs("hang");
    expect(runs.map((r) => r.status)).toEqual(["canceled"]);
    expect(await s.toolError("cancel_run", { run: "00000000-0000-4000-8000-000000000000" })).toMatch(/No run/);
  });
});
