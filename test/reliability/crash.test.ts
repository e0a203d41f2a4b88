/**
 * Crash test: CRASH_CYCLES (default 50) cycles of start → concurrent add_cron / update_cron /
 * remove calls → kill -9 at a random moment → restart, on one data dir. Every acknowledged
 * change (a result without isError) must be there after the restart: adds with their fields,
 * the last acknowledged value of each updated field, removes gone. A call that got no answer
 * may or may not have been applied, but only as sent. Every data file must parse (a torn last
 * journal line is allowed: it was never acknowledged). A job firing every second makes the
 * kills land mid-run too; its occurrences must never run twice. CRASH_SEED replays the plan
 * (operations and delays; the server's timing still varies); CRASH_DEBUG=1 prints each cycle.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { Job } from "../../src/core/jobs.js";
import { Server, expireLock, makeDataDir, readDataFiles, removeDir, seededRandom, sleep, textOf, type Json } from "./helpers.js";

const CYCLES = Number(process.env.CRASH_CYCLES ?? 50);
const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

const FIELDS = ["prompt", "retries", "timeout_seconds", "overlap", "catch_up", "schedule"] as const;
type Field = (typeof FIELDS)[number];
// Schedules that never fire during the test: only the ticker runs.
const SCHEDULES = ["0 0 1 1 *", "0 12 * * 1", "@every 30d", "@monthly", "0 9 * * 1-5", "0 0 29 2 *"];

interface Known {
  id: string;
  name: string;
  values: Record<Field, unknown>;
}

interface Op {
  kind: "add" | "update" | "remove";
  name: string;
  args: Json;
  field?: Field;
  value?: unknown;
  delay: number;
  /** The order in which the call went out on the wire. */
  sentSeq?: number;
  /** unsent: the kill came first, so it never went out. */
  status: "pending" | "acked" | "error" | "unanswered" | "unsent";
  result?: Json;
  error?: string;
}

const valuesOf = (job: Job): Record<Field, unknown> => Object.fromEntries(FIELDS.map((f) => [f, job[f]])) as Record<Field, unknown>;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

