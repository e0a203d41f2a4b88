import type { CommandExecutorConfig } from "../config.js";
import { cutNote, exitError, rawOutput, runAgentProcess, runCheckProcess, unfinishedResult, type ProcessExecutorOptions } from "./cli-agent.js";
import type { CheckProcessResult, ExecutionRequest, ExecutionResult, Executor } from "../core/ports.js";

export { resolveProgram } from "./cli-agent.js";
export type CommandExecutorOptions = ProcessExecutorOptions;

const PLACEHOLDER = /\{(prompt|work_dir|run_id|job_id|session_id)\}/g;

/**
 * Replaces placeholders inside each argv element in one pass, so that a prompt containing
 * "{work_dir}" or "$&" stays literal text.
 */
export function expandArgv(command: readonly string[], vars: Record<string, string>): string[] {
  return command.map((arg) => arg.replace(PLACEHOLDER, (_, name: string) => vars[name]));
}

/** Reads a dotted path such as `item.content.0.text`; numeric segments index arrays. */
function getPath(value: unknown, dotted: string): unknown {
  let cur = value;
  for (const key of dotted.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function asText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * Turns a successful run's stdout into the answer, per the executor's `output` setting:
 *
 * - `text`: the whole stdout, minus one trailing newline.
 * - `json`: stdout must be JSON; the answer is stdout, trimmed.
 * - `json:<path>`: stdout is one JSON document; the answer is the value at the dotted path
 *   (`json:response`, `json:choices.0.text`). Strings as they are, other values as JSON.
 * - `jsonl-last[:<filters>][@<path>]`: stdout is JSON Lines (lines that are not JSON are
 *   skipped). The answer comes from the last line whose object matches every filter:
 *   comma-separated `<dotted key>=<value>` pairs, compared as strings. `@<path>` picks the
 *   field to return; without it the whole matching line is the answer. Filter values cannot
 *   contain `,` or `@`. A filter without `=` asks only that the key be present. Examples:
 *   `jsonl-last:type=result@result`,
 *   `jsonl-last:type=item.completed,item.type=agent_message@item.text`, `jsonl-last:@text`.
 */
export function extractOutput(stdout: string, mode: string): { output: string } | { error: string } {
  if (mode === "text") return { output: stdout.replace(/\r?\n$/, "") };

  if (mode === "json" || mode.startsWith("json:")) {
    const parsed = parseJson(stdout);
    if (!parsed.ok) return { error: "stdout is not valid JSON" };
    if (mode === "json") return { output: stdout.trim() };
    const field = mode.slice("json:".length);
    const value = getPath(parsed.value, field);
    if (value === undefined || value === null) return { error: `the JSON on stdout has no field "${field}"` };
    return { output: asText(value) };
  }

  if (mode === "jsonl-last" || mode.startsWith("jsonl-last:")) {
    const spec = mode.slice("jsonl-last:".length);
    const at = spec.indexOf("@");
    const filterText = at < 0 ? spec : spec.slice(0, at);
    const field = at < 0 ? null : spec.slice(at + 1);
    const filters = filterText
      .split(",")
      .filter(Boolean)
      .map((f) => {
        const eq = f.indexOf("=");
        return eq < 0 ? { key: f, value: null } : { key: f.slice(0, eq), value: f.slice(eq + 1) };
      });
    const lines = stdout.split(/\r?\n/);
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i].trim();
      if (!line) continue;
      const parsed = parseJson(line);
      if (!parsed.ok) continue;
      const matches = filters.every(({ key, value }) => {
        const v = getPath(parsed.value, key);
        return value === null ? v !== undefined : v !== undefined && v !== null && asText(v) === value;
      });
      if (!matches) continue;
      if (field === null) return { output: line };
      const value = getPath(parsed.value, field);
      if (value === undefined || value === null) {
        return { error: `the last JSONL line matching "${filterText}" has no field "${field}"` };
      }
      return { output: asText(value) };
    }
    return { error: filterText ? `no JSONL line on stdout matches "${filterText}"` : "no JSONL line on stdout" };
  }

  return { error: `unknown output mode "${mode}"` };
}

/** Runs an operator-configured argv, no shell; exit 0 is success and stdout is the answer. */
export class CommandExecutor implements Executor {
  readonly type = "command";
  readonly program: string;

  constructor(
    readonly name: string,
    private readonly cfg: CommandExecutorConfig,
    private readonly opts: CommandExecutorOptions,
  ) {
    this.program = cfg.command[0];
  }

  runCheck(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult> {
    return runCheckProcess(argv, req, this.opts);
  }

  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    const argv = expandArgv(this.cfg.command, {
      prompt: req.prompt,
      work_dir: req.workDir,
      run_id: req.runId,
      job_id: req.jobId,
      session_id: req.sessionId,
    });
    const promptInArgv = this.cfg.command.some((arg) => arg.includes("{prompt}"));
    const proc = await runAgentProcess(argv, req, {
      ...this.opts,
      type: "command",
      executorEnv: this.cfg.env,
      stdin: promptInArgv ? null : req.prompt,
    });
    const unfinished = unfinishedResult(proc, req, {
      executorName: this.name,
      program: this.program,
      configKey: `executors.${this.name}.command`,
    });
    if (unfinished) return unfinished;

    const base = { exitCode: proc.exitCode, signal: proc.signal, output: "", outputTruncated: proc.stdoutTruncated, usage: null, raw: rawOutput(proc) };
    // A failed run keeps what it printed: its stdout is shown beside the error (stderr's tail).
    if (proc.exitCode !== 0) return { ...base, output: proc.stdout, status: "failed", error: exitError(this.program, proc) };
    const extracted = extractOutput(proc.stdout, this.cfg.output);
    if ("error" in extracted) {
      return { ...base, status: "failed", error: `Cannot read the answer (output "${this.cfg.output}"): ${extracted.error}${cutNote(proc, req)}.` };
    }
    return { ...base, status: "completed", error: null, output: extracted.output };
  }
}
