import type { Config, ExecutorConfig } from "../config.js";
import { ClaudeCodeExecutor } from "./claude-code.js";
import { CodexExecutor } from "./codex.js";
import { CommandExecutor } from "./command.js";
import { OpenAIExecutor } from "./openai.js";
import type { ProcessGroups } from "./process.js";
import { runLimits } from "./limits.js";
import { autoSandboxWarning, sandboxSettings, type SandboxSettings } from "./sandbox.js";
import type { Executor } from "../core/ports.js";

export interface ExecutorContext {
  serverEnv: NodeJS.ProcessEnv;
  killGraceMs: number;
  /**
   * Absolute paths that a sandboxed run (`"sandbox": "bwrap"`) must not see: the data dir,
   * the config file, the root of the default work dirs. Directories become empty, files unreadable;
   * paths that do not exist are skipped. The run's own work dir stays writable even inside one.
   */
  hiddenPaths?: string[];
  /** The bubblewrap program, a name looked up on serverEnv's PATH or a path; default "bwrap". */
  bwrapProgram?: string;
  /** Where the agents' process groups are kept (one set per App); the shared default set if absent. */
  processGroups?: ProcessGroups;
}

/** Builds every executor the operator's config defines; tool callers only pick one by name. */
export function createExecutors(config: Config, ctx: ExecutorContext): Map<string, Executor> {
  const map = new Map<string, Executor>();
  for (const [name, cfg] of Object.entries(config.executors)) map.set(name, createExecutor(name, cfg, config, ctx));
  return map;
}

export function createExecutor(name: string, cfg: ExecutorConfig, config: Pick<Config, "env_allow">, ctx: ExecutorContext): Executor {
  const sandbox = sandboxSettings(name, cfg, ctx);
  const executor = buildExecutor(name, cfg, config, ctx, sandbox);
  if (sandbox?.mode === "auto") executor.sandboxWarning = () => autoSandboxWarning(sandbox, ctx.serverEnv);
  return executor;
}

function buildExecutor(name: string, cfg: ExecutorConfig, config: Pick<Config, "env_allow">, ctx: ExecutorContext, sandbox: SandboxSettings | null): Executor {
  const common = {
    serverEnv: ctx.serverEnv,
    envAllow: config.env_allow,
    killGraceMs: ctx.killGraceMs,
    sandbox,
    limits: runLimits(cfg),
    processGroups: ctx.processGroups,
  };
  switch (cfg.type) {
    case "claude-code":
      return new ClaudeCodeExecutor(name, cfg, common);
    case "codex":
      return new CodexExecutor(name, cfg, common);
    case "command":
      return new CommandExecutor(name, cfg, common);
    case "openai":
      return new OpenAIExecutor(name, cfg, { serverEnv: ctx.serverEnv });
  }
}
