// The machine's floor for a fleet (bench/run.mjs's fire section runs it beside each fleet): a
// bare Node process that starts `/bin/true` at the fleet's rate for the fleet's window, with
// no more children at once than the server's max_concurrent, and no scheduler, store or
// protocol. How many a second it starts and sees end, and the CPU each costs (its own, and the
// children's once reaped), are what the server's runs per second read against.
//
//   node bench/lib/spawn-floor.mjs --rate 1000 --seconds 8 --max-concurrent 64   # one JSON line on stdout
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "8" },
    "max-concurrent": { type: "string", default: "64" },
    command: { type: "string", default: "/bin/true" },
  },
});
const RATE = Number(opt.rate);
const WINDOW_MS = Number(opt.seconds) * 1000;
const MAX = Number(opt["max-concurrent"]);

/** CPU ms of this process's reaped children (cutime + cstime, in clock ticks of 10 ms). */
const childrenCpuMs = () => {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) * 10;
};

let started = 0;
let ended = 0;
let endedInWindow = 0;
let failed = 0;
let dropped = 0;
let running = 0;
let spawnMs = 0;
const cpu0 = process.cpuUsage();
const children0 = childrenCpuMs();
const t0 = performance.now();

await new Promise((resolve) => {
  const tick = () => {
    const elapsed = performance.now() - t0;
    const due = Math.min(RATE * (WINDOW_MS / 1000), Math.floor((elapsed * RATE) / 1000)) - started - dropped;
    for (let i = 0; i < due; i++) {
      // As the server does past max_concurrent: an occurrence that cannot start is not started.
      if (running >= MAX) {
        dropped++;
        continue;
      }
      const t = performance.now();
      const child = spawn(opt.command, [], { stdio: "ignore" });
      spawnMs += performance.now() - t;
      started++;
      running++;
      child.on("error", () => failed++);
      child.on("close", () => {
        running--;
        ended++;
        if (performance.now() - t0 <= WINDOW_MS) endedInWindow++;
      });
    }
    if (elapsed < WINDOW_MS) setTimeout(tick, 1);
    else resolve();
  };
  tick();
});
// The last children end (bounded: a child that never ends is the machine's problem, reported).
for (const until = performance.now() + 10_000; running > 0 && performance.now() < until; ) await new Promise((r) => setTimeout(r, 10));
const cpu = process.cpuUsage(cpu0);
const ownMs = (cpu.user + cpu.system) / 1000;
const childMs = childrenCpuMs() - children0;
const r2 = (x) => Math.round(x * 100) / 100;
process.stdout.write(
  JSON.stringify({
    rate: RATE,
    window_s: WINDOW_MS / 1000,
    max_concurrent: MAX,
    due: RATE * (WINDOW_MS / 1000),
    started,
    ended,
    failed,
    dropped_at_max_concurrent: dropped,
    still_running: running,
    ended_per_second: r2(endedInWindow / (WINDOW_MS / 1000)),
    started_per_second: r2(started / (WINDOW_MS / 1000)),
    own_cpu_ms_per_process: started ? r2(ownMs / started) : null,
    children_cpu_ms_per_process: ended ? r2(childMs / ended) : null,
    spawn_call_ms_mean: started ? r2(spawnMs / started) : null,
  }) + "\n",
);
