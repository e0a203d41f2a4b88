#!/usr/bin/env node
// agent-cron benchmark suite (a benchmark, not a test): drives the BUILT server over stdio with
// the MCP SDK client, the way an IDE does, and micro-benchmarks the run store (bundled from src/).
// Prints one table per section and writes everything to bench/results/latest.json.
//
//   npm run bench                                  # build, then every section and the targets table (~15-20 min on 2 cores)
//   node bench/run.mjs --only fire,add             # some sections: fire add memory start record http bytes metrics audit durability sandbox postgres
//   node bench/run.mjs --timeout-scale 2           # each section's time limit (SECTION_LIMIT_S) times 2; past it, "not measured: why"
//   node bench/run.mjs --seconds 8 --fleets 10,1000 --sandbox-fleet 1000 --sizes 0,1000,10000,100000 --mem-sizes 0,1000,10000,100000
//                                                  # (--sizes: add/list and the restarts at 10,000 and 100,000 jobs)
//   node bench/run.mjs --only fire --cpu-prof      # also write .cpuprofile files of the servers (a folder each: one file per thread)
//   node bench/run.mjs --only memory --heap-prof   # also write .heapprofile files of the servers
//   node bench/run.mjs --only memory --node-args=--max-semi-space-size=1   # try V8 flags on the servers
//   node bench/run.mjs --only fire --cli /tmp/other/dist/cli.js --max-concurrent 8   # A/B another build or setting
//   node bench/run.mjs --only fire --config '{"durability":"os"}'                     # A/B a config key
//
// Profiles land in bench/results/prof/. Every server gets a fresh temporary data dir; big job
// sets are written straight to jobs.json in the store's format (one compact job per line),
// cloned from a job that the server itself created, so start-up loads exactly what it wrote.
import { execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { srcModule } from "./lib/bundle.mjs";
import { stopBackgroundOwner } from "./lib/owner.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SECTIONS = ["fire", "add", "memory", "start", "record", "http", "bytes", "metrics", "audit", "durability", "sandbox", "postgres"];
/**
 * Each section's time limit, seconds: past it the section is stopped (its servers and children
 * killed) and its targets read "not measured: the section took longer than N s", so that the
 * suite always ends with its table. Several times what each takes on a quiet 2-core machine.
 */
const SECTION_LIMIT_S = {
  fire: 420,
  add: 240,
  memory: 180,
  start: 420,
  record: 240,
  http: 200,
  bytes: 60,
  metrics: 90,
  audit: 90,
  durability: 90,
  sandbox: 120,
  postgres: 600,
};

const { values: opt } = parseArgs({
  options: {
    only: { type: "string" },
    seconds: { type: "string", default: "8" },
    fleets: { type: "string", default: "10,1000" },
    "sandbox-fleet": { type: "string", default: "1000" },
    sizes: { type: "string", default: "0,1000,10000,100000" },
    "mem-sizes": { type: "string", default: "0,1000,10000,100000" },
    "record-sizes": { type: "string", default: "1000,10000,100000" },
    adds: { type: "string", default: "200" },
    "node-args": { type: "string", default: "" },
    cli: { type: "string" },
    "max-concurrent": { type: "string", default: "64" },
    "timeout-scale": { type: "string", default: "1" },
    // Config keys merged into every server's config, for an A/B of a setting: '{"durability":"os"}'.
    config: { type: "string", default: "{}" },
    out: { type: "string", default: path.join(root, "bench", "results", "latest.json") },
    "cpu-prof": { type: "boolean", default: false },
    "heap-prof": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    // For an A/B against a build from before config always_on existed (it refuses the key).
    "legacy-config": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (opt.help) {
  process.stdout.write(
    readFileSync(fileURLToPath(import.meta.url), "utf8")
      .split("\n")
      .slice(1, 19)
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n") + "\n",
  );
  process.exit(0);
}
const only = opt.only ? opt.only.split(",").map((s) => s.trim()) : SECTIONS;
for (const s of only) {
  if (!SECTIONS.includes(s)) {
    process.stderr.write(`bench: unknown section "${s}"; choose from ${SECTIONS.join(", ")}\n`);
    process.exit(2);
  }
}
const nums = (s) => s.split(",").filter(Boolean).map(Number);
const SECONDS = Number(opt.seconds);
const FLEETS = nums(opt.fleets);
const SANDBOX_FLEETS = nums(opt["sandbox-fleet"]);
const SIZES = nums(opt.sizes);
const MEM_SIZES = nums(opt["mem-sizes"]);
const RECORD_SIZES = nums(opt["record-sizes"]);
const ADDS = Number(opt.adds);
// --cli points at another build (an A/B experiment); the default is this repo's dist/cli.js
const cli = path.resolve(opt.cli ?? path.join(root, "dist", "cli.js"));
if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);

const base = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-"));
const profDir = path.join(root, "bench", "results", "prof");
const FAR = "0 0 1 1 *";
const EVERY_SECOND = "* * * * * *";
const configFile = path.join(base, "config.json");
// max_jobs well above the largest job set (the default 1,000 would refuse the adds at 1,000+
// stored jobs); the `true` executor without a sandbox, as the targets are stated (the fire
// section also measures the default sandbox separately, --sandbox-fleet).
// always_on "client": each server measured is the process that owns its data dir and runs the
// jobs, not a follower of a background owner it would leave running.
const benchConfig = (extra = {}) => ({
  timezone: "UTC",
  max_concurrent: Number(opt["max-concurrent"]),
  max_jobs: 1_000_000,
  ...(opt["legacy-config"] ? {} : { always_on: "client" }),
  default_executor: "true",
  executors: { true: { type: "command", command: ["true"], sandbox: "none" } },
  ...JSON.parse(opt.config),
  ...extra,
});
writeFileSync(configFile, JSON.stringify(benchConfig()));

// ---------------------------------------------------------------------------------------------
// helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Nearest-rank percentile. */
const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const r2 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? (x ?? null) : Math.round(x * 100) / 100);
const rssBytes = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;
const cpuMs = (pid, withChildren = false) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime; with the children the process has waited for (its runs): cutime, cstime.
    return (Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0)) * 10;
  } catch {
    return null;
  }
};
const log = (...a) => process.stderr.write(a.join(" ") + "\n");
/** What the server said at start about sandboxing its runs, for the report. */
const sandboxNotice = (stderr) =>
  stderr
    .split("\n")
    .find((l) => /sandbox|bubblewrap/i.test(l))
    ?.replace(/^agent-cron \w+: /, "") ?? null;
