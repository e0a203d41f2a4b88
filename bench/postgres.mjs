#!/usr/bin/env node
// The postgres backend's benchmark (not a test): fleets of BUILT agent-cron servers (stdio, one
// MCP client each, separate HOMEs) on one PostgreSQL database, running every-second jobs of
// `true` (command executor, sandbox none). Measures, for 1, 2 and 3 processes:
//   - capacity: occurrences run per second fleet-wide when more are due than the fleet can run,
//     and per occurrence: SQL round trips (by statement, counted inside each server by
//     bench/lib/pg-count.cjs), CPU ms of the servers and of their PostgreSQL backends;
//   - fire lateness (started_at - scheduled_for) p50/p99 at a load the fleet keeps up with;
// and the cost of one tool call through the database against the files backend; and, around
// each capacity run, pg-boss 12's own one-at-a-time rate (send, fetch, complete) on the same
// cluster (bench/pgboss-baseline.mjs), so capacity is read as a share of its engine.
//
//   node bench/postgres.mjs                      # needs AGENT_CRON_BENCH_DATABASE_URL (or AGENT_CRON_TEST_DATABASE_URL,
//                                                # AGENT_CRON_DATABASE_URL): a server where it may CREATE and DROP databases
//   node bench/postgres.mjs --cluster            # or a throwaway cluster of its own (scripts/pg-cluster.sh; the default
//                                                # when no URL is set and PostgreSQL's server is installed)
//   node bench/postgres.mjs --fleets 1,3 --jobs 100 --capacity-jobs 400 --seconds 20 [--keep]   # --keep: leave the databases and the servers' stderr in the temp dir
//   node bench/postgres.mjs --only capacity --log-level warning   # each server's client asks for warnings and worse only
//                                                # (logging/setLevel): what the per-run info messages cost each process
//   node bench/postgres.mjs --only capacity --cpu-prof   # some parts (capacity lateness calls); --cpu-prof: each server's
//                                                # profile of the window measured, bench/results/prof/<part>-<n>p-<i>.cpuprofile
//                                                # (read it with node bench/lib/profile-summary.mjs FILE)
//
// pg-boss 12 needs Node >= 22.12: the servers run on this Node when it is new enough, else on
// .cache/node22 (bash scripts/install-node22.sh). Results go to bench/results/postgres.json.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: opt } = parseArgs({
  options: {
    fleets: { type: "string", default: "1,2,3" },
    jobs: { type: "string", default: "100" },
    "capacity-jobs": { type: "string", default: "400" },
    seconds: { type: "string", default: "20" },
    calls: { type: "string", default: "200" },
    "max-concurrent": { type: "string", default: "64" },
    cluster: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    only: { type: "string", default: "capacity,lateness,calls" },
    "cpu-prof": { type: "boolean", default: false },
    "log-level": { type: "string" },
    cli: { type: "string" },
    out: { type: "string", default: path.join(root, "bench", "results", "postgres.json") },
    help: { type: "boolean", short: "h" },
  },
});
if (opt.help) {
  process.stdout.write(
    execFileSync("sed", ["-n", "2,20p", fileURLToPath(import.meta.url)], { encoding: "utf8" })
      .split("\n")
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n"),
  );
  process.exit(0);
}

const CLI = opt.cli ?? path.join(root, process.env.AGENT_CRON_DIST || "dist", "cli.js");
const FLEETS = opt.fleets.split(",").map(Number);
const JOBS = Number(opt.jobs);
const CAPACITY_JOBS = Number(opt["capacity-jobs"]);
const SECONDS = Number(opt.seconds);
const CALLS = Number(opt.calls);
const MAX_CONCURRENT = Number(opt["max-concurrent"]);
const ONLY = new Set(opt.only.split(","));
const PROF_DIR = path.join(root, "bench", "results", "prof");
const COUNTER = path.join(root, "bench", "lib", "pg-count.cjs");

const [major, minor] = process.versions.node.split(".").map(Number);
const NODE = major > 22 || (major === 22 && minor >= 12) ? process.execPath : path.join(root, ".cache", "node22", "node_modules", ".bin", "node");
if (!existsSync(NODE)) {
  process.stdout.write(`bench postgres: skipped, the servers need Node >= 22.12 (pg-boss 12); run bash scripts/install-node22.sh\n`);
  process.exit(0);
}
if (!existsSync(CLI)) {
  process.stderr.write(`bench postgres: ${CLI} is missing; run npm run build first\n`);
  process.exit(1);
}

