#!/usr/bin/env node
// Dashboard benchmark (a benchmark, not a test): the BUILT HTTP daemon with 1,000 jobs and
// 10,000 runs made through its own tools, and Debian's Chromium (scripts/install-chromium.sh)
// driven by playwright-core. Measures, each over --repeat cold page loads (median, min, max):
//   - first contentful paint of the jobs page (performance 'first-contentful-paint'), for the
//     default page (100 jobs) and for all 1,000 (?limit=1000);
//   - page weight: the HTML, stylesheet and script as sent (gzip) and decoded;
//   - an SSE update's delay: from a run's finished_at (the daemon's record) to the moment the
//     open page shows it completed, on the job page and on the jobs page.
// Writes bench/results/dashboard.json.
//
//   npm run build && NODE_NO_WARNINGS=1 node bench/dashboard.mjs     (about 2 minutes on 2 cores)
//   node bench/dashboard.mjs --jobs 1000 --runs-per-job 10 --repeat 5 --cli dist-dash/cli.js
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: opt } = parseArgs({
  options: {
    jobs: { type: "string", default: "1000" },
    "runs-per-job": { type: "string", default: "10" },
    repeat: { type: "string", default: "5" },
    cli: { type: "string", default: path.join(root, process.env.AGENT_CRON_DIST || "dist", "cli.js") },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    out: { type: "string", default: path.join(root, "bench", "results", "dashboard.json") },
  },
});
const JOBS = Number(opt.jobs);
const RUNS_PER_JOB = Number(opt["runs-per-job"]);
const REPEAT = Number(opt.repeat);
const log = (line) => process.stderr.write(line + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: Math.round(s[Math.floor(s.length / 2)]), min: Math.round(s[0]), max: Math.round(s[s.length - 1]), n: s.length };
};

const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-dash-"));
writeFileSync(
  path.join(dataDir, "config.json"),
  JSON.stringify({
    timezone: "Europe/Paris",
    default_executor: "quick",
    max_concurrent: 8,
    runs_per_job: 100,
    max_jobs: JOBS + 10,
    executors: {
      // One short line of Markdown per run, from a program that starts in a millisecond.
      quick: { type: "command", command: ["/bin/echo", "**done** {run_id}"] },
      sleep: { type: "command", command: [process.execPath, "-e", "setTimeout(() => console.log('slept'), Number(process.argv[1]))", "{prompt}"] },
    },
  }),
);

