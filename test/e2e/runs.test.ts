import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { TestServer, removeDir, sleep, type Structured } from "../helpers/server.js";

/** Far in the future: these jobs run only when run_now asks. */
const YEARLY = "0 0 1 1 *";

/**
 * How runs behave, seen through the server: one server, many independent jobs, so the tests
 * run concurrently (each uses the `expect` of its own context).
 */
describe.concurrent("runs through the server", () => {
  let s: TestServer;
  let root: string;
  let scratch: string;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "agent-cron-roots-")));
    scratch = realpathSync(mkdtempSync(path.join(os.tmpdir(), "agent-cron-scratch-")));
    mkdirSync(path.join(root, "project"));
    symlinkSync(scratch, path.join(root, "escape"));
    s = await TestServer.start({
      config: {
        max_concurrent: 16,
        work_dir_roots: [root],
        env_allow: ["ALLOWED_VAR"],
        executors: { missing: { type: "command", command: ["/nonexistent/agent-bin", "{prompt}"] } },
      },
      env: { SECRET_TOKEN: "x-planted-secret", ALLOWED_VAR: "allowed-value", CLAUDECODE: "1" },
    });
  });
  afterAll(async () => {
    await s?.cleanup();
    await removeDir(root);
    await removeDir(scratch);
  });

  it("a run that outlives timeout_seconds is timed_out, and each timed-out attempt is retried", async ({ expect }) => {
    await s.tool("add_cron", {
      name: "slowpoke",
      schedule: YEARLY,
      prompt: "8000",
      executor: "sleep",
      timeout_seconds: 1,
      retries: 1,
      retry_delay_seconds: 0.2,
    });
    const t0 = Date.now();
    const { run } = await s.tool("run_now", { job: "slowpoke", wait: true });
    const took = Date.now() - t0;
    expect(run.status).toBe("timed_out");
    expect(run.attempts).toBe(2);
    expect(run.error).toMatch(/Timed out after 1s/);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(took).toBeLessThan(7000);
    const job = await s.job("slowpoke");
    expect(job.last_status).toBe("timed_out");
    expect(job.consecutive_failures).toBe(1);
  });

  it("a flaky agent that fails once succeeds on its retry, and the run counts both attempts", async ({ expect }) => {
    const counter = path.join(scratch, "flaky-counter");
    await s.tool("add_cron", { name: "flaky", schedule: YEARLY, prompt: counter, executor: "flaky", retries: 2, retry_delay_seconds: 0.2 });
    const { run } = await s.tool("run_now", { job: "flaky", wait: true });
    expect(run.status).toBe("completed");
    expect(run.attempts).toBe(2);
    expect(run.error).toBeNull();
    expect(run.response).toBe("ok after 1 failures");
    expect((await s.job("flaky")).consecutive_failures).toBe(0);
  });

  it("a non-zero exit is a failed run whose error holds the exit code and the tail of stderr", async ({ expect }) => {
    await s.tool("add_cron", { name: "broken", schedule: YEARLY, prompt: "x", executor: "fail", retries: 0 });
    const { run } = await s.tool("run_now", { job: "broken", wait: true });
    expect(run.status).toBe("failed");
    expect(run.attempts).toBe(1);
    expect(run.exit_code).toBe(3);
    expect(run.error).toMatch(/code 3/);
    expect(run.error).toMatch(/fatal: the agent broke/);
    // The tail, not all 200 noise lines.
    expect(run.error.length).toBeLessThan(1000);
    const job = await s.job("broken");
    expect(job.last_status).toBe("failed");
    expect(job.last_error).toMatch(/fatal: the agent broke/);
  });

  it("output_format json: valid JSON completes with the parsed output, invalid JSON is a failed run", async ({ expect }) => {
    await s.tool("add_cron", { name: "json-ok", schedule: YEARLY, prompt: "object", executor: "json", output_format: "json" });
    const { run: ok } = await s.tool("run_now", { job: "json-ok", wait: true });
    expect(ok.status).toBe("completed");
    const whole = await s.read(`cron://runs/${ok.id}`);
    expect(whole.output).toEqual({ response: "hello from json", meta: { tokens: 12, tags: ["a", "b"] } });

    await s.tool("add_cron", { name: "json-bad", schedule: YEARLY, prompt: "invalid", executor: "json", output_format: "json", retries: 0 });
    const { run: bad } = await s.tool("run_now", { job: "json-bad", wait: true });
    expect(bad.status).toBe("failed");
    expect(bad.exit_code).toBe(0);
    expect(bad.error).toMatch(/not valid JSON/);
  });

  it("output_format structured: output matching output_schema completes; output that does not is failed (and retried)", async ({ expect }) => {
    const good = { type: "object", required: ["response"], properties: { response: { type: "string" } } };
    await s.tool("add_cron", { name: "struct-ok", schedule: YEARLY, prompt: "object", executor: "json", output_format: "structured", output_schema: good });
    const { run: ok } = await s.tool("run_now", { job: "struct-ok", wait: true });
    expect(ok.status).toBe("completed");
    expect((await s.read(`cron://runs/${ok.id}`)).output.response).toBe("hello from json");

    const strict = { type: "object", required: ["verdict"], properties: { verdict: { enum: ["pass", "fail"] } } };
    await s.tool("add_cron", {
      name: "struct-bad",
      schedule: YEARLY,
      prompt: "object",
      executor: "json",
      output_format: "structured",
      output_schema: strict,
      retries: 1,
      retry_delay_seconds: 0.1,
    });
    const { run: bad } = await s.tool("run_now", { job: "struct-bad", wait: true });
    expect(bad.status).toBe("failed");
    expect(bad.attempts).toBe(2);
    expect(bad.error).toMatch(/does not match output_schema/);
    expect(bad.error).toMatch(/verdict/);
  });

  it("checks work_dir again before each run: a folder swapped for a link outside the roots fails the run with that reason, and no agent starts", async ({
    expect,
  }) => {
    const dir = path.join(root, "swapped");
    mkdirSync(dir);
    await s.tool("add_cron", { name: "swapped-dir", schedule: YEARLY, prompt: "ran", executor: "echo", work_dir: dir, retries: 2 });
    expect((await s.tool("run_now", { job: "swapped-dir", wait: true })).run.status).toBe("completed");
    // What an agent could do to its own work dir, so that the next run works elsewhere.
    rmSync(dir, { recursive: true });
    symlinkSync(scratch, dir);
    const { run } = await s.tool("run_now", { job: "swapped-dir", wait: true });
    expect(run.status).toBe("failed");
    expect(run.attempts).toBe(0);
    expect(run.error).toBe(`The run did not start: work_dir "${dir}" is outside the allowed roots (${root}).`);
    expect((await s.tool("get_run", { run: run.id })).run.output ?? "").toBe("");
  });

  it("an output_schema pattern that backtracks exponentially in JavaScript is matched in linear time: the run fails, the server keeps answering", async ({
    expect,
  }) => {
    // With a backtracking engine ^(a+)+$ against 40 a's and a "!" never finishes.
    const evil = { type: "object", required: ["id"], properties: { id: { type: "string", pattern: "^(a+)+$" } } };
    await s.tool("add_cron", {
      name: "redos",
      schedule: YEARLY,
      prompt: JSON.stringify({ id: "a".repeat(40) + "!" }),
      executor: "echo",
      output_format: "structured",
      output_schema: evil,
      retries: 0,
    });
    const { run } = await s.tool("run_now", { job: "redos", wait: true });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/does not match output_schema: \/id must match pattern/);
    expect((await s.tool("list_crons", { query: "redos" })).total).toBe(1);
    await s.tool("update_cron", { job: "redos", prompt: JSON.stringify({ id: "aaaa" }) });
    expect((await s.tool("run_now", { job: "redos", wait: true })).run.status).toBe("completed");
  });

  it("an output_schema pattern the linear-time engine cannot run is refused when the job is made, saying why", async ({ expect }) => {
    const lookahead = { type: "object", properties: { id: { type: "string", pattern: "^(?=a)a+$" } } };
    const r = await s.call("add_cron", {
      name: "lookahead",
      schedule: YEARLY,
      prompt: "p",
      executor: "echo",
      output_format: "structured",
      output_schema: lookahead,
    });
    expect(r.isError).toBe(true);
    expect(JSON.stringify(r.content)).toMatch(
      /add_cron failed: output_schema is not a valid JSON Schema: pattern \\"\^\(\?=a\)a\+\$\\" is not supported .*without lookaround or backreferences/,
    );
    expect((await s.tool("list_crons", { query: "lookahead" })).total).toBe(0);
  });

  it("a big output is cut to at most 4 KiB of valid UTF-8 in list_runs, while cron://runs/{id} has all of it", async ({ expect }) => {
    await s.tool("add_cron", { name: "big", schedule: YEARLY, prompt: "1000000", executor: "big" });
    const { run: finished } = await s.tool("run_now", { job: "big", wait: true });
    expect(finished.status).toBe("completed");
    const [listed] = await s.runs("big");
    const bytes = Buffer.byteLength(listed.response);
    expect(bytes).toBeLessThanOrEqual(4096);
    expect(bytes).toBeGreaterThan(4096 - 4);
    expect(listed.response).not.toContain("\uFFFD");
    expect(listed.response.startsWith("START€€€")).toBe(true);
    expect(listed.output_truncated).toBe(false);

    const whole = await s.read(`cron://runs/${listed.id}`);
    expect(whole.output.length).toBe(5 + Math.ceil(1_000_000 / 3) + 3);
    expect(whole.output.endsWith("€END")).toBe(true);
    expect(whole.output.startsWith(listed.response)).toBe(true);
  });

  it("output beyond max_output_bytes (1 MiB) is cut on a character boundary and the record says so", async ({ expect }) => {
    await s.tool("add_cron", { name: "huge", schedule: YEARLY, prompt: "3000000", executor: "big" });
    const { run } = await s.tool("run_now", { job: "huge", wait: true });
    expect(run.status).toBe("completed");
    expect(run.output_truncated).toBe(true);
    const whole = await s.read(`cron://runs/${run.id}`);
    expect(Buffer.byteLength(whole.output)).toBeLessThanOrEqual(1024 * 1024);
    expect(Buffer.byteLength(whole.output)).toBeGreaterThan(1024 * 1024 - 4);
    expect(whole.output).not.toContain("\uFFFD");
    expect(whole.output.endsWith("END")).toBe(false);
  });

  it("overlap skip records a skipped run when the previous run is still going", async ({ expect }) => {
    await s.tool("add_cron", { name: "overlapper", schedule: "@every 1s", prompt: "2500", executor: "sleep", overlap: "skip" });
    const skipped = await s.waitForRuns("overlapper", (runs) => runs.find((r) => r.status === "skipped"));
    const runs = await s.runs("overlapper");
    await s.tool("pause", { job: "overlapper" });
    expect(skipped.error).toMatch(/still going/);
    expect(skipped.error).toMatch(/overlap/);
    expect(skipped.attempts).toBe(0);
    expect(skipped.trigger).toBe("schedule");
    expect(skipped.scheduled_for).toEqual(expect.any(String));
    // Some earlier run really was going at the skipped occurrence.
    const at = Date.parse(skipped.started_at);
    const blocker = runs.find((r) => r.status !== "skipped" && Date.parse(r.started_at) <= at && (r.finished_at === null || Date.parse(r.finished_at) >= at));
    expect(blocker).toBeDefined();
    await s.tool("remove", { job: "overlapper" });
  });

  it("pause_after_failures: 2 pauses the job after two failed runs in a row, and last_error says why", async ({ expect }) => {
    await s.tool("add_cron", { name: "give-up", schedule: "@every 1s", prompt: "x", executor: "fail", retries: 0, pause_after_failures: 2 });
    const job = await waitForJob(s, "give-up", (j) => j.state === "paused");
    expect(job.enabled).toBe(false);
    expect(job.consecutive_failures).toBe(2);
    expect(job.last_error).toMatch(/Paused after 2 failed runs/);
    expect(job.last_error).toMatch(/fatal: the agent broke/);
    expect(job.next_run_at).toBeNull();
    await sleep(1500);
    const runs = await s.runs("give-up");
    expect(runs.filter((r) => r.status === "failed").length).toBe(2);
    expect(runs.every((r) => r.status === "failed" || r.status === "skipped")).toBe(true);
  });

  it("a one-shot 'in 2s' runs once at its run_at, then the job is completed", async ({ expect }) => {
    const answer = await s.tool("add_cron", { name: "once", schedule: "in 2s", prompt: "just once" });
    const added: Structured = { ...answer, job: await s.job("once") };
    expect(added.job.run_at).toEqual(expect.any(String));
    expect(added.next_runs).toEqual([added.job.run_at]);
    expect(answer.job.next_run_at).toBe(added.job.run_at);
    const job = await waitForJob(s, "once", (j) => j.state === "completed");
    expect(job.next_run_at).toBeNull();
    expect(job.run_count).toBe(1);
    await sleep(1200);
    const runs = await s.runs("once");
    expect(runs.length).toBe(1);
    expect(runs[0].status).toBe("completed");
    expect(runs[0].scheduled_for).toBe(added.job.run_at);
    expect(Date.parse(runs[0].started_at)).toBeGreaterThanOrEqual(Date.parse(added.job.run_at));
    expect(await s.toolError("resume", { job: "once" })).toMatch(/completed/);
  });

  it("max_runs: 2 ends the job completed after two runs", async ({ expect }) => {
    await s.tool("add_cron", { name: "twice", schedule: "@every 1s", prompt: "again", max_runs: 2 });
    const job = await waitForJob(s, "twice", (j) => j.state === "completed");
    expect(job.run_count).toBe(2);
    await sleep(1500);
    const runs = await s.runs("twice");
    // Under load a run can outlast its second: the occurrence behind it is skipped (overlap: skip), not a third run.
    expect(runs.filter((r) => r.status !== "skipped").map((r) => r.status)).toEqual(["completed", "completed"]);
  });

  it("the agent sees only the allow-listed environment and its run's AGENT_CRON_* variables, never a planted secret", async ({ expect }) => {
    await s.tool("add_cron", { name: "env", schedule: YEARLY, prompt: "ENV" });
    const { run } = await s.tool("run_now", { job: "env", wait: true });
    expect(run.status).toBe("completed");
    const env = JSON.parse((await s.read(`cron://runs/${run.id}`)).output) as Record<string, string>;
    expect(env.SECRET_TOKEN).toBeUndefined();
    expect(JSON.stringify(env)).not.toContain("x-planted-secret");
    expect(env.CLAUDECODE).toBeUndefined();
    expect(env.ALLOWED_VAR).toBe("allowed-value");
    expect(env.AGENT_CRON_RUN_ID).toBe(run.id);
    expect(env.AGENT_CRON_JOB_ID).toBe(run.job_id);
    expect(env.AGENT_CRON_SESSION_ID).toBe(run.session_id);
    expect(env.AGENT_CRON_SCHEDULED_FOR).toBe("");
    expect(env.PATH).toEqual(expect.any(String));
    const allowed = new Set([
      "PATH",
      "HOME",
      "LANG",
      "TZ",
      "TMPDIR",
      "ALLOWED_VAR",
      "AGENT_CRON_RUN_ID",
      "AGENT_CRON_JOB_ID",
      "AGENT_CRON_SESSION_ID",
      "AGENT_CRON_SCHEDULED_FOR",
    ]);
    // The client passes USER, SHELL, LOGNAME, TERM to the server: none may reach the agent.
    expect(Object.keys(env).filter((k) => !allowed.has(k))).toEqual([]);
  });

  it("a scheduled run's agent gets AGENT_CRON_SCHEDULED_FOR equal to the run's scheduled_for, and a fresh session id", async ({ expect }) => {
    await s.tool("add_cron", { name: "env-scheduled", schedule: "in 1s", prompt: "ENV" });
    const [run] = await s.waitForRuns("env-scheduled", (runs) => runs[0]?.status === "completed" && runs);
    const env = JSON.parse((await s.read(`cron://runs/${run.id}`)).output) as Record<string, string>;
    expect(env.AGENT_CRON_SCHEDULED_FOR).toBe(run.scheduled_for);
    expect(env.AGENT_CRON_SESSION_ID).toBe(run.session_id);
    expect(env.AGENT_CRON_SESSION_ID).toMatch(/^[0-9a-f-]{36}$/);
    const other = (await s.tool("run_now", { job: "env-scheduled", wait: true })).run;
    expect(other.session_id).not.toBe(run.session_id);
  });

  it("a work_dir outside work_dir_roots (or linking out of them) is refused; one inside is used for the run", async ({ expect }) => {
    expect(await s.toolError("add_cron", { name: "wd-out", schedule: YEARLY, prompt: "x", work_dir: scratch })).toMatch(/outside the allowed roots/);
    expect(await s.toolError("add_cron", { name: "wd-link", schedule: YEARLY, prompt: "x", work_dir: path.join(root, "escape") })).toMatch(
      /outside the allowed roots/,
    );
    expect(await s.toolError("add_cron", { name: "wd-dots", schedule: YEARLY, prompt: "x", work_dir: path.join(root, "project", "..", "..") })).toMatch(
      /outside the allowed roots/,
    );
    expect(await s.toolError("add_cron", { name: "wd-missing", schedule: YEARLY, prompt: "x", work_dir: path.join(root, "nope") })).toMatch(/does not exist/);
    expect((await s.tool("list_crons", { query: "wd-" })).jobs).toEqual([]);

    const inside = path.join(root, "project");
    await s.tool("add_cron", { name: "wd-in", schedule: YEARLY, prompt: "x", work_dir: inside, executor: "echo-vars" });
    const job = await s.job("wd-in");
    expect(job.work_dir).toBe(inside);
    const { run } = await s.tool("run_now", { job: "wd-in", wait: true });
    expect(run.status).toBe("completed");
    expect(run.work_dir).toBe(inside);
    expect(run.response).toBe(`run=${run.id} job=${job.id} session=${run.session_id} dir=${inside}`);
  });

  it("the prompt reaches the agent unchanged, whether by {prompt} placeholder or on stdin", async ({ expect }) => {
    const prompt = `Check "the logs" for $HOME and \`whoami\`;\nthen {work_dir} {run_id} stay literal — ünïcödé ✓`;
    await s.tool("add_cron", { name: "by-arg", schedule: YEARLY, prompt, executor: "echo" });
    await s.tool("add_cron", { name: "by-stdin", schedule: YEARLY, prompt, executor: "echo-stdin" });
    const [a, b] = await Promise.all([s.tool("run_now", { job: "by-arg", wait: true }), s.tool("run_now", { job: "by-stdin", wait: true })]);
    expect(a.run.status).toBe("completed");
    expect(b.run.status).toBe("completed");
    expect(a.run.response).toBe(prompt);
    expect(b.run.response).toBe(prompt);
  });

  it("a long prompt on stdin reaches the agent whole, and an agent that never reads stdin does not break the run", async ({ expect }) => {
    const long = "0123456789abcdef".repeat(2000); // 32,000 bytes, just under the 32 KiB limit
    await s.tool("add_cron", { name: "long-stdin", schedule: YEARLY, prompt: long, executor: "echo-stdin" });
    await s.tool("add_cron", { name: "deaf", schedule: YEARLY, prompt: long, executor: "no-stdin" });
    const [a, b] = await Promise.all([s.tool("run_now", { job: "long-stdin", wait: true }), s.tool("run_now", { job: "deaf", wait: true })]);
    expect(a.run.status).toBe("completed");
    expect((await s.read(`cron://runs/${a.run.id}`)).output).toBe(long);
    expect(b.run.status).toBe("completed");
    expect(b.run.response).toBe("bye");
  });

  it("an executor whose program is missing: add_cron warns, and the run fails naming the program and the config key", async ({ expect }) => {
    const added = await s.tool("add_cron", { name: "no-bin", schedule: YEARLY, prompt: "x", executor: "missing", retries: 0 });
    expect(added.warnings.join(" ")).toMatch(/\/nonexistent\/agent-bin/);
    const { run } = await s.tool("run_now", { job: "no-bin", wait: true });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/\/nonexistent\/agent-bin/);
    expect(run.error).toMatch(/executors\.missing/);
  });
});

async function waitForJob(s: TestServer, name: string, check: (job: Structured) => boolean): Promise<Structured> {
  let last: Structured | undefined;
  const deadline = Date.now() + 20_000;
  for (;;) {
    last = await s.job(name);
    if (check(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`Timed out waiting for job ${name}: ${JSON.stringify({ state: last.state, run_count: last.run_count, last_error: last.last_error })}`);
    await sleep(100);
  }
}
