/**
 * Per-run limits (SPEC §20): memory, processes and bytes written to the work dir. Every
 * program executor's run is watched, sandboxed or not. One timer for the whole server, twice
 * a second, walks each run's process tree down from its leader (the kernel's per-thread
 * children lists: a few reads per process of the run, not one per process of the host),
 * which includes everything in a sandbox's pid namespace, adds up their resident memory and
 * counts them; every fourth tick, once a run has lived a second, it reads all of /proc once,
 * for processes of the run's group that left the tree (their parent died); every other tick it sums what the work dir grew
 * by. A run past a limit is killed at once and fails with the reason. On top of that a hard
 * per-process cap the kernel enforces, RLIMIT_FSIZE (no file the run writes grows past
 * max_disk_mb), is set through `prlimit` where it is installed (util-linux, on every
 * mainstream Linux): once on the server itself for runs without a sandbox to inherit (a soft
 * limit, see process.ts inheritsFileCap), or as a wrapper that sets a hard one per run.
 *
 * Why not RLIMIT_AS and RLIMIT_NPROC: address space is not memory (Node, Bun and Go reserve
 * many GB they never touch, and would not start under a 4 GB RLIMIT_AS), and RLIMIT_NPROC
 * counts every process of the user, not of the run, and does not apply to root at all. A
 * cgroup would enforce both exactly; it needs a delegated cgroup v2 tree, which this does not
 * yet use (see SECURITY.md). Linux only: elsewhere nothing is watched.
 */
import { lstatSync, readdirSync } from "node:fs";
import { readProcFile } from "./proc-file.js";
import path from "node:path";
import type { ExecutorConfig } from "../config.js";

export interface RunLimits {
  memoryMb: number;
  pids: number;
  diskMb: number;
}

export const DEFAULT_LIMITS: RunLimits = { memoryMb: 4096, pids: 512, diskMb: 2048 };

/** The limits of an executor's runs; null for executors that start no program. */
export function runLimits(cfg: ExecutorConfig): RunLimits | null {
  if (cfg.type === "openai") return null;
  return {
    memoryMb: cfg.max_memory_mb ?? DEFAULT_LIMITS.memoryMb,
    pids: cfg.max_pids ?? DEFAULT_LIMITS.pids,
    diskMb: cfg.max_disk_mb ?? DEFAULT_LIMITS.diskMb,
  };
}

const MB = 1024 * 1024;
const TICK_MS = 500;
/** A work dir with more entries than this is not walked again (a project checkout): the per-file cap still holds. */
const WALK_BUDGET = 20_000;

export const limitMessages = {
  memory: (l: RunLimits) => `the run used more than ${l.memoryMb} MB of memory (max_memory_mb)`,
  pids: (l: RunLimits) => `the run had more than ${l.pids} processes at once (max_pids)`,
  disk: (l: RunLimits) => `the run wrote more than ${l.diskMb} MB to its work dir (max_disk_mb)`,
  file: (l: RunLimits) => `the run wrote a file larger than ${l.diskMb} MB (max_disk_mb)`,
};

/** The kernel's own cap, as the argv prefix that sets it; `prlimit` execs the program, so its pid stays the group leader. */
export function rlimitPrefix(limits: RunLimits, prlimit: string | null): string[] {
  return prlimit ? [prlimit, `--fsize=${limits.diskMb * MB}`, "--"] : [];
}

/** Whether a program that failed says it hit the per-file cap (SIGXFSZ, or EFBIG where it catches the signal). */
export function hitFileCap(signal: string | null, stderr: string): boolean {
  return signal === "SIGXFSZ" || /\bEFBIG\b|File too large/.test(stderr);
}

/** Bytes a directory's files take on disk, or null once more than `budget` entries were seen. */
function dirBytes(dir: string, stopAbove: number, budget = WALK_BUDGET): number | null {
  let total = 0;
  let seen = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      if (++seen > budget) return null;
      try {
        const st = lstatSync(path.join(d, name));
        if (st.isDirectory()) stack.push(path.join(d, name));
        else if (st.isFile()) total += Math.max(st.size, st.blocks * 512);
      } catch {
        // Removed meanwhile.
      }
      if (total > stopAbove) return total;
    }
  }
  return total;
}

export interface LimitWatch {
  /** The run's process group (its leader's pid). */
  pgid: number;
  workDir: string;
  limits: RunLimits;
  /** Called once, with the reason, when the run passes a limit; the caller kills it. */
  onExceeded: (reason: string) => void;
}

interface Watched extends LimitWatch {
  /** What the work dir held when the run started (a job's own project dir is not empty). */
  baseBytes: number | null;
  /** A descendant that left the process group (setsid): the run's end must look for it. */
  escaped: boolean;
  done: boolean;
  /** The tick count when it started (see tick: a full read of /proc waits for a run that lived a second). */
  startTick: number;
}

const watched = new Set<Watched>();
let timer: NodeJS.Timeout | null = null;
let ticks = 0;

/** Parent and process group of every process, from one read of all of /proc. */
function readProcs(): Map<number, { ppid: number; pgrp: number }> {
  const procs = new Map<number, { ppid: number; pgrp: number }>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return procs;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = statOf(pid);
    if (stat) procs.set(pid, stat);
  }
  return procs;
}

