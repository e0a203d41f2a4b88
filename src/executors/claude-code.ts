import { randomUUID } from "node:crypto";
import type { ClaudeCodeExecutorConfig } from "../config.js";
import type { Usage } from "../core/jobs.js";
import {
  cutNote,
  exitError,
  jsonLines,
  countTools,
  programVersion,
  num,
  rawOutput,
  runAgentProcess,
  runCheckProcess,
  stderrTail,
  unfinishedResult,
  type ProcessExecutorOptions,
} from "./cli-agent.js";
import type { CheckProcessResult, ExecutionRequest, ExecutionResult, Executor, RunToolsServer } from "../core/ports.js";

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
  /** The tool calls the CLI refused: `{ tool_name, tool_use_id, tool_input }` each (2.1.332). */
  permission_denials?: unknown[];
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

  runCheck(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult> {
    return runCheckProcess(argv, req, this.opts);
  }

  /** The argv of one attempt; `sessionId` is the session to create, or to resume when `req.resume`. */
  buildArgv(req: ExecutionRequest, sessionId: string): string[] {
    const { cfg } = this;
    // Required MCP servers are checked in the system/init event, which only stream-json prints.
    const format = requiredMcp(req).length ? "stream-json" : cfg.output_format;
    const argv = [cfg.bin, "-p", "--output-format", format];
    // The CLI refuses stream-json in print mode without --verbose.
    if (format === "stream-json") argv.push("--verbose");
    argv.push(req.resume ? "--resume" : "--session-id", sessionId);
    if (cfg.model) argv.push("--model", cfg.model);
    if (cfg.permission_mode) argv.push("--permission-mode", cfg.permission_mode);
    // These flags are variadic: one comma-joined value cannot swallow the arguments after it.
    // The run's own tools are allowed without asking: `-p` has no one to ask.
    const allowed = [...(cfg.allowed_tools ?? []), ...(req.runTools ? [`mcp__${req.runTools.name}`] : [])];
    if (allowed.length) argv.push("--allowedTools", allowed.join(","));
    if (cfg.disallowed_tools?.length) argv.push("--disallowedTools", cfg.disallowed_tools.join(","));
    if (cfg.append_system_prompt) argv.push("--append-system-prompt", cfg.append_system_prompt);
    if (cfg.max_turns !== undefined) argv.push("--max-turns", String(cfg.max_turns));
    // --mcp-config takes several configs; the run's tools come as one more, inline.
    const mcp = [...(cfg.mcp_config ? [cfg.mcp_config] : []), ...(req.runTools ? [runToolsMcpConfig(req.runTools)] : [])];
    if (mcp.length) argv.push("--mcp-config", ...mcp);
    if (req.outputFormat === "structured") argv.push("--json-schema", JSON.stringify(req.outputSchema ?? {}));
    if (req.maxCostUsd !== null) argv.push("--max-budget-usd", String(req.maxCostUsd));
    return [...argv, ...cfg.args];
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const sessionId = req.resume ? req.sessionId : claimSessionId(req.sessionId);
    const required = requiredMcp(req);
    // The init event comes first, once every configured server has connected or failed (a
    // server that hangs is "failed" after about 30 s); the program is stopped as soon as it
    // shows a required server not connected, before it spends anything on the model.
    const init = { seen: false, problem: null as string | null };
    // stream-json prints the whole transcript: its result line can lie past the captured head
    // (max_output_bytes), so it is kept as it streams by.
    let lastResult: ClaudeResult | undefined;
    const streaming = this.cfg.output_format === "stream-json" || required.length > 0;
    // Evidence from the stream: the tools the agent called and the version its init reports.
    const tools: string[] = [];
    let version: string | null = null;
    const onStdoutLine = (line: string): boolean => {
      if (line.includes('"tool_use"')) {
        const content = (jsonLines(line)[0]?.message as { content?: unknown } | undefined)?.content;
        if (Array.isArray(content)) for (const c of content) if (c?.type === "tool_use" && typeof c.name === "string") tools.push(c.name);
      }
      if (version === null && line.includes('"claude_code_version"')) {
        const v = jsonLines(line)[0]?.claude_code_version;
        if (typeof v === "string") version = v;
      }
      if (line.includes('"result"')) {
        const event = jsonLines(line)[0];
        if (event?.type === "result") lastResult = event as ClaudeResult;
      }
      if (init.seen || !required.length) return false;
      const event = jsonLines(line)[0];
      if (event?.type !== "system" || event.subtype !== "init") return false;
      init.seen = true;
      init.problem = mcpServerProblems(event.mcp_servers, required);
      return init.problem !== null;
    };
    const proc = await runAgentProcess(this.buildArgv(req, sessionId), req, {
      ...this.opts,
      type: "claude-code",
      executorEnv: this.cfg.env,
      stdin: req.prompt,
      ...(streaming ? { onStdoutLine } : {}),
    });
    if (init.problem !== null) {
      return {
        status: "failed",
        permanent: true,
        error: init.problem,
        exitCode: proc.exitCode,
        output: "",
        outputTruncated: proc.stdoutTruncated,
        usage: null,
        sessionId,
        raw: rawOutput(proc),
      };
    }
    const unfinished = unfinishedResult(proc, req, {
      executorName: this.name,
      program: this.program,
      configKey: `executors.${this.name}.bin`,
    });
    if (unfinished) return { ...unfinished, sessionId };

    const result =
      lastResult ??
      (jsonLines(proc.stdout)
        .filter((line) => line.type === "result")
        .at(-1) as ClaudeResult | undefined);
    const denials = result ? describeDenials(result.permission_denials) : [];
    const warnings = denials.length && req.onPermissionDenied === "warn" ? denialWarnings(denials) : null;
    const usage = result ? claudeUsage(result) : null;
    const base = {
      exitCode: proc.exitCode,
      signal: proc.signal,
      version: version ?? (await programVersion(this.program, proc.env)),
      toolCalls: countTools(tools),
      noTurn: result?.num_turns === 0 || usage?.output_tokens === 0,
      output: "",
      outputTruncated: proc.stdoutTruncated,
      usage,
      sessionId: result?.session_id ?? sessionId,
      raw: rawOutput(proc),
      ...(warnings ? { warnings } : {}),
    };
    if (!result) {
      const why = proc.exitCode === 0 ? `"${this.program}" printed no result JSON${cutNote(proc, req)}` : exitError(this.program, proc);
      return { ...base, status: "failed", error: proc.exitCode === 0 && proc.stderr.trim() ? `${why}: ${stderrTail(proc.stderr)}` : why };
    }
    // A denial is the likely cause of whatever else went wrong, and the next attempt would be
    // refused the same: it wins over the other failures, and is not retried.
    if (denials.length && !warnings) return { ...base, status: "failed", permanent: true, error: blockedError(denials) };
    if (proc.exitCode !== 0 || result.subtype !== "success" || result.is_error !== false) {
      return { ...base, status: "failed", error: describeFailure(result, proc.exitCode, proc.stderr) };
    }
    if (required.length && !init.seen) {
      return {
        ...base,
        status: "failed",
        permanent: true,
        error: `"${this.program}" printed no system/init event, so the required MCP servers (${required.join(", ")}) could not be checked`,
      };
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

/** The run tools' server as Claude Code's --mcp-config JSON takes one. */
function runToolsMcpConfig(server: RunToolsServer): string {
  return JSON.stringify({ mcpServers: { [server.name]: { type: "stdio", command: server.command, args: server.args, env: server.env } } });
}

/** The job's `requires_mcp`, without blanks and repeats. */
function requiredMcp(req: ExecutionRequest): string[] {
  return [...new Set((req.requiresMcp ?? []).filter((name) => typeof name === "string" && name !== ""))];
}

/**
 * What is wrong with the required servers in the init event's `mcp_servers`, or null when all
 * are connected: `MCP server "github" is failed; MCP server "jira" is not configured`.
 *
 * Claude Code 2.1.332 (`-p --output-format stream-json --verbose --mcp-config F`, offline)
 * prints `"mcp_servers":[{"name":"github","status":"failed","source":"dynamic"},
 * {"name":"fs","status":"connected","source":"dynamic"}]` for a server whose command does not
 * exist and one that answers; a server that never answers shows "failed" after about 30 s,
 * and the run goes on without them. Its schema also allows "needs-auth", "pending" and
 * "disabled"; no servers give `[]`.
 */
export function mcpServerProblems(servers: unknown, required: string[]): string | null {
  const status = new Map<string, string>();
  for (const server of Array.isArray(servers) ? servers : []) {
    const { name, status: s } = (server ?? {}) as { name?: unknown; status?: unknown };
    if (typeof name === "string" && !status.has(name)) status.set(name, typeof s === "string" && s ? s : "of unknown status");
  }
  const problems = required.flatMap((name) => {
    const s = status.get(name);
    if (s === "connected") return [];
    return [`MCP server ${JSON.stringify(name)} is ${s ?? "not configured"}`];
  });
  return problems.length ? problems.join("; ") : null;
}

const DENIAL_DETAIL_CHARS = 80;
const DENIALS_SHOWN = 10;

/** The input that says what a denied call wanted, by tool; other tools show their input as JSON. */
const SALIENT_INPUT: Record<string, string[]> = {
  Bash: ["command"],
  Write: ["file_path"],
  Edit: ["file_path"],
  MultiEdit: ["file_path"],
  Read: ["file_path"],
  NotebookEdit: ["notebook_path", "file_path"],
  WebFetch: ["url"],
};

/** One line of at most `max` characters: whitespace and control characters fold into spaces. */
function oneLine(text: string, max: number): string {
  const flat = text.replace(/[\s\u0000-\u001f\u007f]+/g, " ").trim();
  if (flat.length <= max) return flat;
  let cut = max - 1;
  // Do not split a surrogate pair.
  if (/[\ud800-\udbff]/.test(flat[cut - 1])) cut--;
  return `${flat.slice(0, cut)}…`;
}

/**
 * `permission_denials` as `Tool(detail)` each, in order, repeats dropped: `Bash(rm -rf build)`,
 * `Write(/etc/hosts)`, `mcp__github__create_issue({"title":"x"})`, or `Tool` alone.
 */
export function describeDenials(denials: unknown): string[] {
  if (!Array.isArray(denials)) return [];
  const out = new Set<string>();
  for (const denial of denials) {
    if (!denial || typeof denial !== "object") continue;
    const { tool_name, tool_input } = denial as { tool_name?: unknown; tool_input?: unknown };
    const tool = typeof tool_name === "string" && tool_name ? oneLine(tool_name, DENIAL_DETAIL_CHARS) : "unknown tool";
    const input = tool_input && typeof tool_input === "object" ? (tool_input as Record<string, unknown>) : {};
    const key = (SALIENT_INPUT[tool] ?? []).find((k) => typeof input[k] === "string" && input[k] !== "");
    let detail = key ? (input[key] as string) : Object.keys(input).length ? JSON.stringify(input) : "";
    detail = oneLine(detail, DENIAL_DETAIL_CHARS);
    out.add(detail ? `${tool}(${detail})` : tool);
  }
  return [...out];
}

/** `blocked: denied Bash(rm -rf build), Write(/etc/hosts)`; past ten, `… and 3 more`. */
function blockedError(denials: string[]): string {
  const shown = denials.slice(0, DENIALS_SHOWN).join(", ");
  const rest = denials.length - DENIALS_SHOWN;
  return `blocked: denied ${shown}${rest > 0 ? ` and ${rest} more` : ""}`;
}

/** `["denied Bash(rm -rf build)", "denied Write(/etc/hosts)"]`; past ten, `denied 3 more`. */
function denialWarnings(denials: string[]): string[] {
  const warnings = denials.slice(0, DENIALS_SHOWN).map((d) => `denied ${d}`);
  const rest = denials.length - DENIALS_SHOWN;
  return rest > 0 ? [...warnings, `denied ${rest} more`] : warnings;
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