let adminUrl = process.env.AGENT_CRON_BENCH_DATABASE_URL || process.env.AGENT_CRON_TEST_DATABASE_URL || process.env.AGENT_CRON_DATABASE_URL;
let clusterDir = null;
// With no URL, a throwaway cluster of its own when PostgreSQL's server is installed (what
// scripts/pg-cluster.sh looks for), so that `npm run bench` reaches this section on its own.
const serverInstalled = readdirSafe("/usr/lib/postgresql").some((v) => existsSync(path.join("/usr/lib/postgresql", v, "bin", "initdb")));
if (!adminUrl && (opt.cluster || serverInstalled)) {
  if (!serverInstalled) {
    process.stdout.write("bench postgres: skipped; --cluster needs PostgreSQL's server here (bash scripts/install-postgres.sh)\n");
    process.exit(0);
  }
  const out = execFileSync("bash", [path.join(root, "scripts", "pg-cluster.sh"), "start"], { encoding: "utf8" });
  clusterDir = /AGENT_CRON_PG_DIR='([^']+)'/.exec(out)[1];
  adminUrl = /AGENT_CRON_TEST_DATABASE_URL='([^']+)'/.exec(out)[1];
  process.stdout.write(`bench postgres: a throwaway cluster of its own (scripts/pg-cluster.sh) at ${adminUrl}\n`);
  // Stopped from outside (bench/run.mjs past the section's time limit): the cluster goes too.
  // The servers, its children, exit when their stdin closes with this process.
  for (const sig of ["SIGTERM", "SIGINT"])
    process.on(sig, () => {
      process.stderr.write(`bench postgres: ${sig}; stopping the throwaway cluster\n`);
      try {
        execFileSync("bash", [path.join(root, "scripts", "pg-cluster.sh"), "stop", clusterDir]);
      } catch {}
      try {
        for (const h of homes) rmSync(h, { recursive: true, force: true });
      } catch {} // before the homes exist
      process.exit(124);
    });
}
if (!adminUrl) {
  process.stdout.write(
    "bench postgres: skipped; PostgreSQL is not installed here (bash scripts/install-postgres.sh) and no AGENT_CRON_BENCH_DATABASE_URL is set (a server where the bench may create and drop databases)\n",
  );
  process.exit(0);
}

