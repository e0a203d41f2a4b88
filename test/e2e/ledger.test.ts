import { createHash, randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ChatReceivers } from "../helpers/chat-receivers.js";
import { TestServer, fixture, makeDataDir, removeDir, runCli, sleep, startRaw, waitFor, type Structured } from "../helpers/server.js";

/**
 * SPEC §18 through real servers and real time: the ledger across a kill -9, the evidence a
 * run carries (checked against what the fake agent did and what a loopback receiver got),
 * empty and failed runs, and data files that are not regular files.
 */
const NODE = process.execPath;
const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.cleanup().catch(() => {});
});
afterAll(async () => {
  for (const d of dirs.splice(0)) await removeDir(d);
});

async function start(opts: Parameters<typeof TestServer.start>[0]): Promise<TestServer> {
  const s = await TestServer.start(opts);
  servers.push(s);
  return s;
}

describe("the ledger across a kill -9 of the owner (real time, second-level schedule)", () => {
  it("after kill -9 mid-run and a restart, the audit finds every occurrence accounted for (tool and CLI)", async () => {
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const first = await start({ dataDir });
    // Every second, each run taking 1.5 s: runs, skips (overlap) and a run cut by the kill.
    await first.tool("add_cron", { name: "ticker", schedule: "* * * * * *", prompt: "1500", executor: "sleep", retries: 0 });
    await first.waitForRuns("ticker", (runs) => runs.some((r) => r.status === "completed") && runs.some((r) => r.status === "running"), { timeout: 20_000 });
    process.kill(first.pid, "SIGKILL");
    await first.close().catch(() => {});
    await sleep(2500); // occurrences pass while no process owns the data dir
    const second = await start({ dataDir });
    const restartedAt = Date.now();
    await second.waitForRuns("ticker", (runs) => runs.filter((r) => r.status === "completed" && Date.parse(r.started_at) >= restartedAt).length >= 2, {
      timeout: 30_000,
    });
    await second.tool("pause", { job: "ticker" });
    // Nothing pending: the last runs end and the newest occurrences leave the grace period.
    const report = await waitFor(
      async () => {
        const r = await second.tool("audit", { job: "ticker", since: "1h" });
        return r.counts.pending === undefined ? r : null;
      },
      { timeout: 40_000, interval: 1000 },
    );
    expect(report.summary).toMatch(/^Every occurrence since .* is accounted for/);
    expect(report.unaccounted).toBe(0);
    expect(report.jobs[0].duplicates).toBe(0);
    expect(report.counts.interrupted).toBeGreaterThanOrEqual(1); // the run the kill cut
    expect(report.counts.completed).toBeGreaterThanOrEqual(3);
    expect((report.counts.missed ?? 0) + (report.counts.skipped ?? 0)).toBeGreaterThanOrEqual(2);
    expect(report.occurrences).toBe(Object.values(report.counts as Record<string, number>).reduce((a, b) => a + b, 0));
    // The CLI, through the owner, says the same.
    const cli = await runCli(["audit", "ticker", "--since", "1h", "--json", "--data-dir", dataDir]);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ unaccounted: 0, occurrences: report.occurrences });
  }, 120_000);
});

describe("declined: an occurrence whose job went back to a person for approval (SPEC §18, §20)", () => {
  it("an occurrence queued behind a run when an agent's change sends the job back is recorded declined, and the audit counts it", async () => {
    const s = await start({ config: { approval: "ask" }, onElicit: () => ({ action: "accept", content: { approve: true } }) });
    // Each run takes 2.5 s, one occurrence a second: one runs, the next waits behind it (queue_one), the one after is skipped.
    await s.tool("add_cron", { name: "gated", schedule: "* * * * * *", prompt: "2500", executor: "sleep", overlap: "queue_one", retries: 0 });
    await s.waitForRuns("gated", (runs) => runs.some((r) => r.status === "skipped" && /already queued/.test(r.error ?? "")), { timeout: 20_000 });
    const changed = await s.tool("update_cron", { job: "gated", prompt: "3000" });
    expect(changed.job.state).toBe("pending_approval");
    const declined = await s.waitForRuns("gated", (runs) => runs.find((r) => r.status === "declined"), { timeout: 20_000 });
    expect(declined).toMatchObject({ trigger: "schedule", attempts: 0 });
    expect(declined.error).toBe(
      "The job went back for a person's approval before this occurrence could start, so it was not run; they approve it with: agent-cron approve gated.",
    );
    const row = (await s.runRows("gated")).find((r) => r.id === declined.id)!;
    expect(row.status).toBe("declined");
    // Nothing runs while it waits, and every occurrence due before is accounted for.
    const report = await waitFor(
      async () => {
        const r = await s.tool("audit", { job: "gated", since: "1h" });
        return r.counts.pending === undefined ? r : null;
      },
      { timeout: 40_000, interval: 1000 },
    );
    expect(report.unaccounted).toBe(0);
    expect(report.counts.declined).toBe(1);
    expect(report.summary).toMatch(/1 declined/);
    const cli = await runCli(["audit", "gated", "--since", "1h", "--json", "--data-dir", s.dataDir]);
    expect(JSON.parse(cli.stdout)).toMatchObject({ unaccounted: 0, counts: { declined: 1 } });
  }, 120_000);
});

