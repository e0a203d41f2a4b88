/** Limits where none existed (issue "nothing wedges", item 9): max_jobs, http.max_sessions, work dirs. */
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HttpServer, INITIALIZE, rawRequest } from "../helpers/http.js";
import { TestServer, workCacheOf } from "../helpers/server.js";

const servers: { cleanup(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});

describe("limits", () => {
  it("add_cron past max_jobs is an error naming the key, and stores nothing", async () => {
    const s = await TestServer.start({ config: { max_jobs: 3 } });
    servers.push(s);
    for (let i = 0; i < 3; i++) await s.tool("add_cron", { name: `j${i}`, schedule: "@daily", prompt: "p" });
    expect(await s.toolError("add_cron", { name: "j3", schedule: "@daily", prompt: "p" })).toMatch(
      /^add_cron failed: There are already 3 jobs, the limit set by max_jobs/,
    );
    expect((await s.tool("list_crons")).total).toBe(3);
    // Retrying an existing job by name is not a new job.
    expect((await s.tool("add_cron", { name: "j0", schedule: "@daily", prompt: "p" })).created).toBe(false);
  });

  it("cron://jobs comes in pages of at most 100 jobs or 256 KiB, each naming the next; the resource listing stays at one page", async () => {
    const s = await TestServer.start();
    servers.push(s);
    const big = "x".repeat(32 * 1024 - 10);
    await Promise.all(
      Array.from({ length: 230 }, (_, i) => s.tool("add_cron", { name: `j${i}`, schedule: "@daily", prompt: i < 20 ? `${big}${i}` : `small ${i}` })),
    );
    const seen = new Set<string>();
    const sizes: number[] = [];
    let uri: string | null = "cron://jobs";
    while (uri) {
      const res = await s.client.readResource({ uri });
      const text = (res.contents[0] as { text: string }).text;
      const page = JSON.parse(text);
      expect(page.total).toBe(230);
      expect(page.jobs.length).toBeGreaterThan(0);
      expect(page.jobs.length).toBeLessThanOrEqual(100);
      for (const job of page.jobs) seen.add(job.id);
      sizes.push(Buffer.byteLength(text));
      uri = page.next_uri;
    }
    expect(seen.size).toBe(230);
    // Whole records, but no page much past 256 KiB (one job more than the budget at most).
    expect(Math.max(...sizes)).toBeLessThan(256 * 1024 + 40 * 1024 * 2);
    const listed = (await s.client.listResources()).resources.filter((r) => r.uri.startsWith("cron://jobs/"));
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.length).toBeLessThanOrEqual(100);
  });

  it("removes a run's default work dir when the run leaves the history, and the job's on remove", async () => {
    const s = await TestServer.start({ config: { runs_per_job: 2 } });
    servers.push(s);
    await s.tool("add_cron", { name: "w", schedule: "@yearly", prompt: "hi" });
    const dirs: string[] = [];
    for (let i = 0; i < 4; i++) dirs.push((await s.tool("run_now", { job: "w", wait: true })).run.work_dir);
    // Outside the data dir, private to the user.
    const work = path.join(workCacheOf(s.dataDir), "agent-cron", "work");
    expect(dirs.every((d) => path.dirname(d) === work)).toBe(true);
    expect(dirs.every((d) => !d.startsWith(s.dataDir + path.sep))).toBe(true);
    expect(statSync(work).mode & 0o777).toBe(0o700);
    expect(statSync(dirs[3]).mode & 0o777).toBe(0o700);
    expect(readdirSync(work).sort()).toEqual(
      dirs
        .slice(2)
        .map((d) => path.basename(d))
        .sort(),
    );
    await s.tool("remove", { job: "w" });
    expect(readdirSync(work)).toEqual([]);
    // A persistent job's one folder goes with the job.
    await s.tool("add_cron", { name: "p", schedule: "@yearly", prompt: "hi", session: "persistent" });
    const { run } = await s.tool("run_now", { job: "p", wait: true });
    expect(existsSync(run.work_dir)).toBe(true);
    await s.tool("remove", { job: "p" });
    expect(existsSync(run.work_dir)).toBe(false);
  });

  it("past http.max_sessions closes the session idle longest, and the newest keep working", async () => {
    const server = await HttpServer.start({ config: { http: { max_sessions: 2 } } });
    servers.push(server);
    const a = await server.connect({ name: "a" });
    const b = await server.connect({ name: "b" });
    const c = await server.connect({ name: "c" });
    expect((await c.tool("preview_schedule", { schedule: "@daily" })).valid).toBe(true);
    expect((await b.tool("preview_schedule", { schedule: "@daily" })).valid).toBe(true);
    // a was idle longest: its session is gone.
    await expect(a.tool("preview_schedule", { schedule: "@daily" })).rejects.toThrow();
    const fresh = await rawRequest(server.url, { body: INITIALIZE });
    expect(fresh.status).toBe(200);
  });
});
