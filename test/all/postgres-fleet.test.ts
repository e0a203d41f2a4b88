/**
 * A fleet: several agent-cron processes (the BUILT CLI, `serve` over stdio with a real MCP
 * client each), with separate HOMEs and no shared files, on one PostgreSQL database. What
 * SPEC §14 promises: each occurrence runs exactly once fleet-wide, a process killed mid-run
 * leaves an interrupted run within 60 s, a pause through one process stops the job everywhere
 * within 1 s, the database going away for 10 s loses and doubles nothing, and
 * `agent-cron migrate --to postgres` copies a files data dir, twice without change.
 */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { TestServer, isAlive, pidsWorkingIn, runCli, sleep, waitFor, workCacheOf } from "../helpers/server.js";
import { ACCEPTED, ChatReceivers } from "../helpers/chat-receivers.js";
import { HttpServer } from "../helpers/http.js";
import { drained, fleetHome, freshDatabase, sql, startCluster, type Cluster } from "./pg-helpers.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
afterAll(() => cluster?.stop());

const servers: TestServer[] = [];
const homes: string[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  for (const h of homes.splice(0)) {
    for (const pid of pidsWorkingIn(h)) process.kill(pid, "SIGKILL");
    await rm(h, { recursive: true, force: true });
  }
});

/** A config of its own in a HOME of its own: nothing on disk is shared with the other processes. */
function homeFor(url: string, extra: Record<string, unknown> = {}): { home: string; dataDir: string; env: Record<string, string> } {
  const made = fleetHome(os.tmpdir(), url, {
    default_executor: "echo",
    max_concurrent: 8,
    runs_per_job: 200,
    kill_grace_seconds: 0.5,
    executors: {
      // A program that costs next to nothing to start: 200 runs a second on a small machine.
      // No sandbox: what these tests prove is the fleet's, and bubblewrap costs each run a few
      // times what the program does (config `sandbox` defaults to "auto").
      echo: { type: "command", sandbox: "none", command: ["/bin/echo", "{prompt}"] },
      sleep: { type: "command", sandbox: "none", command: ["/bin/sleep", "{prompt}"] },
    },
    ...extra,
  });
  homes.push(made.home);
  return made;
}

async function startFleet(url: string, n: number, extra: Record<string, unknown> = {}): Promise<TestServer[]> {
  const fleet = await Promise.all(
    Array.from({ length: n }, async () => {
      const { dataDir, env } = homeFor(url, extra);
      return TestServer.start({ dataDir, env });
    }),
  );
  servers.push(...fleet);
  // What the servers said, when a test fails: the first thing to read.
  const pids = fleet.map((s) => s.pid);
  onTestFailed(() => {
    for (const [i, s] of fleet.entries())
      process.stderr.write(`--- server ${i} (pid ${pids[i]}) stderr, last lines:\n${s.stderr().split("\n").slice(-25).join("\n")}\n`);
  });
  return fleet;
}