function readdirSafe(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const created = [];
let databases = 0;
async function admin(sqlText) {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return (await c.query(sqlText)).rows;
  } finally {
    await c.end();
  }
}
async function freshDatabase(label) {
  const name = `agent_cron_bench_${label}_${process.pid}_${databases++}`;
  await admin(`CREATE DATABASE ${name}`);
  created.push(name);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
async function query(url, text, values) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

const homes = [];
function home(config) {
  const h = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-pg-"));
  homes.push(h);
  const dataDir = path.join(h, ".agent-cron");
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(
    path.join(dataDir, "config.json"),
    JSON.stringify({
      timezone: "UTC",
      default_executor: "true",
      max_concurrent: MAX_CONCURRENT,
      runs_per_job: 1000,
      executors: { true: { type: "command", command: ["true"], sandbox: "none" } },
      ...config,
    }),
  );
  return { home: h, dataDir };
}

async function startServer(url, config, label = "server") {
  const { home: h, dataDir } = home(config);
  // Each server counts its SQL round trips (bench/lib/pg-count.cjs: written on SIGUSR2).
  const countFile = path.join(h, "pg-count.jsonl");
  const nodeOptions = [`--require ${COUNTER}`];
  // BENCH_NODE_OPTIONS reaches the servers only.
  if (process.env.BENCH_NODE_OPTIONS) nodeOptions.push(process.env.BENCH_NODE_OPTIONS);
  const transport = new StdioClientTransport({
    command: NODE,
    args: [CLI, "serve", "--data-dir", dataDir],
    env: {
      HOME: h,
      XDG_CACHE_HOME: path.join(h, "cache"),
      AGENT_CRON_ALWAYS_ON: "client",
      PG_COUNT_FILE: countFile,
      ...(opt["cpu-prof"] ? { PG_PROFILE_FILE: path.join(PROF_DIR, `${label}.cpuprofile`) } : {}),
      NODE_OPTIONS: nodeOptions.join(" "),
      ...(url ? { AGENT_CRON_DATABASE_URL: url } : {}),
    },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (c) => (stderr += c));
  const client = new Client({ name: "bench-postgres", version: "1" });
  await client.connect(transport);
  if (opt["log-level"]) await client.setLoggingLevel(opt["log-level"]);
  const call = async (name, args) => {
    const r = await client.callTool({ name, arguments: args });
    if (r.isError) throw new Error(`${name}: ${r.content?.[0]?.text}`);
    return r.structuredContent;
  };
  return { client, call, pid: transport.pid, countFile, stderr: () => stderr, close: () => client.close().catch(() => {}) };
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null);
const round = (n, d = 1) => (n === null ? null : Math.round(n * 10 ** d) / 10 ** d);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU ms a process has used (Linux /proc; null elsewhere or once it is gone). */
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/**
 * What the fleet has spent so far: each server's SQL round trips by statement and its CPU (from
 * bench/lib/pg-count.cjs, asked by SIGUSR2), and the CPU of the database's backends serving it.
 */
async function spent(url, servers) {
  for (const s of servers) process.kill(s.pid, "SIGUSR2");
  const backends = await query(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
  const pgCpu = new Map(backends.map((b) => [b.pid, cpuMs(b.pid)]).filter(([, ms]) => ms !== null));
  const lines = [];
  for (const s of servers) {
    for (let i = 0; i < 50; i++) {
      // Whole lines only: the server may be writing its next one (a half line once failed the run).
      const all = existsSync(s.countFile) ? readFileSync(s.countFile, "utf8").split("\n").slice(0, -1) : [];
      const last = all.length ? JSON.parse(all.at(-1)) : null;
      if (last && last.at >= Date.now() - 5000 && all.length > (s.countLines ?? 0)) {
        s.countLines = all.length;
        lines.push(last);
        break;
      }
      await sleep(20);
    }
  }
  return { lines, pgCpu };
}

/** Per occurrence between two `spent` readings: round trips (the most frequent statements too) and CPU. */
function perOccurrence(a, b, occurrences) {
  const per = (x) => round(x / Math.max(1, occurrences), 2);
  const trips = new Map();
  let total = 0;
  let cpu = 0;
  for (const end of b.lines) {
    const start = a.lines.find((l) => l.pid === end.pid) ?? { total: 0, cpu_ms: 0, by: {} };
    total += end.total - start.total;
    cpu += end.cpu_ms - start.cpu_ms;
    for (const [k, v] of Object.entries(end.by)) trips.set(k, (trips.get(k) ?? 0) + v.n - (start.by[k]?.n ?? 0));
  }
  let pgCpu = 0;
  for (const [pid, ms] of b.pgCpu) if (a.pgCpu.has(pid)) pgCpu += ms - a.pgCpu.get(pid);
  const statements = [...trips]
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 12)
    .map(([sql, n]) => ({ per_occurrence: per(n), sql }));
  return { round_trips: per(total), server_cpu_ms: per(cpu), postgres_cpu_ms: per(pgCpu), statements };
}

/** n servers, `jobs` every-second jobs for SECONDS; returns what the runs table says. */
async function fleetRun(n, jobs, label) {
  await settle();
  const url = await freshDatabase(`f${n}_${jobs}`);
  const servers = await Promise.all(Array.from({ length: n }, (_, i) => startServer(url, { store: { type: "postgres" } }, `${label}-${n}p-${i + 1}`)));
  try {
    // Adding hundreds of jobs takes seconds on a busy machine: they expire well after the window,
    // which starts once all are added (the servers are closed after it).
    const expires = new Date(Date.now() + 120_000 + SECONDS * 1000).toISOString();
    // Added 20 at a time: hundreds of calls at once would wait for the servers' database connections.
    for (let first = 0; first < jobs; first += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, jobs - first) }, (_, k) => first + k).map((i) =>
          servers[i % n].call("add_cron", { name: `b${i}`, schedule: "* * * * * *", prompt: "x", overlap: "allow", silent: true, expires_at: expires }),
        ),
      );
    }
    const t0 = Math.ceil(Date.now() / 1000) * 1000;
    const end = t0 + 3000 + SECONDS * 1000;
    // The first seconds warm up; from then on the fleet is measured, to the end.
    await sleep(t0 + 3000 - Date.now());
    const before = await spent(url, servers);
    await sleep(end - Date.now());
    const after = await spent(url, servers);
    await sleep(500);
    const from = new Date(t0 + 3000).toISOString();
    const to = new Date(end).toISOString();
    const [done] = await query(
      url,
      `SELECT count(*)::int AS n, extract(epoch FROM max(finished_at::timestamptz) - min(finished_at::timestamptz)) AS span
       FROM (SELECT data->>'finished_at' AS finished_at FROM agent_cron.runs WHERE status = 'completed') r
       WHERE finished_at::timestamptz BETWEEN $1 AND $2`,
      [from, to],
    );
    const late = await query(
      url,
      `SELECT extract(epoch FROM started_at - scheduled_for) * 1000 AS ms FROM agent_cron.runs
       WHERE status = 'completed' AND scheduled_for BETWEEN $1 AND $2 ORDER BY 1`,
      [from, to],
    );
    const [dup] = await query(url, "SELECT count(*)::int AS n FROM (SELECT 1 FROM agent_cron.runs GROUP BY job_id, scheduled_for HAVING count(*) > 1) d");
    const ms = late.map((r) => Number(r.ms));
    return {
      processes: n,
      jobs,
      completed: done.n,
      per_second: round(done.n / Math.max(1, Number(done.span))),
      late_p50_ms: round(pct(ms, 50)),
      late_p99_ms: round(pct(ms, 99)),
      doubled: dup.n,
      ...perOccurrence(before, after, done.n),
    };
  } finally {
    await Promise.all(servers.map((s) => s.close()));
    if (opt.keep) servers.forEach((s, i) => writeFileSync(path.join(os.tmpdir(), `agent-cron-bench-${n}-${jobs}-${i}.log`), s.stderr()));
  }
}

