/**
 * Per-run limits (SPEC §20): memory, processes and bytes written to the work dir. Every
 * program executor's run is watched, sandboxed or not: one timer for the whole server reads
 * /proc once per tick and, for each run, adds up the resident memory and counts the processes
 * of its process group and of its descendants (which includes everything in a sandbox's pid
 * namespace), and every other tick sums what its work dir grew by. A run past a limit is
 * killed at once and fails with the reason. On top of that a hard per-process cap the kernel
 * enforces, RLIMIT_FSIZE (no file the run writes grows past max_disk_mb), is set through
 * `prlimit` where it is installed (util-linux, on every mainstream Linux).
 *
 * Why not RLIMIT_AS and RLIMIT_NPROC: address space is not memory (Node, Bun and Go reserve
 * many GB they never touch, and would not start under a 4 GB RLIMIT_AS), and RLIMIT_NPROC
 * counts every process of the user, not of the run, and does not apply to root at all. A
 * cgroup would enforce both exactly; it needs a delegated cgroup v2 tree, which this does not
 * yet use (see SECURITY.md). Linux only: elsewhere nothing is watched.
 */
import { lstatSync, readdirSync, readFileSync } from "node:fs";
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
}

const watched = new Set<Watched>();
let timer: NodeJS.Timeout | null = null;
let ticks = 0;

interface ProcInfo {
  ppid: number;
  pgrp: number;
}

function readProcs(): Map<number, ProcInfo> {
  const procs = new Map<number, ProcInfo>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return procs;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      // After "(comm)": state, ppid, pgrp.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      procs.set(pid, { ppid: Number(f[1]), pgrp: Number(f[2]) });
    } catch {
      // Gone meanwhile.
    }
  }
  return procs;
}

/** Resident memory of one process in bytes (VmRSS), 0 when gone or a kernel thread. */
function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The group's processes and the leader's descendants (a process that left the group with setsid is still one). */
function members(w: Watched, procs: Map<number, ProcInfo>, children: Map<number, number[]>): number[] {
  const found = new Set<number>();
  for (const [pid, p] of procs) if (p.pgrp === w.pgid) found.add(pid);
  const stack = [...found];
  while (stack.length) {
    for (const child of children.get(stack.pop()!) ?? []) {
      if (found.has(child)) continue;
      found.add(child);
      if (procs.get(child)!.pgrp !== w.pgid) w.escaped = true;
      stack.push(child);
    }
  }
  return [...found];
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
  const procs = readProcs();
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(pid);
    else children.set(p.ppid, [pid]);
  }
  for (const w of [...watched]) {
    const pids = members(w, procs, children);
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
export function watchLimits(watch: LimitWatch): (() => { reason: string | null; escaped: boolean }) {
  if (process.platform !== "linux") return () => ({ reason: null, escaped: false });
  const w: Watched = { ...watch, baseBytes: dirBytes(watch.workDir, Number.MAX_SAFE_INTEGER), escaped: false, done: false };
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
