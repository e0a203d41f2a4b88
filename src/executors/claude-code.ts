import { randomUUID } from "node:crypto";
import type { ClaudeCodeExecutorConfig } from "../config.js";
import type { Usage } from "../core/jobs.js";
import {
  cutNote,
  exitError,
  jsonLines,
  num,
  rawOutput,
  runAgentProcess,
  stderrTail,
  unfinishedResult,
  type ProcessExecutorOptions,
} from "./cli-agent.js";
import type { ExecutionRequest, ExecutionResult, Executor } from "./types.js";

/** The `type: "result"` object that `claude -p` prints last, in json and stream-json output alike. */
interface ClaudeResult {
  subtype?: string;
  is_error?: boolean;
  result?: string;
  structured_output?: unknown;
  errors?: unknown[];
  session_id?: string;
  num_turns?: number;
  total_cost_usd?: number;
  usage?: Record<string, unknown>;
  modelUsage?: Record<string, Record<string, unknown>>;
}

/**
 * Session ids this process has already handed to `--session-id`. The CLI refuses an id that
 * exists ("Session ID … is already in use"), so a retried attempt of the same run needs a new
 * one. Bounded: an id only matters for the few retries of its run.
 */
const createdSessions = new Set<string>();
const MAX_REMEMBERED_SESSIONS = 10_000;

function claimSessionId(requested: string): string {
  const id = createdSessions.has(requested) ? randomUUID() : requested;
  if (createdSessions.size >= MAX_REMEMBERED_SESSIONS) createdSessions.clear();
  createdSessions.add(id);
  return id;
}

/** Claude Code headless: `claude -p`, prompt on stdin, one JSON result. */
export class ClaudeCodeExecutor implements Executor {
  readonly type = "claude-code";
  readonly program: string;

  constructor(
    readonly name: string,
    private readonly cfg: ClaudeCodeExecutorConfig,
    private readonly opts: ProcessExecutorOptions,
  ) {
    this.program = cfg.bin;
  }

  /** The argv of one attempt; `sessionId` is the session to create, or to resume when `req.resume`. */
  buildArgv(req: ExecutionRequest, sessionId: string): string[] {
    const { cfg } = this;
    const argv = [cfg.bin, "-p", "--output-format", cfg.output_format];
    // The CLI refuses stream-json in print mode without --verbose.
    if (cfg.output_format === "stream-json") argv.push("--verbose");
    argv.push(req.resume ? "--resume" : "--session-id", sessionId);
    if (cfg.model) argv.push("--model", cfg.model);
    if (cfg.permission_mode) argv.push("--permission-mode", cfg.permission_mode);
    // These flags are variadic: one comma-joined value cannot swallow the arguments after it.
    if (cfg.allowed_tools?.length) argv.push("--allowedTools", cfg.allowed_tools.join(","));
    if (cfg.disallowed_tools?.length) argv.push("--disallowedTools", cfg.disallowed_tools.join(","));
    if (cfg.append_system_prompt) argv.push("--append-system-prompt", cfg.append_system_prompt);
    if (cfg.max_turns !== undefined) argv.push("--max-turns", String(cfg.max_turns));
    if (cfg.mcp_config) argv.push("--mcp-config", cfg.mcp_config);
    if (req.outputFormat === "structured") argv.push("--json-schema", JSON.stringify(req.outputSchema ?? {}));
    if (req.maxCostUsd !== null) argv.push("--max-budget-usd", String(req.maxCostUsd));
    return [...argv, ...cfg.args];
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const sessionId = req.resume ? req.sessionId : claimSessionId(req.sessionId);
    const proc = await runAgentProcess(this.buildArgv(req, sessionId), req, {
      ...this.opts,
      type: "claude-code",
      executorEnv: this.cfg.env,
      stdin: req.prompt,
    });
    const unfinished = unfinishedResult(proc, req, {
      executorName: this.name,
      program: this.program,
      configKey: `executors.${this.name}.bin`,
    });
    if (unfinished) return { ...unfinished, sessionId };

    const result = jsonLines(proc.stdout).filter((line) => line.type === "result").at(-1) as ClaudeResult | undefined;
    const base = {
      exitCode: proc.exitCode,
      output: "",
      outputTruncated: proc.stdoutTruncated,
      usage: result ? claudeUsage(result) : null,
      sessionId: result?.session_id ?? sessionId,
      raw: rawOutput(proc),
    };
    if (!result) {
      const why = proc.exitCode === 0 ? `"${this.program}" printed no result JSON${cutNote(proc, req)}` : exitError(this.program, proc);
      return { ...base, status: "failed", error: proc.exitCode === 0 && proc.stderr.trim() ? `${why}: ${stderrTail(proc.stderr)}` : why };
    }
    if (proc.exitCode !== 0 || result.subtype !== "success" || result.is_error !== false) {
      return { ...base, status: "failed", error: describeFailure(result, proc.exitCode, proc.stderr) };
    }
    if (req.outputFormat === "structured") {
      if (result.structured_output === undefined || result.structured_output === null) {
        const text = (result.result ?? "").trim();
        return {
          ...base,
          status: "failed",
          error: `Claude Code gave no structured_output (the model did not call its StructuredOutput tool)${text ? `; it answered: ${text.slice(0, 300)}` : ""}.`,
        };
      }
      return { ...base, status: "completed", error: null, output: JSON.stringify(result.structured_output), structured: result.structured_output };
    }
    return { ...base, status: "completed", error: null, output: result.result ?? "" };
  }
}

/** One sentence from the result JSON; stderr only when the JSON says nothing useful. */
function describeFailure(result: ClaudeResult, exitCode: number | null, stderr: string): string {
  const detail =
    (result.errors ?? []).map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join("; ") ||
    (typeof result.result === "string" ? result.result.trim() : "") ||
    stderrTail(stderr);
  const turns = typeof result.num_turns === "number" ? `, after ${result.num_turns} turn${result.num_turns === 1 ? "" : "s"}` : "";
  const kind = result.subtype === "success" ? "an error" : (result.subtype ?? "no subtype");
  return `Claude Code reported ${kind} (exit code ${exitCode}${turns})${detail ? `: ${detail}` : ""}`;
}

/**
 * Input tokens include the cache reads and writes, which the API counts apart: they are input
 * the run paid for. Some error results carry zero `usage` but a filled `modelUsage`.
 */
function claudeUsage(result: ClaudeResult): Usage {
  const u = result.usage ?? {};
  let input = (num(u.input_tokens) ?? 0) + (num(u.cache_creation_input_tokens) ?? 0) + (num(u.cache_read_input_tokens) ?? 0);
  let output = num(u.output_tokens) ?? 0;
  if (input === 0 && output === 0) {
    for (const m of Object.values(result.modelUsage ?? {})) {
      input += (num(m.inputTokens) ?? 0) + (num(m.cacheReadInputTokens) ?? 0) + (num(m.cacheCreationInputTokens) ?? 0);
      output += num(m.outputTokens) ?? 0;
    }
  }
  return { input_tokens: input, output_tokens: output, cost_usd: num(result.total_cost_usd) };
}