describe("crash test: kill -9 during concurrent changes", () => {
  it(
    `keeps every acknowledged change across ${CYCLES} kill -9 cycles, and every file parses`,
    async () => {
      const rand = seededRandom(SEED);
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
      const pick = <T>(list: readonly T[]): T => list[int(0, list.length - 1)];
      const newValue = (field: Field, tag: string): unknown =>
        field === "prompt"
          ? `prompt ${tag} ${int(0, 1e9)}`
          : field === "retries"
            ? int(0, 10)
            : field === "timeout_seconds"
              ? int(1, 100_000)
              : field === "overlap"
                ? pick(["skip", "queue_one", "replace", "allow"])
                : field === "catch_up"
                  ? pick(["latest", "all", "none"])
                  : pick(SCHEDULES);

      console.log(`crash test: seed=${SEED} (CRASH_SEED=${SEED} replays), cycles=${CYCLES}`);
      const t0 = Date.now();
      const dir = makeDataDir({ max_concurrent: 4 }, "agent-cron-crash-");
      const model = new Map<string, Known>();
      const failures: string[] = [];
      const fail = (cycle: number, what: string) => failures.push(`cycle ${cycle}: ${what}`);
      const stats = {
        cycles: 0,
        sent: 0,
        acked: 0,
        unanswered: 0,
        unansweredApplied: 0,
        adds: 0,
        updates: 0,
        removes: 0,
        tornLines: 0,
        filesChecked: 0,
        tickerRuns: 0,
        interrupted: 0,
        maxJournalLines: 0,
        compactions: 0,
        bursts: 0,
      };
      let snapshotStamp = "";
      let tickerId = "";
      let previous: { ops: Op[]; filesJobIds: string[] } | null = null;

      try {
        for (let cycle = 0; cycle <= CYCLES; cycle++) {
          const tc = Date.now();
          const s = await Server.start(dir, { name: "crash-test" });
          if (process.env.CRASH_DEBUG) console.log(`cycle ${cycle} start ${Date.now() - tc} ms`);
          const jobs = await s.jobs();

          // 1. Verify what the previous cycle acknowledged, then adopt what is there as the model.
          if (previous) {
            const { ops } = previous;
            const byId = new Map(jobs.map((j) => [j.id, j]));
            const byName = new Map(jobs.filter((j) => j.name).map((j) => [j.name!, j]));
            if (!byId.has(tickerId)) fail(cycle, "the ticker job is gone");
            const serverIds = jobs.map((j) => j.id).sort();
            if (!same(serverIds, [...previous.filesJobIds].sort())) {
              const files = new Set(previous.filesJobIds);
              const served = new Set(serverIds);
              const name = (id: string) => jobs.find((j) => j.id === id)?.name ?? id;
              fail(
                cycle,
                `the restarted server's jobs differ from what the files held after the kill: served only ${JSON.stringify(serverIds.filter((id) => !files.has(id)).map(name))}, ` +
                  `files only ${JSON.stringify([...files].filter((id) => !served.has(id)))}`,
              );
            }
            for (const op of ops) if (op.status === "error") fail(cycle, `a valid ${op.kind} of ${op.name} got isError: ${op.error}`);

            for (const known of [...model.values()]) {
              const removes = ops.filter((o) => o.kind === "remove" && o.name === known.name && o.status !== "unsent");
              const job = byId.get(known.id);
              if (!job) {
                if (!removes.length) fail(cycle, `job ${known.name} was lost (no remove was sent)`);
                else if (!removes.some((r) => r.status === "acked")) stats.unansweredApplied++;
                model.delete(known.id);
                continue;
              }
              if (removes.some((r) => r.status === "acked")) fail(cycle, `acknowledged remove of ${known.name} was undone`);
              for (const field of FIELDS) {
                const ups = ops
                  .filter((o) => o.kind === "update" && o.name === known.name && o.field === field && o.status !== "unsent")
                  .sort((a, b) => a.sentSeq! - b.sentSeq!);
                const lastAcked = ups.map((u) => u.status).lastIndexOf("acked");
                // Changes apply in the order sent; any later, unanswered one may also have landed.
                const allowed = lastAcked >= 0 ? ups.slice(lastAcked).map((u) => u.value) : [known.values[field], ...ups.map((u) => u.value)];
                if (!allowed.some((v) => same(v, job[field]))) {
                  fail(
                    cycle,
                    `${known.name}.${field} is ${JSON.stringify(job[field])}; allowed ${JSON.stringify(allowed)} (updates in the order sent: ${ups.map((u) => `${JSON.stringify(u.value)}:${u.status}`).join(", ")})`,
                  );
                }
                if (lastAcked < 0 && ups.length && !same(job[field], known.values[field])) stats.unansweredApplied++;
              }
              known.values = valuesOf(job);
            }
            for (const op of ops.filter((o) => o.kind === "add")) {
              const job = byName.get(op.name);
              if (op.status === "acked") {
                if (!job) {
                  fail(cycle, `acknowledged add of ${op.name} was lost`);
                  continue;
                }
                if (job.id !== op.result?.job?.id) fail(cycle, `${op.name} has id ${job.id}, acknowledged as ${op.result?.job?.id}`);
              } else if (job && op.status === "unsent") fail(cycle, `${op.name} exists although its add_cron was never sent`);
              else if (job) stats.unansweredApplied++;
              if (!job) continue;
              for (const field of FIELDS)
                if (!same(job[field], op.args[field]))
                  fail(cycle, `added ${op.name}.${field} is ${JSON.stringify(job[field])}, sent ${JSON.stringify(op.args[field])}`);
              model.set(job.id, { id: job.id, name: op.name, values: valuesOf(job) });
            }
            for (const job of jobs) if (job.id !== tickerId && !model.has(job.id)) fail(cycle, `unexpected job ${job.name ?? job.id}`);
          } else {
            const ticker = await s.tool("add_cron", { name: "ticker", schedule: "@every 1s", prompt: "tick", retries: 0 });
            tickerId = ticker.job.id;
          }
          if (failures.length || cycle === CYCLES) {
            await s.close();
            break;
          }

          // 2. Fire concurrent changes: adds, updates of existing jobs, removes of others.
          const targets = [...model.values()];
          const ops: Op[] = [];
          const removing = new Set<string>();
          // Every 8th cycle is a burst of updates, so the journal passes its compaction threshold
          // (512 lines) now and then and some kills land while jobs.json is being rewritten.
          const burst = cycle % 8 === 4 && targets.length > 0;
          const count = burst ? int(150, 300) : int(4, 10);
          const spread = burst ? 400 : 60;
          for (let i = 0; i < count; i++) {
            const roll = burst ? 0.99 : rand();
            const addWeight = targets.length < 6 ? 0.7 : targets.length > 25 ? 0.15 : 0.35;
            const free = targets.filter((t) => !removing.has(t.name));
            if (burst) {
              const target = pick(free);
              const field = pick(["prompt", "retries", "timeout_seconds"] as const);
              const value = newValue(field, `${cycle}.${i}`);
              ops.push({
                kind: "update",
                name: target.name,
                field,
                value,
                args: { job: target.name, [field]: value },
                delay: int(0, spread),
                status: "pending",
              });
            } else if (roll < addWeight || free.length === 0) {
              const name = `job-${cycle}-${i}`;
              const args: Json = {
                name,
                prompt: newValue("prompt", `${cycle}.${i}`),
                retries: newValue("retries", ""),
                timeout_seconds: newValue("timeout_seconds", ""),
                overlap: newValue("overlap", ""),
                catch_up: newValue("catch_up", ""),
                schedule: newValue("schedule", ""),
              };
              ops.push({ kind: "add", name, args, delay: int(0, 60), status: "pending" });
            } else if (roll < addWeight + (1 - addWeight) * 0.75) {
              // Several updates may hit one job; never one that this cycle removes.
              const target = pick(free);
              const field = pick(FIELDS);
              const value = newValue(field, `${cycle}.${i}`);
              ops.push({ kind: "update", name: target.name, field, value, args: { job: target.name, [field]: value }, delay: int(0, 60), status: "pending" });
            } else {
              const candidates = free.filter((t) => !ops.some((o) => o.name === t.name));
              if (!candidates.length) continue;
              const target = pick(candidates);
              removing.add(target.name);
              ops.push({ kind: "remove", name: target.name, args: { job: target.name }, delay: int(0, 60), status: "pending" });
            }
          }
          const tool = { add: "add_cron", update: "update_cron", remove: "remove" } as const;
          let seq = 0;
          let killed = false;
          const inFlight = ops.map(async (op) => {
            await sleep(op.delay);
            if (killed) {
              op.status = "unsent";
              return;
            }
            try {
              op.sentSeq = seq++;
              const r = await s.call(tool[op.kind], op.args);
              op.status = r.isError ? "error" : "acked";
              op.result = r.structuredContent as Json;
              if (r.isError) op.error = textOf(r);
            } catch {
              op.status = "unanswered";
            }
          });
          // 3. kill -9 at a random moment: before, during or after the calls.
          await sleep(burst ? int(100, 900) : int(0, 100));
          killed = true;
          await s.kill9();
          await Promise.allSettled(inFlight);
          if (process.env.CRASH_DEBUG)
            console.log(
              `cycle ${cycle} ${burst ? "burst " : ""}total ${Date.now() - tc} ms, ${ops.filter((o) => o.status === "acked").length}/${ops.length} acked`,
            );
          stats.cycles++;
          stats.sent += ops.filter((o) => o.status !== "unsent").length;
          for (const op of ops) {
            if (op.status === "acked") stats.acked++;
            if (op.status === "unanswered") stats.unanswered++;
            if (op.status === "acked") stats[op.kind === "add" ? "adds" : op.kind === "update" ? "updates" : "removes"]++;
          }

          // 4. The files as the kill left them: each parses, and holds every acknowledged add.
          const files = readDataFiles(dir);
          stats.filesChecked += files.filesChecked;
          if (files.tornJournalLine) stats.tornLines++;
          stats.maxJournalLines = Math.max(stats.maxJournalLines, files.journalLines);
          if (burst) stats.bursts++;
          const stamp = existsSync(path.join(dir, "jobs.json")) ? String(statSync(path.join(dir, "jobs.json")).mtimeMs) : "";
          if (stamp !== snapshotStamp) stats.compactions++;
          snapshotStamp = stamp;
          for (const p of files.problems) fail(cycle, `after kill: ${p}`);
          const tickerRuns = files.runs.get(tickerId) ?? [];
          const occurrences = tickerRuns.filter((r) => r.scheduled_for !== null).map((r) => Date.parse(r.scheduled_for!));
          if (new Set(occurrences).size !== occurrences.length)
            fail(cycle, `a ticker occurrence has two runs: ${JSON.stringify(tickerRuns.map((r) => [r.scheduled_for, r.status, r.trigger]))}`);
          stats.tickerRuns = Math.max(stats.tickerRuns, tickerRuns.length);
          previous = { ops, filesJobIds: [...files.jobs.keys()] };
          if (failures.length) break;
          expireLock(dir);
        }

        const finalFiles = readDataFiles(dir);
        const ticker = finalFiles.runs.get(tickerId) ?? [];
        stats.interrupted = ticker.filter((r) => r.status === "interrupted").length;
        // Occurrences with no record at all between the first and last kept: silently skipped.
        const times = ticker
          .filter((r) => r.scheduled_for)
          .map((r) => Date.parse(r.scheduled_for!))
          .sort((a, b) => a - b);
        const unrecorded = times.length ? (times[times.length - 1] - times[0]) / 1000 + 1 - times.length : 0;
        const secs = ((Date.now() - t0) / 1000).toFixed(1);
        console.log(
          `crash test: ${stats.cycles} kill -9 cycles in ${secs} s; ${stats.sent} calls sent, ${stats.acked} acknowledged ` +
            `(${stats.adds} adds, ${stats.updates} updates, ${stats.removes} removes), ${stats.unanswered} unanswered ` +
            `(${stats.unansweredApplied} of those found applied); ${stats.filesChecked} file reads checked, ${stats.tornLines} torn journal lines, ` +
            `journal up to ${stats.maxJournalLines} lines, jobs.json rewritten in ${stats.compactions} cycles (${stats.bursts} burst cycles); ticker runs kept ${ticker.length} ` +
            `(${ticker
              .map((r) => r.status)
              .filter((x, i, a) => a.indexOf(x) === i)
              .map((st) => `${st} ${ticker.filter((r) => r.status === st).length}`)
              .join(", ")}); ` +
            `${unrecorded} ticker occurrences without any record; ${model.size} jobs at the end`,
        );
        expect(failures).toEqual([]);
        expect(stats.cycles).toBe(CYCLES);
      } finally {
        await removeDir(dir);
      }
    },
    60_000 + CYCLES * 4_000,
  );
});
