/**
 * Durability (SPEC §18), seen from the kernel's side: the built server runs under strace
 * (Debian's `strace`, installed by scripts/install-strace.sh), which logs its writes and syncs
 * with the file each descriptor names (-y). With `durability: "fsync"` (the default) a change's
 * journal line (jobs.journal, or for a run the run journal beside its run log) is written, then
 * fdatasync'd on that file's descriptor, and only then is the tool's answer written to stdout. With `"os"` no sync is made on either file.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TestServer, makeDataDir, removeDir } from "../helpers/server.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

function strace(): string {
  try {
    execFileSync("strace", ["-V"], { stdio: "ignore" });
  } catch {
    throw new Error("strace is not installed: run bash scripts/install-strace.sh (apt-get install strace).");
  }
  return "strace";
}

/** One traced call: which, on what file (strace -y names it), and its printed arguments. */
interface Call {
  index: number;
  name: string;
  fd: number;
  file: string;
  args: string;
}

/** Parses `strace -f -y` output: calls whose first argument is a descriptor, in the order they were logged. */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  for (const line of text.split("\n")) {
    const m = /^\d+\s+(\w+)\((\d+)<([^>]*)>(.*)$/.exec(line);
    if (m) calls.push({ index: calls.length, name: m[1], fd: Number(m[2]), file: m[3], args: m[4] });
  }
  return calls;
}

const WRITES = new Set(["write", "pwrite64", "writev", "pwritev", "pwritev2"]);
const SYNCS = new Set(["fsync", "fdatasync"]);

async function traced(durability: "fsync" | "os") {
  const dataDir = makeDataDir({ config: { durability } });
  cleanup.push(() => removeDir(dataDir));
  const log = path.join(dataDir, "..", `${path.basename(dataDir)}.strace`);
  cleanup.push(() => removeDir(log));
  const s = await TestServer.start({
    dataDir,
    wrap: [strace(), "-f", "-y", "-s", "65536", "-e", "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync", "-o", log],
  });
  cleanup.push(() => s.close());
  const job = await s.tool("add_cron", { name: "sync-probe", schedule: "@daily", prompt: "hello" });
  const run = (await s.tool("run_now", { job: "sync-probe" })).run;
  await s.waitForRunEnd("sync-probe", run.id);
  await s.close();
  return { calls: parseTrace(readFileSync(log, "utf8")), jobId: job.job.id as string, runId: run.id as string, dataDir };
}

/** The first stdout write after `from` that carries `marker`: the tool's answer. */
function answer(calls: Call[], marker: string, from = 0): Call {
  const a = calls.find((c) => c.index >= from && WRITES.has(c.name) && c.fd === 1 && c.args.includes(marker) && c.args.includes('\\"result\\"'));
  if (!a) throw new Error(`No answer carrying ${marker} was written to stdout.`);
  return a;
}

describe("durability seen by strace", () => {
  it('"fsync": the journal line, then fdatasync on jobs.journal, then add_cron\'s answer; the same for the run log and run_now', async () => {
    const { calls, jobId, runId, dataDir } = await traced("fsync");
    const journal = path.join(dataDir, "jobs.journal");
    // add_cron: the put line of the new job reaches jobs.journal, is synced there, then answered.
    const put = calls.find((c) => WRITES.has(c.name) && c.file === journal && c.args.includes(`{\\"put\\":{\\"id\\":\\"${jobId}\\"`));
    expect(put, "the job's journal line").toBeDefined();
    const added = answer(calls, jobId, put!.index);
    const sync = calls.find((c) => c.index > put!.index && c.index < added.index && SYNCS.has(c.name) && c.file === journal);
    expect(sync, `an fdatasync of ${journal} between its line and the answer`).toBeDefined();

    // run_now: the run's record reaches its run log and the run journal (one for every job's
    // log: run-journal.ts), is synced there, then answered.
    const runLog = path.join(dataDir, "runs", `${jobId}.jsonl`);
    const record = calls.find((c) => WRITES.has(c.name) && c.file === runLog && c.args.includes(runId));
    expect(record, "the run's run-log line").toBeDefined();
    const runJournal = path.join(dataDir, "runs", "journal-1.jsonl");
    const journaled = calls.find((c) => c.index > record!.index && WRITES.has(c.name) && c.file === runJournal && c.args.includes(runId));
    expect(journaled, "the run's line in the run journal").toBeDefined();
    const started = answer(calls, runId, journaled!.index);
    const runSync = calls.find((c) => c.index > journaled!.index && c.index < started.index && SYNCS.has(c.name) && c.file === runJournal);
    expect(runSync, `an fdatasync of ${runJournal} between its line and the answer`).toBeDefined();
    console.log(
      `fsync: ${put!.name} jobs.journal #${put!.index} → ${sync!.name} #${sync!.index} → answer #${added.index}; ${record!.name} run log #${record!.index}, ${journaled!.name} run journal #${journaled!.index} → ${runSync!.name} #${runSync!.index} → answer #${started.index}`,
    );
  }, 120_000);

  it('"os": the same lines and answers, and no fsync or fdatasync of jobs.journal or a run log', async () => {
    const { calls, jobId, runId, dataDir } = await traced("os");
    const journal = path.join(dataDir, "jobs.journal");
    const runLog = path.join(dataDir, "runs", `${jobId}.jsonl`);
    // The writes are seen (so a missing sync is not a blind trace).
    expect(calls.some((c) => WRITES.has(c.name) && c.file === journal && c.args.includes(jobId))).toBe(true);
    expect(calls.some((c) => WRITES.has(c.name) && c.file === runLog && c.args.includes(runId))).toBe(true);
    answer(calls, runId);
    expect(calls.filter((c) => SYNCS.has(c.name) && (c.file === journal || c.file === runLog))).toEqual([]);
    // No run journal either: it exists to be synced.
    expect(calls.filter((c) => c.file.includes(`${path.sep}runs${path.sep}journal-`))).toEqual([]);
  }, 120_000);
});