const child = spawn(process.execPath, [opt.cli, "serve", "--http", "--port", "0", "--data-dir", dataDir], {
  env: { ...process.env, AGENT_CRON_TOKEN: "", XDG_CACHE_HOME: `${dataDir}-cache` },
  stdio: ["ignore", "ignore", "pipe"],
});
let stderr = "";
child.stderr.on("data", (c) => (stderr += c));
const started = Date.now();
while (!/agent-cron ready http (\S+)/.test(stderr)) {
  if (child.exitCode !== null || Date.now() - started > 20_000) throw new Error(`The daemon did not start:\n${stderr}`);
  await sleep(50);
}
const mcpUrl = /agent-cron ready http (\S+)/.exec(stderr)[1];
const base = mcpUrl.replace(/\/mcp$/, "");
const client = new Client({ name: "bench-dashboard", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
const tool = async (name, args) => {
  const r = await client.callTool({ name, arguments: args });
  if (r.isError) throw new Error(`${name}: ${r.content?.[0]?.text}`);
  return r.structuredContent;
};

/** Runs `fn` over `items`, `width` at a time. */
async function pool(items, width, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const browser = await chromium.launch({ executablePath: opt.chromium, args: ["--no-sandbox"] });
const results = {
  date: new Date().toISOString(),
  machine: { cpus: os.availableParallelism(), node: process.version },
  command: `node bench/dashboard.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  jobs: JOBS,
  runs: JOBS * RUNS_PER_JOB,
};
try {
  log(`bench: adding ${JOBS} jobs and ${JOBS * RUNS_PER_JOB} runs through the daemon's tools…`);
  const t0 = Date.now();
  const ids = [];
  await pool(
    Array.from({ length: JOBS }, (_, i) => i),
    8,
    async (i) => {
      const { job } = await tool("add_cron", {
        name: `job-${String(i).padStart(4, "0")}`,
        schedule: `${i % 60} ${i % 24} * * *`,
        prompt: `Summarise what changed in repository ${i} since yesterday`,
        overlap: "allow",
        retries: 0,
      });
      ids.push(job.id);
    },
  );
  const runs = ids.flatMap((id) => Array.from({ length: RUNS_PER_JOB }, () => id));
  await pool(runs, 8, async (id) => {
    const { run } = await tool("run_now", { job: id, wait: true });
    if (run.status !== "completed") throw new Error(`A setup run ended ${run.status}: ${run.error}`);
  });
  results.setup_s = Math.round((Date.now() - t0) / 100) / 10;
  log(`bench: set up in ${results.setup_s} s`);

  // First paint and weight, each load in a fresh context (nothing cached).
  for (const [label, url] of [
    ["jobs_page_100", "/"],
    ["jobs_page_1000", "/?limit=1000"],
  ]) {
    const fcp = [];
    const load = [];
    let weight = null;
    for (let i = 0; i < REPEAT; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const sizes = [];
      page.on("requestfinished", async (req) => {
        const res = await req.response();
        const s = await req.sizes();
        sizes.push({
          url: req.url().replace(base, ""),
          type: res?.headers()["content-type"] ?? "",
          sent: s.responseBodySize,
          decoded: (await res?.body())?.length ?? 0,
        });
      });
      await page.goto(base + url, { waitUntil: "load" });
      const entry = await page.evaluate(
        () =>
          new Promise((resolve) => {
            const found = performance.getEntriesByName("first-contentful-paint")[0];
            if (found) return resolve(found.startTime);
            new PerformanceObserver((list) => resolve(list.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null)).observe({
              type: "paint",
              buffered: true,
            });
          }),
      );
      fcp.push(entry);
      load.push(await page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd));
      await sleep(200);
      weight = sizes;
      await context.close();
    }
    const sum = (k) => weight.reduce((a, s) => a + s[k], 0);
    results[label] = { first_contentful_paint_ms: stats(fcp), load_ms: stats(load), bytes_sent: sum("sent"), bytes_decoded: sum("decoded"), files: weight };
    log(`bench: ${label}: FCP median ${results[label].first_contentful_paint_ms.median} ms, ${sum("sent")} B sent (${sum("decoded")} B decoded)`);
  }

  // SSE: run end (the record's finished_at) → the open page shows the run completed.
  const { job: watched } = await tool("add_cron", { name: "watched", schedule: "0 3 * * *", prompt: "300", executor: "sleep", overlap: "allow" });
  for (const [label, url, selector] of [
    ["sse_job_page", `/jobs/${watched.id}`, (runId) => `#run-${runId} .st-completed`],
    ["sse_jobs_page", "/?q=watched", () => `#job-${watched.id} .strip i.st-completed`],
  ]) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base + url);
    await sleep(500);
    const delays = [];
    for (let i = 0; i < REPEAT; i++) {
      const before = await page
        .locator(selector("x"))
        .count()
        .catch(() => 0);
      const { run } = await tool("run_now", { job: watched.id });
      const sel = selector(run.id);
      const want = label === "sse_job_page" ? 1 : Math.min(20, before + 1);
      const seenAt = await page.evaluate(
        ({ sel, want }) =>
          new Promise((resolve) => {
            const check = () => document.querySelectorAll(sel).length >= want && (resolve(Date.now()), true);
            if (check()) return;
            const mo = new MutationObserver(() => check() && mo.disconnect());
            mo.observe(document.body, { subtree: true, childList: true, attributes: true });
            setTimeout(() => resolve(null), 15_000);
          }),
        { sel, want },
      );
      if (seenAt === null) throw new Error(`${label}: the page never showed run ${run.id} completed (${sel}):\n${(await page.content()).slice(0, 3000)}`);
      const { run: done } = await tool("get_run", { run: run.id });
      delays.push(seenAt - Date.parse(done.finished_at));
      await sleep(700);
    }
    results[label] = { delay_ms: stats(delays), samples: delays };
    log(`bench: ${label}: run end → page, median ${results[label].delay_ms.median} ms`);
    await context.close();
  }
} finally {
  await browser.close();
  await client.close().catch(() => {});
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(`${dataDir}-cache`, { recursive: true, force: true });
}
mkdirSync(path.dirname(opt.out), { recursive: true });
writeFileSync(opt.out, JSON.stringify(results, null, 2) + "\n");
process.stdout.write(
  JSON.stringify(
    { ...results, jobs_page_100: { ...results.jobs_page_100, files: undefined }, jobs_page_1000: { ...results.jobs_page_1000, files: undefined } },
    null,
    2,
  ) + "\n",
);