describe("an audit of a week-long history (tool and CLI)", () => {
  it("a week of hourly records on disk with two lost: the audit counts each outcome and names the two, through the tool and the CLI", async () => {
    const dataDir = makeDataDir({ config: { runs_per_job: 500, timezone: "UTC" } });
    dirs.push(dataDir);
    const first = await start({ dataDir });
    const job = await first.addJob({ name: "hourly-report", schedule: "0 * * * *", prompt: "report", timezone: "UTC" });
    const { run } = await first.tool("run_now", { job: "hourly-report" });
    const template = await first.waitForRunEnd("hourly-report", run.id);
    await first.close();

    // The week: the job was made 7 days and 30 minutes ago; each hourly occurrence since has its record.
    const HOUR = 3_600_000;
    const now = Date.now();
    const created = now - 7 * 86_400_000 - 30 * 60_000;
    const iso = (t: number) => new Date(t).toISOString().replace("Z", "+00:00");
    const occurrences: number[] = [];
    for (let t = Math.ceil(created / HOUR) * HOUR; t <= now; t += HOUR) occurrences.push(t);
    const lost = [occurrences[30], occurrences[100]];
    const statusOf = (k: number) => (k % 24 === 5 ? "failed" : k % 50 === 7 ? "skipped" : k >= 60 && k < 65 ? "missed" : "completed");
    const runs = [template];
    occurrences.forEach((t, k) => {
      if (lost.includes(t)) return;
      const status = statusOf(k);
      runs.push({
        ...template,
        id: randomUUID(),
        trigger: status === "missed" ? "catch_up" : "schedule",
        status,
        scheduled_for: iso(t),
        started_at: iso(t + 1000),
        finished_at: iso(t + (status === "completed" || status === "failed" ? 4000 : 1000)),
        error:
          status === "failed"
            ? "agent exited 1"
            : status === "skipped"
              ? "The previous run was still going (overlap: skip)."
              : status === "missed"
                ? "Missed while the server was not running (catch_up: latest)."
                : null,
      });
    });
    runs.sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
    writeFileSync(
      path.join(dataDir, "runs", `${job.id}.jsonl`),
      [{ run_log: 1, job_id: job.id }, ...runs.map((r) => ({ put: r }))].map((l) => JSON.stringify(l)).join("\n") + "\n",
    );
    const last = occurrences[occurrences.length - 1];
    const week = {
      ...job,
      created_at: iso(created),
      schedule_history: [{ at: iso(created), state: "active", schedule: "0 * * * *", timezone: "UTC" }],
      last_scheduled_for: iso(last),
      next_run_at: iso(last + HOUR),
    };
    appendFileSync(path.join(dataDir, "jobs.journal"), JSON.stringify({ put: week }) + "\n");

    const second = await start({ dataDir });
    const report = await second.tool("audit", { job: "hourly-report", since: "8d" });
    const expected = { completed: 0, failed: 0, skipped: 0, missed: 0 } as Record<string, number>;
    occurrences.forEach((t, k) => lost.includes(t) || expected[statusOf(k)]++);
    expect(report.occurrences).toBe(occurrences.length);
    expect(report.unaccounted).toBe(2);
    expect(report.counts).toEqual(expected);
    expect(report.jobs[0].unaccounted_at).toEqual(lost.map(iso));
    expect(report.jobs[0].duplicates).toBe(0);
    const cliJson = await runCli(["audit", "hourly-report", "--since", "8d", "--json", "--data-dir", dataDir]);
    expect(cliJson.code).toBe(1); // something is unaccounted
    expect(JSON.parse(cliJson.stdout)).toMatchObject({ occurrences: occurrences.length, unaccounted: 2, counts: expected });
    const cliText = await runCli(["audit", "hourly-report", "--since", "8d", "--data-dir", dataDir]);
    expect(cliText.stdout).toContain(iso(lost[0]));
    console.log(
      `week-long audit, tool: ${JSON.stringify({ summary: report.summary, counts: report.counts, unaccounted_at: report.jobs[0].unaccounted_at })}\nweek-long audit, CLI (exit ${cliText.code}):\n${cliText.stdout}`,
    );
  }, 120_000);
});