/** One tool call's cost: the same calls against a files data dir and the database. */
async function toolCalls() {
  const results = [];
  for (const store of ["files", "postgres"]) {
    const url = store === "postgres" ? await freshDatabase("calls") : null;
    const s = await startServer(url, store === "postgres" ? { store: { type: "postgres" } } : {});
    try {
      for (let i = 0; i < 100; i++) await s.call("add_cron", { name: `c${i}`, schedule: "0 3 1 1 *", prompt: "x" });
      const time = async (fn) => {
        const ms = [];
        for (let i = 0; i < CALLS; i++) {
          const t = performance.now();
          await fn(i);
          ms.push(performance.now() - t);
        }
        ms.sort((a, b) => a - b);
        return { p50: round(pct(ms, 50), 2), p99: round(pct(ms, 99), 2) };
      };
      results.push({
        store,
        get_cron: await time((i) => s.call("get_cron", { job: `c${i % 100}` })),
        pause_resume: await time((i) => s.call(i % 2 ? "resume" : "pause", { job: `c${Math.floor(i / 2) % 100}` })),
        add_cron: await time((i) => s.call("add_cron", { name: `d${i}`, schedule: "0 3 1 1 *", prompt: "x" })),
      });
    } finally {
      await s.close();
    }
  }
  return results;
}

/**
 * Between two measurements: the databases used so far are dropped (with --keep, kept) and the
 * cluster checkpointed, so that each row starts on a cluster in the same state. Without it the
 * earlier rows' dead rows (autovacuum) and dirty pages (the next checkpoint) were cleaned up
 * during the later rows: pg-boss's own rate fell 415 → 352 → 324/s across one run, and the
 * 2- and 3-process rows, always measured after the 1-process one, paid for it.
 */
async function settle() {
  if (!opt.keep) {
    for (const name of created.splice(0)) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  }
  // Needs a superuser or pg_checkpoint (PostgreSQL 15+); without it the databases are still dropped.
  await admin("CHECKPOINT").catch(() => {});
  await sleep(1000);
}

