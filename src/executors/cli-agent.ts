import { AUTH_VARS, buildChildEnv } from "./env.js";
import type { RunLimits } from "./limits.js";
import { resolveProgram, runProcess, type ProcessGroups, type ProcessResult, type ProcessSpec } from "./process.js";
import { runSandboxed, type SandboxSettings } from "./sandbox.js";
import type { CheckProcessResult, ExecutionRequest, ExecutionResult } from "../core/ports.js";

/** What every executor that starts a program gets from the server. */
export interface ProcessExecutorOptions {
  serverEnv: NodeJS.ProcessEnv;
  envAllow: string[];
  killGraceMs: number;
  /** Unless the executor's config says `"sandbox": "none"`: attempts start under bubblewrap ("auto": when it works here). */
  sandbox?: SandboxSettings | null;
  /** Memory, processes and work-dir bytes of each attempt (limits.ts); none when absent. */
  limits?: RunLimits | null;
  /** Where the attempts' process groups are kept; the shared default set if absent. */
  processGroups?: ProcessGroups;
}

export { resolveProgram };

const STDERR_TAIL_CHARS = 500;

/** The end of stderr, where programs put the error that made them stop. */
export function stderrTail(stderr: string): string {
  const text = stderr.trim();
  return text.length > STDERR_TAIL_CHARS ? `…${text.slice(-STDERR_TAIL_CHARS)}` : text;
}

export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** One executor's program, as named in messages and config hints. */
export interface ProgramRef {
  executorName: string;
  program: string;
  /** The config key that chooses the program, e.g. `executors.claude.bin`. */
  configKey: string;
}

