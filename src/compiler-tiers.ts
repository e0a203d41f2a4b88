import v8 from "node:v8";

/**
 * `serve` starts with V8's optimizing compilers off (the bin calls startServeTiers first thing):
 * a follower, the stdio server of every client under always_on "daemon", only forwards (each
 * call parsed, sent to the owner, its answer worded) and none of its code runs hot, so it stays
 * on the interpreter and Sparkplug's baseline code; Maglev and TurboFan never start, and their
 * code in the Node binary is never read: 5-6 MB of its RSS (issue 27; README, Benchmarks). A
 * process that takes the data dir, whose store load and scheduler do run hot, turns them on
 * when it takes the lock (Host's onRole).
 */
export function compilerTiersFor(role: "owner" | "follower"): void {
  v8.setFlagsFromString(role === "owner" ? "--max-opt=999" : "--max-opt=1");
}

/** Called by the bin before anything loads: `serve` (stdio, HTTP or background) starts as a follower would. */
export function startServeTiers(argv: string[]): void {
  if (argv.find((a) => !a.startsWith("-")) === "serve") compilerTiersFor("follower");
}