describe("evidence on a run record", () => {
  it("records executor version, tool calls, tokens and cost, output_sha256, and each delivery's HTTP status and message id", async () => {
    const rx = await ChatReceivers.start();
    try {
      const s = await start({
        config: {
          executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), output_format: "stream-json", sandbox: "none" } },
          channels: {
            ops: { type: "discord", url: rx.url("/discord/ops") },
            me: { type: "telegram", token_env: "TG_TOKEN", chat_id: "42", api_base: `${rx.base}/telegram` },
          },
        },
        env: { TG_TOKEN: "123:abc" },
      });
      await s.tool("add_cron", { name: "evidence", schedule: "0 0 1 1 *", prompt: "MODE=tools check the logs", executor: "claude", deliver_to: ["ops", "me"] });
      const { run: started } = await s.tool("run_now", { job: "evidence", wait: true });
      expect(started.status).toBe("completed");
      const done = await waitFor(
        async () => {
          const { run } = await s.tool("get_run", { run: started.id.slice(0, 8) });
          return run.delivery === "delivered" ? run : null;
        },
        { timeout: 30_000 },
      );
      const { output } = await s.tool("get_run", { run: started.id });
      // What the fake agent did: three tool calls, its version, its usage.
      expect(done.executor).toBe("claude");
      expect(done.executor_version).toBe("2.1.332");
      expect(done.tool_calls).toEqual([
        { name: "Read", count: 2 },
        { name: "Bash", count: 1 },
      ]);
      expect(done.exit_code).toBe(0);
      expect(done.signal).toBeNull();
      expect(done.attempts).toBe(1);
      expect(done.usage).toMatchObject({ output_tokens: 50, cost_usd: 0.0123 });
      expect(done.output_sha256).toBe(createHash("sha256").update(output).digest("hex"));
      // What the receivers got: Discord's message id (wait=true) and Telegram's message_id.
      const discord = rx.at("/discord/ops");
      expect(discord).toHaveLength(1);
      expect(discord[0].query.get("wait")).toBe("true");
      const byChannel = Object.fromEntries((done.deliveries as Structured[]).map((d) => [d.channel, d]));
      expect(byChannel.ops).toMatchObject({ ok: true, http_status: 200, message_id: "1182736459182736459", attempt: 1 });
      expect(byChannel.me).toMatchObject({ ok: true, http_status: 200, message_id: "17", attempt: 1 });
      expect(rx.at("/telegram/bot123:abc/sendMessage")).toHaveLength(1);
      // The CLI shows the same evidence.
      const shown = await runCli(["show-run", started.id.slice(0, 8), "--data-dir", s.dataDir]);
      expect(shown.stdout).toMatch(/evidence +version 2\.1\.332, exit code 0, output sha256 [0-9a-f]{64}/);
      expect(shown.stdout).toMatch(/tools +Read ×2, Bash ×1/);
      expect(shown.stdout).toMatch(/ok +ops \(completed\) attempt 1 HTTP 200 message 1182736459182736459/);
    } finally {
      await rx.close();
    }
  }, 90_000);
});

describe("runs that did nothing, and failed runs' output", () => {
  it("an empty success gets an empty: warning and is delivered as needing attention; on_empty fail fails it; a failed run keeps its stdout", async () => {
    const rx = await ChatReceivers.start();
    try {
      const s = await start({
        config: {
          executors: {
            silent: { type: "command", command: [NODE, "-e", "0"] },
            broken: {
              type: "command",
              command: [NODE, "-e", "console.log('partial work: 3 files checked'); console.error('boom at the end'); process.exit(4)"],
            },
          },
          channels: { ops: { type: "slack", url: rx.url("/slack/ops") } },
        },
      });
      await s.tool("add_cron", { name: "nothing", schedule: "0 0 1 1 *", prompt: "p", executor: "silent", deliver_to: ["ops"] });
      await s.tool("add_cron", { name: "nothing-fails", schedule: "0 0 1 1 *", prompt: "p", executor: "silent", on_empty: "fail", retries: 0 });
      await s.tool("add_cron", { name: "broken", schedule: "0 0 1 1 *", prompt: "p", executor: "broken", retries: 0 });

      const { run: empty } = await s.tool("run_now", { job: "nothing", wait: true });
      expect(empty.status).toBe("completed");
      expect(empty.warnings).toEqual([expect.stringMatching(/^empty: the run succeeded with no output/)]);
      await waitFor(() => rx.at("/slack/ops").length === 1, { timeout: 30_000 });
      expect(JSON.stringify(rx.at("/slack/ops")[0].json)).toMatch(/nothing completed having done nothing: needs attention/);

      const { run: failedEmpty } = await s.tool("run_now", { job: "nothing-fails", wait: true });
      expect(failedEmpty.status).toBe("failed");
      expect(failedEmpty.error).toMatch(/^empty: the run succeeded with no output \(on_empty: fail\)/);

      const { run: broken } = await s.tool("run_now", { job: "broken", wait: true });
      expect(broken.status).toBe("failed");
      expect(broken.exit_code).toBe(4);
      expect(broken.error).toMatch(/exited with code 4: boom at the end/);
      const got = await s.tool("get_run", { run: broken.id.slice(0, 8) });
      expect(got.output).toBe("partial work: 3 files checked\n");
      const shown = await runCli(["show-run", broken.id.slice(0, 8), "--data-dir", s.dataDir]);
      expect(shown.stdout).toMatch(/error +"node" exited with code 4: boom at the end|error +".*" exited with code 4: boom at the end/);
      expect(shown.stdout).toMatch(/partial work: 3 files checked/);
    } finally {
      await rx.close();
    }
  }, 90_000);
});

