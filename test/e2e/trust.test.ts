/**
 * Unattended runs you can trust (SPEC §13), through the built server: approval with
 * elicitation (the SDK client answers it), without it, and under "required"; `agent-cron
 * approve` / `reject`; event triggers on the HTTP daemon; bad input.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HttpServer } from "../helpers/http.js";
import { TestServer, fixture, makeDataDir, removeDir, runCli, sleep, startRaw, waitFor } from "../helpers/server.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

async function start(opts: Parameters<typeof TestServer.start>[0]): Promise<TestServer> {
  const s = await TestServer.start(opts);
  cleanup.push(() => s.cleanup());
  return s;
}

describe("approval of jobs made by agents", () => {
  it("ask: the user sees the job in words and accepts it; a declined job stores nothing", async () => {
    const asked: string[] = [];
    let verdict: "accept" | "decline" = "accept";
    const s = await start({
      config: { approval: "ask" },
      onElicit: ({ message }) => {
        asked.push(message);
        return verdict === "accept" ? { action: "accept", content: { approve: true } } : { action: "decline" };
      },
    });
    const ok = await s.tool("add_cron", { name: "asked", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: "Audit the logs" });
    expect(ok.job.state).toBe("active");
    expect(asked[0]).toMatch(
      /^e2e-client\/1\.0\.0 wants to schedule an agent job "asked":\n• When: At 09:00 AM, Monday through Friday \(Europe\/Paris\)\n• Runs: the default executor, in a fresh folder each run\n• Prompt: Audit the logs\nSchedule it\?$/,
    );
    verdict = "decline";
    expect(await s.toolError("add_cron", { name: "declined", schedule: "@daily", prompt: "rm -rf" })).toBe(
      "add_cron failed: The user declined to schedule this job; nothing was stored.",
    );
    expect((await s.tool("list_crons")).total).toBe(1);
    // Retrying an existing job asks nothing.
    expect((await s.tool("add_cron", { name: "asked", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt: "Audit the logs" })).created).toBe(false);
    expect(asked).toHaveLength(2);
  });

  it("ask, with a client that cannot be asked: the job waits for a person, never runs, and agent-cron approve starts it", async () => {
    const s = await start({ config: { approval: "ask" } });
    const r = await s.tool("add_cron", { name: "waits", schedule: "@every 1s", prompt: "tick" });
    expect(r.job.state).toBe("pending_approval");
    expect(r.summary).toMatch(/^Waiting for a person's approval \(agent-cron approve waits\): "waits"/);
    expect((await s.tool("list_crons", { state: "pending_approval" })).jobs.map((j: { name: string }) => j.name)).toEqual(["waits"]);
    await sleep(2500);
    expect(await s.runRows("waits")).toEqual([]);
    expect(await s.toolError("run_now", { job: "waits" })).toMatch(/^run_now failed: Job "waits" is waiting for a person's approval/);
    expect(await s.toolError("resume", { job: "waits" })).toMatch(/^resume failed: Job "waits" is waiting for a person's approval/);
    // No tool can approve: none is named so, and none takes a state.
    const tools = (await s.client.listTools()).tools.map((t) => t.name);
    expect(tools.filter((t) => /approv/.test(t))).toEqual([]);

    const approved = await runCli(["approve", "waits", "--data-dir", s.dataDir]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(/waits: active/);
    await waitFor(async () => (await s.runRows("waits")).length > 0, { what: "the approved job to run" });
  });

  it("required: even a client that can be asked gets a waiting job; reject removes it; the CLI's own jobs need no approval", async () => {
    const asked: string[] = [];
    const s = await start({
      config: { approval: "required" },
      onElicit: ({ message }) => (asked.push(message), { action: "accept", content: { approve: true } }),
    });
    expect((await s.tool("add_cron", { name: "agent-job", schedule: "@daily", prompt: "p" })).job.state).toBe("pending_approval");
    expect(asked).toEqual([]);
    const rejected = await runCli(["reject", "agent-job", "--data-dir", s.dataDir]);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect((await s.tool("list_crons")).total).toBe(0);

    const added = await runCli(["add", "--name", "person-job", "--schedule", "@daily", "--prompt", "p", "--data-dir", s.dataDir]);
    expect(added.code, added.stderr).toBe(0);
    expect((await s.tool("get_cron", { job: "person-job" })).job.state).toBe("active");
    // An agent changing what it does sends it back to a person.
    expect((await s.tool("update_cron", { job: "person-job", prompt: "something else" })).job.state).toBe("pending_approval");
  });

  it("an unknown approval mode stops start-up naming the key", async () => {
    const dir = makeDataDir({ config: { approval: "sometimes" } });
    cleanup.push(() => removeDir(dir));
    const r = await startRaw(dir);
    expect(r.ready).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/approval/);
  });
});

describe("event triggers (trigger: http)", () => {
  it("POST /hooks/{job_id} with the job's token starts a run with the payload in the prompt; wrong or foreign tokens, big payloads and GET are refused", async () => {
    const h = await HttpServer.start();
    cleanup.push(() => h.cleanup());
    const c = await h.connect();
    const made = await c.tool("add_cron", { name: "on-push", schedule: "@yearly", prompt: "A push arrived.", executor: "echo-stdin", trigger: "http" });
    expect(made.trigger_url).toBe(`/hooks/${made.job.id}`);
    expect(made.trigger_token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const other = await c.tool("add_cron", { name: "other-hook", schedule: "@yearly", prompt: "x", executor: "echo-stdin", trigger: "http" });
    const base = h.url.replace(/\/mcp$/, "");
    const post = (job: string, token: string | null, body: string, method = "POST") =>
      fetch(`${base}/hooks/${job}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {}, body: method === "POST" ? body : undefined });

    const res = await post(made.job.id, made.trigger_token, '{"ref":"refs/heads/main"}');
    expect(res.status).toBe(202);
    const { run_id } = await res.json();
    const run = await waitFor(
      async () => {
        const r = (await c.tool("get_run", { run: run_id })).run;
        return r.status !== "running" && r;
      },
      { what: "the event run" },
    );
    expect(run).toMatchObject({ status: "completed", trigger: "event", event_payload: '{"ref":"refs/heads/main"}' });
    expect(run.response.trim()).toBe('A push arrived.\n\nEvent payload:\n{"ref":"refs/heads/main"}');

    expect((await post(made.job.id, "guessed-token", "x")).status).toBe(401);
    expect((await post(made.job.id, other.trigger_token, "x")).status).toBe(401);
    expect((await post(made.job.id, null, "x")).status).toBe(401);
    expect((await post("not-a-job", made.trigger_token, "x")).status).toBe(401);
    expect((await post(made.job.id, made.trigger_token, "x".repeat(64 * 1024 + 1))).status).toBe(413);
    expect((await post(made.job.id, made.trigger_token, "", "GET")).status).toBe(405);
    expect((await c.tool("list_runs", { job: "on-push" })).runs).toHaveLength(1);
    // Only the token's hash is stored.
    const stored = readFileSync(path.join(h.dataDir, "jobs.journal"), "utf8");
    expect(stored).not.toContain(made.trigger_token);
    expect(stored).toContain('"trigger_token_hash":"');
  });

  it("respects the job's overlap policy: a second event while the first run goes is recorded skipped", async () => {
    const h = await HttpServer.start();
    cleanup.push(() => h.cleanup());
    const c = await h.connect();
    const made = await c.tool("add_cron", { name: "slow-hook", schedule: "@yearly", prompt: "1500", executor: "sleep", trigger: "http" });
    const url = `${h.url.replace(/\/mcp$/, "")}/hooks/${made.job.id}`;
    const send = () => fetch(url, { method: "POST", headers: { authorization: `Bearer ${made.trigger_token}` }, body: "{}" }).then((r) => r.json());
    const first = await send();
    const second = await send();
    expect(first.status).toBe("running");
    expect(second.status).toBe("skipped");
  });

  it("refuses jitter_seconds out of range, storing nothing", async () => {
    const s = await start({});
    expect(await s.toolError("add_cron", { name: "j", schedule: "@daily", prompt: "p", jitter_seconds: 3601 })).toMatch(/^add_cron failed: jitter_seconds/);
    expect((await s.tool("list_crons")).total).toBe(0);
  });
});

describe("claude-code runs through the server (the fake Claude Code CLI)", () => {
  async function claudeServer() {
    const scratch = mkdtempSync(path.join(os.tmpdir(), "agent-cron-trust-claude-"));
    cleanup.push(() => removeDir(scratch));
    const recordFile = path.join(scratch, "calls.jsonl");
    const s = await start({
      config: {
        default_executor: "claude",
        executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), env: { FAKE_AGENT_RECORD: recordFile }, sandbox: "none" } },
      },
      env: { HOME: scratch },
    });
    const calls = () =>
      readFileSync(recordFile, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { argv: string[]; stdin: string });
    return { s, calls };
  }

  it("a denied permission fails the run with what was blocked, once; with warn it completes with warnings", async () => {
    const { s } = await claudeServer();
    await s.tool("add_cron", { name: "denied", schedule: "@yearly", prompt: "MODE=denied clean up", retries: 3 });
    const { run } = await s.tool("run_now", { job: "denied", wait: true });
    expect(run.status).toBe("failed");
    expect(run.attempts).toBe(1);
    expect(run.error).toMatch(/^blocked: denied Bash\(.+\), Write\(.+\)$/);
    await s.tool("add_cron", { name: "warned", schedule: "@yearly", prompt: "MODE=denied clean up", on_permission_denied: "warn" });
    const warned = (await s.tool("run_now", { job: "warned", wait: true })).run;
    expect(warned.status).toBe("completed");
    expect(warned.warnings.map((w: string) => w.replace(/\(.*/, ""))).toEqual(["denied Bash", "denied Write"]);
  });

  it("requires_mcp: a required server that is not connected fails the run at once, naming it", async () => {
    const { s, calls } = await claudeServer();
    await s.tool("add_cron", { name: "needs-github", schedule: "@yearly", prompt: "MODE=mcp-failed open the PR", requires_mcp: ["github"] });
    const t0 = Date.now();
    const { run } = await s.tool("run_now", { job: "needs-github", wait: true });
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(run).toMatchObject({ status: "failed", attempts: 1, error: 'MCP server "github" is failed' });
    const argv = calls().at(-1)!.argv;
    expect(argv[argv.indexOf("--output-format") + 1]).toBe("stream-json");
  });

  it("the prompt starts with the context line: job, occurrence in its timezone, schedule, previous run", async () => {
    const { s, calls } = await claudeServer();
    await s.tool("add_cron", { name: "ctx", schedule: "0 9 * * 2", timezone: "Europe/Paris", prompt: "What day is it?" });
    await s.tool("run_now", { job: "ctx", wait: true });
    const stdin = calls().at(-1)!.stdin;
    expect(stdin).toMatch(
      /^\[agent-cron\] Job "ctx", run by hand at \w+day \d{4}-\d{2}-\d{2} \d{2}:\d{2} \+0[12]:00 \(Europe\/Paris\); schedule: At 09:00 AM, only on Tuesday; no previous run\.\n\nWhat day is it\?$/,
    );
  });
});
