/** log_format (SPEC §22): every line a server writes carries time, level, event, job and run ids. */
import { afterEach, describe, expect, it } from "vitest";
import { HttpServer } from "../helpers/http.js";
import { waitFor } from "../helpers/server.js";

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.cleanup()));
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("log_format", () => {
  it('"json": every stderr line is one object with time, level, event, message, job_id and run_id', async () => {
    const server = await HttpServer.start({ config: { log_format: "json" } });
    servers.push(server);
    const c = await server.connect();
    const { job } = await c.tool("add_cron", { name: "logged", schedule: "0 3 * * *", prompt: "hi" });
    const { run } = await c.tool("run_now", { job: "logged", wait: true });
    await c.tool("add_cron", { name: "breaks", schedule: "0 3 * * *", prompt: "x", executor: "fail", retries: 0 });
    const failed = (await c.tool("run_now", { job: "breaks", wait: true })).run;
    await waitFor(() => server.stderr().includes(failed.id), { what: "the failed run's line" });

    const lines = server
      .stderr()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    for (const line of lines) {
      expect(line.time).toMatch(ISO);
      expect(["info", "warning", "error"]).toContain(line.level);
      expect(typeof line.event).toBe("string");
      expect(typeof line.message).toBe("string");
      expect(line).toHaveProperty("job_id");
      expect(line).toHaveProperty("run_id");
    }
    expect(lines.find((l) => l.event === "ready").message).toMatch(/^agent-cron ready http http:\/\/127\.0\.0\.1:\d+\/mcp data=/);
    expect(lines.find((l) => l.event === "job.added" && l.job_id === job.id)).toMatchObject({ level: "info", run_id: null, job_name: "logged" });
    expect(lines.find((l) => l.event === "run.started" && l.run_id === run.id)).toMatchObject({ job_id: job.id, trigger: "manual" });
    expect(lines.find((l) => l.event === "run.finished" && l.run_id === run.id)).toMatchObject({ level: "info", job_id: job.id, status: "completed" });
    expect(lines.find((l) => l.event === "run.finished" && l.run_id === failed.id)).toMatchObject({ level: "warning", status: "failed" });
  });

  it('"text" (the default): a line a person reads, with the time first and the event, job and run ids last', async () => {
    const server = await HttpServer.start();
    servers.push(server);
    const c = await server.connect();
    const { job } = await c.tool("add_cron", { name: "plain", schedule: "0 3 * * *", prompt: "hi" });
    const { run } = await c.tool("run_now", { job: "plain", wait: true });
    const line = await waitFor(
      () =>
        server
          .stderr()
          .split("\n")
          .find((l) => l.includes(`run=${run.id}`) && l.includes("run.finished")),
      { what: "the run's line" },
    );
    expect(line).toMatch(
      new RegExp(`^\\S+Z agent-cron info: Run of plain completed after \\d+\\.\\d s\\. \\[event=run\\.finished job=${job.id} run=${run.id}\\]$`),
    );
    expect(line.split(" ")[0]).toMatch(ISO);
    // The ready line stays exactly as SPEC §1 says, for launchers that wait for it.
    expect(server.stderr()).toMatch(/^agent-cron ready http http:\/\/\S+ data=\S+$/m);
  });
});
