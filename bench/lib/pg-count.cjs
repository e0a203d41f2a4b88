// Preloaded into a benchmarked server with `node --require bench/lib/pg-count.cjs` (bench/postgres.mjs
// does, through NODE_OPTIONS): counts the SQL round trips the process makes, by statement, without
// touching the server's code. pg is loaded from node_modules (never bundled), so patching its
// Client here patches every connection the server and its pg-boss open: one Client#query call is
// one round trip (pg sends a query only once the previous one has answered). On SIGUSR2 it writes
// the counts so far, with the process's CPU time, as one JSON line to $PG_COUNT_FILE; the bench
// takes the difference between two such lines. With $PG_PROFILE_FILE set, the first SIGUSR2 also
// starts V8's CPU profiler and the second writes the profile there: exactly the window measured
// (--cpu-prof would cover start-up too, and writes nothing when the process is killed).
// stdout (the MCP channel) is never written.
"use strict";
const { appendFileSync, writeFileSync } = require("node:fs");
const pg = require("pg");

const file = process.env.PG_COUNT_FILE;
const profileFile = process.env.PG_PROFILE_FILE;
let session = null;
const counts = new Map();
let total = 0;
let waitedMs = 0;

/** A statement's shape: its first words, whitespace folded, so each call site has one key. */
function shape(text) {
  return String(text).replace(/\s+/g, " ").trim().slice(0, 90);
}

const original = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, callback) {
  const text = typeof config === "string" ? config : config && typeof config.text === "string" ? config.text : null;
  if (text === null) return original.call(this, config, values, callback);
  const key = shape(text);
  const entry = counts.get(key) ?? { n: 0, ms: 0 };
  counts.set(key, entry);
  entry.n++;
  total++;
  const t = performance.now();
  const result = original.call(this, config, values, callback);
  if (result && typeof result.then === "function") {
    const done = () => {
      const ms = performance.now() - t;
      entry.ms += ms;
      waitedMs += ms;
    };
    result.then(done, done);
  }
  return result;
};

process.on("SIGUSR2", () => {
  if (!file) return;
  const cpu = process.cpuUsage();
  const line = {
    pid: process.pid,
    at: Date.now(),
    total,
    waited_ms: Math.round(waitedMs),
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
    by: Object.fromEntries([...counts].map(([k, v]) => [k, { n: v.n, ms: Math.round(v.ms) }])),
  };
  appendFileSync(file, JSON.stringify(line) + "\n");
  if (!profileFile) return;
  if (!session) {
    const inspector = require("node:inspector");
    session = new inspector.Session();
    session.connect();
    session.post("Profiler.enable", () => session.post("Profiler.start"));
    return;
  }
  session.post("Profiler.stop", (err, res) => {
    if (!err) writeFileSync(profileFile, JSON.stringify(res.profile));
  });
});
