/**
 * Chained jobs (SPEC §21) on PostgreSQL under kill -9 (SPEC §19): BUILT agent-cron processes
 * (`serve` over stdio, each in a HOME of its own) on one database. A process is killed at the
 * worst moments of a chain (its upstream run's final record, naming the chained job in
 * `chain_due`, is written and the chained run does not exist yet; or the chained run is
 * recorded and `chain_due` still names it); the others' sweep, and the killed one restarted,
 * start each chained run once, never twice. Two processes that find the same owed chains at
 * once record and execute each chained run once (RunRepo.putNew's insert-if-absent). The
 * chained job's program appends a line per execution to a file, so executions are counted
 * outside the servers.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { TestServer, isAlive, pidsWorkingIn, sleep, waitFor } from "../helpers/server.js";
import { fleetHome, freshDatabase, sql, startCluster, type Cluster } from "./pg-helpers.js";

let cluster: Cluster;
beforeAll(() => {
  cluster = startCluster();
});
afterAll(() => cluster?.stop());

const root = mkdtempSync(path.join(os.tmpdir(), "agent-cron-pg-chain-"));
const execLog = path.join(root, "executions.log");
afterAll(() => rm(root, { recursive: true, force: true }));

interface Member {
  home: string;
  dataDir: string;
  env: Record<string, string>;
}
const homes: string[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  for (const h of homes.splice(0)) for (const pid of pidsWorkingIn(h)) process.kill(pid, "SIGKILL");
});

function member(url: string): Member {
  const made = fleetHome(root, url, {
    default_executor: "count",
    max_concurrent: 8,
    runs_per_job: 400,
    kill_grace_seconds: 0.5,
    executors: {
      // One line per execution ("<job id> <run id>"), then the prompt as the answer. No sandbox:
      // the line goes to a file under /tmp, which a sandbox hides.
      count: {
        type: "command",
        sandbox: "none",
        command: ["/bin/sh", "-c", `echo "$AGENT_CRON_JOB_ID $AGENT_CRON_RUN_ID" >> ${execLog}; echo "$0"`, "{prompt}"],
      },
    },
  });
  homes.push(made.home);
  return made;
}

async function start(m: Member, env: Record<string, string> = {}): Promise<TestServer> {
  const s = await TestServer.start({ dataDir: m.dataDir, env: { ...m.env, ...env } });
  servers.push(s);
  const pid = s.pid;
  onTestFailed(() => {
    process.stderr.write(`--- server pid ${pid} stderr, last lines:\n${s.stderr().split("\n").slice(-25).join("\n")}\n`);
  });
  return s;
}

/** How many times each run of `jobId` was executed, counted from the program's own lines. */
function executions(jobId: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(execLog)) return out;
  for (const line of readFileSync(execLog, "utf8").split("\n")) {
    const [job, run] = line.split(" ");
    if (job === jobId) out.set(run, (out.get(run) ?? 0) + 1);
  }
  return out;
}

type Row = { id: string; status: string; after_run: string | null; pid: number; chain_due: string[] };
const rowsOf = (url: string, jobId: string) =>
  sql<Row>(
    url,
    "SELECT id, status, data->>'after_run' AS after_run, (data->>'pid')::int AS pid, data->'chain_due' AS chain_due FROM agent_cron.runs WHERE job_id = $1 ORDER BY seq",
    [jobId],
  );

/** Adds the upstream job and the job chained after it through `s`, and waits until every process in `all` knows both. */
async function addChain(s: TestServer, all: TestServer[], downFields: Record<string, unknown> = {}): Promise<{ up: string; down: string }> {
  const up = (await s.tool("add_cron", { name: "up", schedule: "@yearly", prompt: "upstream says 42" })).job.id as string;
  const down = (await s.tool("add_cron", { name: "down", schedule: "@yearly", prompt: "Go on.", after: { job: "up" }, ...downFields })).job.id as string;
  for (const other of all) await waitFor(async () => (await other.tool("list_crons", {})).jobs.length === 2, { what: "every process to know both jobs" });
  return { up, down };
}

/** Runs the upstream job through `victim`, which kills itself (SIGKILL) at `AGENT_CRON_FAULT`; returns the upstream run's id. */
async function runUntilKilled(victim: TestServer): Promise<string> {
  const pid = victim.pid;
  const { run } = await victim.tool("run_now", { job: "up" });
  await waitFor(() => !isAlive(pid), { timeout: 20_000, what: "the process to kill itself at the fault point" });
  return run.id;
}

