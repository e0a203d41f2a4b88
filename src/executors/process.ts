import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { hitFileCap, limitMessages, rlimitPrefix, watchLimits, type RunLimits } from "./limits.js";
import { killOrphanedRunsSoon } from "./orphans.js";
import { readProcFile } from "./proc-file.js";
import { reaperForget, reaperTrack } from "./reaper.js";
import { startChild, type Child } from "./spawner.js";
import { monotonicMs } from "../kernel/time.js";

export interface ProcessSpec {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Written to the child's stdin, which is then closed; null/undefined closes it at once. */
  stdin?: string | null;
  timeoutMs: number;
  /** Time between SIGTERM and SIGKILL of the process group. */
  killGraceMs: number;
  /** Cap on captured bytes, per stream. */
  maxOutputBytes: number;
  signal?: AbortSignal;
  /**
   * Opens one more pipe, the child's fd 3, and returns what the child writes there as
   * `status`. The sandbox asks bubblewrap to report on it whether the program started.
   */
  statusFd?: boolean;
  /**
   * On timeout and cancel, SIGTERM goes to every process of the group except its leader; the
   * SIGKILL after the grace period still reaches the whole group. For bubblewrap as the
   * leader: it dies of SIGTERM at once and takes its sandbox down with it, which would leave
   * the program no grace period to end cleanly. Linux only (reads /proc).
   */
  termSparesLeader?: boolean;
  /**
   * Sees each line of stdout as it arrives, without its line ending (a line longer than
   * maxOutputBytes is skipped). Returning true stops the program as a cancel does (SIGTERM to
   * the group, SIGKILL after the grace period) but without marking the result canceled: the
   * caller knows why it asked. Not called again after that, nor when it throws.
   */
  onStdoutLine?: (line: string) => boolean | void;
  /** Where the child's process group is kept while it runs; the shared default set if absent. */
  groups?: ProcessGroups;
  /**
   * A run's limits (see limits.ts): watched while it runs, past one it is killed and
   * `limitError` says which. The working directory is the work dir whose growth counts.
   */
  limits?: RunLimits | null;
  /**
   * The per-file cap must be one the run cannot raise (a sandboxed run): set as a hard limit
   * by a prlimit wrapper, rather than inherited from the server as a soft one.
   */
  hardFileCap?: boolean;
}

export interface ProcessResult {
  exitCode: number | null;
  signal: string | null;
  /** The head of stdout, up to maxOutputBytes. */
  stdout: string;
  /** The tail of stderr, up to maxOutputBytes: the error is usually at the end. */
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  canceled: boolean;
  /** Why the program could not be started at all (missing binary, not executable, bad cwd). */
  spawnError: string | null;
  durationMs: number;
  /** What the child wrote to fd 3 (the first 64 KiB), when `statusFd` asked for it. */
  status?: string;
  /** The limit the run passed, in words ("the run used more than 64 MB of memory (max_memory_mb)"), when it was stopped for it. */
  limitError?: string | null;
}

/**
 * How long to wait for stdio to close once the leader has exited. A grandchild that left the
 * group (setsid) can hold a pipe open forever; we must not wait on it.
 */
const DRAIN_MS = 500;
/** setTimeout fires at once for anything larger, which would kill every long run immediately. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Every set that holds a live group, for the process-exit hook. */
const withLiveGroups = new Set<ProcessGroups>();
let exitHookInstalled = false;

/**
 * The process groups (ids = leader pids) of the children one owner started and that still
 * run: one set per App, so that closing one App kills its own agents and no other's. Whatever
 * set they are in, every live group is killed when this process exits, however it ends, so no
 * agent outlives the server.
 */
export class ProcessGroups {
  private readonly live = new Set<number>();

  get size(): number {
    return this.live.size;
  }

  /** `runId`: the run's AGENT_CRON_RUN_ID, so that the reaper can find what left the group too. */
  add(pgid: number, runId?: string): void {
    this.live.add(pgid);
    if (runId) reaperTrack(pgid, runId);
    withLiveGroups.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once("exit", () => killAllProcessGroups("SIGKILL"));
    }
  }

  delete(pgid: number): void {
    if (this.live.has(pgid)) reaperForget(pgid);
    this.live.delete(pgid);
    if (this.live.size === 0) withLiveGroups.delete(this);
  }

  ids(): IterableIterator<number> {
    return this.live.values();
  }

  /** Signals every live group of this set, synchronously; returns how many there were. */
  killAll(sig: NodeJS.Signals = "SIGKILL"): number {
    for (const pgid of this.live) signalGroup(pgid, sig);
    return this.live.size;
  }
}

