import type { Config, ExecutorConfig } from "../config.js";
import { CommandExecutor } from "./command.js";
import type { ExecutionResult, Executor } from "./types.js";

export interface ExecutorContext {
  serverEnv: NodeJS.ProcessEnv;
  killGraceMs: number;
}

/** Builds every executor the operator's config defines; tool callers only pick one by name. */
export function createExecutors(config: Config, ctx: ExecutorContext): Map<string, Executor> {
  const map = new Map<string, Executor>();
  for (const [name, cfg] of Object.entries(config.executors)) map.set(name, createExecutor(name, cfg, config, ctx));
  return map;
}

function createExecutor(name: string, cfg: ExecutorConfig, config: Config, ctx: ExecutorContext): Executor {
  const common = { serverEnv: ctx.serverEnv, envAllow: config.env_allow, killGraceMs: ctx.killGraceMs };
  switch (cfg.type) {
    case "command":
      return new CommandExecutor(name, cfg, common);
    default:
      return new UnsupportedExecutor(cfg.type, "bin" in cfg ? cfg.bin : null);
  }
}

class UnsupportedExecutor implements Executor {
  constructor(
    readonly type: string,
    readonly program: string | null,
  ) {}
  async execute(): Promise<ExecutionResult> {
    return {
      status: "failed",
      exitCode: null,
      error: `Executor type "${this.type}" is not available in this build; use a "command" executor.`,
      output: "",
      outputTruncated: false,
      usage: null,
    };
  }
}