function statOf(pid: number): { ppid: number; pgrp: number } | null {
  try {
    const stat = readProcFile(`/proc/${pid}/stat`);
    // After "(comm)": state, ppid, pgrp.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), pgrp: Number(f[2]) };
  } catch {
    return null;
  }
}

/** Resident memory of one process in bytes (VmRSS), 0 when gone or a kernel thread. */
function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readProcFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Where the kernel lists children per thread (CONFIG_PROC_CHILDREN); null until tried, false without it. */
let childrenFiles: boolean | null = null;

/** The children of one process, every thread's; null when the kernel does not list them. */
function childrenOf(pid: number): number[] | null {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tasks) {
    let text: string;
    try {
      text = readProcFile(`/proc/${pid}/task/${tid}/children`);
      childrenFiles = true;
    } catch (err) {
      if (childrenFiles === null && (err as NodeJS.ErrnoException).code === "ENOENT") childrenFiles = false;
      if (childrenFiles === false) return null;
      continue;
    }
    for (const c of text.split(" ")) if (c.trim()) out.push(Number(c));
  }
  return out;
}

/**
 * The run's processes: its tree below the leader, and, when `procs` (a full read of /proc) is
 * given, every process of its group and the whole tree from it. A descendant in another group
 * (setsid) marks the run as having escapees, for the sweep at its end.
 */
function members(w: Watched, procs: Map<number, { ppid: number; pgrp: number }> | null): number[] {
  const found = new Set<number>();
  const stack: number[] = [];
  const add = (pid: number) => {
    if (found.has(pid)) return;
    found.add(pid);
    stack.push(pid);
  };
  if (procs) {
    for (const [pid, p] of procs) if (p.pgrp === w.pgid) add(pid);
  } else if (statOf(w.pgid)) add(w.pgid);
  const byParent = procs ? childMap(procs) : null;
  while (stack.length) {
    const pid = stack.pop()!;
    const kids = byParent ? (byParent.get(pid) ?? []) : (childrenOf(pid) ?? []);
    for (const child of kids) {
      if (found.has(child)) continue;
      const pgrp = procs ? procs.get(child)?.pgrp : statOf(child)?.pgrp;
      if (pgrp !== undefined && pgrp !== w.pgid) w.escaped = true;
      add(child);
    }
  }
  return [...found];
}

function childMap(procs: Map<number, { ppid: number; pgrp: number }>): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(pid);
    else children.set(p.ppid, [pid]);
  }
  return children;
}

function exceeded(w: Watched, reason: string): void {
  if (w.done) return;
  w.done = true;
  watched.delete(w);
  w.onExceeded(reason);
}

function diskReason(w: Watched): string | null {
  if (w.baseBytes === null) return null;
  const limit = w.limits.diskMb * MB;
  const now = dirBytes(w.workDir, w.baseBytes + limit);
  if (now === null) {
    w.baseBytes = null;
    return null;
  }
  return now - w.baseBytes > limit ? limitMessages.disk(w.limits) : null;
}

function tick(): void {
  ticks++;
  // The full read of /proc: every fourth tick, or every tick where the kernel lists no children.
  // Only once some run has lived a second: it reads every process of the host (60 ms a read on a
  // busy shared machine), and at capacity the runs watched are mostly young ones that end within
  // a tick. A run that lives 2.5 s gets one (any run of 2 s did before); the run's end looks for
  // what escaped only if a full read saw it, so a longer wait would let a longer run go unread.
  const fullRead = childrenFiles === false || (ticks % 4 === 0 && [...watched].some((w) => ticks - w.startTick >= 2));
  const procs = fullRead ? readProcs() : null;
  for (const w of [...watched]) {
    const pids = members(w, procs);
    if (pids.length > w.limits.pids) {
      exceeded(w, limitMessages.pids(w.limits));
      continue;
    }
    let rss = 0;
    for (const pid of pids) rss += rssBytes(pid);
    if (rss > w.limits.memoryMb * MB) {
      exceeded(w, limitMessages.memory(w.limits));
      continue;
    }
    if (ticks % 2 === 0) {
      const disk = diskReason(w);
      if (disk) exceeded(w, disk);
    }
  }
  if (!watched.size && timer) {
    clearInterval(timer);
    timer = null;
  }
}

/**
 * Watches one run until the returned function is called at its end; that function does the
 * last work-dir check (what was written just before the end) and says whether a descendant
 * had left the process group, so that the caller can look for it.
 */
export function watchLimits(watch: LimitWatch): () => { reason: string | null; escaped: boolean } {
  if (process.platform !== "linux") return () => ({ reason: null, escaped: false });
  const w: Watched = { ...watch, baseBytes: dirBytes(watch.workDir, Number.MAX_SAFE_INTEGER), escaped: false, done: false, startTick: ticks };
  watched.add(w);
  if (!timer) {
    timer = setInterval(tick, TICK_MS);
    timer.unref();
  }
  return () => {
    const wasDone = w.done;
    w.done = true;
    watched.delete(w);
    return { reason: wasDone ? null : diskReason(w), escaped: w.escaped };
  };
}
