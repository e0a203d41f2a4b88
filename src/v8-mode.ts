import v8 from "node:v8";

/** TurboFan is on (optimizeHotCode). */
let hot = false;

/**
 * `serve` starts as a follower would (the bin calls startServeV8Mode first thing): a follower,
 * the stdio server of every client under always_on "daemon", only forwards (each call parsed,
 * sent to the owner, its answer worded) and none of its code runs hot. So it stays on the
 * interpreter and Sparkplug's baseline code (Maglev and TurboFan never start, and their code in
 * the Node binary is never read) and V8 favours memory over speed: 7 MB of its RSS at 1,000
 * jobs (issue 27; README, Benchmarks). A process that takes the data dir, whose store load and
 * scheduler do run hot, turns both back when it takes the lock (Host's onRole).
 */
export function v8ModeFor(role: "owner" | "follower"): void {
  const owner = role === "owner";
  v8.setFlagsFromString(owner ? "--max-opt=999" : "--max-opt=1");
  v8.setFlagsFromString(owner ? "--no-optimize-for-size" : "--optimize-for-size");
  // A follower's --max-opt=1 turns TurboFan off again: hot work it takes on later turns it back.
  if (!owner) hot = false;
}

/** Called by the bin before anything loads: `serve` (stdio, HTTP or background) starts as a follower. */
export function startServeV8Mode(argv: string[]): void {
  if (argv.find((a) => !a.startsWith("-")) === "serve") v8ModeFor("follower");
}

/**
 * A follower's `--max-opt=1` also turns `--turbofan` off (a flag implication, applied when it is
 * set), and an owner's `--max-opt=999` does not turn it back on: an owner runs on Sparkplug's
 * code, which keeps a small owner small (at 1,000 and 10,000 jobs TurboFan added ~5 MB of RSS
 * and took no measurable CPU off a restart). Work that runs hot turns TurboFan on, once, for
 * the rest of the process's life:
 * - the load of a large store (compose.ts): its JS ran ~3× slower on Sparkplug;
 * - a server on the postgres store (compose.ts): a fleet's process parses every change of the
 *   fleet (the pg driver's byte loops, JSON) and was CPU-bound on Sparkplug's code (issue 22);
 * - a fleet firing (executors/spawner.ts, past its burst): every run's bookkeeping is hot.
 * A loop that parses a 1 KB notification 200,000 times: 1.0 s with Node's defaults, 5.0 s as an
 * owner ran it, 0.84 s with TurboFan on (Node 20; Node 22 0.72 / 4.4 / 0.63 s).
 */
export function optimizeHotCode(): void {
  if (hot) return;
  hot = true;
  v8.setFlagsFromString("--turbofan");
}
