import type { Usage } from "../core/jobs.js";
import type { RunToolsServer } from "../core/ports.js";

/** Everything one attempt of a run needs; built by the dispatcher, read by an executor. */
export interface ExecutionRequest {
  runId: string;
  jobId: string;
  /** The agent session for this attempt: fresh per run (isolated) or the job's own (persistent). */
  sessionId: string;
  /** True when `sessionId` already exists and must be resumed (persistent job, not its first run). */
  resume: boolean;
  /**
   * The job's session mode. Optional: without it an executor assumes the session may be
   * resumed later and keeps it (codex runs `--ephemeral` only when this says "isolated").
   */
  session?: "isolated" | "persistent";
  /** ISO time of the occurrence, or "" for manual runs. */
  scheduledFor: string;
  prompt: string;
  /** Absolute, link-resolved, existing directory. */
  workDir: string;
  timeoutMs: number;
  outputFormat: "text" | "json" | "structured";
  outputSchema: Record<string, unknown> | null;
  maxCostUsd: number | null;
  /** Aborted on cancel, `replace` and shutdown; the executor kills its process group at once. */
  signal: AbortSignal;
  /** Where the executor may keep files for this attempt (schemas, raw logs); exists. */
  scratchDir: string;
  /** Cap on captured stdout/stderr bytes each. */
  maxOutputBytes: number;
  /**
   * claude-code: a result that lists permission_denials fails the run (`fail`), or completes
   * with warnings (`warn`). Optional: `fail` when absent.
   */
  onPermissionDenied?: "fail" | "warn";
  /** claude-code: MCP servers that must show `connected` in the init event, or the run fails at once. */
  requiresMcp?: string[];
  /** claude-code, codex: the run's own tools server (agent-cron run-tools), added to the agent's MCP configuration. */
  runTools?: RunToolsServer | null;
}

export interface ExecutionResult {
  /** completed: success. failed / timed_out: retried by the dispatcher. canceled: never retried. */
  status: "completed" | "failed" | "timed_out" | "canceled";
  exitCode: number | null;
  /** One readable sentence (plus the tail of stderr where it helps); null on success. */
  error: string | null;
  /** The agent's answer as text (for structured answers, their JSON text). */
  output: string;
  /** An already-parsed structured answer (claude-code `structured_output`), when the agent gave one. */
  structured?: unknown;
  outputTruncated: boolean;
  usage: Usage | null;
  /** True when trying again cannot help (the program is missing): the run is not retried. */
  permanent?: boolean;
  /** The session the agent reports it used, when it reports one. */
  sessionId?: string | null;
  /** Raw stdout/stderr as captured, kept beside the output for debugging. */
  raw?: string;
  /** What went wrong without failing the run (denied permissions under `warn`). */
  warnings?: string[];
  /** The agent program's version, as it reports it (its init event, or `--version`). */
  version?: string | null;
  /** The signal that ended the process, when one did. */
  signal?: string | null;
  /** Tools the agent called, from its event stream, in the order first called. */
  toolCalls?: { name: string; count: number }[] | null;
  /** Output tokens or turns were reported as none: the agent did nothing (an empty run). */
  noTurn?: boolean;
}

export interface Executor {
  readonly type: string;
  execute(req: ExecutionRequest): Promise<ExecutionResult>;
  /** The program this executor starts, for `doctor` and `add_cron` warnings; null when none. */
  readonly program: string | null;
  /** Why its runs go without the sandbox they would have by default ("sandbox": "auto"), or null. */
  sandboxWarning?: () => Promise<string | null>;
  /** Runs a run's gate check as this executor runs its program (its sandbox, the base environment). */
  runCheck?(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult>;
}

/** How a gate check's program ended (SPEC §21): its exit code decides the occurrence. */
export interface CheckProcessResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  /** The end of stderr, where a failing check says why. */
  stderrTail: string;
  timedOut: boolean;
  canceled: boolean;
  spawnError: string | null;
  sandboxError: string | null;
}
