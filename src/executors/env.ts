/** What every child gets from the server's environment when the server has it. */
export const BASE_ENV_VARS = ["PATH", "HOME", "LANG", "TZ", "TMPDIR"] as const;

/** Each executor type's own credentials and config locations, passed when the server has them. */
export const AUTH_VARS: Record<string, readonly string[]> = {
  "claude-code": ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR"],
  codex: ["CODEX_API_KEY", "OPENAI_API_KEY", "CODEX_HOME"],
  command: [],
  openai: [],
};

/**
 * Set by a Claude Code session around the server; passed on, they make a scheduled `claude`
 * believe it is nested inside that session and refuse or misbehave.
 */
export const NEVER_PASS: ReadonlySet<string> = new Set(["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"]);

export interface RunVars {
  runId: string;
  jobId: string;
  sessionId: string;
  /** ISO time of the occurrence; "" for manual runs. */
  scheduledFor: string;
}

export interface ChildEnvInput {
  serverEnv: NodeJS.ProcessEnv;
  /** Names from the config's `env_allow`. */
  envAllow?: readonly string[];
  /** The executor type's AUTH_VARS. */
  authVars?: readonly string[];
  /** The executor's own `env` map from config; wins over the server's values. */
  executorEnv?: Record<string, string>;
  runVars: RunVars;
}

/**
 * The allow-listed environment of an agent process. Everything else of the server's
 * environment stays out: a scheduled prompt must not be able to read the server's secrets.
 */
export function buildChildEnv(input: ChildEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  const { serverEnv } = input;
  for (const name of [...BASE_ENV_VARS, ...(input.envAllow ?? []), ...(input.authVars ?? [])]) {
    const value = serverEnv[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, input.executorEnv ?? {});
  // Last, so that neither the server nor config can fake which run this is.
  env.AGENT_CRON_RUN_ID = input.runVars.runId;
  env.AGENT_CRON_JOB_ID = input.runVars.jobId;
  env.AGENT_CRON_SESSION_ID = input.runVars.sessionId;
  env.AGENT_CRON_SCHEDULED_FOR = input.runVars.scheduledFor;
  for (const name of NEVER_PASS) delete env[name];
  return env;
}
