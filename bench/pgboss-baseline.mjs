#!/usr/bin/env node
// pg-boss 12 alone, for bench/postgres.mjs: one job at a time (send, fetch, complete) on the
// database given, for the given seconds; prints {"per_second": N, "jobs": M} on stdout. Runs on
// Node >= 22.12 (pg-boss 12); bench/postgres.mjs starts it with the servers' Node.
import { PgBoss } from "pg-boss";

const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 10);
const boss = new PgBoss({
  connectionString: url,
  schema: "bench_boss",
  schedule: false,
  supervise: false,
  registerInstance: false,
  openTelemetry: { enabled: false },
});
boss.on("error", (err) => process.stderr.write(`pg-boss: ${err.message}\n`));
await boss.start();
await boss.createQueue("bench");
const end = Date.now() + seconds * 1000;
const start = Date.now();
let jobs = 0;
while (Date.now() < end) {
  await boss.send("bench", { n: jobs });
  const [job] = await boss.fetch("bench");
  await boss.complete("bench", job.id);
  jobs++;
}
const elapsed = (Date.now() - start) / 1000;
await boss.stop({ graceful: false, close: true });
process.stdout.write(JSON.stringify({ per_second: Math.round(jobs / elapsed), jobs }) + "\n");