describe("a journal cut back to its header (on a real disk)", () => {
  it("refuses to start, naming jobs.journal, the changes lost and the way out; files untouched; the way out starts it", async () => {
    const dataDir = makeDataDir();
    dirs.push(dataDir);
    const first = await start({ dataDir });
    for (const name of ["kept-1", "kept-2"]) await first.tool("add_cron", { name, schedule: "@daily", prompt: "p" });
    await first.tool("pause", { job: "kept-1" });
    process.kill(first.pid, "SIGKILL"); // no clean close: what the disk holds is what counts
    await first.close().catch(() => {});
    const journal = path.join(dataDir, "jobs.journal");
    const snapshot = path.join(dataDir, "jobs.json");
    const header = readFileSync(journal, "utf8").split("\n")[0] + "\n";
    expect(JSON.parse(header).rev).toBe(3);
    expect(JSON.parse(readFileSync(snapshot, "utf8")).jobs).toEqual([]); // every job is in the journal
    writeFileSync(journal, header);
    const snapshotBefore = readFileSync(snapshot, "utf8");

    const refused = await startRaw(dataDir, { timeout: 15_000 });
    expect(refused.ready).toBe(false);
    expect(refused.code).not.toBeNull();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`Data file ${journal} was cut back`);
    expect(refused.stderr).toMatch(
      /the last 3 changes would be lost\. Nothing was changed; restore .*jobs\.journal from a backup, or, to start from jobs\.json alone and accept losing those changes, remove the "journal" key from jobs\.json/,
    );
    expect(readFileSync(journal, "utf8")).toBe(header);
    expect(readFileSync(snapshot, "utf8")).toBe(snapshotBefore);

    // The way out, as the message words it.
    const snap = JSON.parse(snapshotBefore);
    delete snap.journal;
    writeFileSync(snapshot, JSON.stringify(snap));
    const second = await start({ dataDir });
    expect((await second.tool("list_crons", {})).jobs).toEqual([]);
  }, 60_000);
});

describe("data files that are not regular files (on a real disk)", () => {
  const cases: [string, (dir: string) => string][] = [
    ["jobs.json is a FIFO", (dir) => (execFileSync("mkfifo", [path.join(dir, "jobs.json")]), path.join(dir, "jobs.json"))],
    ["jobs.journal is a directory", (dir) => (mkdirSync(path.join(dir, "jobs.journal")), path.join(dir, "jobs.journal"))],
    ["jobs.json is a device", (dir) => (symlinkSync("/dev/zero", path.join(dir, "jobs.json")), path.join(dir, "jobs.json"))],
    [
      "runs/open.jsonl is a FIFO",
      (dir) => (mkdirSync(path.join(dir, "runs")), execFileSync("mkfifo", [path.join(dir, "runs", "open.jsonl")]), path.join(dir, "runs", "open.jsonl")),
    ],
  ];
  for (const [what, make] of cases) {
    it(`${what}: start-up stops with an error naming it, never hangs`, async () => {
      const dataDir = makeDataDir();
      dirs.push(dataDir);
      const file = make(dataDir);
      const t0 = Date.now();
      const result = await startRaw(dataDir, { timeout: 15_000 });
      expect(result.ready).toBe(false);
      expect(result.code).not.toBeNull(); // it exited by itself (not killed at the timeout)
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(result.stderr).toContain(file);
      expect(result.stderr).toMatch(/is (a FIFO|a directory|a device), not a regular file/);
    }, 30_000);
  }

  it("a config file that is a FIFO is an error naming it", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-e2e-"));
    dirs.push(dataDir);
    execFileSync("mkfifo", [path.join(dataDir, "config.json")]);
    const r = await runCli(["list", "--data-dir", dataDir], { timeout: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.json is not a regular file/);
  }, 30_000);
});
