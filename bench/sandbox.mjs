#!/usr/bin/env node
// What the sandbox costs a run (a benchmark, not a test): the median time of one attempt of a
// trivial command executor (`/bin/true`), from the executor's start to the program's end,
// with "sandbox": "none" and with "sandbox": "auto" (bubblewrap where it works here). Both
// carry the per-run limits (prlimit and the /proc watcher), as every run does.
//
//   node bench/sandbox.mjs                 # 40 runs each (after 5 warm-up runs)
//   node bench/sandbox.mjs --runs 100
//   node bench/sandbox.mjs --json out.json  # also the figures as JSON (bench/run.mjs's sandbox section)
//
// The executors are bundled from src/ (bench/lib/bundle.mjs), as bench/run.mjs does for the store.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { srcModule } from "./lib/bundle.mjs";

const { values: opt } = parseArgs({ options: { runs: { type: "string", default: "40" }, json: { type: "string" } } });
const RUNS = Number(opt.runs);

const { createExecutor } = await srcModule("executors/index");
const { bwrapWorksHere } = await srcModule("executors/sandbox");

const base = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-sandbox-"));
const serverEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? os.homedir() };
const check = await bwrapWorksHere("bwrap", serverEnv);

async function attempt(executor, i) {
  const workDir = mkdtempSync(path.join(base, "run-"));
  const t0 = performance.now();
  const r = await executor.execute({
    runId: `bench-${i}`,
    jobId: "bench",
    sessionId: "bench",
    resume: false,
    scheduledFor: "",
    prompt: "",
    workDir,
    timeoutMs: 30_000,
    outputFormat: "text",
    outputSchema: null,
    maxCostUsd: null,
    signal: new AbortController().signal,
    scratchDir: workDir,
    maxOutputBytes: 65_536,
  });
  const ms = performance.now() - t0;
  if (r.status !== "completed") throw new Error(`run ${i} ended ${r.status}: ${r.error}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const rows = [];
for (const sandbox of ["none", "auto"]) {
  const executor = createExecutor(
    sandbox,
    { type: "command", command: ["/bin/true"], output: "text", env: {}, sandbox },
    { env_allow: [] },
    { serverEnv, killGraceMs: 500, hiddenPaths: [] },
  );
  for (let i = 0; i < 5; i++) await attempt(executor, i);
  const times = [];
  for (let i = 0; i < RUNS; i++) times.push(await attempt(executor, i));
  rows.push({
    sandbox,
    sandboxed: sandbox === "auto" && check.ok,
    runs: RUNS,
    median_ms: Math.round(median(times) * 10) / 10,
    p90_ms: Math.round([...times].sort((a, b) => a - b)[Math.floor(RUNS * 0.9)] * 10) / 10,
  });
}
rmSync(base, { recursive: true, force: true });

process.stdout.write(
  `\n== sandbox: one run of /bin/true (${check.ok ? `bubblewrap works here: ${check.version}` : `bubblewrap does not work here: ${check.detail}`})\n`,
);
process.stdout.write("SANDBOX  SANDBOXED  RUNS  MEDIAN ms  P90 ms\n");
for (const r of rows)
  process.stdout.write(
    `${r.sandbox.padEnd(7)}  ${String(r.sandboxed).padEnd(9)}  ${String(r.runs).padEnd(4)}  ${String(r.median_ms).padEnd(9)}  ${r.p90_ms}\n`,
  );
const [none, auto] = rows;
process.stdout.write(`auto costs ${Math.round((auto.median_ms - none.median_ms) * 10) / 10} ms more per run (median)\n`);
if (opt.json)
  writeFileSync(
    opt.json,
    JSON.stringify({
      bwrap_works: check.ok,
      bwrap: check.ok ? check.version : check.detail,
      rows,
      auto_extra_ms: Math.round((auto.median_ms - none.median_ms) * 10) / 10,
    }),
  );
