import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ISO_MS, TestServer, sleep, waitFor, type Structured } from "../helpers/server.js";

/** One server for the whole life of a job: add → runs → results → notifications → pause/resume → remove. */
describe("a job's life through a real MCP client", () => {
  let s: TestServer;
  let job: Structured;
  let firstRuns: Structured[];

  beforeAll(async () => {
    s = await TestServer.start();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("runs a 6-field every-second job and records each occurrence's scheduled_for to the millisecond", async () => {
    const added = await s.tool("add_cron", { name: "ticker", schedule: "* * * * * *", prompt: "tick tock" });
    job = await s.job(added.job.id);
    expect(added.created).toBe(true);
    expect(added.job.description).toMatch(/second/i);
    expect(added.summary).toMatch(/^Scheduled "ticker": .*second.* \(Europe\/Paris\); next run \d{4}-/);
    expect(job.created_by).toBe("e2e-client/1.0.0");
    expect(job.timezone).toBe("Europe/Paris");

    firstRuns = await s.waitForRuns("ticker", (runs) => {
      const done = runs.filter((r) => r.status === "completed");
      return done.length >= 3 && done;
    });
    for (const run of firstRuns) {
      expect(run.trigger).toBe("schedule");
      expect(run.response).toBe("tick tock");
      expect(run.attempts).toBe(1);
      expect(run.exit_code).toBe(0);
      expect(run.scheduled_for).toMatch(ISO_MS);
      expect(run.started_at).toMatch(ISO_MS);
      // A 6-field cron fires on whole seconds, in the job's zone.
      expect(run.scheduled_for).toMatch(/:\d{2}\.000\+0[12]:00$/);
      const lateness = Date.parse(run.started_at) - Date.parse(run.scheduled_for);
      expect(lateness).toBeGreaterThanOrEqual(0);
      expect(lateness).toBeLessThan(1000);
      expect(Date.parse(run.finished_at)).toBeGreaterThanOrEqual(Date.parse(run.started_at));
    }
    // Newest first, one occurrence per second, none twice.
    const times = firstRuns.map((r) => Date.parse(r.scheduled_for));
    expect(new Set(times).size).toBe(times.length);
    for (let i = 1; i < times.length; i++) expect((times[i - 1] - times[i]) % 1000).toBe(0);
    expect(times[0]).toBeGreaterThan(times[times.length - 1]);
    console.log(`fire lateness (started_at - scheduled_for), ms: ${firstRuns.map((r) => Date.parse(r.started_at) - Date.parse(r.scheduled_for)).join(", ")}`);
  });

  it("says it is ready on stderr, with its data dir, and logs nothing alarming there", async () => {
    expect(s.stderr()).toContain(`agent-cron ready stdio data=${s.dataDir}`);
    expect(s.stderr()).not.toMatch(/error|exception|warning/i);
  });

  it("serves the whole run record with its output at cron://runs/{id}, and links it from list_runs", async () => {
    const run = firstRuns[0];
    const record = await s.read(`cron://runs/${run.id}`);
    expect(record.id).toBe(run.id);
    expect(record.job_id).toBe(job.id);
    expect(record.status).toBe("completed");
    expect(record.output).toBe("tick tock");
    expect(record.scheduled_for).toBe(run.scheduled_for);

    // Clients ignore resource_link; each list_runs row names its resource instead.
    const listed = await s.tool("list_runs", { job: "ticker", limit: 2 });
    expect(listed.runs.length).toBe(2);
    expect(listed.runs[0].uri).toMatch(/^cron:\/\/runs\/[0-9a-f-]{36}$/);

    const jobPage = await s.read(`cron://jobs/${job.id}`);
    expect(jobPage.job.id).toBe(job.id);
    expect(jobPage.recent_runs.length).toBeGreaterThanOrEqual(3);
    expect(jobPage.recent_runs.length).toBeLessThanOrEqual(10);
    expect(jobPage.next_runs.length).toBeGreaterThan(0);

    const all = await s.read("cron://jobs");
    expect(all.jobs.map((j: Structured) => j.id)).toContain(job.id);

    const templates = (await s.client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    expect(templates).toEqual(expect.arrayContaining(["cron://jobs/{job_id}", "cron://runs/{run_id}"]));
    const jobIds = await s.client.complete({
      ref: { type: "ref/resource", uri: "cron://jobs/{job_id}" },
      argument: { name: "job_id", value: job.id.slice(0, 6) },
    });
    expect(jobIds.completion.values).toContain(job.id);
    const runIds = await s.client.complete({
      ref: { type: "ref/resource", uri: "cron://runs/{run_id}" },
      argument: { name: "run_id", value: run.id.slice(0, 6) },
    });
    expect(runIds.completion.values).toContain(run.id);

    const listing = await s.client.listResources();
    const uris = listing.resources.map((r) => r.uri);
    expect(uris).toContain(`cron://jobs/${job.id}`);
    expect(uris).toContain(`cron://runs/${run.id}`);
  });

  it("sends resources/updated for a subscribed job URI as its runs start and end", async () => {
    const uri = `cron://jobs/${job.id}`;
    await s.client.subscribeResource({ uri });
    const since = Date.now();
    await waitFor(() => s.notificationsOf("notifications/resources/updated").filter((n) => n.params.uri === uri && n.at >= since).length >= 2, {
      what: `updates of ${uri}`,
    });
    await s.client.unsubscribeResource({ uri });
  });

  it("sends resources/updated for a subscribed run URI when that run ends, and none for URIs nobody subscribed to", async () => {
    await s.tool("add_cron", { name: "slow", schedule: "0 0 1 1 *", prompt: "1200", executor: "sleep" });
    const { run } = await s.tool("run_now", { job: "slow" });
    expect(run.status).toBe("running");
    const uri = `cron://runs/${run.id}`;
    await s.client.subscribeResource({ uri });
    await waitFor(() => s.notificationsOf("notifications/resources/updated").some((n) => n.params.uri === uri), { what: `an update of ${uri}` });
    const ended = await s.read(uri);
    expect(ended.status).toBe("completed");
    expect(ended.output).toBe("done");
    const updatedUris = new Set(s.notificationsOf("notifications/resources/updated").map((n) => n.params.uri));
    expect(updatedUris.has(`cron://runs/${firstRuns[0].id}`)).toBe(false);
  });

  it("sends resources/list_changed when jobs and runs are added", async () => {
    const before = s.notificationsOf("notifications/resources/list_changed").length;
    await s.tool("add_cron", { name: "listed", schedule: "0 0 1 1 *", prompt: "x" });
    await waitFor(() => s.notificationsOf("notifications/resources/list_changed").length > before, { what: "list_changed after add_cron" });
    const afterAdd = s.notificationsOf("notifications/resources/list_changed").length;
    await s.tool("run_now", { job: "listed", wait: true });
    await waitFor(() => s.notificationsOf("notifications/resources/list_changed").length > afterAdd, { what: "list_changed after a new run" });
  });

  it("sends each run's start and end as logging messages from logger agent-cron", async () => {
    const logs = await waitFor(
      () => {
        const msgs = s.notificationsOf("notifications/message").filter((n) => n.params.logger === "agent-cron");
        const data = msgs.map((m) => m.params.data as Structured);
        return (
          data.some((d) => d.event === "run.finished" && d.job_id === job.id) && data.some((d) => d.event === "run.started" && d.job_id === job.id) && msgs
        );
      },
      { what: "run logging messages" },
    );
    const finished = logs.find((m) => (m.params.data as Structured).event === "run.finished" && (m.params.data as Structured).job_id === job.id)!;
    const data = finished.params.data as Structured;
    expect(finished.params.level).toBe("info");
    expect(data.job_name).toBe("ticker");
    expect(data.status).toBe("completed");
    expect(data.uri).toBe(`cron://runs/${data.run_id}`);
  });

  it("pause stops new runs; resume starts them again from now", async () => {
    const { job: paused } = await s.tool("pause", { job: "ticker" });
    const pausedAt = Date.now();
    expect(paused.state).toBe("paused");
    expect((await s.job("ticker")).enabled).toBe(false);
    expect(paused.next_run_at).toBeNull();
    // Idempotent.
    expect((await s.tool("pause", { job: "ticker" })).job.state).toBe("paused");

    // A run that had already started may still finish; after that, the count must stay put.
    const settled = await s.waitForRuns("ticker", (runs) => runs.every((r) => r.status !== "running") && runs);
    await sleep(2200);
    const later = await s.runs("ticker");
    expect(later.filter((r) => Date.parse(r.scheduled_for) > pausedAt)).toEqual([]);
    expect(later.filter((r) => r.status === "running")).toEqual([]);

    const resumedAt = Date.now();
    const { job: resumed } = await s.tool("resume", { job: "ticker" });
    expect(resumed.state).toBe("active");
    expect(resumed.next_run_at).not.toBeNull();
    const fresh = await s.waitForRuns("ticker", (runs) =>
      runs.find((r) => r.status === "completed" && Date.parse(r.scheduled_for) >= resumedAt - 1000 && !settled.some((o) => o.id === r.id)),
    );
    expect(Date.parse(fresh.scheduled_for)).toBeGreaterThan(Math.max(...settled.map((r) => Date.parse(r.scheduled_for))));
    // Nothing that passed while paused was replayed.
    const runs = await s.runs("ticker");
    const newOnes = runs.filter((r) => !settled.some((o) => o.id === r.id));
    expect(newOnes.every((r) => Date.parse(r.scheduled_for) >= resumedAt - 1000)).toBe(true);
  });

  it("remove deletes the job with its runs and outputs, and no run of it happens afterwards", async () => {
    const runs = await s.runs("ticker");
    const runFile = path.join(s.dataDir, "runs", `${job.id}.jsonl`);
    expect(existsSync(runFile)).toBe(true);
    const { removed } = await s.tool("remove", { job: "ticker" });
    expect(removed).toBe(job.id);

    expect(await s.toolError("get_cron", { job: "ticker" })).toMatch(/No job .*ticker/);
    expect(await s.toolError("list_runs", { job: job.id })).toMatch(/No job/);
    const left = await s.runs();
    expect(left.some((r) => r.job_id === job.id)).toBe(false);
    await expect(s.read(`cron://runs/${runs[0].id}`)).rejects.toThrow();
    expect(existsSync(runFile)).toBe(false);
    for (const r of runs.slice(0, 5)) expect(existsSync(path.join(s.dataDir, "outputs", r.id))).toBe(false);
    // It stays gone: no run of it appears later.
    await sleep(1200);
    expect((await s.runs()).some((r) => r.job_id === job.id)).toBe(false);
    expect((await s.tool("list_crons")).jobs.map((j: Structured) => j.name).sort()).toEqual(["listed", "slow"]);
  });

  it("remove with keep_runs keeps the job's history readable", async () => {
    const slow = await s.job("slow");
    const before = await s.runs("slow");
    expect(before.length).toBe(1);
    await s.tool("remove", { job: "slow", keep_runs: true });
    expect(await s.toolError("get_cron", { job: "slow" })).toMatch(/No job/);
    const kept = (await s.runs()).filter((r) => r.job_id === slow.id);
    expect(kept.map((r) => r.id)).toEqual([before[0].id]);
    expect((await s.read(`cron://runs/${before[0].id}`)).output).toBe("done");
  });
});