describe("chained jobs on a fleet under kill -9", () => {
  it("killed after the upstream's final record and before the chained run exists: another process starts it once; the restarted one starts nothing", async () => {
    const url = await freshDatabase(cluster, "chainintent");
    const [a, b, c] = [member(url), member(url), member(url)];
    const victim = await start(a, { AGENT_CRON_FAULT: "after-chain-intent" });
    const others = [await start(b), await start(c)];
    const { up, down } = await addChain(others[0], [victim, ...others]);

    const upRun = await runUntilKilled(victim);
    // The state a kill -9 leaves at that moment, read from the database.
    const [ended] = await rowsOf(url, up);
    expect(ended).toMatchObject({ id: upRun, status: "completed", chain_due: [down] });
    expect(await rowsOf(url, down)).toEqual([]);

    // A living process's sweep finds the chain owed (once the upstream run has settled) and starts it.
    const [chained] = await waitFor(
      async () => {
        const rows = await rowsOf(url, down);
        return rows.length > 0 && rows.every((r) => r.status !== "running") && rows;
      },
      { timeout: 60_000, interval: 250, what: "the chained run to be started and finish on another process" },
    );
    expect(chained).toMatchObject({ status: "completed", after_run: upRun });
    expect(others.map((s) => s.pid)).toContain(chained.pid);
    await waitFor(async () => (await rowsOf(url, up))[0].chain_due.length === 0, { what: "chain_due to be emptied" });

    // The killed process comes back: nothing is owed any more, nothing runs again, on any process.
    const again = await start(a);
    await sleep(12_000); // past a sweep of every process
    expect((await rowsOf(url, down)).map((r) => r.id)).toEqual([chained.id]);
    expect([...executions(down)]).toEqual([[chained.id, 1]]);
    expect((await again.runs("down")).map((r) => r.id)).toEqual([chained.id]);
  }, 120_000);

  it("killed after the chained run is recorded and before chain_due is emptied: neither the others' sweep nor the restart starts it again", async () => {
    const url = await freshDatabase(cluster, "chainstarted");
    const [a, b, c] = [member(url), member(url), member(url)];
    const victim = await start(a, { AGENT_CRON_FAULT: "after-chain-started" });
    const victimPid = victim.pid;
    const others = [await start(b), await start(c)];
    // overlap allow: nothing but the run's id keeps a second start out.
    const { up, down } = await addChain(others[0], [victim, ...others], { overlap: "allow" });

    const upRun = await runUntilKilled(victim);
    const [ended] = await rowsOf(url, up);
    expect(ended).toMatchObject({ id: upRun, status: "completed", chain_due: [down] });
    const [recorded] = await rowsOf(url, down);
    expect(recorded).toMatchObject({ status: "running", after_run: upRun, pid: victimPid });

    // The others find chain_due still set (and try to start it: its id is taken) and the run's
    // process gone (its run becomes interrupted); chain_due is emptied; one record.
    await waitFor(async () => (await rowsOf(url, up))[0].chain_due.length === 0, {
      timeout: 60_000,
      interval: 250,
      what: "another process to settle the owed chain",
    });
    const [settled] = await waitFor(
      async () => {
        const rows = await rowsOf(url, down);
        return rows.every((r) => r.status !== "running") && rows;
      },
      { timeout: 90_000, interval: 500, what: "the chained run of the killed process to be recorded interrupted" },
    );
    expect(settled).toMatchObject({ id: recorded.id, status: "interrupted", after_run: upRun });

    await start(a);
    await sleep(12_000);
    expect((await rowsOf(url, down)).map((r) => [r.id, r.status])).toEqual([[recorded.id, "interrupted"]]);
    // Killed before its program started, or just after: never twice.
    expect(executions(down).get(recorded.id) ?? 0).toBeLessThanOrEqual(1);
    expect([...executions(down).keys()].filter((id) => id !== recorded.id)).toEqual([]);
  }, 180_000);

  it("two processes that start at once and find the same owed chains record and execute each chained run once (insert-if-absent)", async () => {
    const url = await freshDatabase(cluster, "chainrace");
    const [a, b, c] = [member(url), member(url), member(url)];
    const first = await start(a);
    const { up, down } = await addChain(first, [first], { overlap: "allow" });
    const { run } = await first.tool("run_now", { job: "up", wait: true });
    await waitFor(async () => (await rowsOf(url, down)).some((r) => r.status === "completed"), { what: "the first chained run" });
    await first.close();

    // What a fleet that died at once would leave: 120 finished upstream runs, each still owing its chained run.
    const owed = Array.from({ length: 120 }, () => randomUUID());
    const settledAt = new Date(Date.now() - 60_000).toISOString();
    for (const id of owed) {
      await sql(
        url,
        `INSERT INTO agent_cron.runs (id, job_id, status, trigger, scheduled_for, started_at, process_id, rev, data)
         SELECT $2::text, job_id, status, trigger, scheduled_for, started_at, process_id, nextval('agent_cron.rev'),
                data || jsonb_build_object('id', $2::text, 'chain_due', jsonb_build_array($3::text), 'finished_at', $4::text)
         FROM agent_cron.runs WHERE id = $1`,
        [run.id, id, down, settledAt],
      );
    }

    // Both find all 120 at start-up and race to start each.
    const racers = await Promise.all([start(b), start(c)]);
    const rows = await waitFor(
      async () => {
        const got = await rowsOf(url, down);
        return (
          got.length >= owed.length + 1 && got.every((r) => r.status !== "running") && (await rowsOf(url, up)).every((r) => r.chain_due.length === 0) && got
        );
      },
      { timeout: 120_000, interval: 500, what: "every owed chained run to be started and finish" },
    );
    expect(rows).toHaveLength(owed.length + 1);
    expect(rows.filter((r) => r.status !== "completed")).toEqual([]);
    expect(rows.map((r) => r.after_run).sort()).toEqual([run.id, ...owed].sort());
    const counted = executions(down);
    expect(counted.size).toBe(owed.length + 1);
    expect([...counted.values()].every((n) => n === 1)).toBe(true);
    const byRacer = racers.map((s) => rows.filter((r) => r.pid === s.pid).length);
    expect(byRacer[0] + byRacer[1]).toBe(owed.length);
    process.stderr.write(`chained runs started per racing process: ${byRacer.join(" and ")}\n`);
  }, 180_000);
});
