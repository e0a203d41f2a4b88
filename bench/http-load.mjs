#!/usr/bin/env node
// HTTP load scenario (a benchmark, not a test): the BUILT server on port 0, SESSIONS concurrent
// SDK sessions each making CALLS tool calls (list_crons / preview_schedule / get_cron), then one
// job change fanned out to every session. Prints latency percentiles and errors as JSON.
// The clients share this machine's CPUs with the server: compare server_cpu_ms with elapsed_ms.
// Usage: npm run build && node bench/http-load.mjs [--sessions 50] [--calls 20]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { sessions: { type: "string", default: "50" }, calls: { type: "string", default: "20" } } });
const SESSIONS = Number(values.sessions);
const CALLS = Number(values.calls);
const JOBS = 20;

const dataDir = mkdtempSync(path.join(os.tmpdir(), "agent-cron-bench-http-"));
const echo = { type: "command", command: [process.execPath, path.join(root, "test/fixtures/echo-agent.mjs"), "{prompt}"] };
writeFileSync(path.join(dataDir, "config.json"), JSON.stringify({ timezone: "UTC", default_executor: "echo", executors: { echo } }));

const child = spawn(process.execPath, [path.join(root, "dist/cli.js"), "serve", "--http", "--port", "0", "--data-dir", dataDir], {
  env: { PATH: process.env.PATH, HOME: os.homedir() },
  stdio: ["ignore", "ignore", "pipe"],
});
let stderr = "";
const url = await new Promise((resolve, reject) => {
  child.stderr.on("data", (c) => {
    stderr += c;
    const m = /agent-cron ready http (\S+)/.exec(stderr);
    if (m) resolve(m[1]);
  });
  child.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
});

/** The server's resident memory after the load (Linux; null elsewhere). */
function serverRssMb() {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]);
    return Number.isFinite(kb) ? Math.round(kb / 1024) : null;
  } catch {
    return null;
  }
}

/** The server's CPU time so far, user + system (Linux; 0 elsewhere). */
function serverCpuMs() {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
  } catch {
    return 0;
  }
}

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);
const round = (ms) => (ms === null ? null : Math.round(ms * 100) / 100);

async function connect() {
  const client = new Client({ name: "bench", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const updates = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push({ uri: n.params.uri, at: performance.now() }));
  await client.connect(transport);
  return { client, updates };
}

const errors = [];
const latencies = [];
const connectTimes = [];
let sessions = [];
try {
  const setup = await connect();
  const jobIds = [];
  for (let i = 0; i < JOBS; i++) {
    const r = await setup.client.callTool({ name: "add_cron", arguments: { name: `bench-${i}`, schedule: `${i} 3 * * *`, prompt: `job ${i}` } });
    jobIds.push(r.structuredContent.job.id);
  }
  await setup.client.close();

  const calls = [
    () => ({ name: "list_crons", arguments: { limit: 50 } }),
    () => ({ name: "preview_schedule", arguments: { schedule: "*/15 9-17 * * MON-FRI", timezone: "Europe/Paris", count: 5 } }),
    (i) => ({ name: "get_cron", arguments: { job: jobIds[i % JOBS] } }),
  ];
  const cpuBefore = serverCpuMs();
  const started = performance.now();
  sessions = await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      const t0 = performance.now();
      const s = await connect();
      connectTimes.push(performance.now() - t0);
      return s;
    }),
  );
  await Promise.all(
    sessions.map(async (s, si) => {
      for (let i = 0; i < CALLS; i++) {
        const request = calls[(si + i) % calls.length](si * CALLS + i);
        const t0 = performance.now();
        try {
          const r = await s.client.callTool(request);
          if (r.isError) errors.push(`${request.name}: ${r.content?.[0]?.text}`);
        } catch (err) {
          errors.push(`${request.name}: ${err.message}`);
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - started;

  // Fan-out: one change, every subscribed session told.
  await Promise.all(sessions.map((s) => s.client.subscribeResource({ uri: "cron://jobs" })));
  const changedAt = performance.now();
  await sessions[0].client.callTool({ name: "pause", arguments: { job: jobIds[0] } });
  const deadline = Date.now() + 10_000;
  while (sessions.some((s) => !s.updates.some((u) => u.uri === "cron://jobs")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const reached = sessions.map((s) => s.updates.find((u) => u.uri === "cron://jobs")?.at).filter((t) => t !== undefined);

  latencies.sort((a, b) => a - b);
  connectTimes.sort((a, b) => a - b);
  console.log(
    JSON.stringify(
      {
        sessions: SESSIONS,
        calls_per_session: CALLS,
        calls: latencies.length,
        errors: errors.length,
        error_samples: [...new Set(errors)].slice(0, 5),
        p50_ms: round(percentile(latencies, 50)),
        p99_ms: round(percentile(latencies, 99)),
        max_ms: round(latencies.at(-1) ?? null),
        calls_per_second: Math.round((latencies.length / elapsed) * 1000),
        connect_p50_ms: round(percentile(connectTimes, 50)),
        connect_p99_ms: round(percentile(connectTimes, 99)),
        fanout_sessions_reached: reached.length,
        fanout_max_ms: round(reached.length ? Math.max(...reached) - changedAt : null),
        server_rss_mb: serverRssMb(),
        server_cpu_ms: serverCpuMs() - cpuBefore,
        elapsed_ms: Math.round(elapsed),
        clients_cpu_ms: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
        cpus: os.availableParallelism(),
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.allSettled(sessions.map((s) => s.client.close()));
  child.kill("SIGTERM");
  await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
  rmSync(dataDir, { recursive: true, force: true });
}