/** The set used when a caller names none (the doctor's checks, executors built without one). */
export const defaultProcessGroups = new ProcessGroups();

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  // Most signals go to a group already gone (its leader has exited): process.kill then throws,
  // and an error's stack trace costs more than the kill. The message is never read.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: the group is already gone.
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Every process of a group but its leader, from /proc. */
function signalGroupButLeader(pgid: number, sig: NodeJS.Signals): void {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return signalGroup(pgid, sig);
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === pgid) continue;
    try {
      const stat = readProcFile(`/proc/${pid}/stat`);
      // After "(comm)": state, ppid, pgrp.
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid) process.kill(pid, sig);
    } catch {
      // Gone meanwhile.
    }
  }
}

/**
 * Signals every live child process group of every set, synchronously. Hooked to process exit;
 * an App at shutdown kills only its own set (ProcessGroups.killAll).
 */
export function killAllProcessGroups(sig: NodeJS.Signals = "SIGKILL"): number {
  let n = 0;
  for (const groups of [...withLiveGroups]) n += groups.killAll(sig);
  return n;
}

/** The ids of every live group (each a run's process group and session: runs start detached). */
export function liveProcessGroups(): Set<number> {
  const all = new Set<number>();
  for (const groups of withLiveGroups) for (const pgid of groups.ids()) all.add(pgid);
  return all;
}

/** Live groups across every set. */
export function liveProcessGroupCount(): number {
  let n = 0;
  for (const groups of withLiveGroups) n += groups.size;
  return n;
}

/** Keeps the first `max` bytes of a stream. */
class HeadBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    const room = this.max - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.size += part.length;
  }
  text(): string {
    const buf = Buffer.concat(this.chunks);
    // A streaming decode holds back an incomplete trailing character instead of emitting U+FFFD.
    return this.truncated ? new TextDecoder().decode(buf, { stream: true }) : buf.toString("utf8");
  }
}

/** Keeps the last `max` bytes of a stream. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0].length >= this.max) {
      this.size -= this.chunks.shift()!.length;
      this.truncated = true;
    }
  }
  text(): string {
    let buf = Buffer.concat(this.chunks);
    if (buf.length > this.max) {
      buf = buf.subarray(buf.length - this.max);
      this.truncated = true;
    }
    if (this.truncated) {
      // Drop continuation bytes of a character whose start was cut off.
      let start = 0;
      while (start < Math.min(3, buf.length) && (buf[start] & 0xc0) === 0x80) start++;
      buf = buf.subarray(start);
    }
    return buf.toString("utf8");
  }
}

/** Cuts a byte stream into lines of text, for `onStdoutLine`; drops lines longer than `max` chars. */
class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private skipping = false;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): string[] {
    const text = this.decoder.write(chunk);
    const lines: string[] = [];
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const line = this.partial + text.slice(start, nl);
      if (!this.skipping) lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
      this.partial = "";
      this.skipping = false;
      start = nl + 1;
    }
    if (!this.skipping) this.partial += text.slice(start);
    if (this.partial.length > this.max) {
      this.partial = "";
      this.skipping = true;
    }
    return lines;
  }
  /** The last line, when the stream ended without a line ending. */
  end(): string[] {
    const rest = this.partial + this.decoder.end();
    this.partial = "";
    return rest && !this.skipping ? [rest] : [];
  }
}

