import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HttpServer, rawRequest } from "../helpers/http.js";
import { hasSample, parsePrometheus, valueOf } from "../helpers/prom.js";
import { ROOT, TestServer, fixture, waitFor } from "../helpers/server.js";

const TOKEN = "metrics-test-token";
const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A webhook receiver on loopback that accepts every delivery. */
async function receiver(): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200).end("ok"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

const get = async (base: string, path: string, headers: Record<string, string> = {}) => {
  const r = await rawRequest(base, { method: "GET", path, headers });
  return { status: r.status, body: r.text, headers: r.headers };
};

async function scrape(base: string, token?: string) {
  const r = await get(base, "/metrics", token ? { authorization: `Bearer ${token}` } : {});
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.body);
}

describe("/healthz, /readyz and /metrics (SPEC §22)", () => {
  it("answers the probes and counts runs, tokens, cost, deliveries, lateness and store writes as they happen", async () => {
    const hook = await receiver();
    const server = await HttpServer.start({
      config: {
        executors: { claude: { type: "claude-code", bin: fixture("fake-claude.mjs"), sandbox: "none" } },
        channels: { hook: { type: "webhook", url_env: "HOOK_URL" } },
      },
      env: { HOOK_URL: hook },
    });
    cleanup.push(() => server.cleanup());
    const health = await get(server.url, "/healthz");
    expect([health.status, health.body]).toEqual([200, "ok\n"]);
    const ready = await get(server.url, "/readyz");
    expect([ready.status, ready.body]).toEqual([200, "ready\n"]);

    const before = await scrape(server.url);
    for (const name of [
      "agent_cron_occurrences_total",
      "agent_cron_fire_lateness_seconds",
      "agent_cron_run_duration_seconds",
      "agent_cron_tokens_total",
      "agent_cron_cost_usd_total",
      "agent_cron_deliveries_total",
      "agent_cron_runs_running",
      "agent_cron_runs_queued",
      "agent_cron_store_write_seconds",
      "agent_cron_jobs",
    ]) {
      expect(before.has(name), name).toBe(true);
    }
    expect(before.get("agent_cron_fire_lateness_seconds")!.type).toBe("histogram");
    expect(valueOf(before, "agent_cron_runs_running")).toBe(0);
    // A files store has no fleet.
    expect(hasSample(before, "agent_cron_fleet_processes")).toBe(false);

    const c = await server.connect();
    await c.tool("add_cron", { name: "asks-claude", schedule: "0 3 * * *", prompt: "hello", executor: "claude", deliver_to: ["hook"] });
    await c.tool("add_cron", { name: "breaks", schedule: "0 3 * * *", prompt: "x", executor: "fail", retries: 0 });
    const { run } = await c.tool("run_now", { job: "asks-claude", wait: true });
    expect(run.status).toBe("completed");
    expect((await c.tool("run_now", { job: "breaks", wait: true })).run.status).toBe("failed");

    const after = await waitFor(
      async () => {
        const m = await scrape(server.url);
        return valueOf(m, "agent_cron_deliveries_total", { channel: "hook", outcome: "ok" }) >= 1 ? m : null;
      },
      { what: "the delivery to be counted" },
    );
    expect(valueOf(after, "agent_cron_occurrences_total", { outcome: "completed", trigger: "manual" })).toBe(1);
    expect(valueOf(after, "agent_cron_occurrences_total", { outcome: "failed", trigger: "manual" })).toBe(1);
    expect(valueOf(after, "agent_cron_run_duration_seconds_count")).toBe(2);
    // fake-claude reports 100 input, 20 + 30 cache and 50 output tokens at $0.0123.
    expect(valueOf(after, "agent_cron_tokens_total", { direction: "input", executor: "claude" })).toBe(150);
    expect(valueOf(after, "agent_cron_tokens_total", { direction: "output", executor: "claude" })).toBe(50);
    expect(valueOf(after, "agent_cron_cost_usd_total", { executor: "claude" })).toBeCloseTo(0.0123, 6);
    expect(valueOf(after, "agent_cron_store_write_seconds_count", { store: "runs" })).toBeGreaterThan(
      valueOf(before, "agent_cron_store_write_seconds_count", { store: "runs" }),
    );
    expect(valueOf(after, "agent_cron_store_write_seconds_count", { store: "jobs" })).toBeGreaterThanOrEqual(2);
    expect(valueOf(after, "agent_cron_jobs", { state: "active" })).toBe(2);

    // A scheduled run: its lateness is observed, and a run going shows as running.
    await c.tool("add_cron", { name: "every-second", schedule: "@every 1s", prompt: "2500", executor: "sleep", overlap: "skip" });
    const going = await waitFor(
      async () => {
        const m = await scrape(server.url);
        // A run counts as running from when it is taken; its lateness is observed when its process starts.
        return valueOf(m, "agent_cron_runs_running") >= 1 && valueOf(m, "agent_cron_fire_lateness_seconds_count") >= 1 ? m : null;
      },
      { what: "a run to show as running, its lateness observed" },
    );
    expect(valueOf(going, "agent_cron_fire_lateness_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(valueOf(going, "agent_cron_fire_lateness_seconds_bucket", { le: "+Inf" })).toBe(valueOf(going, "agent_cron_fire_lateness_seconds_count"));
    await c.tool("pause", { job: "every-second" });

    // The sample Grafana dashboard reads these very names.
    const dashboard = readFileSync(path.join(ROOT, "docs", "grafana-dashboard.json"), "utf8");
    const used = new Set([...dashboard.matchAll(/\b(agent_cron_[a-z_]+?)(_bucket|_sum|_count)?\b/g)].map((m) => m[1]));
    const onlyWhere = new Set(["agent_cron_fleet_processes", "agent_cron_unaccounted_occurrences"]);
    for (const name of used) expect(going.has(name) || onlyWhere.has(name), `${name} in docs/grafana-dashboard.json`).toBe(true);
    expect(used.size).toBeGreaterThanOrEqual(12);
  });

  it("asks for the token on /metrics when one is set, not on the probes", async () => {
    const server = await HttpServer.start({ env: { AGENT_CRON_TOKEN: TOKEN } });
    cleanup.push(() => server.cleanup());
    expect((await get(server.url, "/metrics")).status).toBe(401);
    expect((await get(server.url, "/metrics", { authorization: "Bearer wrong" })).status).toBe(401);
    expect(valueOf(await scrape(server.url, TOKEN), "agent_cron_build_info")).toBe(1);
    expect((await get(server.url, "/healthz")).status).toBe(200);
    expect((await get(server.url, "/readyz")).status).toBe(200);
  });

  it("serves the same on metrics_port for a server over stdio, on loopback", async () => {
    const s = await TestServer.start({ config: { metrics_port: 0 } });
    cleanup.push(() => s.close());
    const url = await waitFor(() => /metrics at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(s.stderr())?.[1], { what: "the metrics line" });
    expect((await get(url, "/readyz")).status).toBe(200);
    const before = await scrape(url);
    await s.tool("add_cron", { name: "once", schedule: "0 3 * * *", prompt: "hi" });
    await s.tool("run_now", { job: "once", wait: true });
    const after = await waitFor(
      async () => {
        const m = await scrape(url);
        return valueOf(m, "agent_cron_occurrences_total", { outcome: "completed" }) > valueOf(before, "agent_cron_occurrences_total", { outcome: "completed" })
          ? m
          : null;
      },
      { what: "the run to be counted" },
    );
    expect(valueOf(after, "agent_cron_run_duration_seconds_count")).toBe(1);
    expect((await get(url, "/mcp")).status).toBe(404);
  });
});
