import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { isCodexSandboxMode, type CodexExecutorConfig, type CodexSandboxMode } from "../config.js";
import type { Usage } from "../core/jobs.js";
import {
  countTools,
  cutNote,
  exitError,
  programVersion,
  jsonLines,
  num,
  rawOutput,
  runAgentProcess,
  runCheckProcess,
  stderrTail,
  unfinishedResult,
  type ProcessExecutorOptions,
} from "./cli-agent.js";
import type { CheckProcessResult, ExecutionRequest, ExecutionResult, Executor } from "../core/ports.js";

const REQUIRED_MCP_FAILED = /required MCP servers? failed to initiali[sz]e: [\w-]+(?:, [\w-]+)*/;

/** What `codex exec --json` said, read from its JSONL events. */
interface CodexEvents {
  threadId: string | null;
  /** The last completed `agent_message`: the final answer. */
  answer: string | null;
  usage: Usage | null;
  /** A `turn.failed`, or an `error` that no later `turn.completed` recovered from. */
  failure: string | null;
  /** Tools the agent used: commands, file changes, MCP tools, web searches. */
  tools: string[];
}

/**
 * Codex prints an `error` event for a stream it then reconnects ("Reconnecting... 1/5") and
 * may still finish the turn, so an error is fatal only when no turn completes after it.
 *
 * Refused commands are not read here, because these events do not report them (Codex 0.169.0,
 * checked against a fake Responses API): `exec` always runs with approval policy "never", so
 * a command that asks for `require_escalated` is refused with only a stderr log line ("approval
 * policy is Never; reject command") and the tool output the model gets. A write the sandbox
 * blocks ("Read-only file system") is not shown as any `item.*` event at all. So SPEC §13's
 * permission-denial handling applies to claude-code only.
 */
export function readCodexEvents(stdout: string): CodexEvents {
  const events: CodexEvents = { threadId: null, answer: null, usage: null, failure: null, tools: [] };
  let pendingError: string | null = null;
  for (const ev of jsonLines(stdout)) {
    const item = ev.item as Record<string, unknown> | undefined;
    switch (ev.type) {
      case "thread.started":
        if (typeof ev.thread_id === "string") events.threadId = ev.thread_id;
        break;
      case "item.completed":
        if (item?.type === "agent_message" && typeof item.text === "string") events.answer = item.text;
        else if (item?.type === "mcp_tool_call") events.tools.push(`${String(item.server ?? "mcp")}.${String(item.tool ?? "tool")}`);
        else if (item?.type === "command_execution" || item?.type === "file_change" || item?.type === "web_search") events.tools.push(item.type);
        break;
      case "turn.completed": {
        const u = (ev.usage ?? {}) as Record<string, unknown>;
        // OpenAI counts cached input inside input_tokens and reasoning inside output_tokens.
        events.usage = { input_tokens: num(u.input_tokens), output_tokens: num(u.output_tokens), cost_usd: null };
        pendingError = null;
        break;
      }
      case "turn.failed":
        events.failure = errorText((ev.error as Record<string, unknown> | undefined)?.message) ?? "the turn failed";
        break;
      case "error":
        pendingError = errorText(ev.message) ?? "unknown error";
        break;
    }
  }
  events.failure ??= pendingError;
  return events;
}

/** Codex passes provider errors on as the raw JSON body; keep the message inside it. */
function errorText(message: unknown): string | null {
  if (typeof message !== "string" || !message.trim()) return null;
  try {
    const parsed = JSON.parse(message) as { error?: { message?: unknown } | string; message?: unknown };
    const inner = typeof parsed.error === "string" ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (typeof inner === "string" && inner) return inner;
  } catch {
    // Plain text, as most messages are.
  }
  return message.trim();
}

/** How long Codex waits for the run tools' server to start (its default, 10 s, is short on a loaded machine). */
const RUN_TOOLS_STARTUP_SECONDS = 30;