/** Looks a program up the way spawn will: a name with a slash is a path, a bare name is searched on PATH. */
export function resolveProgram(bin: string, PATH: string | undefined = process.env.PATH, cwd = process.cwd()): string | null {
  if (!bin) return null;
  if (bin.includes("/") || bin.includes(path.sep)) {
    const file = path.resolve(cwd, bin);
    return isExecutableFile(file) ? file : null;
  }
  // An empty PATH entry means "the current directory" to execvp; we do not look there on purpose.
  for (const dir of (PATH ?? "").split(path.delimiter).filter(Boolean)) {
    const file = path.resolve(cwd, dir, bin);
    if (isExecutableFile(file)) return file;
  }
  return null;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function describeSpawnError(err: NodeJS.ErrnoException, program: string, cwd: string): string {
  if (err.code === "ENOENT" && !existsSync(cwd)) return `working directory ${cwd} does not exist`;
  if (err.code === "ENOENT") return `program "${program}" was not found (ENOENT)`;
  if (err.code === "EACCES") return `program "${program}" is not executable (EACCES)`;
  return `cannot start "${program}": ${err.message}`;
}

/**
 * Runs one program in its own process group, with a timeout, cancellation and capped output.
 * Never rejects: every failure is reported in the result. On timeout or abort the whole group
 * gets SIGTERM, then SIGKILL after the grace period; when the leader is done, whatever is left
 * of its group is killed too, so nothing the run started outlives it.
 */
export function runProcess(spec: ProcessSpec): Promise<ProcessResult> {
  return startProcess(spec);
}

/** prlimit, looked up once: the kernel's per-file cap of a run (see limits.ts). */
let prlimitProgram: string | null | undefined;

/**
 * The argv to spawn: the program under its rlimits when it has limits, prlimit is installed
 * and the program is there (a missing program must fail in spawn, with its own message).
 */
function withRlimits(spec: ProcessSpec): string[] {
  if (!spec.limits || process.platform !== "linux") return spec.argv;
  prlimitProgram ??= resolveProgram("prlimit", "/usr/bin:/bin:/usr/sbin:/sbin");
  if (!prlimitProgram) return spec.argv;
  if (!spec.hardFileCap && inheritsFileCap(spec.limits.diskMb * 1024 * 1024, prlimitProgram)) return spec.argv;
  if (!existsSync(spec.cwd) || !resolveProgram(spec.argv[0] ?? "", spec.env.PATH, spec.cwd)) return spec.argv;
  return [...rlimitPrefix(spec.limits, prlimitProgram), ...spec.argv];
}

/**
 * The server's files (outputs are capped, logs compacted, jobs.json ~1 KB a job) stay far
 * below a per-file cap this large, so the server may carry it itself.
 */
const MIN_INHERITED_FILE_CAP = 1024 * 1024 * 1024;
/** The soft RLIMIT_FSIZE this server set on itself for its runs to inherit; null when it did not. */
let inheritedFileCap: number | null | undefined;

/**
 * Whether a run without a sandbox gets its per-file cap by inheritance: the server sets its
 * own soft RLIMIT_FSIZE to the cap once (one prlimit, at the first run) and every child
 * inherits it, instead of a prlimit exec in front of every run (issue 27: a second exec per
 * run, and a PATH search for the program, at 1,000 runs a second). Only the first cap asked
 * for, and only one of at least MIN_INHERITED_FILE_CAP; the hard limit stays as it was, so
 * a run could raise its own soft one, which a run without a sandbox could get round anyway
 * (it runs as the server's user); a sandboxed run keeps the wrapper's hard limit. A write of
 * the server's own past the cap gets EFBIG, as a full disk would, rather than SIGXFSZ.
 */
function inheritsFileCap(cap: number, prlimit: string): boolean {
  if (inheritedFileCap === undefined) {
    inheritedFileCap = null;
    if (cap >= MIN_INHERITED_FILE_CAP) {
      try {
        execFileSync(prlimit, ["--pid", String(process.pid), `--fsize=${cap}:`], { stdio: "ignore", timeout: 10_000 });
        // Handled here, so the server's write fails instead; a child's handlers reset at exec.
        process.on("SIGXFSZ", () => {});
        inheritedFileCap = cap;
      } catch {
        // Not allowed here (a container without prlimit64): each run gets the wrapper.
      }
    }
  }
  return inheritedFileCap === cap;
}

function startProcess(spec: ProcessSpec): Promise<ProcessResult> {
  const started = monotonicMs();
  const stdout = new HeadBuffer(spec.maxOutputBytes);
  const stderr = new TailBuffer(spec.maxOutputBytes);
  const program = spec.argv[0] ?? "";
  const status = spec.statusFd ? new HeadBuffer(64 * 1024) : null;
  const groups = spec.groups ?? defaultProcessGroups;

  return new Promise<ProcessResult>((resolve) => {
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let timedOut = false;
    let canceled = false;
    let spawnError: string | null = null;
    let done = false;
    let terminating = false;
    const timers: NodeJS.Timeout[] = [];
    let child: Child | undefined;
    let pgid: number | undefined;
    let limitError: string | null = null;
    let stopWatch: (() => { reason: string | null; escaped: boolean }) | null = null;

    const finish = () => {
      if (done) return;
      done = true;
      timers.forEach(clearTimeout);
      spec.signal?.removeEventListener("abort", onAbort);
      if (pgid !== undefined) {
        signalGroup(pgid, "SIGKILL");
        groups.delete(pgid);
      }
      const last = stopWatch?.();
      limitError ??= last?.reason ?? null;
      if (!limitError && spec.limits && exitCode !== 0 && hitFileCap(exitSignal, stderr.text())) limitError = limitMessages.file(spec.limits);
      // What left the process group (setsid) outlives the group kill: it carries the run's id.
      const runId = spec.env.AGENT_CRON_RUN_ID;
      if (runId && (timedOut || canceled || limitError || last?.escaped)) killOrphanedRunsSoon(runId);
      for (const s of child?.stdio ?? []) s?.destroy();
      resolve({
        exitCode,
        signal: exitSignal,
        stdout: stdout.text(),
        stderr: stderr.text(),
        stdoutTruncated: stdout.truncated,
        stderrTruncated: stderr.truncated,
        timedOut,
        canceled,
        spawnError,
        durationMs: Math.round(monotonicMs() - started),
        ...(status ? { status: status.text() } : {}),
        ...(spec.limits ? { limitError } : {}),
      });
    };

    const terminate = () => {
      if (terminating || pgid === undefined) return;
      terminating = true;
      if (spec.termSparesLeader) signalGroupButLeader(pgid, "SIGTERM");
      else signalGroup(pgid, "SIGTERM");
      timers.push(setTimeout(() => signalGroup(pgid!, "SIGKILL"), spec.killGraceMs));
    };

    function onAbort() {
      if (done || timedOut || exitCode !== null || exitSignal !== null) return;
      canceled = true;
      terminate();
    }

    if (!program) {
      spawnError = "no program to run (empty command)";
      return finish();
    }
    if (spec.signal?.aborted) {
      canceled = true;
      return finish();
    }

    try {
      const argv = withRlimits(spec);
      // Off the main thread when many start (see spawner.ts): the wait for the exec is a worker's.
      child = startChild({ file: argv[0], args: argv.slice(1), cwd: spec.cwd, env: spec.env, stdin: spec.stdin ?? null, extraFd: status !== null });
    } catch (err) {
      // Synchronous failures: bad arguments such as a NUL byte in argv or env.
      spawnError = describeSpawnError(err as NodeJS.ErrnoException, program, spec.cwd);
      return finish();
    }

    child.on("error", (err: NodeJS.ErrnoException) => {
      if (pgid === undefined) {
        spawnError = describeSpawnError(err, program, spec.cwd);
        finish();
      }
    });
    child.once("spawn", () => {
      pgid = child!.pid!;
      groups.add(pgid, spec.env.AGENT_CRON_RUN_ID);
      // The timeout counts from here, as it did when spawn returned only once the child had exec'd.
      timers.push(
        setTimeout(
          () => {
            if (exitCode !== null || exitSignal !== null) return;
            timedOut = true;
            terminate();
          },
          Math.min(spec.timeoutMs, MAX_TIMER_MS),
        ),
      );
      // Canceled while the worker was starting it.
      if (canceled) terminate();
      if (!spec.limits) return;
      stopWatch = watchLimits({
        pgid,
        workDir: spec.cwd,
        limits: spec.limits,
        onExceeded: (reason) => {
          if (done || limitError) return;
          limitError = reason;
          // No grace: a run past its memory or process limit is a danger to the host now.
          signalGroup(pgid!, "SIGKILL");
        },
      });
    });

    const lines = spec.onStdoutLine ? new LineSplitter(spec.maxOutputBytes) : null;
    let watching = lines !== null;
    const watch = (batch: string[]) => {
      for (const line of batch) {
        if (!watching) return;
        let stop: boolean | void;
        try {
          stop = spec.onStdoutLine!(line);
        } catch {
          stop = false;
          watching = false;
        }
        if (stop === true) {
          watching = false;
          terminate();
        }
      }
    };
    child.stdio[1]!.on("data", (c: Buffer) => {
      stdout.push(c);
      if (watching) watch(lines!.push(c));
    });
    if (lines) child.stdio[1]!.on("end", () => watching && watch(lines.end()));
    child.stdio[2]!.on("data", (c: Buffer) => stderr.push(c));
    if (status) child.stdio[3]!.on("data", (c: Buffer) => status.push(c));

    child.on("exit", (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      timers.push(setTimeout(finish, DRAIN_MS));
    });
    child.on("close", finish);

    spec.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
