// Preloaded into a benchmarked server with `node --expose-gc --require bench/lib/probe.cjs`.
// It measures from inside without touching the server's code: on SIGUSR2 it runs a full GC and
// writes one line to stderr with process.memoryUsage(), the event-loop delay since the last
// report, the round trip of an fs call through libuv's thread pool, and how long child_process
// spawns blocked the event loop (uv_spawn forks synchronously on Linux). Not loaded in normal use;
// stdout (the MCP channel) is never written.
"use strict";
const { ChildProcess } = require("node:child_process");
const { monitorEventLoopDelay } = require("node:perf_hooks");

const spawns = { count: 0, total_ms: 0, max_ms: 0 };
const original = ChildProcess.prototype.spawn;
ChildProcess.prototype.spawn = function (...args) {
  const t = performance.now();
  try {
    return original.apply(this, args);
  } finally {
    const ms = performance.now() - t;
    spawns.count++;
    spawns.total_ms += ms;
    if (ms > spawns.max_ms) spawns.max_ms = ms;
  }
};
// The histogram holds whole timer intervals (resolution + delay); the resolution is subtracted below.
const RESOLUTION_MS = 5;
const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
delay.enable();

// libuv's thread pool does every fs call; a stat round trip every 50 ms shows how long an fs
// call waits there (a saturated pool delays every write the server awaits).
const fs = require("node:fs");
let pool = [];
const poolTimer = setInterval(() => {
  const t = performance.now();
  fs.stat(__filename, () => pool.push(performance.now() - t));
}, 50);
poolTimer.unref();
const pctl = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] * 100) / 100;
};

const lag = (ns) => Math.max(0, Math.round(ns / 1e4) / 100 - RESOLUTION_MS);

process.on("SIGUSR2", () => {
  const m = process.memoryUsage();
  const report = {
    rss: m.rss,
    spawn_count: spawns.count,
    spawn_block_ms_total: Math.round(spawns.total_ms),
    spawn_block_ms_mean: spawns.count ? Math.round((spawns.total_ms / spawns.count) * 100) / 100 : null,
    spawn_block_ms_max: Math.round(spawns.max_ms * 100) / 100,
    loop_delay_p50_ms: lag(delay.percentile(50)),
    loop_delay_p99_ms: lag(delay.percentile(99)),
    loop_delay_max_ms: lag(delay.max),
    fs_roundtrip_p50_ms: pctl(pool, 50),
    fs_roundtrip_p99_ms: pctl(pool, 99),
  };
  pool = [];
  delay.reset();
  spawns.count = 0;
  spawns.total_ms = 0;
  spawns.max_ms = 0;
  if (typeof globalThis.gc === "function") globalThis.gc();
  const g = process.memoryUsage();
  Object.assign(report, { rss_after_gc: g.rss, heap_used: g.heapUsed, heap_total: g.heapTotal, external: g.external, array_buffers: g.arrayBuffers });
  process.stderr.write(`BENCH_PROBE ${JSON.stringify(report)}\n`);
});