/** pg-boss's own one-at-a-time rate (send, fetch, complete) on the same cluster, now. */
async function pgBossBaseline() {
  await settle();
  const url = await freshDatabase("boss");
  const out = execFileSync(NODE, [path.join(root, "bench", "pgboss-baseline.mjs"), url, String(Math.min(SECONDS, 10))], { encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop());
}

const result = {
  at: new Date().toISOString(),
  node: NODE === process.execPath ? process.version : "node22 (.cache)",
  cpus: os.cpus().length,
  /** The level each server's client asked for (logging/setLevel); null: none asked, every run event is sent. */
  client_log_level: opt["log-level"] ?? null,
  pgboss: [],
  capacity: [],
  lateness: [],
  calls: [],
};
const load = () => os.loadavg().map((l) => round(l, 2));
try {
  process.stdout.write(
    `bench postgres: ${FLEETS.join(", ")} processes; ${CAPACITY_JOBS} jobs for capacity, ${JOBS} for lateness, ${SECONDS} s each; ${opt["log-level"] ? `clients ask for log level ${opt["log-level"]}` : "clients hear every run event"}; load ${load().join(" ")}\n`,
  );
  if (opt["cpu-prof"]) mkdirSync(PROF_DIR, { recursive: true });
  if (ONLY.has("capacity")) {
    // pg-boss alone before and after each capacity run: the same cluster in the same window.
    const boss = async () => {
      const b = await pgBossBaseline();
      result.pgboss.push(b);
      process.stdout.write(`  pg-boss alone, one at a time: ${b.per_second} jobs/s\n`);
      return b.per_second;
    };
    let before = await boss();
    for (const n of FLEETS) {
      const loadBefore = load();
      const cap = await fleetRun(n, CAPACITY_JOBS, "capacity");
      cap.load_before = loadBefore;
      const after = await boss();
      cap.pgboss_per_second = Math.round((before + after) / 2);
      cap.of_pgboss = Math.round((cap.per_second / cap.pgboss_per_second) * 100) / 100;
      before = after;
      result.capacity.push(cap);
      process.stdout.write(
        `  capacity  ${n} process(es): ${cap.per_second} occurrences/s (${cap.completed} runs; doubled ${cap.doubled}); ${Math.round(cap.of_pgboss * 100)} % of pg-boss's ${cap.pgboss_per_second}/s; ` +
          `per occurrence ${cap.round_trips} SQL round trips, ${cap.server_cpu_ms} ms CPU in agent-cron, ${cap.postgres_cpu_ms} ms in PostgreSQL; load ${loadBefore.join(" ")}\n`,
      );
      for (const st of cap.statements) process.stdout.write(`      ${String(st.per_occurrence).padStart(6)}  ${st.sql}\n`);
    }
  }
  if (ONLY.has("lateness")) {
    for (const n of FLEETS) {
      const lat = await fleetRun(n, JOBS, "lateness");
      result.lateness.push(lat);
      process.stdout.write(`  lateness  ${n} process(es), ${JOBS} jobs/s: p50 ${lat.late_p50_ms} ms, p99 ${lat.late_p99_ms} ms (doubled ${lat.doubled})\n`);
    }
  }
  if (ONLY.has("calls")) {
    result.calls = await toolCalls();
    for (const c of result.calls) {
      process.stdout.write(
        `  tool call ${c.store.padEnd(8)} get_cron p50 ${c.get_cron.p50} ms (p99 ${c.get_cron.p99}); pause/resume p50 ${c.pause_resume.p50} ms (p99 ${c.pause_resume.p99}); add_cron p50 ${c.add_cron.p50} ms (p99 ${c.add_cron.p99})\n`,
      );
    }
  }
  mkdirSync(path.dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, JSON.stringify(result, null, 2) + "\n");
  process.stdout.write(`  written to ${path.relative(root, opt.out)}\n`);
} finally {
  if (opt.keep) process.stdout.write(`  kept the databases: ${created.join(", ")}\n`);
  else for (const name of created) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  for (const h of homes) rmSync(h, { recursive: true, force: true });
  if (clusterDir) execFileSync("bash", [path.join(root, "scripts", "pg-cluster.sh"), "stop", clusterDir]);
}
