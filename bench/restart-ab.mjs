#!/usr/bin/env node
// peer-compare's restart, timed many times and A/B (a benchmark, not a test): a stdio server
// is spawned on a data dir holding N jobs and timed to its SDK listTools() answer, as a client
// reopening agent-cron does (under the default always_on "daemon" the background owner is
// already up, so this is a follower's start). Two builds alternate, each on its own data dir,
// so that load changes hit both; prints each build's median and every sample.
//
//   node bench/restart-ab.mjs --other /tmp/old/dist/cli.js           # this build against another, 1,000 jobs, 9 rounds
//   node bench/restart-ab.mjs --other /tmp/old/dist/cli.js --jobs 100 --rounds 15
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { stopBackgroundOwner } from "./lib/owner.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: opt } = parseArgs({
  options: {
    cli: { type: "string", default: path.join(root, "dist", "cli.js") },
    other: { type: "string" },
    jobs: { type: "string", default: "1000" },
    rounds: { type: "string", default: "9" },
  },
});
if (!opt.other) {
  console.error("restart-ab: give --other path/to/another/dist/cli.js (the build to compare with)");
  process.exit(2);
}
const builds = { this: opt.cli, other: opt.other };
const JOBS = Number(opt.jobs);
const ROUNDS = Number(opt.rounds);

async function connect(cli, dir) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [cli, "serve", "--data-dir", dir], stderr: "ignore" });
  const client = new Client({ name: "restart-ab", version: "1.0.0" });
  await client.connect(transport);
  return { client, close: () => client.close().catch(() => {}) };
}

const dirs = {};
for (const [name, cli] of Object.entries(builds)) {
  dirs[name] = mkdtempSync(path.join(os.tmpdir(), `agent-cron-bench-restart-${name}-`));
  const c = await connect(cli, dirs[name]);
  for (let i = 0; i < JOBS; i++) {
    await c.client.callTool({ name: "add_cron", arguments: { name: `j${i}`, schedule: "0 0 1 1 *", prompt: "p".repeat(100) } });
  }
  await c.close();
}
const samples = { this: [], other: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const name of ["this", "other"]) {
    const t = performance.now();
    const c = await connect(builds[name], dirs[name]);
    await c.client.listTools();
    samples[name].push(Math.round(performance.now() - t));
    await c.close();
  }
}
for (const name of Object.keys(builds)) {
  await stopBackgroundOwner(dirs[name]);
  rmSync(dirs[name], { recursive: true, force: true });
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`restart with ${JOBS} jobs to listTools(), ${ROUNDS} rounds, load ${os.loadavg()[0].toFixed(2)}`);
for (const name of ["this", "other"]) console.log(`  ${name} (${builds[name]}): median ${median(samples[name])} ms; ${samples[name].join(", ")}`);
