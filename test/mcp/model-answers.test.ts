/**
 * What a model reads (SPEC §10): Claude Code and Codex show the model only structuredContent,
 * so its size and shape are the product. Driven through the SDK client over the in-memory
 * transport, against the server `serve` builds (test/helpers/in-process.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portabilityProblems } from "../../src/mcp/schema.js";
import { InProcessServer, sleep, textOf, waitFor, type Structured } from "../helpers/in-process.js";

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
const PROMPT_100 = "Audit yesterday's application logs, list every new error with its count, and say which release added it.".slice(0, 100);

describe("answers a model can use", () => {
  let s: InProcessServer;
  beforeAll(async () => {
    s = await InProcessServer.start();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it("tool definitions (name, description, input schema) fit in 12 KB, and every schema is portable", async () => {
    const { tools } = await s.client.listTools();
    const modelFacing = tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema }));
    // 12 KB (issue 6), the 13th tool (audit, round 3) included.
    expect(tools).toHaveLength(13);
    expect(bytes(modelFacing)).toBeLessThanOrEqual(12 * 1024);
    const problems = tools.flatMap((t) => [
      ...portabilityProblems(t.inputSchema, `${t.name}.inputSchema`),
      ...portabilityProblems(t.outputSchema, `${t.name}.outputSchema`),
    ]);
    expect(problems).toEqual([]);
    // The checker is not vacuous: it finds each kind of problem.
    expect(
      portabilityProblems({ type: "object", properties: { a: { type: ["string", "null"] }, b: {}, c: { type: "string", pattern: "^\\p{L}+$" } } }),
    ).toHaveLength(3);
    // The job name's \p{…} rule is still enforced by the server, only not advertised.
    expect(await s.toolError("add_cron", { name: "-bad", schedule: "@daily", prompt: "x" })).toMatch(
      /^add_cron failed: name must start with a letter or digit/,
    );
    // So are string lengths: not advertised, still checked, the error naming field and bound.
    expect(JSON.stringify(modelFacing)).not.toMatch(/"(minLength|maxLength)"/);
    expect(await s.toolError("add_cron", { name: "n".repeat(101), schedule: "@daily", prompt: "x" })).toMatch(/^add_cron failed: name.*100/);
    expect(await s.toolError("update_cron", { job: "j".repeat(201), prompt: "x" })).toMatch(/^update_cron failed: job.*200/);
    expect(await s.toolError("add_cron", { schedule: "@daily", prompt: "" })).toMatch(/^add_cron failed: prompt/);
  });

  it("add_cron answers in under 1 KB, summary first, with the compact row and three next runs", async () => {
    const result = await s.call("add_cron", { name: "log-audit", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: PROMPT_100 });
    const answer = result.structuredContent as Structured;
    expect(bytes(answer)).toBeLessThanOrEqual(1024);
    expect(Object.keys(answer)[0]).toBe("summary");
    expect(answer.summary).toMatch(
      /^Scheduled "log-audit": At 09:00 AM, Monday through Friday \(Europe\/Paris\); next run \d{4}-\d{2}-\d{2}T09:00:00\.000\+01:00\. Warning: Runs only while this client is open \(always_on "client"\)\.$/,
    );
    // The text block carries the same sentence.
    expect((result.content[0] as { text: string }).text).toBe(answer.summary);
    expect(Object.keys(answer.job).sort()).toEqual([
      "description",
      "id",
      "last_run_at",
      "last_status",
      "name",
      "next_run_at",
      "prompt",
      "schedule",
      "state",
      "timezone",
    ]);
    expect(answer.next_runs).toHaveLength(3);
    expect(answer.next_runs_utc).toHaveLength(3);
    expect(answer.created).toBe(true);
  });

  it("list_crons pages 20 rows by default, and 50 jobs with 100-character prompts fit in 12 KB", async () => {
    for (let i = 0; i < 49; i++) await s.tool("add_cron", { name: `job-${String(i).padStart(2, "0")}`, schedule: "@daily", prompt: PROMPT_100 });
    const first = await s.tool("list_crons");
    expect(first.jobs).toHaveLength(20);
    expect(first.total).toBe(50);
    expect(first.next_cursor).toEqual(expect.any(String));
    expect(Object.keys(first)[0]).toBe("summary");
    expect(first.summary).toBe(`50 jobs, 20 on this page: 20 active; pass next_cursor for more. Runs only while this client is open (always_on "client").`);
    // The default page is what a model gets unasked: well under Claude Code's preview limit.
    expect(bytes(first)).toBeLessThanOrEqual(8 * 1024);
    const all = await s.tool("list_crons", { limit: 50 });
    expect(all.jobs).toHaveLength(50);
    console.log(
      `list_crons: 20 rows (default page) ${bytes(first)} bytes, 50 rows ${bytes(all)} bytes of structuredContent; a row: ${JSON.stringify(all.jobs[3])}`,
    );
    // SPEC §10: 50 rows with 100-character prompts fit in 12 KB. A row leaves out what says
    // nothing: null fields, state active, the server's timezone (named once in the answer), and
    // the words for a nickname schedule.
    expect(bytes(all)).toBeLessThanOrEqual(12 * 1024);
    expect(all.timezone).toBe("Europe/Paris");
    const daily = all.jobs.find((j: Structured) => j.name === "job-03");
    expect(Object.keys(daily)).toEqual(["id", "name", "schedule", "next_run_at", "prompt"]);
    // A cron schedule keeps its words.
    const audit = all.jobs.find((j: Structured) => j.name === "log-audit");
    expect(Object.keys(audit)).toEqual(["id", "name", "schedule", "description", "next_run_at", "prompt"]);
    expect(audit.description).toBe("At 09:00 AM, Monday through Friday");
    // `fields` gives the left-out fields back, null or not.
    const asked = await s.tool("list_crons", { query: "job-03", fields: ["timezone", "state", "last_status", "description"] });
    expect(asked.jobs[0]).toMatchObject({ timezone: "Europe/Paris", state: "active", last_status: null, description: "At 12:00 AM" });
    expect(await s.toolError("list_crons", { fields: ["prompt_whole"] })).toMatch(/^list_crons failed: fields/);
    // A job in another timezone, paused, keeps both.
    await s.tool("add_cron", { name: "tokyo-report", schedule: "0 9 * * *", timezone: "Asia/Tokyo", prompt: "report", enabled: false });
    expect((await s.tool("list_crons", { query: "tokyo-report" })).jobs[0]).toMatchObject({ timezone: "Asia/Tokyo", state: "paused" });
  });

  it("a long prompt is cut to 120 characters in a row, with …, and stays whole in get_cron", async () => {
    const prompt = "ü".repeat(300);
    await s.tool("add_cron", { name: "long-prompt", schedule: "@daily", prompt });
    const { jobs } = await s.tool("list_crons", { query: "long-prompt" });
    expect(Array.from(jobs[0].prompt as string)).toHaveLength(120);
    expect(jobs[0].prompt.endsWith("…")).toBe(true);
    expect((await s.job("long-prompt")).prompt).toBe(prompt);
  });

  it("list_runs rows carry the first 500 characters of the answer; get_run the whole run and output", async () => {
    await s.tool("add_cron", { name: "big-answer", schedule: "@yearly", prompt: "6000", executor: "big" });
    const { run } = await s.tool("run_now", { job: "big-answer", wait: true });
    expect(run.status).toBe("completed");
    const { runs } = await s.tool("list_runs", { job: "big-answer" });
    expect(runs).toHaveLength(1);
    const row = runs[0];
    expect(Object.keys(row).sort()).toEqual([
      "duration_ms",
      "error",
      "id",
      "job_id",
      "job_name",
      "response",
      "response_truncated",
      "scheduled_for",
      "started_at",
      "status",
      "trigger",
      "uri",
    ]);
    expect(row.job_name).toBe("big-answer");
    expect(Array.from(row.response as string).length).toBe(500);
    expect(row.response_truncated).toBe(true);
    expect(row.uri).toBe(`cron://runs/${run.id}`);

    const whole = await s.tool("get_run", { run: run.id });
    expect(Object.keys(whole)[0]).toBe("summary");
    expect(whole.summary).toMatch(new RegExp(`^Run ${run.id} of job "big-answer" completed in \\d+`));
    expect(whole.run.attempts).toBe(1);
    expect(whole.output).toMatch(/^START/);
    expect(whole.output).toMatch(/END\n?$/);
    expect(whole.output_truncated).toBe(false);
    // The first 8 characters of the id are enough, as the CLI prints them.
    expect((await s.tool("get_run", { run: run.id.slice(0, 8) })).run.id).toBe(run.id);
  });

  it("get_run cuts an output over 32 KiB on a character boundary and says so", async () => {
    await s.tool("add_cron", { name: "huge-answer", schedule: "@yearly", prompt: "60000", executor: "big" });
    const { run } = await s.tool("run_now", { job: "huge-answer", wait: true });
    const whole = await s.tool("get_run", { run: run.id });
    expect(whole.output_truncated).toBe(true);
    expect(Buffer.byteLength(whole.output)).toBeLessThanOrEqual(32 * 1024);
    expect(whole.output).not.toMatch(/\uFFFD/);
    expect((await s.read(`cron://runs/${run.id}`)).output.length).toBeGreaterThan(whole.output.length);
  });

  it("an error result starts with the tool's name, on one line", async () => {
    const result = await s.call("add_cron", { schedule: "61 * * * *", prompt: "x" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^add_cron failed: minute must be 0-59, got 61/);
    expect(await s.toolError("get_run", { run: "no-such-run" })).toMatch(/^get_run failed: No run with id "no-such-run"/);
    expect(await s.toolError("pause", { job: "nope" })).toMatch(/^pause failed: /);
    expect(textOf(await s.call("no_such_tool", {}))).toMatch(/^no_such_tool failed: unknown tool/);
  });

  it("an ambiguous short id is an error that lists the matches", async () => {
    const { jobs } = await s.tool("list_crons", { limit: 100 });
    // Two ids that share a first character exist among 50 random UUIDs; find the longest shared prefix.
    const ids = (jobs as Structured[]).map((j) => j.id as string).sort();
    let best = "";
    for (let i = 1; i < ids.length; i++) {
      let n = 0;
      while (ids[i][n] === ids[i - 1][n]) n++;
      if (n > best.length) best = ids[i].slice(0, n);
    }
    // Short of 8 characters a prefix is not taken at all.
    expect(await s.toolError("get_cron", { job: ids[0].slice(0, 7) })).toMatch(/No job with id or name/);
    if (best.length >= 8) expect(await s.toolError("get_cron", { job: best })).toMatch(/is the start of 2 job ids/);
    expect((await s.tool("get_cron", { job: ids[0].slice(0, 12) })).job.id).toBe(ids[0]);
  });

  it("sends one resources/updated per subscribed URI for a run's start and one for its end", async () => {
    await s.tool("add_cron", { name: "watched", schedule: "@yearly", prompt: "400", executor: "sleep" });
    const job = await s.job("watched");
    const uri = `cron://jobs/${job.id}`;
    await s.client.subscribeResource({ uri });
    const since = Date.now();
    const { run } = await s.tool("run_now", { job: "watched" });
    await waitFor(async () => (await s.tool("get_run", { run: run.id })).run.status === "completed", { what: "the run to end" });
    await sleep(300);
    const updates = s.notificationsOf("notifications/resources/updated").filter((n) => n.params.uri === uri && n.at >= since);
    // Start (run record + run_count) and end (run record + job fields): two bursts, one each.
    expect(updates).toHaveLength(2);
    await s.client.unsubscribeResource({ uri });
  });
});
