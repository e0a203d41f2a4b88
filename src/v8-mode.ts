import v8 from "node:v8";

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
}

/** Called by the bin before anything loads: `serve` (stdio, HTTP or background) starts as a follower. */
export function startServeV8Mode(argv: string[]): void {
  if (argv.find((a) => !a.startsWith("-")) === "serve") v8ModeFor("follower");
}

/**
 * A follower's `--max-opt=1` also turns `--turbofan` off (a flag implication, applied when it is
 * set), and an owner's `--max-opt=999` does not turn it back on: an owner runs on Sparkplug's
 * code. For a large store that made the load's JS ~3× slower (the job checks, the maps), so an
 * owner about to load one turns TurboFan on (compose.ts). Not for a small one: at 1,000 and
 * 10,000 jobs TurboFan added ~5 MB of RSS to the owner and took no measurable CPU off a restart.
 */
export function optimizeForLargeLoad(): void {
  v8.setFlagsFromString("--turbofan");
}
