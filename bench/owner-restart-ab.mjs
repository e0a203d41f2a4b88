#!/usr/bin/env node
// The owner's restart, A/B (a benchmark, not a test): a stdio server under always_on "client"
// (so it owns its data dir and loads the store) is spawned on a fresh copy of a data dir holding
// N jobs and timed to its first tool call answered (list_crons, as `npm run bench`'s start
// section does), with its CPU at that answer (from /proc) and its RSS a second later. Builds
// alternate, so that a load change hits all of them; on a shared machine the CPU at the answer
// is the steadier figure. The jobs are written straight to jobs.json in the store's format,
// cloned from a job the first build created, as bench/run.mjs does.
//
//   node bench/owner-restart-ab.mjs --jobs 100000 --rounds 3 this=dist/cli.js before=/tmp/old/dist/cli.js
//   node bench/owner-restart-ab.mjs --jobs 1000 --rounds 9 --cpu-prof bench/results/prof/ab this=dist/cli.js before=/tmp/old/dist/cli.js
import { randomUUID } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { srcModule } from "./lib/bundle.mjs";

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    jobs: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
    "cpu-prof": { type: "string" },
  },
});
const builds = Object.fromEntries(
  positionals.map((p) => {
    const at = p.indexOf("=");
    if (at < 1) throw new Error(`owner-restart-ab: give builds as name=path/to/dist/cli.js, got "${p}"`);
    return [p.slice(0, at), path.resolve(p.slice(at + 1))];
  }),
);
if (!Object.keys(builds).length) {
  console.error("owner-restart-ab: give one or more builds, name=path/to/dist/cli.js");
  process.exit(2);
}
const JOBS = Number(opt.jobs);
const ROUNDS = Number(opt.rounds);

// The store's own writers: the header and layout a compaction leaves (without them the first
// start rewrites jobs.json inside the measurement).
const { stringifyRecords } = await srcModule("backends/files/store/json-file");
const { journalHeaderLine } = await srcModule("backends/files/store/jobs-store");

const base = mkdtempSync(path.join(os.tmpdir(), "agent-cron-owner-restart-"));
const config = path.join(base, "config.json");
writeFileSync(
  config,
  JSON.stringify({
    timezone: "UTC",
    max_jobs: 1_000_000,
    always_on: "client",
    default_executor: "true",
    executors: { true: { type: "command", command: ["true"], sandbox: "none" } },
  }),
);

function start(cli, dir, nodeArgs = []) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...nodeArgs, cli, "serve", "--data-dir", dir, "--config", config],
    env: { ...process.env, NODE_OPTIONS: "", XDG_CACHE_HOME: path.join(base, "cache") },
    stderr: "ignore",
  });
  const client = new Client({ name: "owner-restart-ab", version: "1.0.0" });
  return { client, transport, connected: client.connect(transport) };
}

/** utime + stime of a live process, in ms (clock ticks are 10 ms on Linux). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMb(pid) {
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024);
}

// The template job, made by the first build itself.
const template = path.join(base, "template");
const s = start(Object.values(builds)[0], template);
await s.connected;
const added = await s.client.callTool({ name: "add_cron", arguments: { name: "template", schedule: "0 0 1 1 *", prompt: "noop" } });
const job = (await s.client.callTool({ name: "get_cron", arguments: { job: added.structuredContent.job.id } })).structuredContent.job;
await s.client.close();

const src = path.join(base, "src");
mkdirSync(path.join(src, "runs"), { recursive: true });
mkdirSync(path.join(src, "outputs"), { recursive: true });
const jobs = [];
for (let i = 0; i < JOBS; i++) jobs.push({ ...job, id: randomUUID(), name: `pre-${i}`, prompt: `noop ${i}` });
const journalId = randomUUID().replaceAll("-", "").slice(0, 16);
writeFileSync(path.join(src, "jobs.json"), stringifyRecords({ version: 1, journal: journalId, rev: 0, jobs }, "jobs"));
writeFileSync(path.join(src, "jobs.journal"), journalHeaderLine(journalId, null, 0).line);
jobs.length = 0;

const samples = Object.fromEntries(Object.keys(builds).map((name) => [name, { ms: [], cpu: [], rss: [] }]));
console.log(
  `owner restart with ${JOBS} jobs to the first list_crons answer, ${ROUNDS} rounds; load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, cli] of Object.entries(builds)) {
    const dir = path.join(base, `run-${name}-${r}`);
    cpSync(src, dir, { recursive: true });
    const prof = opt["cpu-prof"] ? ["--cpu-prof", "--cpu-prof-dir", path.resolve(opt["cpu-prof"], `${name}-${r}`)] : [];
    const t = performance.now();
    const c = start(cli, dir, prof);
    await c.connected;
    const answer = await c.client.callTool({ name: "list_crons", arguments: { limit: 1 } });
    const ms = Math.round(performance.now() - t);
    const cpu = cpuMs(c.transport.pid);
    if (answer.isError || answer.structuredContent?.total !== JOBS) throw new Error(`${name}: list_crons answered ${JSON.stringify(answer).slice(0, 300)}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rss = rssMb(c.transport.pid);
    await c.client.close();
    rmSync(dir, { recursive: true, force: true });
    samples[name].ms.push(ms);
    samples[name].cpu.push(cpu);
    samples[name].rss.push(rss);
    console.log(`  round ${r + 1} ${name}: ${ms} ms, CPU at the answer ${cpu} ms, RSS ${rss} MB (load ${os.loadavg()[0].toFixed(2)})`);
  }
}
rmSync(base, { recursive: true, force: true });
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const [name, x] of Object.entries(samples)) {
  console.log(`${name} (${builds[name]}): median ${median(x.ms)} ms, CPU ${median(x.cpu)} ms, RSS ${median(x.rss)} MB; ${x.ms.join(", ")} ms`);
}