/** Every entry under `dir` (itself included): kind, mtime, and a file's size and sha256. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      out[rel || "."] = `dir ${st.mtimeMs}`;
      for (const name of readdirSync(p).sort()) walk(path.join(p, name), path.join(rel, name));
    } else {
      out[rel] = `file ${st.mtimeMs} ${st.size} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    }
  };
  walk(dir, "");
  return out;
}

describe("a fleet of agent-cron processes on one PostgreSQL", () => {
  it(
    "runs every occurrence of 200 every-second jobs exactly once for 30 s across three processes, losing none",
    async () => {
      const url = await freshDatabase(cluster, "fleet200");
      // Each execution appends a line here: executions are counted outside the servers.
      const execLog = path.join(os.tmpdir(), `agent-cron-fleet200-${process.pid}-${Date.now()}.log`);
      const fleet = await startFleet(url, 3, {
        default_executor: "count",
        executors: {
          count: { type: "command", sandbox: "none", command: ["/bin/sh", "-c", `echo "$AGENT_CRON_JOB_ID $AGENT_CRON_SCHEDULED_FOR" >> ${execLog}`] },
        },
      });
      try {
        // Each job ends on its own 32 s from now: the occurrences it must have run are known exactly.
        const expiresAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 32_000).toISOString();
        // catch_up all: an occurrence whose take came late (a loaded machine) still runs, late, as a
        // catch-up; none may be missed, none run twice.
        await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            fleet[i % 3].tool("add_cron", {
              name: `j${i}`,
              schedule: "* * * * * *",
              prompt: `p${i}`,
              overlap: "allow",
              catch_up: "all",
              expires_at: expiresAt,
              silent: true,
            }),
          ),
        );
        await sleep(Date.parse(expiresAt) - Date.now() + 1000);
        // What was taken runs, however late: on a loaded machine the fleet works through a backlog
        // for minutes; one that stops finishing anything for 90 s fails.
        const drainMs = await drained(url, { stallMs: 90_000, maxMs: 20 * 60_000, say: (line) => process.stderr.write(`fleet200: ${line}\n`) });
        const jobs = await sql<{ id: string; name: string; created_at: string }>(
          url,
          "SELECT id, name, data->>'created_at' AS created_at FROM agent_cron.jobs",
        );
        expect(jobs).toHaveLength(200);
        const records = await sql<{ job_id: string; scheduled_for: Date | null; status: string; trigger: string }>(
          url,
          "SELECT job_id, scheduled_for, status, trigger FROM agent_cron.runs",
        );
        const recordsOf = new Map<string, string[]>();
        for (const r of records) {
          const key = `${r.job_id} ${r.scheduled_for?.getTime() ?? "manual"}`;
          recordsOf.set(key, [...(recordsOf.get(key) ?? []), `${r.status} (${r.trigger})`]);
        }
        const executions = new Map<string, number>();
        for (const line of readFileSync(execLog, "utf8").split("\n")) {
          const [jobId, at] = line.split(" ");
          if (jobId && at) executions.set(`${jobId} ${Date.parse(at)}`, (executions.get(`${jobId} ${Date.parse(at)}`) ?? 0) + 1);
        }
        // Every whole second after each job was made, up to its end, counted here from the schedule:
        // exactly one record, completed, and exactly one execution.
        const expected = new Set<string>();
        const wrong: string[] = [];
        for (const job of jobs) {
          for (let t = Math.floor(Date.parse(job.created_at) / 1000) * 1000 + 1000; t <= Date.parse(expiresAt); t += 1000) {
            const key = `${job.id} ${t}`;
            expected.add(key);
            const got = recordsOf.get(key) ?? [];
            const ran = executions.get(key) ?? 0;
            if (got.length !== 1 || !got[0].startsWith("completed") || ran !== 1)
              wrong.push(`${job.name} ${new Date(t).toISOString()}: records [${got.join(", ")}], executions ${ran}`);
          }
        }
        const stray = [...new Set([...recordsOf.keys(), ...executions.keys()])].filter((k) => !expected.has(k));
        const late = records.filter((r) => r.trigger === "catch_up").length;
        process.stderr.write(
          `fleet200: ${expected.size} occurrences, ${records.length} records (${late} run late as catch-ups), ${[...executions.values()].reduce((x, y) => x + y, 0)} executions, ${wrong.length} wrong, drained ${drainMs} ms after the end\n`,
        );
        expect({ wrong: wrong.slice(0, 20), stray: stray.slice(0, 20) }).toEqual({ wrong: [], stray: [] });
        expect(expected.size).toBeGreaterThan(200 * 28);
        // Each process ran a share of them.
        const perProcess = await Promise.all(
          fleet.map(
            async (s) => (await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM agent_cron.runs WHERE (data->>'pid')::int = $1", [s.pid]))[0].n,
          ),
        );
        expect(perProcess.reduce((a, b) => a + b, 0)).toBe(records.length);
        for (const n of perProcess) expect(n).toBeGreaterThan(records.length / 10);
      } finally {
        await rm(execLog, { force: true });
      }
    },
    25 * 60_000,
  );

  it("records a run interrupted within 5 s when its process is killed with -9 (its lock goes with its connection), and never runs it again", async () => {
    const url = await freshDatabase(cluster, "kill");
    const fleet = await startFleet(url, 3);
    await fleet[0].tool("add_cron", { name: "long", schedule: "in 1s", prompt: "30", executor: "sleep", retries: 2 });
    const running = await waitFor(async () => (await fleet[1].runs("long")).find((r) => r.status === "running"), { timeout: 15_000, what: "the run to start" });
    const victim = fleet.find((s) => s.pid === running.pid)!;
    expect(victim).toBeDefined();
    const others = fleet.filter((s) => s !== victim);
    // The running record is written before the agent starts: its process follows.
    await waitFor(() => pidsWorkingIn(workCacheOf(victim.dataDir)).length > 0, { timeout: 10_000, what: "the run's agent to start" });
    // The victim's sign of life: its session advisory lock (fleet.ts), read as the others read it.
    const [{ id: victimId }] = await sql<{ id: string }>(url, "SELECT id FROM agent_cron.processes WHERE pid = $1", [victim.pid]);
    const lockHeld = async () =>
      Number(
        (
          await sql<{ n: string }>(
            url,
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1633907302::oid AND objsubid = 2 AND objid = (hashtext($1)::bigint & 4294967295)::oid",
            [victimId],
          )
        )[0].n,
      ) > 0;
    expect(await lockHeld()).toBe(true);
    process.kill(victim.pid, "SIGKILL");
    const killedAt = Date.now();
    await waitFor(async () => !(await lockHeld()), { timeout: 30_000, interval: 50, what: "the killed process's lock to be released" });
    process.stderr.write(`kill -9: its lock released (the others know at their next sweep, every 2 s) after ${Date.now() - killedAt} ms\n`);
    const ended = await waitFor(async () => (await others[0].runs("long")).find((r) => r.id === running.id && r.status !== "running"), {
      timeout: 70_000,
      interval: 100,
      what: "the run to be recorded interrupted",
    });
    const detectedMs = Date.now() - killedAt;
    process.stderr.write(`death known and recorded ${detectedMs} ms after kill -9\n`);
    expect(detectedMs).toBeLessThan(5000);
    expect(ended.status).toBe("interrupted");
    // Its agent outlived the killed server; the process that recorded it, on this machine, ended it.
    await waitFor(() => pidsWorkingIn(workCacheOf(victim.dataDir)).length === 0, { timeout: 5000, what: "the orphaned agent to be killed" });
    // Not retried, not run again by another process: the one-shot has had its turn.
    await sleep(3000);
    for (const s of others) {
      expect((await s.runs("long")).map((r) => [r.id, r.status])).toEqual([[running.id, "interrupted"]]);
      expect((await s.job("long")).state).toBe("completed");
    }
  }, 120_000);

  it("finishes a delivery left pending by a process killed while sending it, from another process, once", async () => {
    const rx = await ChatReceivers.start();
    try {
      const url = await freshDatabase(cluster, "deliver");
      const fleet = await startFleet(url, 3, { webhooks: { allow_private_networks: true } });
      // The first POST is never answered: its sender is killed while it waits.
      const hook = rx.url("/webhook/done", ["hang", ACCEPTED]);
      await fleet[0].tool("add_cron", { name: "once", schedule: "in 1s", prompt: "hello", on_complete: hook });
      await waitFor(() => rx.at("/webhook/done").length >= 1, { timeout: 20_000, what: "the first delivery attempt" });
      const [run] = await fleet[1].runs("once");
      const sender = fleet.find((s) => s.pid === run.pid)!;
      expect(sender, `the run's process (pid ${run.pid}) is one of the fleet`).toBeDefined();
      process.kill(sender.pid, "SIGKILL");
      const killedAt = Date.now();
      const others = fleet.filter((s) => s !== sender);
      await waitFor(() => rx.at("/webhook/done").length >= 2, { timeout: 20_000, what: "another process to send the pending delivery" });
      process.stderr.write(`pending delivery sent again ${Date.now() - killedAt} ms after kill -9 of its sender\n`);
      const getRun = async (s: TestServer) => (await s.tool("get_run", { run: run.id })).run;
      const done = await waitFor(
        async () => {
          const r = await getRun(others[0]);
          return r.delivery === "delivered" && r;
        },
        {
          timeout: 10_000,
          what: "the run's delivery to be recorded delivered",
        },
      );
      expect(done.deliveries.filter((d: { ok: boolean }) => d.ok).map((d: { channel: string; http_status: number }) => [d.channel, d.http_status])).toEqual([
        ["on_complete", 200],
      ]);
      // Once: the two survivors sweep every 2 s, and neither sends it again.
      await sleep(6000);
      expect(rx.at("/webhook/done").map((r) => r.json?.run?.id)).toEqual([run.id, run.id]);
      expect((await getRun(others[1])).delivery).toBe("delivered");
    } finally {
      await rx.close();
    }
  }, 90_000);

  it("holds every kind of run under fleet_max_concurrent: manual, event, chained and queued (queue_one) occurrences", async () => {
    const url = await freshDatabase(cluster, "cap");
    const spans = path.join(os.tmpdir(), `agent-cron-cap-${process.pid}-${Date.now()}.log`);
    homes.push(spans);
    // Each execution writes when it begins and ends: the overlap is counted here, from outside.
    const extra = {
      default_executor: "span",
      fleet_max_concurrent: 2,
      max_concurrent: 6,
      executors: {
        span: {
          type: "command",
          sandbox: "none",
          command: ["/bin/sh", "-c", `echo "+ $AGENT_CRON_RUN_ID" >> ${spans}; sleep "$0"; echo "- $AGENT_CRON_RUN_ID" >> ${spans}`, "{prompt}"],
        },
      },
    };
    const [a, b] = await startFleet(url, 2, extra);
    const made = homeFor(url, extra);
    const h = await HttpServer.start({ dataDir: made.dataDir, env: made.env });
    try {
      for (const i of [1, 2, 3, 4]) await a.tool("add_cron", { name: `m${i}`, schedule: "@yearly", prompt: "1.5", silent: true });
      await a.tool("add_cron", { name: "up", schedule: "@yearly", prompt: "0.2", silent: true });
      await a.tool("add_cron", { name: "down", schedule: "@yearly", prompt: "1.5", after: { job: "up" }, silent: true });
      const ev = await b.tool("add_cron", { name: "ev", schedule: "@yearly", prompt: "1.5", trigger: "http", overlap: "allow", silent: true });
      // Every second, each run 2.5 s: occurrences queue behind the one going.
      await b.tool("add_cron", { name: "q", schedule: "* * * * * *", prompt: "2.5", overlap: "queue_one", silent: true, max_runs: 4 });
      await Promise.all([
        a.tool("run_now", { job: "m1" }),
        a.tool("run_now", { job: "m2" }),
        b.tool("run_now", { job: "m3" }),
        b.tool("run_now", { job: "m4" }),
        a.tool("run_now", { job: "up" }),
        ...[1, 2].map(() =>
          fetch(`${new URL(h.url).origin}/hooks/${ev.job.id}`, {
            method: "POST",
            headers: { authorization: `Bearer ${ev.trigger_token}` },
            body: "payload",
          }).then((r) => expect(r.status).toBe(202)),
        ),
      ]);
      // 4 manual + up + down + 2 events + 4 of q: 12 executions.
      const lines = () => readFileSync(spans, "utf8").split("\n").filter(Boolean);
      await waitFor(() => lines().filter((l) => l.startsWith("- ")).length >= 12, {
        timeout: 90_000,
        interval: 250,
        what: "12 executions to end",
        describe: () => lines().join(" | "),
      });
      let going = 0;
      let most = 0;
      for (const l of lines()) {
        going += l.startsWith("+ ") ? 1 : -1;
        most = Math.max(most, going);
      }
      process.stderr.write(`fleet cap 2: at most ${most} executions at once across 3 processes, 12 executions\n`);
      expect(most).toBe(2);
      const kinds = (await a.tool("list_runs", { limit: 100 })).runs.map((r: { trigger: string }) => r.trigger).sort();
      expect(kinds.filter((k: string) => k !== "schedule")).toEqual(["after", "event", "event", "manual", "manual", "manual", "manual", "manual"]);
    } finally {
      await h.stop();
    }
  }, 150_000);

  it("cancels a run from a process other than the one running it", async () => {
    const url = await freshDatabase(cluster, "cancel");
    const fleet = await startFleet(url, 2);
    await fleet[0].tool("add_cron", { name: "long", schedule: "in 1s", prompt: "30", executor: "sleep" });
    const running = await waitFor(async () => (await fleet[1].runs("long")).find((r) => r.status === "running"), { timeout: 15_000, what: "the run to start" });
    const other = fleet.find((s) => s.pid !== running.pid)!;
    const holder = fleet.find((s) => s.pid === running.pid)!;
    const asked = Date.now();
    const { run } = await other.tool("cancel_run", { run: running.id });
    expect(run.status).toBe("canceled");
    expect(Date.now() - asked).toBeLessThan(10_000);
    // The process that ran it recorded it, and its agent is gone.
    await waitFor(() => pidsWorkingIn(workCacheOf(holder.dataDir)).length === 0, { timeout: 5000, what: "the canceled agent to end" });
    expect((await holder.runs("long")).map((r) => r.status)).toEqual(["canceled"]);
  }, 60_000);

  it("answers with a change acknowledged by another process from then on (read-your-writes), each of 20 times", async () => {
    const url = await freshDatabase(cluster, "ryw");
    const [a, b] = await startFleet(url, 2);
    for (let i = 1; i <= 20; i++) {
      await a.tool("add_cron", { name: `w${i}`, schedule: "@daily", prompt: `p${i}`, silent: true });
      // Asked at once, with no wait: B's answer includes what A just acknowledged.
      expect((await b.tool("list_crons", { limit: 100 })).total).toBe(i);
      expect((await b.tool("get_cron", { job: `w${i}` })).job.name).toBe(`w${i}`);
    }
    process.stderr.write("read-your-writes: 20 of 20 jobs acknowledged by A were in B's list and get_cron asked at once\n");
    await b.tool("pause", { job: "w7" });
    expect((await a.tool("get_cron", { job: "w7" })).job.state).toBe("paused");
  }, 60_000);

  it("stops a job everywhere within a second of a pause through one process, and tells every process's subscribers of runs", async () => {
    const url = await freshDatabase(cluster, "pause");
    const fleet = await startFleet(url, 3);
    const { job } = await fleet[0].tool("add_cron", { name: "tick", schedule: "* * * * * *", prompt: "hello", silent: true });
    for (const s of fleet) await s.client.subscribeResource({ uri: `cron://jobs/${job.id}` });
    // Runs made by the other processes reach a process's subscriber. Which process takes an
    // occurrence is pg-boss's fetch race (one may take them all), so the subscriber looked at
    // is the first that has seen two completed runs made elsewhere.
    let seen: { pid: number; runs: Awaited<ReturnType<(typeof fleet)[0]["runs"]>> }[] = [];
    const watcher = await waitFor(
      async () => {
        seen = await Promise.all(fleet.map(async (s) => ({ pid: s.pid, runs: await s.runs("tick") })));
        return fleet.find((s, i) => seen[i].runs.filter((r) => r.status === "completed" && r.pid !== s.pid).length >= 2);
      },
      {
        timeout: 45_000,
        what: "runs made by another process",
        describe: () => `runs by server pid and status, per process: ${JSON.stringify(seen.map((x) => x.runs.map((r) => `${r.pid} ${r.status}`)))}`,
      },
    );
    const updates = watcher.notificationsOf("notifications/resources/updated").filter((n) => n.params.uri === `cron://jobs/${job.id}`);
    expect(updates.length).toBeGreaterThanOrEqual(2);
    const logged = watcher.notificationsOf("notifications/message").filter((n) => JSON.stringify(n.params).includes(job.id));
    expect(logged.length).toBeGreaterThan(0);
    // Its own log (stderr) names only the runs it ran: the fleet's every run in every process's
    // log read as runs made several times.
    const watcherRuns = seen[fleet.indexOf(watcher)].runs;
    const logIds = [...watcher.stderr().matchAll(/event=run\.(?:started|finished) job=\S+ run=([0-9a-f-]+)/g)].map((m) => m[1]);
    const elsewhere = new Set(watcherRuns.filter((r) => r.pid !== watcher.pid).map((r) => r.id));
    expect(elsewhere.size).toBeGreaterThanOrEqual(2);
    expect(logIds.filter((id) => elsewhere.has(id))).toEqual([]);

    await fleet[1].tool("pause", { job: "tick" });
    const pausedAt = Date.now();
    await Promise.all(
      [fleet[0], fleet[2]].map((s) =>
        waitFor(async () => (await s.job("tick")).state === "paused", { timeout: 1000, interval: 20, what: "the pause everywhere" }),
      ),
    );
    expect(Date.now() - pausedAt).toBeLessThan(1000);
    await sleep(3000);
    const late = (await fleet[0].runs("tick")).filter((r) => Date.parse(r.scheduled_for) > pausedAt + 1000);
    expect(late).toEqual([]);
  }, 90_000);

  it("says the database is unreachable while it is stopped for 10 s, then resumes, running no occurrence twice", async () => {
    const url = await freshDatabase(cluster, "outage");
    const fleet = await startFleet(url, 3);
    for (let i = 0; i < 5; i++)
      await fleet[i % 3].tool("add_cron", { name: `o${i}`, schedule: "* * * * * *", prompt: `o${i}`, overlap: "allow", silent: true });
    await waitFor(async () => (await fleet[0].runRows()).length >= 15, { timeout: 20_000, what: "runs before the outage" });
    cluster.down();
    const downAt = Date.now();
    try {
      const error = await fleet[1].toolError("pause", { job: "o1" });
      expect(error).toMatch(/^pause failed: The database at 127\.0\.0\.1:\d+\/\w+ is unreachable: .+; agent-cron retries and resumes when it is back\.$/);
      // Reads answer from what each process last saw.
      expect((await fleet[2].tool("list_crons", {})).jobs).toHaveLength(5);
      await sleep(10_000 - (Date.now() - downAt));
    } finally {
      cluster.up();
    }
    const upAt = Date.now();
    for (const name of ["o0", "o1", "o2", "o3", "o4"]) {
      await waitFor(async () => (await fleet[0].runs(name)).some((r) => r.status === "completed" && Date.parse(r.scheduled_for) > upAt), {
        timeout: 30_000,
        what: `${name} to run again`,
      });
    }
    for (const s of fleet) expect(isAlive(s.pid)).toBe(true);
    const doubled = await sql(url, "SELECT job_id, scheduled_for, count(*) FROM agent_cron.runs GROUP BY 1, 2 HAVING count(*) > 1");
    expect(doubled).toEqual([]);
    // Every process answers with the same data again.
    await sleep(1500);
    const seen = await Promise.all(
      fleet.map(async (s) =>
        (await s.tool("list_crons", { fields: ["state"] })).jobs.map((j: { name: string; state: string }) => `${j.name}:${j.state}`).sort(),
      ),
    );
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
    expect(fleet[1].stderr()).toMatch(/The database at .+ is reachable again; scheduling resumed\./);
  }, 120_000);

  it("copies a files data dir into the database with migrate --to postgres; a second migrate changes nothing", async () => {
    const url = await freshDatabase(cluster, "migrate");
    const files = homeFor(url);
    writeFileSync(
      path.join(files.dataDir, "config.json"),
      JSON.stringify({ timezone: "UTC", default_executor: "echo", executors: { echo: { type: "command", command: ["/bin/echo", "{prompt}"] } } }),
    );
    const env = { ...files.env, XDG_CACHE_HOME: workCacheOf(files.dataDir) };
    const cli = (...args: string[]) => runCli([...args, "--data-dir", files.dataDir], { env });
    expect((await cli("add", "--name", "audit", "--schedule", "0 9 * * 1-5", "--prompt", "Audit the logs")).code).toBe(0);
    expect((await cli("add", "--name", "digest", "--schedule", "@daily", "--prompt", "Write the digest")).code).toBe(0);
    const ran = await cli("run", "audit");
    expect(ran.code).toBe(0);
    // The data dir is only read: every file and folder as it was, to the byte and the mtime.
    const before = snapshot(files.dataDir);
    const first = await cli("migrate", "--to", "postgres");
    expect(first.stderr).toBe("");
    expect(first.stdout).toMatch(/^Copied 2 jobs, 1 run and 1 output from .+ to the database at 127\.0\.0\.1:\d+\/\w+\.$/m);
    const again = await cli("migrate", "--to", "postgres", "--json");
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ jobs: { copied: 0, present: 2, skipped: [] }, runs: { copied: 0, present: 1 }, outputs: { copied: 0 } });
    expect(snapshot(files.dataDir)).toEqual(before);
    // A process on the database sees them, with the output.
    const pg = homeFor(url);
    const onDb = (...args: string[]) => runCli([...args, "--data-dir", pg.dataDir, "--json"], { env: pg.env });
    const listed = JSON.parse((await onDb("list")).stdout);
    expect(listed.jobs.map((j: { name: string }) => j.name)).toEqual(["audit", "digest"]);
    const runs = JSON.parse((await onDb("runs", "audit")).stdout);
    expect(runs.runs).toHaveLength(1);
    const shown = JSON.parse((await onDb("show-run", runs.runs[0].id)).stdout);
    expect(shown.run?.output ?? shown.output).toBe("Audit the logs");
    expect(await sql(url, "SELECT count(*)::int AS n FROM agent_cron.jobs")).toEqual([{ n: 2 }]);
  }, 60_000);
});