function table(title, header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => (c === null || c === undefined ? "—" : typeof c === "number" ? fmt(c) : String(c))));
  const w = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => "| " + r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(" | ") + " |";
  console.log(`\n${title}`);
  console.log(line(cells[0]));
  console.log("|" + w.map((n, i) => (i === 0 ? "-".repeat(n + 2) : "-".repeat(n + 1) + ":")).join("|") + "|");
  for (const r of cells.slice(1)) console.log(line(r));
}
const fmt = (x) => (Number.isInteger(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

const live = new Set();
process.on("exit", () => {
  for (const pid of live) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  if (!opt.keep) rmSync(base, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** The running section's stop signal: set when it passes its time limit (see the loop at the end). */
let sectionSignal = new AbortController().signal;
const stopIfStopped = () => {
  if (sectionSignal.aborted) throw new Error(`stopped: ${sectionSignal.reason}`);
};
/** Child scripts running (bench/postgres.mjs and the like), stopped with their section. */
const liveChildren = new Set();

/**
 * Runs a script of this repo as a child (stdout collected, and echoed when `echo`), stopped with
 * SIGTERM (SIGKILL 10 s later) past `limitMs` or when its section is stopped.
 */
function runChild(args, { limitMs, echo = false, env = process.env, node = process.execPath } = {}) {
  stopIfStopped();
  return new Promise((resolve) => {
    const child = spawn(node, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env });
    liveChildren.add(child);
    let stdout = "",
      stderr = "",
      why = null;
    child.stdout.on("data", (c) => {
      stdout += c;
      if (echo) process.stdout.write(c);
    });
    child.stderr.on("data", (c) => {
      stderr += c;
      if (echo) process.stderr.write(c);
      if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
    });
    const stop = (reason) => {
      why ??= reason;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
    };
    const timer = limitMs ? setTimeout(() => stop(`took longer than ${Math.round(limitMs / 1000)} s`), limitMs) : null;
    const onAbort = () => stop(String(sectionSignal.reason));
    const signal = sectionSignal;
    signal.addEventListener("abort", onAbort);
    child.on("close", (code, signalName) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      liveChildren.delete(child);
      resolve({ code: code ?? signalName, stdout, stderr, stopped: why });
    });
  });
}

let profSeq = 0;
/**
 * NODE_EXTRA_CA_CERTS, when the bench's environment sets it: Node 20 then loads OpenSSL's CA
 * store before any script runs (Node 22 waits for the first TLS use), ~70 ms and ~2 MB of every
 * Node process (a bare `node -e 0` 120-150 ms against ~45 ms here). The start section measures
 * its floor and cold starts without it too (`bareEnv`).
 */
const EXTRA_CA = "NODE_EXTRA_CA_CERTS";
const bareEnv = () => {
  const env = { ...process.env };
  delete env[EXTRA_CA];
  return env;
};

/** Starts a server on `dataDir` and connects a client; resolves after `initialize`. `env`: the environment to start it in. */
async function startServer(
  dataDir,
  { probe = false, label = "server", config = configFile, node = process.execPath, rssLimitBytes = null, env = process.env } = {},
) {
  stopIfStopped();
  const signal = sectionSignal;
  const nodeArgs = opt["node-args"] ? opt["node-args"].split(" ").filter(Boolean) : [];
  if (probe) nodeArgs.push("--expose-gc", "--require", path.join(root, "bench", "lib", "probe.cjs"));
  if (opt["cpu-prof"] || opt["heap-prof"]) mkdirSync(profDir, { recursive: true });
  // A folder per server: its worker threads write profiles of their own, which one name would overwrite.
  if (opt["cpu-prof"]) nodeArgs.push("--cpu-prof", "--cpu-prof-dir", path.join(profDir, `${label}-${++profSeq}`));
  if (opt["heap-prof"]) nodeArgs.push("--heap-prof", "--heap-prof-dir", profDir, "--heap-prof-name", `${label}-${++profSeq}.heapprofile`);
  const transport = new StdioClientTransport({
    command: node,
    args: [...nodeArgs, cli, "serve", "--data-dir", dataDir, "--config", config],
    // Default work dirs (one per run) go under the bench's temporary dir and leave with it.
    env: { ...env, NODE_OPTIONS: "", XDG_CACHE_HOME: path.join(base, "cache") },
    stderr: "pipe",
  });
  let stderr = "";
  const heapWaiters = [];
  transport.stderr?.on("data", (c) => {
    stderr += c;
    let m;
    while ((m = /BENCH_PROBE (\{.*\})\n/.exec(stderr))) {
      stderr = stderr.slice(0, m.index) + stderr.slice(m.index + m[0].length);
      heapWaiters.shift()?.(JSON.parse(m[1]));
    }
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const client = new Client({ name: "agent-cron-bench", version: "1.0.0" });
  // Notifications the server sends this client, by method: what a fleet costs the client too.
  const notices = {};
  client.fallbackNotificationHandler = async (n) => {
    notices[n.method] = (notices[n.method] ?? 0) + 1;
  };
  // Watched from its start, before it answers initialize: an overloaded fleet grows from there.
  let overLimit = null;
  const watchdog = rssLimitBytes
    ? setInterval(() => {
        let rss = 0;
        try {
          rss = transport.pid ? rssBytes(transport.pid) : 0;
        } catch {} // gone
        if (rss > rssLimitBytes && !overLimit) {
          overLimit = r2(rss / 2 ** 20);
          try {
            process.kill(transport.pid, "SIGKILL");
          } catch {}
        }
      }, 500)
    : null;
  try {
    // A start with 100,000 jobs on a busy machine can pass the SDK's default minute.
    const connecting = client.connect(transport, { timeout: 600_000 });
    // Killed with the rest if its section is stopped or the bench exits while it starts (else
    // it would go on, and write its data dir again after the bench removed it).
    if (transport.pid) live.add(transport.pid);
    await connecting;
  } catch (err) {
    if (watchdog) clearInterval(watchdog);
    if (transport.pid) {
      try {
        process.kill(transport.pid, "SIGKILL");
      } catch {}
      live.delete(transport.pid);
    }
    throw Object.assign(new Error(`server did not start: ${err.message}${overLimit ? ` (stopped: RSS ${overLimit} MB)` : ""}\n${stderr}`), { overLimit });
  }
  const pid = transport.pid;
  if (signal.aborted) {
    // Its section was stopped while it started: it goes now, not with the bench.
    if (watchdog) clearInterval(watchdog);
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    throw new Error(`stopped: ${signal.reason}`);
  }
  live.add(pid);
  return {
    client,
    pid,
    stderr: () => stderr,
    call: async (name, args, timeout = 600_000) => {
      const r = await client.callTool({ name, arguments: args }, undefined, { timeout });
      if (r.isError) throw new Error(`${name} failed: ${r.content?.[0]?.text}`);
      return r.structuredContent;
    },
    probe: () => {
      const p = new Promise((resolve, reject) => {
        heapWaiters.push(resolve);
        setTimeout(() => reject(new Error("no probe answer")), 30_000).unref();
      });
      process.kill(pid, "SIGUSR2");
      return p;
    },
    overLimit: () => overLimit,
    notices: () => ({ ...notices }),
    close: async () => {
      if (watchdog) clearInterval(watchdog);
      if ((opt["cpu-prof"] || opt["heap-prof"]) && live.has(pid)) {
        // A profile is written when the server exits on its own (stdin closed); the client's
        // close would kill a loaded server 2-4 s later, before it has.
        transport._process?.stdin?.end();
        for (const until = Date.now() + 60_000; existsSync(`/proc/${pid}`) && Date.now() < until; ) await sleep(100);
      }
      await client.close().catch(() => {});
      live.delete(pid);
    },
    kill: () => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
      live.delete(pid);
    },
  };
}

/** A section's time limit in ms (SECTION_LIMIT_S times --timeout-scale). */
const limitOf = (name) => SECTION_LIMIT_S[name] * Number(opt["timeout-scale"]) * 1000;

/** Times `fn` n times, sequentially; returns the latencies in ms. */
async function timeEach(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// pre-populated data dirs

/** A store module the micro-benchmarks call directly, bundled from src/ (bench/lib/bundle.mjs). */
const storeModule = (name, folder = existsSync(path.join(root, "src", "backends", "files", "store")) ? "backends/files/store" : "store") =>
  srcModule(`${folder}/${name}`);
const { stringifyRecords } = await storeModule("json-file");
// The journal header with its revision, where the store has one (older checkouts: none).
const { journalHeaderLine } = await storeModule("jobs-store").catch(() => ({}));
// The run history format of the store under test: the per-job run log (runs/<job_id>.jsonl)
// where src/backends/files/store/run-log.ts (before, src/store/run-log.ts) exists, else the older whole-file runs/<job_id>.json, so this
// script also benchmarks a checkout from before the log (an A/B with --cli needs each build's
// own format).
const runLog =
  existsSync(path.join(root, "src", "backends", "files", "store", "run-log.ts")) || existsSync(path.join(root, "src", "store", "run-log.ts"))
    ? await storeModule("run-log")
    : null;
function writeRunHistory(dir, jobId, runs) {
  if (runLog) {
    writeFileSync(path.join(dir, "runs", `${jobId}.jsonl`), runLog.formatRunLog(jobId, runs));
    // The store's index of runs left running or owing a delivery: none here. Without it, the
    // store would read every log at start to write it.
    writeFileSync(path.join(dir, "runs", "open.jsonl"), "");
  } else writeFileSync(path.join(dir, "runs", `${jobId}.json`), stringifyRecords({ runs }, "runs"));
}
let templates = null;
/** A job and a finished run made by the server itself, to clone. */
async function getTemplates() {
  if (templates) return templates;
  const dir = path.join(base, "template");
  const s = await startServer(dir, { label: "template" });
  try {
    const { job } = await s.call("add_cron", { name: "template", schedule: FAR, prompt: "noop", retries: 0 });
    const { run } = await s.call("run_now", { job: job.id, wait: true });
    templates = { job: (await s.call("get_cron", { job: job.id })).job, run };
  } finally {
    await s.close();
  }
  return templates;
}

const populated = new Map();
/**
 * A data dir holding `jobs` far-future jobs (and `runsPerJob` finished runs each), written in
 * the store's format. `journal` lines re-put existing jobs so that the next compaction falls
 * within the measurement (the steady state of a busy store). Returns a fresh copy each call.
 */
async function populatedDir(jobs, { runsPerJob = 0, journal = 0, fields = null } = {}) {
  const key = `${jobs}-${runsPerJob}-${journal}${fields ? `-${populated.size}` : ""}`;
  let src = populated.get(key);
  if (!src) {
    const { job, run } = await getTemplates();
    src = path.join(base, `pop-${key}`);
    mkdirSync(path.join(src, "runs"), { recursive: true });
    mkdirSync(path.join(src, "outputs"), { recursive: true });
    const list = [];
    for (let i = 0; i < jobs; i++) {
      const j = { ...job, id: randomUUID(), name: `pre-${i}`, prompt: `noop ${i}`, ...fields };
      list.push(j);
      if (runsPerJob) {
        const runs = [];
        // One a minute, oldest first, as a job's history is.
        const t0 = Date.parse(run.started_at) - runsPerJob * 60_000;
        for (let k = 0; k < runsPerJob; k++) {
          const at = new Date(t0 + k * 60_000 + i).toISOString().replace("Z", "+00:00");
          runs.push({ ...run, id: randomUUID(), job_id: j.id, scheduled_for: at, started_at: at, finished_at: at });
        }
        writeRunHistory(src, j.id, runs);
      }
    }
    // As the store leaves them: jobs.json names its journal and revision, and the journal's
    // header names itself and the revision it starts from (without them the store rewrites
    // both at its first start, inside the measurement: at 100,000 jobs a 130 MB rewrite).
    const journalId = randomUUID().replaceAll("-", "").slice(0, 16);
    const header = journalHeaderLine ? journalHeaderLine(journalId, null, 0).line : JSON.stringify({ journal: journalId, after: null }) + "\n";
    writeFileSync(
      path.join(src, "jobs.json"),
      stringifyRecords({ version: 1, journal: journalId, ...(journalHeaderLine ? { rev: 0 } : {}), jobs: list }, "jobs"),
    );
    writeFileSync(path.join(src, "jobs.journal"), header);
    if (journal && list.length) {
      const lines = [header];
      for (let i = 0; i < journal; i++) lines.push(JSON.stringify({ put: list[i % list.length] }) + "\n");
      writeFileSync(path.join(src, "jobs.journal"), lines.join(""));
    }
    populated.set(key, src);
  }
  const dst = path.join(base, `run-${randomUUID().slice(0, 8)}`);
  cpSync(src, dst, { recursive: true });
  return dst;
}

const results = {
  date: new Date().toISOString(),
  machine: {
    cpus: os.availableParallelism(),
    cpu_model: os.cpus()[0]?.model ?? null,
    mem_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavg_before: os.loadavg().map((x) => r2(x)),
  },
  command: `node bench/run.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  sections: {},
};

// ---------------------------------------------------------------------------------------------
// fire: every-second fleets, lateness and share of occurrences run

async function benchFire() {
  const rows = [];
  // The targets' fleets run `true` without a sandbox; the same fleet is measured again with the
  // executor's default sandbox (no "sandbox" key), for its cost per run.
  const plan = [...FLEETS.map((fleet) => ({ fleet, sandbox: "none" })), ...SANDBOX_FLEETS.map((fleet) => ({ fleet, sandbox: "default" }))];
  // The machine's floor at each fleet's rate (bench/lib/spawn-floor.mjs), measured beside it.
  const floors = new Map();
  for (const { fleet, sandbox } of plan) {
    if (!floors.has(fleet)) {
      const out = await runChild(
        [path.join(root, "bench", "lib", "spawn-floor.mjs"), "--rate", String(fleet), "--seconds", String(SECONDS), "--max-concurrent", opt["max-concurrent"]],
        { limitMs: (SECONDS + 30) * 1000 },
      );
      let floor = null;
      try {
        floor = JSON.parse(out.stdout);
      } catch {}
      floors.set(fleet, floor);
      log(`fire floor ${fleet}/s: ${floor ? JSON.stringify(floor) : `not measured: ${out.stopped ?? `exit ${out.code}`} ${out.stderr.slice(-300)}`}`);
    }
    const floor = floors.get(fleet);
    const sandboxConfig = sandbox === "none" ? null : path.join(base, `config-sandbox-default.json`);
    if (sandboxConfig) writeFileSync(sandboxConfig, JSON.stringify(benchConfig({ executors: { true: { type: "command", command: ["true"] } } })));
    // The fleet is in the data dir when the server starts (added through add_cron, the first
    // jobs would fire while the last are added, and a big fleet would load the server before
    // its window). Scheduled from now: nothing before this start is owed.
    const now = new Date().toISOString().replace("Z", "+00:00");
    const dir = await populatedDir(fleet, {
      fields: { schedule: EVERY_SECOND, retries: 0, created_at: now, updated_at: now, schedule_from: now, next_run_at: null },
    });
    // A fleet the machine cannot keep up with piles up in the server (measured: past 1.9 GB
    // of RSS within two minutes at load 25-35): past 1 GB it is stopped, whenever that happens
    // (from before it answers initialize), rather than let it take a shared machine; the row
    // says so.
    let s;
    try {
      s = await startServer(dir, { probe: true, label: `fire-${fleet}-${sandbox}`, config: sandboxConfig ?? configFile, rssLimitBytes: 2 ** 30 });
    } catch (err) {
      if (!err.overLimit) throw err;
      log(`fire ${fleet} (${sandbox}): RSS passed 1 GB (${err.overLimit} MB) before it answered; stopped`);
      rows.push({
        fleet,
        sandbox,
        window_s: SECONDS,
        expected: fleet * SECONDS,
        aborted: "the server's RSS passed 1 GB before it answered initialize",
        rss_max_mb: err.overLimit,
      });
      continue;
    }
    const overLimit = () => s.overLimit();
    try {
      const ids = [];
      for (let cursor; ids.length < fleet; ) {
        const page = await s.call("list_crons", { limit: 100, ...(cursor ? { cursor } : {}) });
        ids.push(...page.jobs.map((j) => j.id));
        if (!(cursor = page.next_cursor)) break;
      }
      // The window starts on the first whole second at least 1 s after the last job was added,
      // so every job is scheduled for every occurrence inside it.
      // The probe first (it resets its counters and collects garbage): a loaded server can take
      // seconds to answer it, which must not eat into the window.
      await s.probe();
      const from = Math.ceil((Date.now() + 1000) / 1000) * 1000;
      const to = from + (SECONDS - 1) * 1000;
      await sleep(Math.max(0, from - Date.now()));
      const cpu0 = cpuMs(s.pid);
      const tree0 = cpuMs(s.pid, true);
      const cpuT0 = performance.now();
      const notices0 = s.notices();
      const rssMax = [];
      // Tool calls during the window, as a client would make them: starting processes must not
      // hold them up. One call at a time, a read that touches the whole job set and one job.
      // A call unanswered after CALL_LIMIT_MS counts as that long (and as stalled): the window
      // is not stretched by a server that has stopped answering.
      const CALL_LIMIT_MS = 5000;
      const callLatency = [];
      let stalledCalls = 0;
      const caller = (async () => {
        let i = 0;
        while (Date.now() < to + 1000) {
          const t = performance.now();
          try {
            if (i++ % 2) await s.call("get_cron", { job: ids[i % ids.length] }, CALL_LIMIT_MS);
            else await s.call("list_crons", { limit: 20 }, CALL_LIMIT_MS);
            callLatency.push(performance.now() - t);
          } catch (err) {
            if (overLimit() || !/timed out|timeout/i.test(String(err?.message))) throw err;
            stalledCalls++;
            callLatency.push(CALL_LIMIT_MS);
          }
          await sleep(20);
        }
      })();
      while (Date.now() < to + 1000 && !overLimit()) {
        rssMax.push(rssBytes(s.pid));
        await sleep(250);
      }
      await caller;
      const cpu1 = cpuMs(s.pid);
      const tree1 = cpuMs(s.pid, true);
      const cpuWallMs = performance.now() - cpuT0;
      const notices1 = s.notices();
      const noticesIn = Object.fromEntries(Object.keys(notices1).map((k) => [k, notices1[k] - (notices0[k] ?? 0)]));
      const inside = await s.probe();
      // Occurrences up to `to` have had >= 1.5 s to start before we look.
      await sleep(500);
      // Read from the run logs once the server has stopped: asked through list_runs, the fleet
      // would go on firing (and piling up on a loaded machine) through a thousand calls.
      const rssLast = rssBytes(s.pid);
      const t0 = performance.now();
      await s.close();
      // Its last records are in the logs once it has exited (within 1 s of stdin closing).
      for (const until = Date.now() + 30_000; existsSync(`/proc/${s.pid}`) && Date.now() < until; ) await sleep(50);
      const runsOf = (id) => {
        if (!runLog) throw new Error("the fire section reads run logs (runs/<job_id>.jsonl): this checkout has none");
        const file = path.join(dir, "runs", `${id}.jsonl`);
        return existsSync(file) ? runLog.replayRunLog(file, id, readFileSync(file, "utf8")).runs : [];
      };
      // one occurrence per job per whole second in [from, to]
      const expected = fleet * SECONDS;
      const late = [];
      const durations = [];
      let ran = 0,
        skipped = 0,
        missed = 0,
        other = 0,
        dupes = 0;
      for (const id of ids) {
        const runs = runsOf(id);
        const seen = new Set();
        for (const r of runs) {
          const at = Date.parse(r.scheduled_for ?? "");
          if (!(at >= from && at <= to)) continue;
          if (seen.has(at)) dupes++;
          seen.add(at);
          if (r.status === "skipped") skipped++;
          else if (r.status === "missed") missed++;
          // interrupted: still going when the server stopped, 1.5 s after the window.
          else if (r.status === "completed" || r.status === "running" || r.status === "interrupted") {
            ran++;
            late.push(Date.parse(r.started_at) - at);
            if (r.duration_ms !== null && r.duration_ms !== undefined) durations.push(r.duration_ms);
          } else other++;
        }
      }
      const row = {
        fleet,
        sandbox,
        sandbox_notice: sandboxNotice(s.stderr()),
        window_s: SECONDS,
        expected,
        ran,
        share_run: r2(ran / expected),
        skipped,
        missed,
        failed_or_other: other,
        not_recorded: expected - ran - skipped - missed - other + dupes,
        duplicates: dupes,
        late_p50_ms: pct(late, 50),
        late_p99_ms: pct(late, 99),
        late_max_ms: pct(late, 100),
        run_duration_p50_ms: pct(durations, 50),
        run_duration_p99_ms: pct(durations, 99),
        // Of one core, over the window and whatever the last call stretched it by.
        server_cpu_pct: cpu0 === null ? null : r2(((cpu1 - cpu0) / cpuWallMs) * 100),
        // The server and the runs it started and reaped (the `true` processes, bwrap): what a run
        // costs, apart from whatever else the machine was doing.
        cpu_ms_per_run: ran && tree0 !== null ? r2((tree1 - tree0) / ran) : null,
        server_cpu_ms_per_run: ran && cpu0 !== null ? r2((cpu1 - cpu0) / ran) : null,
        // Every occurrence costs the server something, run or not (its record, the job's write).
        server_cpu_ms_per_occurrence: cpu0 !== null ? r2((cpu1 - cpu0) / expected) : null,
        runs_per_second: r2(ran / SECONDS),
        floor_started_per_second: floor?.started_per_second ?? null,
        floor_ended_per_second: floor?.ended_per_second ?? null,
        floor_own_cpu_ms_per_process: floor?.own_cpu_ms_per_process ?? null,
        floor_children_cpu_ms_per_process: floor?.children_cpu_ms_per_process ?? null,
        of_floor: floor?.started_per_second ? r2(ran / SECONDS / floor.started_per_second) : null,
        tool_calls: callLatency.length,
        tool_calls_stalled: stalledCalls,
        // Sent to the client during the window, per occurrence due: list_changed, log messages.
        notices_per_occurrence: r2(Object.values(noticesIn).reduce((a, b) => a + b, 0) / expected),
        notices_by_method: noticesIn,
        tool_call_p50_ms: r2(pct(callLatency, 50)),
        tool_call_p99_ms: r2(pct(callLatency, 99)),
        tool_call_max_ms: r2(pct(callLatency, 100)),
        rss_max_mb: r2(Math.max(...rssMax, rssLast) / 2 ** 20),
        spawns: inside.spawn_count,
        spawn_block_ms_mean: inside.spawn_block_ms_mean,
        spawn_block_ms_total: inside.spawn_block_ms_total,
        loop_delay_p50_ms: inside.loop_delay_p50_ms,
        loop_delay_p99_ms: inside.loop_delay_p99_ms,
        loop_delay_max_ms: inside.loop_delay_max_ms,
        fs_roundtrip_p50_ms: inside.fs_roundtrip_p50_ms,
        fs_roundtrip_p99_ms: inside.fs_roundtrip_p99_ms,
        stop_and_collect_ms: r2(performance.now() - t0),
      };
      rows.push(row);
      log(`fire ${fleet}: ${JSON.stringify(row)}`);
    } catch (err) {
      if (!overLimit()) throw err;
      log(`fire ${fleet} (${sandbox}): RSS passed 1 GB (${overLimit()} MB); stopped`);
      rows.push({ fleet, sandbox, window_s: SECONDS, expected: fleet * SECONDS, aborted: "the server's RSS passed 1 GB", rss_max_mb: overLimit() });
    } finally {
      await s.close();
    }
  }
  table(
    `Fire lateness (started_at - scheduled_for), every-second \`true\` jobs, ${SECONDS} s window`,
    [
      "fleet",
      "sandbox",
      "expected",
      "ran",
      "share run",
      "skipped",
      "missed",
      "absent",
      "late p50 ms",
      "late p99 ms",
      "late max ms",
      "run p50 ms",
      "run p99 ms",
      "server CPU %",
    ],
    rows.map((r) => [
      r.fleet,
      r.sandbox,
      r.expected,
      r.ran,
      r.share_run,
      r.skipped,
      r.missed,
      r.not_recorded,
      r.late_p50_ms,
      r.late_p99_ms,
      r.late_max_ms,
      r.run_duration_p50_ms,
      r.run_duration_p99_ms,
      r.server_cpu_pct,
    ]),
  );
  table(
    "Fire: tool calls during the window (list_crons and get_cron, one at a time; unanswered after 5 s: stalled) and CPU per run",
    [
      "fleet",
      "sandbox",
      "calls",
      "stalled",
      "call p50 ms",
      "call p99 ms",
      "call max ms",
      "server CPU ms/run",
      "server + runs CPU ms/run",
      "notices/occurrence",
    ],
    rows.map((r) => [
      r.fleet,
      r.sandbox,
      r.tool_calls,
      r.tool_calls_stalled,
      r.tool_call_p50_ms,
      r.tool_call_p99_ms,
      r.tool_call_max_ms,
      r.server_cpu_ms_per_run,
      r.cpu_ms_per_run,
      r.notices_per_occurrence,
    ]),
  );
  table(
    `Fire against the machine's floor: a bare Node process starting \`/bin/true\` at the fleet's rate, ${opt["max-concurrent"]} at most at once, same window (bench/lib/spawn-floor.mjs)`,
    ["fleet", "sandbox", "runs/s", "floor started/s", "floor ended/s", "of floor", "floor own CPU ms/process", "floor child CPU ms/process"],
    rows.map((r) => [
      r.fleet,
      r.sandbox,
      r.runs_per_second,
      r.floor_started_per_second,
      r.floor_ended_per_second,
      r.of_floor,
      r.floor_own_cpu_ms_per_process,
      r.floor_children_cpu_ms_per_process,
    ]),
  );
  for (const r of rows)
    if (r.sandbox !== "none") console.log(`(fleet ${r.fleet}, default sandbox: the server said "${r.sandbox_notice ?? "nothing about a sandbox"}")`);
  table(
    "Fire: inside the server during the window (bench/lib/probe.cjs)",
    [
      "fleet",
      "spawns",
      "spawn blocks loop, mean ms",
      "spawn blocking total ms",
      "loop delay p50 ms",
      "loop delay p99 ms",
      "loop delay max ms",
      "fs round trip p50 ms",
      "fs round trip p99 ms",
      "RSS max MB",
    ],
    rows.map((r) => [
      `${r.fleet} (${r.sandbox})`,
      r.spawns,
      r.spawn_block_ms_mean,
      r.spawn_block_ms_total,
      r.loop_delay_p50_ms,
      r.loop_delay_p99_ms,
      r.loop_delay_max_ms,
      r.fs_roundtrip_p50_ms,
      r.fs_roundtrip_p99_ms,
      r.rss_max_mb,
    ]),
  );
  results.sections.fire = rows;
}

// ---------------------------------------------------------------------------------------------
// add / list at 0, 1k, 10k stored jobs

async function benchAdd() {
  const rows = [];
  for (const size of SIZES) {
    // one finished run per stored job (up to 10,000: past that, 100,000 run logs to write and
    // copy would be most of the section), so list_runs without a job sorts `size` runs
    const journal = size ? Math.max(512, Math.min(size * 4, 4096), size / 4) - Math.floor(ADDS / 2) : 0; // src/backends/files/store/jobs-store.ts compactAfterLines
    const dir = await populatedDir(size, { runsPerJob: size && size <= 10_000 ? 1 : 0, journal });
    const s = await startServer(dir, { label: `add-${size}` });
    try {
      const { jobs: warm } = await s.call("list_crons", { limit: 1 });
      const someJob = warm[0]?.id;
      const add = await timeEach(ADDS, (i) => s.call("add_cron", { name: `bench-add-${i}`, schedule: FAR, prompt: "noop", retries: 0 }));
      const list = await timeEach(50, () => s.call("list_crons", { limit: 50 }));
      const runsAll = await timeEach(30, () => s.call("list_runs", {}));
      const runsJob = someJob ? await timeEach(30, () => s.call("list_runs", { job: someJob })) : [];
      const row = {
        jobs: size,
        adds: ADDS,
        add_p50_ms: r2(pct(add, 50)),
        add_p99_ms: r2(pct(add, 99)),
        add_max_ms: r2(pct(add, 100)),
        list_crons_p50_ms: r2(pct(list, 50)),
        list_runs_all_p50_ms: r2(pct(runsAll, 50)),
        list_runs_job_p50_ms: r2(pct(runsJob, 50)),
        journal_lines_before: journal,
      };
      rows.push(row);
      log(`add ${size}: ${JSON.stringify(row)}`);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  table(
    `add_cron / list_crons (limit 50) / list_runs with N jobs stored (each with 1 run); ${ADDS} adds, one journal compaction inside`,
    ["jobs stored", "add p50 ms", "add p99 ms", "add max ms", "list_crons p50 ms", "list_runs all p50 ms", "list_runs job p50 ms"],
    rows.map((r) => [r.jobs, r.add_p50_ms, r.add_p99_ms, r.add_max_ms, r.list_crons_p50_ms, r.list_runs_all_p50_ms, r.list_runs_job_p50_ms]),
  );
  results.sections.add = rows;
}

// ---------------------------------------------------------------------------------------------
// memory with 0 .. 100k jobs

async function benchMemory() {
  const rows = [];
  for (const size of MEM_SIZES) {
    const dir = await populatedDir(size);
    const t = performance.now();
    const s = await startServer(dir, { probe: true, label: `memory-${size}` });
    try {
      await s.client.listTools();
      // To the first tool call answered: tools/list is answered before the data dir loads.
      await s.call("list_crons", { limit: 50 });
      const startMs = performance.now() - t;
      await sleep(1000);
      const rss = rssBytes(s.pid);
      const heap = await s.probe();
      await sleep(200);
      rows.push({
        jobs: size,
        start_ms: r2(startMs),
        rss_bytes: rss,
        rss_after_gc_bytes: rssBytes(s.pid),
        heap_used_bytes: heap.heap_used,
        heap_total_bytes: heap.heap_total,
        external_bytes: heap.external,
      });
      log(`memory ${size}: ${JSON.stringify(rows.at(-1))}`);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const zero = rows.find((r) => r.jobs === 0);
  for (const r of rows) {
    // after a full GC in both: less noise from when the last collection happened
    r.rss_per_job_bytes = zero && r.jobs ? Math.round((r.rss_after_gc_bytes - zero.rss_after_gc_bytes) / r.jobs) : null;
    r.heap_per_job_bytes = zero && r.jobs ? Math.round((r.heap_used_bytes - zero.heap_used_bytes) / r.jobs) : null;
  }
  const mb = (b) => r2(b / 2 ** 20);
  // Under always_on "daemon" (the default) the process a client starts relays to the background
  // owner, which holds the jobs (src/mcp/relay.ts): its RSS is what peer-compare.mjs measures,
  // and a client's restart leaves the owner running.
  if (MEM_SIZES.includes(1000)) {
    const dir = await populatedDir(1000);
    const daemonConfig = path.join(base, "config-daemon-memory.json");
    writeFileSync(daemonConfig, JSON.stringify(benchConfig({ always_on: "daemon" })));
    try {
      const first = await startServer(dir, { label: "memory-relay", config: daemonConfig });
      await first.call("list_crons", { limit: 1 });
      await first.close();
      const restarts = [];
      let rss = 0;
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        const s = await startServer(dir, { label: "memory-relay", config: daemonConfig });
        await s.call("list_crons", { limit: 1 });
        restarts.push(performance.now() - t);
        if (i === 4) {
          await sleep(1000);
          rss = rssBytes(s.pid);
        }
        await s.close();
      }
      results.sections.relay = { jobs: 1000, rss_bytes: rss, restart_first_call_p50_ms: r2(pct(restarts, 50)) };
      log(`memory relay: ${JSON.stringify(results.sections.relay)}`);
    } finally {
      await stopBackgroundOwner(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  table(
    "Memory with N jobs stored (RSS from /proc 1 s after start; then a full GC via bench/lib/probe.cjs; per job = (N - 0 jobs) / N, after GC)",
    ["jobs", "start ms", "RSS MB", "RSS after GC MB", "RSS/job B", "heap used MB", "heap/job B"],
    rows.map((r) => [r.jobs, r.start_ms, mb(r.rss_bytes), mb(r.rss_after_gc_bytes), r.rss_per_job_bytes, mb(r.heap_used_bytes), r.heap_per_job_bytes]),
  );
  results.sections.memory = rows;
}

// ---------------------------------------------------------------------------------------------
// cold start and restart with 10k jobs

async function benchStart() {
  // `sdk`: as peer-compare.mjs does it, the SDK client's listTools(), which also compiles an
  // ajv validator for every tool's outputSchema on the client side. `raw`: the same request
  // without that client work, so the server's own part shows.
  // `call`: then the first tool call answered (list_crons), which needs the data dir loaded: a
  // stdio server answers initialize and tools/list before that (src/mcp/early-stdio.ts), so a
  // restart is timed to this answer. `config`: always_on "daemon" (the default, and what
  // peer-compare.mjs starts) follows a background owner it starts, stopped here after each.
  const toToolsList = async (dir, label, how = "sdk", node = process.execPath, config = configFile, env = process.env) => {
    const t = performance.now();
    const s = await startServer(dir, { label, node, config, env });
    const init = performance.now() - t;
    if (how === "sdk") await s.client.listTools();
    else await s.client.request({ method: "tools/list", params: {} }, ListToolsResultSchema);
    const ms = performance.now() - t;
    await s.call("list_crons", { limit: 1 });
    const call = performance.now() - t;
    await s.close();
    if (config !== configFile) await stopBackgroundOwner(dir);
    return { ms, init, call };
  };
  const daemonConfig = path.join(base, "config-daemon.json");
  writeFileSync(daemonConfig, JSON.stringify(benchConfig({ always_on: "daemon" })));
  const bareNode = (node, env = process.env) => {
    const xs = [];
    for (let i = 0; i < 7; i++) {
      const t = performance.now();
      execFileSync(node, ["-e", "0"], { env });
      xs.push(performance.now() - t);
    }
    return pct(xs, 50);
  };
  /** Seven fresh starts each to an SDK listTools() and to a raw tools/list, alternating. */
  const sevenPairs = async (kind, tag, node, config = configFile, env = process.env) => {
    const sdk = [],
      raw = [],
      init = [],
      call = [];
    for (let i = 0; i < 7; i++) {
      sdk.push((await toToolsList(path.join(base, `cold-${kind}${tag}-${i}`), `cold-${kind}${tag}`, "sdk", node, config, env)).ms);
      const r = await toToolsList(path.join(base, `cold-${kind}raw-${tag}-${i}`), `cold-${kind}raw-${tag}`, "raw", node, config, env);
      raw.push(r.ms);
      init.push(r.init);
      call.push(r.call);
    }
    return { sdk, raw, init, call };
  };
  /** Cold start on one Node, with its floor measured in the same stretch (medians of 7). */
  const coldOn = async (node, tag) => {
    const bare = bareNode(node);
    // A fresh data dir each time; the compile cache (Node 22) lives outside it and is warm
    // after the first start, as it is for a client that starts the server every session.
    const cold = await sevenPairs("", tag, node);
    const daemon = opt["legacy-config"] ? null : await sevenPairs("daemon-", tag, node, daemonConfig);
    // The same without NODE_EXTRA_CA_CERTS, when it is set (see EXTRA_CA): the floor falls more than the start does.
    const clean =
      process.env[EXTRA_CA] === undefined ? null : { bare: bareNode(node, bareEnv()), ...(await sevenPairs("bare-env-", tag, node, configFile, bareEnv())) };
    return {
      bare_node_p50_ms: r2(bare),
      ...(clean
        ? { without_extra_ca: { bare_node_p50_ms: r2(clean.bare), cold_p50_ms: r2(pct(clean.sdk, 50)), cold_raw_tools_list_p50_ms: r2(pct(clean.raw, 50)) } }
        : {}),
      cold_p50_ms: r2(pct(cold.sdk, 50)),
      cold_raw_tools_list_p50_ms: r2(pct(cold.raw, 50)),
      cold_initialize_p50_ms: r2(pct(cold.init, 50)),
      cold_daemon_p50_ms: r2(pct(daemon?.sdk ?? [], 50)),
      cold_daemon_raw_tools_list_p50_ms: r2(pct(daemon?.raw ?? [], 50)),
      cold_daemon_first_call_p50_ms: r2(pct(daemon?.call ?? [], 50)),
    };
  };
  const node20 = await coldOn(process.execPath, "this-node");
  const node22Path = path.join(root, ".cache", "node22", "node_modules", ".bin", "node");
  const node22 = existsSync(node22Path) && process.versions.node.split(".")[0] !== "22" ? await coldOn(node22Path, "node22") : null;
  const restarts = async (jobs, opts, label, n = 3) => {
    const xs = [];
    for (let i = 0; i < n; i++) {
      const d = await populatedDir(jobs, opts);
      xs.push((await toToolsList(d, label)).call);
      rmSync(d, { recursive: true, force: true });
    }
    return r2(pct(xs, 50));
  };
  // The restarts at the sizes of --sizes (1,000 always: the target against the peer), so that
  // a small trial run stays small.
  const at = (n, ...a) => (SIZES.includes(n) ? restarts(n, ...a) : null);
  const restart1k = await restarts(1000, {}, "restart-1k");
  const restart100k = await at(100_000, {}, "restart-100k");
  // The issue's case: 1,000 jobs with a full history each (100 runs, the default cap).
  const restartHistory = await restarts(1000, { runsPerJob: 100 }, "restart-1k-100k-runs");
  const restartJobs = await at(10_000, {}, "restart-10k");
  const restartRuns = await at(10_000, { runsPerJob: 1 }, "restart-10k-runs");
  const peer = await peerRestart(1000);
  // the client-side share: compiling the output-schema validators of the tools/list answer
  const s = await startServer(path.join(base, "cold-client"), { label: "cold-client" });
  const t = performance.now();
  await s.client.listTools();
  const sdkList = performance.now() - t;
  const t2 = performance.now();
  await s.client.request({ method: "tools/list", params: {} }, ListToolsResultSchema);
  const rawList = performance.now() - t2;
  await s.close();
  const row = {
    ...node20,
    node: process.version,
    node22: node22 ? { ...node22, node: execFileSync(node22Path, ["-v"], { encoding: "utf8" }).trim() } : null,
    warm_tools_list_sdk_ms: r2(sdkList),
    warm_tools_list_raw_ms: r2(rawList),
    restart_1k_jobs_p50_ms: restart1k,
    peer_restart_1k_jobs_ms: peer.ms,
    peer_note: peer.note,
    restart_100k_jobs_p50_ms: restart100k,
    restart_10k_jobs_p50_ms: restartJobs,
    restart_10k_jobs_10k_runs_p50_ms: restartRuns,
    restart_1k_jobs_100k_runs_p50_ms: restartHistory,
  };
  const n22 = (k) => (row.node22 ? `${row.node22[k]}` : "—");
  table(
    `Start to the first tools/list answer (spawn → initialize → tools/list); medians; Node ${process.version}${row.node22 ? ` and ${row.node22.node}` : ""}`,
    ["figure", "ms", "Node 22 ms"],
    [
      ["bare `node -e 0`, the floor (median of 7)", row.bare_node_p50_ms, n22("bare_node_p50_ms")],
      ...(row.without_extra_ca
        ? [
            [
              `  the same without ${EXTRA_CA} (this environment sets it)`,
              row.without_extra_ca.bare_node_p50_ms,
              row.node22?.without_extra_ca?.bare_node_p50_ms ?? "—",
            ],
            [`  cold start, SDK listTools, without ${EXTRA_CA}`, row.without_extra_ca.cold_p50_ms, row.node22?.without_extra_ca?.cold_p50_ms ?? "—"],
            [
              `  cold start, raw tools/list, without ${EXTRA_CA}`,
              row.without_extra_ca.cold_raw_tools_list_p50_ms,
              row.node22?.without_extra_ca?.cold_raw_tools_list_p50_ms ?? "—",
            ],
          ]
        : []),
      ["cold start, empty data dir, SDK listTools (as peer-compare; median of 7)", row.cold_p50_ms, n22("cold_p50_ms")],
      ["  of which spawn → initialize answer (median of 7)", row.cold_initialize_p50_ms, n22("cold_initialize_p50_ms")],
      ["cold start, raw tools/list request, no client-side validator compile (median of 7)", row.cold_raw_tools_list_p50_ms, n22("cold_raw_tools_list_p50_ms")],
      ['cold start under always_on "daemon" (starts a background owner), SDK listTools', row.cold_daemon_p50_ms, n22("cold_daemon_p50_ms")],
      ["  the same, raw tools/list", row.cold_daemon_raw_tools_list_p50_ms, n22("cold_daemon_raw_tools_list_p50_ms")],
      ["  the same, to the first tool call answered (the owner is up and followed)", row.cold_daemon_first_call_p50_ms, n22("cold_daemon_first_call_p50_ms")],
      ["first SDK listTools on a warm server (client compiles the output validators)", row.warm_tools_list_sdk_ms, "—"],
      ["raw tools/list on a warm server (server side only)", row.warm_tools_list_raw_ms, "—"],
      ["restart with 1,000 jobs, to the first tool call answered (median of 3)", row.restart_1k_jobs_p50_ms, "—"],
      [`  mcp-cron 0.9.1 restart with 1,000 tasks${peer.note ? ` (${peer.note})` : ""}`, row.peer_restart_1k_jobs_ms, "—"],
      ["restart with 10,000 jobs, to the first tool call (median of 3)", row.restart_10k_jobs_p50_ms, "—"],
      ["restart with 10,000 jobs + 10,000 run files, to the first tool call (median of 3)", row.restart_10k_jobs_10k_runs_p50_ms, "—"],
      ["restart with 100,000 jobs, to the first tool call (median of 3)", row.restart_100k_jobs_p50_ms, "—"],
      ["restart with 1,000 jobs + 100,000 runs (100 per job), to the first tool call (median of 3)", row.restart_1k_jobs_100k_runs_p50_ms, "—"],
    ],
  );
  results.sections.start = row;
}

/**
 * mcp-cron 0.9.1 (the peer of ../shared/bench/peer-compare.mjs, which installs it) restarted
 * with `jobs` tasks, to the first tools/list: the restart target is stated against it. Median
 * of 3; skipped with a note when its binary is not installed.
 */
async function peerRestart(jobs) {
  const bin = path.join(os.tmpdir(), "agent-cron-peer", "node_modules", "mcp-cron-linux-amd64", "bin", "mcp-cron");
  if (!existsSync(bin)) return { ms: null, note: "not measured: run node ../shared/bench/peer-compare.mjs once, which installs it" };
  const dir = path.join(base, "peer");
  mkdirSync(dir, { recursive: true });
  const connect = async () => {
    const transport = new StdioClientTransport({
      command: bin,
      args: ["-transport", "stdio", "-db-path", path.join(dir, "results.db"), "-log-file", path.join(dir, "log.txt")],
      env: { ...process.env, HOME: dir },
      stderr: "ignore",
    });
    const client = new Client({ name: "agent-cron-bench", version: "1.0.0" });
    const t = performance.now();
    await client.connect(transport);
    await client.listTools();
    const ms = performance.now() - t;
    live.add(transport.pid);
    // It ignores SIGTERM and outlives its client (peer-compare.mjs says so too).
    const close = async () => {
      await client.close().catch(() => {});
      try {
        process.kill(transport.pid, "SIGKILL");
      } catch {}
      live.delete(transport.pid);
    };
    return { client, ms, close };
  };
  const first = await connect();
  for (let i = 0; i < jobs; i++)
    await first.client.callTool({ name: "add_task", arguments: { name: `job${i}`, command: "true", schedule: "0 0 0 1 1 *", enabled: true } });
  await first.close();
  const xs = [];
  for (let i = 0; i < 3; i++) {
    const c = await connect();
    xs.push(c.ms);
    await c.close();
  }
  return { ms: r2(pct(xs, 50)), note: null };
}

// ---------------------------------------------------------------------------------------------
// run-recording cost as history grows (RunStore micro-benchmark)

async function benchRecord() {
  const { RunStore } = await storeModule("runs-store");
  const { run: template } = await getTemplates();
  const finished = (jobId) => ({ ...template, id: randomUUID(), job_id: jobId });
  const writeHistory = (dir, jobIds, perJob) => {
    mkdirSync(path.join(dir, "runs"), { recursive: true });
    for (const id of jobIds) {
      const runs = Array.from({ length: perJob }, () => finished(id));
      writeRunHistory(dir, id, runs);
    }
  };
  const measure = async (store, jobIds, n) => {
    for (let i = 0; i < 20; i++) await store.put(finished(jobIds[i % jobIds.length])); // warm-up
    const lat = await timeEach(n, (i) => store.put(finished(jobIds[(i * 7919) % jobIds.length])));
    return { p50_us: Math.round(pct(lat, 50) * 1000), mean_us: Math.round(mean(lat) * 1000), p99_us: Math.round(pct(lat, 99) * 1000) };
  };
  /**
   * Start-up's part of loading (load()) and the whole history in memory (the store reads the
   * logs start-up does not need in the background; a store without that reads all in load()).
   */
  const open = async (dir, cap) => {
    const store = new RunStore(dir, cap);
    const t = performance.now();
    store.load();
    const loadMs = performance.now() - t;
    if (store.whenLoaded) await store.whenLoaded();
    return { store, load_ms: r2(loadMs), all_loaded_ms: r2(performance.now() - t) };
  };
  /**
   * list_runs across every job: the first call (which builds the store's time index), then
   * the newest page and a page after a cursor halfway down; beside them, what every such call
   * cost before the index: sorting the whole history.
   */
  const recentPages = (store) => {
    const time = (fn) => {
      const t = performance.now();
      fn();
      return performance.now() - t;
    };
    const all = [...store.all()];
    const sortAll = () =>
      all
        .map((r) => ({ r, t: Date.parse(r.started_at ?? r.scheduled_for ?? "") || 0 }))
        .sort((a, b) => b.t - a.t || (a.r.id < b.r.id ? 1 : -1))
        .slice(0, 20);
    const sorted = Array.from({ length: 5 }, () => time(sortAll));
    if (!store.recent) return { sort_all_p50_ms: r2(pct(sorted, 50)) };
    const build = time(() => store.recent({ limit: 20 }));
    const mid = all[Math.floor(all.length / 2)].id;
    const first = Array.from({ length: 20 }, () => time(() => store.recent({ limit: 20 })));
    const after = Array.from({ length: 20 }, () => time(() => store.recent({ limit: 20, after: mid })));
    return {
      sort_all_p50_ms: r2(pct(sorted, 50)),
      recent_index_build_ms: r2(build),
      recent_first_page_us: Math.round(pct(first, 50) * 1000),
      recent_cursor_page_p50_us: Math.round(pct(after, 50) * 1000),
    };
  };
  const rows = [];
  for (const total of RECORD_SIZES) {
    // (a) total history grows over many jobs, each at the default cap of 100
    {
      const dir = path.join(base, `rec-many-${total}`);
      const jobIds = Array.from({ length: Math.max(1, Math.round(total / 100)) }, () => randomUUID());
      writeHistory(dir, jobIds, Math.min(100, total));
      const { store, load_ms, all_loaded_ms } = await open(dir, 100);
      const pages = recentPages(store);
      rows.push({
        series: "many jobs, 100 runs each (default cap)",
        total_runs: total,
        jobs: jobIds.length,
        load_ms,
        all_loaded_ms,
        ...(await measure(store, jobIds, 300)),
        ...pages,
      });
      await store.close?.();
      rmSync(dir, { recursive: true, force: true });
    }
    // (b) one job's history grows with the cap raised to hold it all (runs_per_job = total)
    {
      const dir = path.join(base, `rec-one-${total}`);
      const jobIds = [randomUUID()];
      writeHistory(dir, jobIds, total);
      const { store, load_ms, all_loaded_ms } = await open(dir, total);
      rows.push({
        series: "one job, runs_per_job = history size",
        total_runs: total,
        jobs: 1,
        load_ms,
        all_loaded_ms,
        ...(await measure(store, jobIds, total >= 100_000 ? 10 : total >= 10_000 ? 30 : 100)),
      });
      await store.close?.();
      rmSync(dir, { recursive: true, force: true });
    }
    log(`record ${total}: ${JSON.stringify(rows.slice(-2))}`);
  }
  // (c) one job at the default cap, recorded into continuously: every put also evicts
  {
    const dir = path.join(base, "rec-continuous");
    const jobId = randomUUID();
    const { store } = await open(dir, 100);
    const marks = [1000, 10_000];
    let done = 0;
    for (const mark of marks) {
      for (; done < mark - 200; done++) await store.put(finished(jobId));
      const lat = await timeEach(200, () => store.put(finished(jobId)));
      done += 200;
      rows.push({
        series: "one job, default cap 100, runs recorded so far",
        total_runs: mark,
        jobs: 1,
        load_ms: null,
        p50_us: Math.round(pct(lat, 50) * 1000),
        mean_us: Math.round(mean(lat) * 1000),
        p99_us: Math.round(pct(lat, 99) * 1000),
      });
    }
    await store.close?.();
    rmSync(dir, { recursive: true, force: true });
  }
  table(
    "Recording one finished run (RunStore.put, awaited: on disk when it resolves); loading a history; list_runs across jobs (RunStore.recent)",
    [
      "series",
      "runs",
      "jobs",
      "put p50 µs",
      "put mean µs",
      "put p99 µs",
      "load() ms",
      "all in memory ms",
      "sort all ms",
      "index build ms",
      "newest page µs",
      "page after cursor µs",
    ],
    rows.map((r) => [
      r.series,
      r.total_runs,
      r.jobs,
      r.p50_us,
      r.mean_us,
      r.p99_us,
      r.load_ms,
      r.all_loaded_ms,
      r.sort_all_p50_ms,
      r.recent_index_build_ms,
      r.recent_first_page_us,
      r.recent_cursor_page_p50_us,
    ]),
  );
  results.sections.record = rows;
}

// ---------------------------------------------------------------------------------------------
// HTTP load (someone else's script; included when present)

async function benchHttp() {
  const script = path.join(root, "bench", "http-load.mjs");
  if (!existsSync(script)) {
    console.log("\nhttp: not available");
    results.sections.http = null;
    return;
  }
  const out = await runChild([script, "--sessions", "50", "--calls", "20"], { limitMs: 180_000 });
  let data = null;
  try {
    data = JSON.parse(out.stdout);
  } catch {}
  if (!data) {
    console.log(`\nhttp: bench/http-load.mjs failed (exit ${out.code}): ${(out.stderr || out.stdout).trim().split("\n").slice(-3).join(" / ")}`);
    results.sections.http = { error: `exit ${out.code}`, stderr: out.stderr.slice(-2000) };
    return;
  }
  table(
    "HTTP: 50 concurrent sessions × 20 calls (bench/http-load.mjs; clients share the 2 cores)",
    ["figure", "value"],
    [
      ["calls", data.calls],
      ["errors", data.errors],
      ["p50 ms", data.p50_ms],
      ["p99 ms", data.p99_ms],
      ["max ms", data.max_ms],
      ["calls/s", data.calls_per_second],
      ["fan-out: sessions reached / max ms", `${data.fanout_sessions_reached} / ${data.fanout_max_ms}`],
      ["server RSS MB", data.server_rss_mb],
    ],
  );
  results.sections.http = data;
}

// ---------------------------------------------------------------------------------------------

/**
 * Bytes a model reads (SPEC §10): Claude Code and Codex hand the model structuredContent
 * only, and the tool definitions sit in its context all session.
 */
async function benchBytes() {
  const dir = path.join(base, "bytes");
  mkdirSync(dir, { recursive: true });
  const s = await startServer(dir, { label: "bytes" });
  const size = (v) => Buffer.byteLength(JSON.stringify(v));
  try {
    const { tools } = await s.client.listTools();
    const modelFacing = size(tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema })));
    const prompt = "p".repeat(100);
    const add = await s.client.callTool({ name: "add_cron", arguments: { name: "job-00", schedule: "0 9 * * 1-5", timezone: "Europe/Paris", prompt } });
    for (let i = 1; i < 50; i++) await s.call("add_cron", { name: `job-${String(i).padStart(2, "0")}`, schedule: "@daily", prompt });
    const page = await s.client.callTool({ name: "list_crons", arguments: {} });
    const all = await s.client.callTool({ name: "list_crons", arguments: { limit: 50 } });
    const row = {
      tool_definitions_bytes: modelFacing,
      tools_list_bytes: size(tools),
      add_cron_answer_bytes: size(add.structuredContent),
      list_crons_default_page_bytes: size(page.structuredContent),
      list_crons_50_jobs_bytes: size(all.structuredContent),
    };
    table(
      "Bytes a model reads (structuredContent; 100-character prompts)",
      ["figure", "bytes", "target"],
      [
        ["tool definitions (name, description, inputSchema), all tools", row.tool_definitions_bytes, "≤ 12,288"],
        ["whole tools/list (with output schemas, annotations)", row.tools_list_bytes, "—"],
        ["add_cron answer", row.add_cron_answer_bytes, "≤ 1,024"],
        ["list_crons, default page (20 rows)", row.list_crons_default_page_bytes, "—"],
        ["list_crons, 50 rows", row.list_crons_50_jobs_bytes, "≤ 12,288"],
      ],
    );
    results.sections.bytes = row;
  } finally {
    await s.close();
  }
}

/**
 * The Postgres backend's benchmark (bench/postgres.mjs, its own tables), run as a child: with no
 * database URL it starts a throwaway cluster when PostgreSQL is installed, else says why not.
 */
async function benchPostgres() {
  // Stopped with SIGTERM, bench/postgres.mjs stops its throwaway cluster before it exits.
  const out = await runChild([path.join(root, "bench", "postgres.mjs"), ...(opt.cli ? ["--cli", cli] : [])], {
    limitMs: limitOf("postgres") - 20_000,
    echo: true,
    env: { ...process.env, AGENT_CRON_ALWAYS_ON: "client" },
  });
  const skipped = /^bench postgres: skipped[;,]? ?(.*)$/m.exec(out.stdout);
  let figures = null;
  try {
    figures = out.code === 0 && !skipped ? JSON.parse(readFileSync(path.join(root, "bench", "results", "postgres.json"), "utf8")) : null;
  } catch {}
  results.sections.postgres = {
    reached: !skipped && out.code === 0,
    exit_code: out.code,
    note: skipped
      ? `not measured: ${skipped[1]}`
      : out.code === 0
        ? "ran (bench/results/postgres.json)"
        : `not measured: bench/postgres.mjs ${out.stopped ?? `failed (exit ${out.code})`}: ${out.stderr.trim().split("\n").slice(-2).join(" / ")}`,
    capacity: figures?.capacity?.map((c) => ({ processes: c.processes ?? c.fleet ?? null, per_second: c.per_second, of_pgboss: c.of_pgboss })) ?? null,
  };
  if (out.code !== 0) process.exitCode = 1;
}

/** Issue 27's targets against this run's figures (or the latest saved ones, with --only). */
function targetsTable(sec) {
  const rows = [];
  const mb = (b) => r2(b / 2 ** 20);
  /** Why a section has no figure: it failed or was stopped, or was not run (here or before, with --only). */
  const whyNot = (name) =>
    sec[name]?.error
      ? `the ${name} section failed: ${sec[name].error.split("\n")[0].slice(0, 160)}`
      : `the ${name} section was not run (node bench/run.mjs --only ${name})`;
  /** One target: `value` null is "not measured" with `why`; `met` null with a value is reported only. */
  const add = (figure, target, value, met, why) =>
    rows.push([
      figure,
      target,
      value === null || value === undefined ? `not measured: ${why}` : value,
      value === null || value === undefined ? "not measured" : met === null ? "reported" : met ? "met" : "missed",
    ]);
  const st = sec.start && !sec.start.error ? sec.start : null;
  const node22Path = path.join(root, ".cache", "node22", "node_modules", ".bin", "node");
  for (const [tag, c, why] of [
    ["20", st, whyNot("start")],
    [
      "22",
      st?.node22,
      st ? `no Node 22 at ${path.relative(root, node22Path)} (bash scripts/install-node22.sh), or the bench itself ran on it` : whyNot("start"),
    ],
  ]) {
    const raw = c ? c.cold_raw_tools_list_p50_ms / c.bare_node_p50_ms : null;
    const sdk = c ? c.cold_p50_ms / c.bare_node_p50_ms : null;
    const v = tag === "20" ? (st?.node ?? "20") : (st?.node22?.node ?? "22");
    add(
      `cold start to the first raw tools/list, Node ${v}`,
      `≤ 2× bare node${c ? ` (${c.bare_node_p50_ms} ms)` : ""}`,
      c ? `${c.cold_raw_tools_list_p50_ms} ms = ${r2(raw)}×` : null,
      raw <= 2,
      why,
    );
    add(`cold start to an SDK listTools(), Node ${v}`, "≤ 3× bare node", c ? `${c.cold_p50_ms} ms = ${r2(sdk)}×` : null, sdk <= 3, why);
    const w = c?.without_extra_ca;
    if (w) {
      add(
        `…the same two without ${EXTRA_CA} (set in this environment: Node 20 loads OpenSSL's CA store at start then), raw / SDK, Node ${v}`,
        "reported",
        `${w.cold_raw_tools_list_p50_ms} ms = ${r2(w.cold_raw_tools_list_p50_ms / w.bare_node_p50_ms)}× / ${w.cold_p50_ms} ms = ${r2(w.cold_p50_ms / w.bare_node_p50_ms)}× a bare node without it (${w.bare_node_p50_ms} ms)`,
        null,
      );
    }
    if (c?.cold_daemon_p50_ms != null) {
      const draw = c.cold_daemon_raw_tools_list_p50_ms / c.bare_node_p50_ms;
      const dsdk = c.cold_daemon_p50_ms / c.bare_node_p50_ms;
      add(
        `…the same under always_on "daemon" (the default), raw tools/list, Node ${v}`,
        "≤ 2× bare node",
        `${c.cold_daemon_raw_tools_list_p50_ms} ms = ${r2(draw)}×`,
        draw <= 2,
      );
      add(`…the same under always_on "daemon", SDK listTools(), Node ${v}`, "≤ 3× bare node", `${c.cold_daemon_p50_ms} ms = ${r2(dsdk)}×`, dsdk <= 3);
    }
  }
  const vsPeer = st?.peer_restart_1k_jobs_ms ? st.restart_1k_jobs_p50_ms / st.peer_restart_1k_jobs_ms : null;
  add(
    "restart with 1,000 jobs against mcp-cron's, to the first tool call answered",
    `≤ 5× mcp-cron's${st?.peer_restart_1k_jobs_ms ? ` (${st.peer_restart_1k_jobs_ms} ms)` : ""}`,
    vsPeer === null ? null : `${st.restart_1k_jobs_p50_ms} ms = ${r2(vsPeer)}×`,
    vsPeer <= 5,
    st ? `mcp-cron: ${(st.peer_note ?? "not measured").replace(/^not measured: /, "")}; agent-cron alone: ${st.restart_1k_jobs_p50_ms} ms` : whyNot("start"),
  );
  add(
    "restart with 100,000 jobs, to the first tool call answered",
    "≤ 1,500 ms",
    st?.restart_100k_jobs_p50_ms == null ? null : `${st.restart_100k_jobs_p50_ms} ms`,
    st?.restart_100k_jobs_p50_ms <= 1500,
    st ? "no 100,000-job restart in this run (--sizes had no 100000)" : whyNot("start"),
  );
  const mem = Array.isArray(sec.memory) ? sec.memory : [];
  const relay = sec.relay;
  add(
    'RSS at 1,000 jobs: a client\'s stdio server under always_on "daemon" (the default; it relays to the owner; as peer-compare)',
    "≤ 55 MB",
    relay ? `${mb(relay.rss_bytes)} MB` : null,
    relay ? mb(relay.rss_bytes) <= 55 : null,
    whyNot("memory"),
  );
  add(
    "restart of a client's stdio server with 1,000 jobs, the owner running (the default), to the first tool call",
    "reported",
    relay ? `${relay.restart_first_call_p50_ms} ms` : null,
    null,
    whyNot("memory"),
  );
  for (const [jobs, limit] of [
    [1000, 55],
    [100_000, 250],
  ]) {
    const r = mem.find((x) => x.jobs === jobs);
    add(
      `RSS at ${jobs.toLocaleString("en")} jobs: the owner that holds them (1 s after start)`,
      `≤ ${limit} MB`,
      r ? `${mb(r.rss_bytes)} MB` : null,
      r ? mb(r.rss_bytes) <= limit : null,
      mem.length ? `--mem-sizes had no ${jobs}` : whyNot("memory"),
    );
  }
  const fire = Array.isArray(sec.fire) ? sec.fire : [];
  const fireWhy = fire.length ? "--fleets had no 1000" : whyNot("fire");
  const f = fire.find((x) => x.fleet === 1000 && x.sandbox === "none");
  const fOk = f && !f.aborted ? f : null;
  const stopped = f?.aborted ? `stopped: ${f.aborted} (${f.rss_max_mb} MB)` : fireWhy;
  add(
    "fleet of 1,000 every-second `true` jobs (no sandbox): occurrences run",
    "≥ 99 %",
    fOk ? `${r2(fOk.share_run * 100)} %` : null,
    fOk?.share_run >= 0.99,
    stopped,
  );
  add(
    "…its runs a second against a bare Node spawner of `true` at 1,000/s (the machine's floor, same run)",
    "reported",
    fOk
      ? `${fOk.runs_per_second}/s; floor ${fOk.floor_started_per_second ?? "not measured"}/s started (${fOk.floor_own_cpu_ms_per_process ?? "—"} ms own + ${fOk.floor_children_cpu_ms_per_process ?? "—"} ms child CPU per process) = ${fOk.of_floor == null ? "—" : `${r2(fOk.of_floor * 100)} %`} of the floor`
      : null,
    null,
    stopped,
  );
  add("…fire lateness p99", "≤ 50 ms", fOk ? `${fOk.late_p99_ms} ms` : null, fOk?.late_p99_ms <= 50, stopped);
  add(
    "…tool calls during the fleet (list_crons, get_cron), p99",
    "≤ 50 ms (not stalled)",
    fOk?.tool_call_p99_ms == null ? null : `${fOk.tool_call_p99_ms} ms (${fOk.tool_calls} calls, ${fOk.tool_calls_stalled ?? 0} unanswered after 5 s)`,
    fOk?.tool_call_p99_ms <= 50,
    stopped,
  );
  add(
    "…CPU per run, no sandbox (the server, and the server with its runs)",
    "reported",
    fOk ? `${fOk.server_cpu_ms_per_run} ms, ${fOk.cpu_ms_per_run} ms` : null,
    null,
    stopped,
  );
  const fs = fire.find((x) => x.fleet === 1000 && x.sandbox !== "none");
  add(
    "the same fleet, default sandbox: occurrences run, lateness p99, CPU per run (server + runs)",
    "reported",
    fs?.aborted
      ? `stopped: ${fs.aborted}`
      : fs
        ? `${r2(fs.share_run * 100)} %, ${fs.late_p99_ms} ms, ${fs.cpu_ms_per_run} ms CPU/run (no sandbox: ${f?.cpu_ms_per_run ?? "—"})`
        : null,
    null,
    fire.length ? "--sandbox-fleet had no 1000" : whyNot("fire"),
  );
  const b = sec.bytes && !sec.bytes.error ? sec.bytes : null;
  add(
    "a 50-row list_crons answer (100-character prompts)",
    "≤ 12,288 B",
    b ? `${b.list_crons_50_jobs_bytes} B` : null,
    b ? b.list_crons_50_jobs_bytes <= 12_288 : null,
    whyNot("bytes"),
  );
  // This round's new work, each with its cost.
  const d = Array.isArray(sec.durability) ? sec.durability : [];
  const dOs = d.find((x) => x.durability === "os");
  const dSync = d.find((x) => x.durability === "fsync");
  add(
    'cost of durability "fsync": per add (a journal line) and per run (two run-log lines), p50',
    "reported",
    dOs && dSync ? `add ${dSync.add_p50_us} µs (os: ${dOs.add_p50_us}); run ${dSync.run_p50_us} µs (os: ${dOs.run_p50_us})` : null,
    null,
    whyNot("durability"),
  );
  const au = Array.isArray(sec.audit) ? sec.audit : [];
  add(
    "cost of the audit: 1,000 jobs × a week of every-minute records, CPU p50 (worst series)",
    "< 200 ms",
    au.length ? `CPU ${Math.max(...au.map((x) => x.cpu_p50_ms))} ms (wall ${Math.max(...au.map((x) => x.p50_ms))} ms)` : null,
    // CPU: on a shared machine the wall time also holds the waits for a core.
    au.length ? Math.max(...au.map((x) => x.cpu_p50_ms)) < 200 : null,
    whyNot("audit"),
  );
  const m = sec.metrics && !sec.metrics.error ? sec.metrics : null;
  add(
    "cost of metrics (metrics_port) at 1,000 jobs: RSS without / with / after 20 scrapes; scrape p50",
    "reported",
    m ? `${m.rss_without_mb} / ${m.rss_with_metrics_port_mb} / ${m.rss_after_20_scrapes_mb} MB; ${m.scrape_p50_ms} ms (first ${m.first_scrape_ms} ms)` : null,
    null,
    whyNot("metrics"),
  );
  const sb = sec.sandbox && !sec.sandbox.error ? sec.sandbox : null;
  add(
    "cost of the sandbox by default: one run of /bin/true, auto against none, median",
    "reported",
    sb ? `+${sb.auto_extra_ms} ms (${sb.bwrap_works ? sb.bwrap : `bubblewrap does not work here: ${sb.bwrap}`})` : null,
    null,
    whyNot("sandbox"),
  );
  const pgs = sec.postgres;
  add(
    "npm run bench reaches its Postgres section",
    "ran",
    pgs ? (pgs.reached ? pgs.note : null) : null,
    pgs ? pgs.reached : null,
    pgs ? pgs.note?.replace(/^not measured: /, "") : whyNot("postgres"),
  );
  table(`Targets (issue 27), load average ${os.loadavg()[0].toFixed(2)} now`, ["figure", "target", "measured", "met?"], rows);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// the ledger's audit (SPEC §18): 1,000 jobs with a week of every-minute history

async function benchAudit() {
  if (!existsSync(path.join(root, "src", "core", "ledger.ts"))) return void (results.sections.audit = null);
  const { auditJob, auditReport, OccurrenceCache } = await storeModule("ledger", "core");
  const JOBS = 1000;
  const WEEK = 7 * 86_400_000;
  const now = Date.parse("2026-12-06T12:00:30.000Z");
  const since = now - WEEK;
  const rows = [];
  for (const [series, schedule, spread] of [
    ["1,000 jobs on one schedule (* * * * *)", "* * * * *", false],
    ["1,000 jobs on 1,000 schedules (@every 60s, each its own anchor)", "@every 60s", true],
  ]) {
    const jobs = [];
    const indexes = [];
    for (let i = 0; i < JOBS; i++) {
      // Created a week and an hour ago (spread: each at its own second, so each @every has its own occurrences).
      const created = now - WEEK - 3_600_000 + (spread ? i * 1000 : 0);
      const createdIso = new Date(created).toISOString();
      jobs.push({
        id: randomUUID(),
        name: `job-${i}`,
        schedule,
        timezone: "UTC",
        run_at: null,
        state: "active",
        created_at: createdIso,
        expires_at: null,
        jitter_seconds: 0,
        missed_spans: [],
        schedule_history: [{ at: createdIso, state: "active", schedule, timezone: "UTC" }],
      });
      // The per-job index the App keeps: every occurrence of the week recorded (typed arrays, no object per run).
      const first =
        schedule === "* * * * *" ? Math.ceil((since + 1) / 60_000) * 60_000 : created + Math.max(1, Math.floor((since - created) / 60_000) + 1) * 60_000;
      const n = Math.floor((now - first) / 60_000) + 1;
      const times = new Float64Array(n);
      for (let k = 0; k < n; k++) times[k] = first + k * 60_000;
      indexes.push({ times, codes: new Uint8Array(n), capped: false });
    }
    const once = () => {
      const cache = new OccurrenceCache();
      const audits = jobs.map((j, i) => auditJob(j, indexes[i], { since, now }, cache));
      return auditReport(audits, { since, now, timezone: "UTC", limit: 20 });
    };
    const check = once();
    if (check.unaccounted !== 0) throw new Error(`audit bench: expected nothing unaccounted, got ${check.unaccounted}`);
    const lat = [];
    const cpu = [];
    for (let i = 0; i < 7; i++) {
      const t = performance.now();
      const c = process.cpuUsage();
      once();
      const used = process.cpuUsage(c);
      lat.push(performance.now() - t);
      cpu.push((used.user + used.system) / 1000);
    }
    // CPU time is what the audit costs this process; on a shared, busy machine wall time also counts the waits for a core.
    rows.push({ series, jobs: JOBS, occurrences: check.occurrences, p50_ms: r2(pct(lat, 50)), max_ms: r2(Math.max(...lat)), cpu_p50_ms: r2(pct(cpu, 50)) });
    log(`audit ${series}: ${JSON.stringify(rows.at(-1))}`);
  }
  table(
    "Audit (SPEC §18): every occurrence of the last 7 days against its record, per-job sorted indexes (target < 200 ms at 1,000 jobs)",
    ["series", "jobs", "occurrences", "p50 ms", "max ms", "CPU p50 ms"],
    rows.map((r) => [r.series, r.jobs, r.occurrences, r.p50_ms, r.max_ms, r.cpu_p50_ms]),
  );
  results.sections.audit = rows;
}

// ---------------------------------------------------------------------------------------------
// durability: the cost of fsync per acknowledged change (JobStore) and per run (RunStore)

async function benchDurability() {
  const { JobStore } = await storeModule("jobs-store");
  const { RunStore } = await storeModule("runs-store");
  const { run: template } = await getTemplates();
  const N = 200;
  const rows = [];
  for (const durability of ["os", "fsync"]) {
    const dir = path.join(base, `durability-${durability}`);
    const jobs = await JobStore.open(dir, undefined, durability);
    // One add = one journal line; the job is a plain record (the store validates on load only).
    const adds = await timeEach(N, (i) => jobs.insert({ ...template, id: randomUUID(), name: `d-${durability}-${i}` }));
    jobs.close();
    const runs = new RunStore(dir, 100, { durability });
    runs.load({ background: false });
    const jobId = randomUUID();
    // One run = its `running` record and its final record: two run-log lines.
    const perRun = await timeEach(N, async () => {
      const r = { ...template, id: randomUUID(), job_id: jobId, status: "running" };
      await runs.put(r);
      await runs.put({ ...r, status: "completed" });
    });
    await runs.close();
    rows.push({
      durability,
      add_p50_us: Math.round(pct(adds, 50) * 1000),
      add_mean_us: Math.round(mean(adds) * 1000),
      run_p50_us: Math.round(pct(perRun, 50) * 1000),
      run_mean_us: Math.round(mean(perRun) * 1000),
    });
    rmSync(dir, { recursive: true, force: true });
  }
  table(
    `Durability: cost per acknowledged add (a journal line) and per run (two run-log lines), ${N} each, on ${base}`,
    ["durability", "add p50 µs", "add mean µs", "run p50 µs", "run mean µs"],
    rows.map((r) => [r.durability, r.add_p50_us, r.add_mean_us, r.run_p50_us, r.run_mean_us]),
  );
  results.sections.durability = rows;
}

// ---------------------------------------------------------------------------------------------
// sandbox: what the default sandbox costs one run (bench/sandbox.mjs, run as a child)

async function benchSandbox() {
  const json = path.join(base, "sandbox.json");
  const out = await runChild([path.join(root, "bench", "sandbox.mjs"), "--json", json], { limitMs: limitOf("sandbox") - 10_000, echo: true });
  if (out.code !== 0 || !existsSync(json))
    throw new Error(`bench/sandbox.mjs ${out.stopped ?? `failed (exit ${out.code})`}: ${out.stderr.trim().split("\n").slice(-2).join(" / ")}`);
  results.sections.sandbox = JSON.parse(readFileSync(json, "utf8"));
}

// ---------------------------------------------------------------------------------------------
// metrics: what serving /metrics (config metrics_port) costs a server with 1,000 jobs

async function benchMetrics() {
  const JOBS = 1000;
  const metricsConfig = path.join(base, "config-metrics.json");
  writeFileSync(metricsConfig, JSON.stringify(benchConfig({ metrics_port: 0 })));
  const rssOf = async (config) => {
    const dir = await populatedDir(JOBS);
    const s = await startServer(dir, { label: `metrics-${config === configFile ? "off" : "on"}`, config });
    try {
      await s.call("list_crons", { limit: 1 });
      let url = null;
      for (const until = Date.now() + 10_000; !url && Date.now() < until; await sleep(50))
        url = /metrics at (http:\/\/\S+\/metrics)/.exec(s.stderr())?.[1] ?? null;
      await sleep(1000);
      const rssStart = rssBytes(s.pid);
      if (!url) return { rssStart, url: null };
      const scrapes = [];
      let bytes = 0;
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        const res = await fetch(url);
        const body = await res.text();
        if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
        scrapes.push(performance.now() - t);
        bytes = Buffer.byteLength(body);
      }
      await sleep(500);
      return { rssStart, url, scrapes, bytes, rssAfter: rssBytes(s.pid), cpuMs: cpuMs(s.pid) };
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const off = await rssOf(configFile);
  const on = await rssOf(metricsConfig);
  if (!on.url) throw new Error("the server with metrics_port 0 did not say where it serves /metrics");
  const mb = (b) => r2(b / 2 ** 20);
  const row = {
    jobs: JOBS,
    rss_without_mb: mb(off.rssStart),
    rss_with_metrics_port_mb: mb(on.rssStart),
    rss_after_20_scrapes_mb: mb(on.rssAfter),
    first_scrape_ms: r2(on.scrapes[0]),
    scrape_p50_ms: r2(pct(on.scrapes.slice(1), 50)),
    scrape_bytes: on.bytes,
  };
  table(
    `Metrics (config metrics_port): a server with ${JOBS.toLocaleString("en")} jobs, without and with it; 20 GETs of /metrics one after another`,
    ["figure", "value"],
    [
      ["RSS without metrics_port, 1 s after start, MB", row.rss_without_mb],
      ["RSS with metrics_port, 1 s after start, MB", row.rss_with_metrics_port_mb],
      ["RSS with metrics_port after 20 scrapes (prom-client loaded), MB", row.rss_after_20_scrapes_mb],
      ["first scrape ms (loads prom-client)", row.first_scrape_ms],
      ["scrape p50 ms, after the first", row.scrape_p50_ms],
      ["/metrics bytes", row.scrape_bytes],
    ],
  );
  results.sections.metrics = row;
}

const runners = {
  fire: benchFire,
  add: benchAdd,
  memory: benchMemory,
  start: benchStart,
  record: benchRecord,
  http: benchHttp,
  bytes: benchBytes,
  metrics: benchMetrics,
  audit: benchAudit,
  durability: benchDurability,
  sandbox: benchSandbox,
  postgres: benchPostgres,
};
console.log(
  `agent-cron bench ${results.date} · ${results.machine.cpus} CPUs (${results.machine.cpu_model}) · Node ${process.version} · load ${results.machine.loadavg_before[0]}`,
);
const t0 = performance.now();
for (const name of SECTIONS) {
  if (!only.includes(name)) continue;
  const t = performance.now();
  log(`== ${name}`);
  const limitMs = limitOf(name);
  const stop = new AbortController();
  sectionSignal = stop.signal;
  let timer;
  try {
    await Promise.race([
      runners[name](),
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          const why = `the ${name} section took longer than its limit of ${Math.round(limitMs / 1000)} s`;
          stop.abort(why);
          reject(new Error(why));
        }, limitMs);
      }),
    ]);
  } catch (err) {
    console.log(`\n${name}: FAILED: ${stop.signal.aborted ? err.message : (err.stack ?? err)}`);
    results.sections[name] = { error: String(err.message ?? err) };
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    if (stop.signal.aborted) {
      // What the stopped section left going: its servers (killed) and child scripts (stopped
      // by runChild on the abort; postgres.mjs stops its cluster on SIGTERM).
      for (const pid of live) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      live.clear();
      for (const until = Date.now() + 15_000; liveChildren.size && Date.now() < until; ) await sleep(100);
    }
  }
  (results.timings ??= {})[name] = Math.round(performance.now() - t);
}
results.total_ms = Math.round(performance.now() - t0);
results.machine.loadavg_after = os.loadavg().map((x) => r2(x));
if (results.machine.loadavg_before[0] > 1 || results.machine.loadavg_after[0] > 1.5) {
  console.log(
    `\nNote: the machine was busy (load average ${results.machine.loadavg_before[0]} before, ${results.machine.loadavg_after[0]} after); timings are inflated.`,
  );
}
mkdirSync(path.dirname(opt.out), { recursive: true });
// Merge with an earlier run's sections so that `--only x` refreshes x and keeps the rest.
let previous = {};
try {
  previous = opt.only ? JSON.parse(readFileSync(opt.out, "utf8")) : {};
} catch {}
const when = Object.fromEntries(
  Object.keys(results.sections).map((k) => [k, { date: results.date, command: results.command, loadavg_before: results.machine.loadavg_before }]),
);
const merged = {
  ...previous,
  ...results,
  sections: { ...(previous.sections ?? {}), ...results.sections },
  section_runs: { ...(previous.section_runs ?? {}), ...when },
};
merged.targets = targetsTable(merged.sections);
writeFileSync(opt.out, JSON.stringify(merged, null, 2) + "\n");
console.log(`\nTotal ${(results.total_ms / 1000).toFixed(0)} s; JSON in ${path.relative(process.cwd(), opt.out) || opt.out}`);
process.exit(process.exitCode ?? 0);