/** Starts one attempt of an agent program with the allow-listed environment of its executor type. */
export function runAgentProcess(
  argv: string[],
  req: ExecutionRequest,
  opts: ProcessExecutorOptions & {
    type: keyof typeof AUTH_VARS;
    executorEnv: Record<string, string>;
    stdin: string | null;
    /** Each stdout line as it streams; true stops the program early (see ProcessSpec). */
    onStdoutLine?: (line: string) => boolean | void;
  },
): Promise<AgentProcessResult> {
  const env = buildChildEnv({
    serverEnv: opts.serverEnv,
    envAllow: opts.envAllow,
    authVars: AUTH_VARS[opts.type],
    executorEnv: opts.executorEnv,
    runVars: { runId: req.runId, jobId: req.jobId, sessionId: req.sessionId, scheduledFor: req.scheduledFor },
  });
  const spec: ProcessSpec = {
    argv,
    cwd: req.workDir,
    env,
    stdin: opts.stdin,
    timeoutMs: req.timeoutMs,
    killGraceMs: opts.killGraceMs,
    maxOutputBytes: req.maxOutputBytes,
    signal: req.signal,
    ...(opts.onStdoutLine ? { onStdoutLine: opts.onStdoutLine } : {}),
    ...(opts.processGroups ? { groups: opts.processGroups } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  };
  // The one place where a program executor's attempt is put in its sandbox.
  if (opts.sandbox) {
    return runSandboxed(spec, opts.sandbox, { type: opts.type, scratchDir: req.scratchDir, serverEnv: opts.serverEnv, runTools: req.runTools?.sandbox }).then(
      (proc) => ({ ...proc, env }),
    );
  }
  return runProcess(spec).then((proc) => ({ ...proc, env, sandboxError: null }));
}

/** A finished attempt, with the environment it got and why its sandbox did not start, if it did not. */
export type AgentProcessResult = ProcessResult & { env: Record<string, string>; sandboxError: string | null };

/** Counts of tool names in the order first called. */
export function countTools(names: Iterable<string>): { name: string; count: number }[] | null {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return counts.size ? [...counts].map(([name, count]) => ({ name, count })) : null;
}

const versions = new Map<string, Promise<string | null>>();

/** A program's `--version` line, asked once per program and process (null when it does not answer in 5 s). */
export function programVersion(program: string, env: Record<string, string>): Promise<string | null> {
  let v = versions.get(program);
  if (!v) {
    v = import("node:child_process").then(
      ({ execFile }) =>
        new Promise<string | null>((resolve) => {
          execFile(program, ["--version"], { env, timeout: 5000, killSignal: "SIGKILL" }, (err, stdout) =>
            resolve(err ? null : stdout.trim().split("\n")[0].slice(0, 100) || null),
          );
        }),
    );
    versions.set(program, v);
  }
  return v;
}

export function rawOutput(proc: ProcessResult): string {
  return proc.stderr ? `${proc.stdout}\n--- stderr ---\n${proc.stderr}` : proc.stdout;
}

/**
 * The outcome of an attempt that never got to answer (it could not start, was canceled or
 * timed out), or null when the program ran to its end and its output needs reading.
 */
export function unfinishedResult(
  proc: ProcessResult & { env: Record<string, string>; sandboxError?: string | null },
  req: ExecutionRequest,
  ref: ProgramRef,
): ExecutionResult | null {
  // A run that did not finish keeps what it printed: its stdout is its output, shown beside the error.
  const base = { exitCode: proc.exitCode, signal: proc.signal, output: proc.stdout, outputTruncated: proc.stdoutTruncated, usage: null, raw: rawOutput(proc) };
  // Trying again cannot help: the sandbox fails the same way until the operator changes something.
  if (proc.sandboxError) return { ...base, status: "failed", permanent: true, error: `Executor "${ref.executorName}" could not start: ${proc.sandboxError}` };
  if (proc.limitError)
    return {
      ...base,
      status: "failed",
      error: `Stopped: ${proc.limitError}; the process group was killed. Raise the limit in the executor's config if the run needs more.`,
    };
  if (proc.spawnError) {
    const missing = resolveProgram(ref.program, proc.env.PATH, req.workDir) === null;
    const hint = missing ? ` Install it or set ${ref.configKey} in the config file.` : "";
    return {
      ...base,
      status: "failed",
      permanent: missing || /\((ENOENT|EACCES)\)/.test(proc.spawnError),
      error: `Executor "${ref.executorName}" could not start: ${proc.spawnError}.${hint}`,
    };
  }
  if (proc.canceled) return { ...base, status: "canceled", error: "Canceled; the process group was killed." };
  if (proc.timedOut) {
    return { ...base, status: "timed_out", error: `Timed out after ${seconds(req.timeoutMs)}; the process group was killed.` };
  }
  return null;
}

/** `"claude" exited with code 1: <stderr tail>`, for a program that ended without a usable answer. */
export function exitError(program: string, proc: ProcessResult): string {
  const how = proc.exitCode === null ? `was killed by ${proc.signal}` : `exited with code ${proc.exitCode}`;
  const tail = stderrTail(proc.stderr);
  return `"${program}" ${how}${tail ? `: ${tail}` : " and wrote nothing to stderr"}`;
}

/** Lines of stdout that are JSON objects, in order; agents mix in plain log lines at times. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const text = line.trim();
    if (!text.startsWith("{")) continue;
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === "object" && !Array.isArray(value)) out.push(value as Record<string, unknown>);
    } catch {
      // Not JSON after all: a log line that starts with a brace.
    }
  }
  return out;
}

export function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

export function cutNote(proc: ProcessResult, req: ExecutionRequest): string {
  return proc.stdoutTruncated ? ` (stdout was cut at ${req.maxOutputBytes} bytes; raise max_output_bytes)` : "";
}

/**
 * A gate check (config `checks`) of a run: in the run's work dir, under the executor's
 * sandbox when it has one, with the base environment (no agent credentials: a check needs none).
 */
export async function runCheckProcess(argv: string[], req: ExecutionRequest, opts: ProcessExecutorOptions): Promise<CheckProcessResult> {
  const proc = await runAgentProcess(argv, req, { ...opts, type: "command", executorEnv: {}, stdin: null });
  return {
    exitCode: proc.exitCode,
    signal: proc.signal,
    stdout: proc.stdout,
    stderrTail: stderrTail(proc.stderr),
    timedOut: proc.timedOut,
    canceled: proc.canceled,
    spawnError: proc.spawnError,
    sandboxError: proc.sandboxError,
  };
}