/** A TOML value of strings, numbers, booleans, arrays and tables, inline (JSON's string escapes are TOML's too). */
function tomlValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  if (v && typeof v === "object")
    return `{ ${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)} = ${tomlValue(x)}`)
      .join(", ")} }`;
  return JSON.stringify(v);
}

/** A `-c key=value` pair; codex parses the value as TOML and falls back to the raw string. */
function configArg([key, value]: [string, string | number | boolean]): string[] {
  return ["-c", `${key}=${String(value)}`];
}

/**
 * Codex's own sandbox (`codex exec -s`): `codex_sandbox`, or a codex mode given under
 * `sandbox` as configs did before the OS sandbox took that key; "workspace-write" otherwise.
 */
export function codexSandboxMode(cfg: Pick<CodexExecutorConfig, "sandbox" | "codex_sandbox">): CodexSandboxMode {
  return cfg.codex_sandbox ?? (isCodexSandboxMode(cfg.sandbox) ? cfg.sandbox : "workspace-write");
}

/** OpenAI Codex CLI: `codex exec --json`, prompt on stdin, JSONL events on stdout. */
export class CodexExecutor implements Executor {
  readonly type = "codex";
  readonly program: string;

  constructor(
    readonly name: string,
    private readonly cfg: CodexExecutorConfig,
    private readonly opts: ProcessExecutorOptions,
  ) {
    this.program = cfg.bin;
  }

  runCheck(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult> {
    return runCheckProcess(argv, req, this.opts);
  }

  /** The argv of one attempt; `schemaFile` holds the output schema of a structured job. */
  buildArgv(req: ExecutionRequest, schemaFile: string | null): string[] {
    const { cfg } = this;
    const argv = [cfg.bin, "exec", "--json", "--skip-git-repo-check", "-C", req.workDir, "-s", codexSandboxMode(cfg)];
    // An isolated run's session is never resumed: keep it off disk.
    if (req.session === "isolated") argv.push("--ephemeral");
    if (cfg.model) argv.push("-m", cfg.model);
    argv.push(...Object.entries(cfg.config).flatMap(configArg));
    // The run's own tools, as one more MCP server (a TOML inline table). `required`: Codex
    // otherwise sends the first turn without a server that is still starting (a loaded machine
    // takes a second to start node), and the model never sees the tools; now the turn waits for
    // it, and a server that cannot start fails the run saying so instead of running without.
    // "approve": `codex exec` has no one to ask, whatever the user's config.toml defaults to.
    if (req.runTools) {
      const { name, command, args, env } = req.runTools;
      const server = { command, args, env, required: true, startup_timeout_sec: RUN_TOOLS_STARTUP_SECONDS, default_tools_approval_mode: "approve" };
      argv.push("-c", `mcp_servers.${name}=${tomlValue(server)}`);
    }
    if (schemaFile) argv.push("--output-schema", schemaFile);
    argv.push(...cfg.args);
    // Codex picks its own thread id; a persistent job resumes the one its first run reported.
    // The options above belong to `exec` and must come before the subcommand.
    if (req.resume) argv.push("resume", req.sessionId);
    argv.push("-");
    return argv;
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const schemaFile = req.outputFormat === "structured" ? path.join(req.scratchDir, `.agent-cron-output-schema-${req.runId}.json`) : null;
    try {
      if (schemaFile) await writeFile(schemaFile, JSON.stringify(req.outputSchema ?? {}));
      return await this.run(req, schemaFile);
    } finally {
      if (schemaFile) await rm(schemaFile, { force: true });
    }
  }

  private async run(req: ExecutionRequest, schemaFile: string | null): Promise<ExecutionResult> {
    const proc = await runAgentProcess(this.buildArgv(req, schemaFile), req, {
      ...this.opts,
      type: "codex",
      executorEnv: this.cfg.env,
      stdin: req.prompt,
    });
    const unfinished = unfinishedResult(proc, req, {
      executorName: this.name,
      program: this.program,
      configKey: `executors.${this.name}.bin`,
    });
    if (unfinished) return unfinished;

    const events = readCodexEvents(proc.stdout);
    const base = {
      exitCode: proc.exitCode,
      signal: proc.signal,
      version: await programVersion(this.program, proc.env),
      toolCalls: countTools(events.tools),
      noTurn: events.usage?.output_tokens === 0,
      output: "",
      outputTruncated: proc.stdoutTruncated,
      usage: events.usage,
      sessionId: events.threadId ?? (req.resume ? req.sessionId : null),
      raw: rawOutput(proc),
    };
    if (events.failure) return { ...base, status: "failed", error: `Codex reported an error: ${events.failure}` };
    if (proc.exitCode !== 0) {
      // Codex names a required MCP server that failed to start early in stderr, before a long
      // transport error that the tail keeps: say it first.
      const mcp = REQUIRED_MCP_FAILED.exec(proc.stderr);
      return { ...base, status: "failed", error: `${mcp ? `${mcp[0]}; ` : ""}${exitError(this.program, proc)}` };
    }
    if (events.answer === null) {
      const tail = stderrTail(proc.stderr);
      return { ...base, status: "failed", error: `Codex finished without a final agent message${cutNote(proc, req)}${tail ? `: ${tail}` : "."}` };
    }
    return { ...base, status: "completed", error: null, output: events.answer };
  }
}
