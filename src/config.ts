import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { UserError } from "./kernel/errors.js";
import { describeIssue } from "./kernel/issues.js";
import { isValidTimezone, systemTimezone } from "./kernel/time.js";
import { channelsSchema } from "./kernel/channel-config.js";
export type { ChannelConfig } from "./kernel/channel-config.js";

const BIND_SUFFIX = /:([A-Za-z]+)$/;

/** network and binds do nothing without the sandbox: refuse them rather than let an operator believe a run is offline. */
function sandboxOnly(cfg: { sandbox?: string; binds?: string[]; network?: boolean }, ctx: z.RefinementCtx): void {
  if (cfg.sandbox !== "none") return;
  for (const key of ["binds", "network"] as const) {
    if (cfg[key] !== undefined)
      ctx.addIssue({ code: "custom", path: [key], message: 'takes effect only with the sandbox ("sandbox": "auto" or "bwrap"); set one or remove it' });
  }
}

export const CODEX_SANDBOX_MODES = ["read-only", "workspace-write", "danger-full-access"] as const;
export type CodexSandboxMode = (typeof CODEX_SANDBOX_MODES)[number];
export function isCodexSandboxMode(value: unknown): value is CodexSandboxMode {
  return (CODEX_SANDBOX_MODES as readonly unknown[]).includes(value);
}

/**
 * The config's zod schemas (~480 of them), built for each parse and dropped after it: kept as
 * module constants they held ~0.4 MB of every process's heap for a parse done at start and at
 * each edit of config.json (issue 27, RSS).
 */
function configSchemas() {
  const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name like MY_TOKEN");
  const envMap = z.record(envName, z.string()).default({});

  /**
   * The OS sandbox of executors that start a program (SPEC §16). Optional in the parsed config
   * (the defaults are applied where they are used, see src/executors/sandbox.ts), so that code
   * building an executor config by hand needs none of them.
   */
  const osSandbox = z
    .enum(["auto", "none", "bwrap"])
    .optional()
    .describe(
      'OS sandbox for each run: "auto" (default) uses bubblewrap when it works on this host, else runs without one and warns; "bwrap" requires bubblewrap (own user and pid namespace, read-only system, only its work dir writable); "none" runs the program as it is',
    );
  const bindSpec = z
    .string()
    .min(1)
    .superRefine((spec, ctx) => {
      const suffix = BIND_SUFFIX.exec(spec)?.[1];
      if (suffix !== undefined && suffix !== "rw" && suffix !== "ro") {
        ctx.addIssue({ code: "custom", message: `ends in ":${suffix}"; the only suffixes are ":rw" (writable) and ":ro" (read-only, the default)` });
        return;
      }
      const file = suffix === undefined ? spec : spec.slice(0, -suffix.length - 1);
      if (/[\u0000-\u001f\u007f]/.test(file)) ctx.addIssue({ code: "custom", message: "must not contain control characters" });
      else if (!path.isAbsolute(file)) ctx.addIssue({ code: "custom", message: `must be an absolute path, got ${JSON.stringify(file)}` });
      else if (path.resolve(file) === "/")
        ctx.addIssue({ code: "custom", message: 'must not be "/": the sandbox already sees the whole system read-only; bind a narrower path' });
    });
  const sandboxShared = {
    binds: z
      .array(bindSpec)
      .optional()
      .describe(
        'With the sandbox ("auto" or "bwrap"): extra absolute paths the run may see, read-only unless suffixed ":rw" (e.g. "/srv/data", "/var/cache/tool:rw")',
      ),
    network: z
      .boolean()
      .optional()
      .describe('With the sandbox ("auto" or "bwrap"): false gives the run no network but loopback (a new network namespace); default true'),
    max_memory_mb: z
      .number()
      .int()
      .min(16)
      .max(1_048_576)
      .optional()
      .describe("Per run: memory (resident, all of its processes together) past which the run is killed and fails with that reason; default 4096"),
    max_pids: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .optional()
      .describe("Per run: processes at once past which the run is killed and fails with that reason; default 512"),
    max_disk_mb: z
      .number()
      .int()
      .min(1)
      .max(1_048_576)
      .optional()
      .describe(
        "Per run: bytes written to its work dir (and the size of any one file it writes) past which the run is killed and fails with that reason; default 2048",
      ),
  };
  /** For executors that start no program: a clear error instead of "unknown field". */
  const programOnly = z
    .custom<never>((v) => v === undefined, { message: "applies to executors that start a program (claude-code, codex, command), not to openai; remove it" })
    .optional();

  const ClaudeCodeExecutor = z
    .strictObject({
      type: z.literal("claude-code"),
      bin: z.string().min(1).default("claude"),
      model: z.string().min(1).optional(),
      permission_mode: z.string().min(1).optional(),
      allowed_tools: z.array(z.string().min(1)).optional(),
      disallowed_tools: z.array(z.string().min(1)).optional(),
      append_system_prompt: z.string().optional(),
      max_turns: z.number().int().positive().optional(),
      mcp_config: z.string().min(1).optional(),
      output_format: z.enum(["json", "stream-json"]).default("json"),
      args: z.array(z.string()).default([]),
      env: envMap,
      sandbox: osSandbox,
      ...sandboxShared,
    })
    .superRefine(sandboxOnly);

  const CodexExecutor = z
    .strictObject({
      type: z.literal("codex"),
      bin: z.string().min(1).default("codex"),
      model: z.string().min(1).optional(),
      /**
       * The OS sandbox, as for the other program executors. Codex's own sandbox modes are accepted
       * here too, as before `codex_sandbox` existed: they cannot be mistaken for "none" or "bwrap".
       */
      sandbox: z
        .enum(["auto", "none", "bwrap", ...CODEX_SANDBOX_MODES])
        .optional()
        .describe(
          'OS sandbox for each run: "auto" (default), "bwrap" or "none". For compatibility, a codex sandbox mode given here ("read-only", …) is taken as codex_sandbox',
        ),
      codex_sandbox: z.enum(CODEX_SANDBOX_MODES).optional().describe('Codex\'s own sandbox, passed as `codex exec -s`; default "workspace-write"'),
      config: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()])).default({}),
      args: z.array(z.string()).default([]),
      env: envMap,
      ...sandboxShared,
    })
    .superRefine((cfg, ctx) => {
      if (cfg.codex_sandbox !== undefined && isCodexSandboxMode(cfg.sandbox)) {
        ctx.addIssue({
          code: "custom",
          path: ["sandbox"],
          message: `names codex's own mode "${cfg.sandbox}" while codex_sandbox is also set; keep codex's mode in codex_sandbox and use sandbox only for "auto", "none" or "bwrap"`,
        });
      }
      sandboxOnly(cfg, ctx);
    });

  const CommandExecutor = z
    .strictObject({
      type: z.literal("command"),
      command: z.array(z.string()).min(1, "must name at least the program to run"),
      /** How to read the answer from stdout: the whole text, a JSON field, or the last matching JSONL event. */
      output: z
        .string()
        .regex(/^(text|json(:.+)?|jsonl-last(:.+)?)$/, 'must be "text", "json:<field path>" or "jsonl-last:<filter>"')
        .default("text"),
      env: envMap,
      sandbox: osSandbox,
      ...sandboxShared,
    })
    .superRefine(sandboxOnly);

  const OpenAIExecutor = z.strictObject({
    type: z.literal("openai"),
    base_url: z.url({ protocol: /^https?$/ }),
    model: z.string().min(1),
    api_key_env: envName.optional(),
    system_prompt: z.string().optional(),
    max_tokens: z.number().int().positive().optional(),
    temperature: z.number().min(0).max(2).optional(),
    /** How a structured job asks for JSON; older local servers know only json_object, or neither. */
    response_format: z.enum(["json_schema", "json_object", "none"]).default("json_schema"),
    /** Tries after the first on network errors, 5xx and 429, within the job's timeout. */
    max_retries: z.number().int().min(0).max(10).default(3),
    env: envMap,
    sandbox: programOnly,
    binds: programOnly,
    network: programOnly,
    max_memory_mb: programOnly,
    max_pids: programOnly,
    max_disk_mb: programOnly,
  });

  const ExecutorConfigSchema = z.discriminatedUnion("type", [ClaudeCodeExecutor, CodexExecutor, CommandExecutor, OpenAIExecutor]);

  const hostName = z.string().min(1);

  /**
   * Where jobs and runs are kept (SPEC §14): a data dir (files, the default), or a PostgreSQL
   * database shared by any number of agent-cron processes, whose URL is read from the named
   * environment variable (a URL holds a password, so it never sits in the config file).
   */
  const StoreSchema = z
    .discriminatedUnion(
      "type",
      [
        z.strictObject({ type: z.literal("files").describe("lowdb files in the data dir (default): one machine, one owner process at a time") }),
        z.strictObject({
          type: z.literal("postgres").describe("one PostgreSQL database shared by every agent-cron process of a fleet; needs Node.js >= 22.12"),
          url_env: envName
            .default("AGENT_CRON_DATABASE_URL")
            .describe("the environment variable holding the database URL (postgres://user:password@host:5432/db); default AGENT_CRON_DATABASE_URL"),
        }),
      ],
      { error: (issue) => (issue.code === "invalid_union" ? 'must be "files" or "postgres"' : undefined) },
    )
    .default({ type: "files" })
    .describe('Where jobs and runs are kept: {"type": "files"} (default) or {"type": "postgres", "url_env": "AGENT_CRON_DATABASE_URL"}');

  const ConfigSchema = z.strictObject({
    timezone: z
      .string()
      .refine(isValidTimezone, "must be an IANA timezone name such as Europe/Paris")
      .optional()
      .describe("Default timezone of jobs (an IANA name such as Europe/Paris), and the day of daily_budget_usd; default: the system's"),
    max_concurrent: z.number().int().min(1).max(256).default(4).describe("Runs at once across all jobs (with the postgres store: in this process); default 4"),
    fleet_max_concurrent: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe(
        "With the postgres store: runs at once across every process of the fleet, every kind (scheduled, caught up, queued, manual, event, chained); max_concurrent still caps each process; default no fleet-wide cap",
      ),
    runs_per_job: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(100)
      .describe("Runs kept per job, newest first; a run's default work dir goes with its record; default 100"),
    max_jobs: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe("Jobs at most (completed ones count); add_cron past it is an error naming this key; default 1000"),
    approval: z
      .enum(["none", "ask", "required"])
      .default("none")
      .describe(
        "Jobs made by agents: none (active at once), ask (the user confirms through the client; pending_approval when it cannot ask), required (every one waits for agent-cron approve)",
      ),
    approver_token_env: envName
      .default("AGENT_CRON_APPROVER_TOKEN")
      .describe(
        "The environment variable holding the approver secret: signed in with it, a person approves jobs on the dashboard. Not the MCP token, never passed to a run; unset, the dashboard cannot approve (agent-cron approve at a terminal can)",
      ),
    daily_budget_usd: z
      .number()
      .positive()
      .optional()
      .describe("Once today's runs cost this much, further runs are skipped until tomorrow (in the config's timezone); default none"),
    default_executor: z.string().min(1).default("claude").describe('The executor of a job that names none, read at each run; default "claude"'),
    executors: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "executor names use letters, digits, _ . -"), ExecutorConfigSchema)
      .default({})
      .describe(
        "Executors by name (claude-code, codex, command, openai); jobs name one, callers never give a program. With none configured, claude runs Claude Code from PATH",
      ),
    work_dir_roots: z
      .array(z.string().refine((p) => path.isAbsolute(p), "must be an absolute path"))
      .default([])
      .describe("Folders a job's work_dir may be in; none configured refuses every work_dir"),
    env_allow: z.array(envName).default([]).describe("Environment variables of the server passed on to runs, beyond PATH HOME LANG TZ TMPDIR"),
    max_output_bytes: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(1024 * 1024)
      .describe("Stdout and stderr kept per run, each; past it the record says the output was cut; default 1 MiB"),
    kill_grace_seconds: z.number().min(0).max(600).default(5).describe("Between SIGTERM and SIGKILL of a run's process group; default 5"),
    catch_up_window_seconds: z
      .number()
      .int()
      .min(0)
      .default(24 * 3600)
      .describe("Occurrences missed while down and older than this are recorded missed, not run; a job's own value wins; default 86400"),
    shutdown_grace_seconds: z
      .number()
      .min(0)
      .max(3600)
      .default(10)
      .describe("On SIGTERM, how long the HTTP daemon lets runs finish before interrupting them; default 10"),
    audit_interval_minutes: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 60)
      .default(60)
      .describe(
        "How often the server audits itself (every occurrence of the last 7 days has its record); an unaccounted one becomes a notice, a log line and one delivery to the job's channels or to alerts. 0 turns it off",
      ),
    alerts: z.array(z.string().min(1).max(64)).default([]).describe("Channels that hear of unaccounted occurrences of jobs that deliver nowhere themselves"),
    durability: z
      .enum(["fsync", "os"])
      .default("fsync")
      .describe(
        'Files store: "fsync" (default) acknowledges a change only once its journal or run-log line is on disk; "os" leaves it to the operating system (faster, may lose the last changes on a power cut, never on a crash of agent-cron)',
      ),
    http: z
      .strictObject({
        host: hostName.default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(8765),
        token_env: envName.default("AGENT_CRON_TOKEN"),
        allowed_hosts: z.array(hostName).optional(),
        session_idle_seconds: z
          .number()
          .int()
          .min(1)
          .default(30 * 60),
        max_sessions: z.number().int().min(1).max(100_000).default(100),
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .default(4 * 1024 * 1024),
      })
      .prefault({})
      .describe("The HTTP daemon (serve --http): host, port, token_env, allowed_hosts, session_idle_seconds, max_sessions, max_body_bytes"),
    webhooks: z
      .strictObject({
        secret_env: envName.default("AGENT_CRON_WEBHOOK_SECRET"),
        allow_private_networks: z.boolean().default(false),
      })
      .prefault({})
      .describe(
        "Job webhooks (on_complete, on_fail): secret_env names the signing secret's variable; allow_private_networks lets them reach loopback and private addresses",
      ),
    channels: channelsSchema(),
    store: StoreSchema,
    always_on: z
      .enum(["daemon", "client"])
      .default("daemon")
      .describe(
        'Whether jobs run while no client is open: "daemon" (default) has a stdio server that finds no owner of the data dir start a background owner (a detached agent-cron serve --background) that outlives every client; "client" runs jobs only while a client is connected. Env AGENT_CRON_ALWAYS_ON overrides it',
      ),
    metrics_port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .describe(
        "Serve /healthz, /readyz and /metrics on this port too (for a server over stdio, which has no HTTP port); loopback only unless the http token is set; 0 picks a free port; default none",
      ),
    log_format: z
      .enum(["text", "json"])
      .default("text")
      .describe(
        'Log lines on stderr: "text" (time, level, message, job and run ids) or "json" (one object per line: time, level, event, message, job_id, run_id)',
      ),
    checks: z
      .record(
        z.string().regex(/^[A-Za-z0-9_.-]+$/, "check names use letters, digits, _ . -"),
        z.strictObject({
          program: z.string().min(1).describe("The program to run (a path, or a name on PATH); no shell"),
          args: z.array(z.string()).default([]).describe("Its arguments; {work_dir}, {run_id}, {job_id} are replaced"),
          timeout_seconds: z.number().int().min(1).max(3600).default(60).describe("Killed after this long, and the occurrence fails; default 60"),
        }),
      )
      .default({})
      .describe(
        "Gate checks a job may name (job field check): run before each occurrence in the run's sandbox and work dir; exit 0 runs the agent with the check's stdout, exit 1 skips the occurrence (no agent, no tokens), anything else fails it",
      ),
  });
  return { ConfigSchema, ExecutorConfigSchema, StoreSchema, ClaudeCodeExecutor, CodexExecutor, CommandExecutor, OpenAIExecutor };
}
type ConfigSchemas = ReturnType<typeof configSchemas>;
export type ExecutorConfig = z.infer<ConfigSchemas["ExecutorConfigSchema"]>;
export type ClaudeCodeExecutorConfig = z.infer<ConfigSchemas["ClaudeCodeExecutor"]>;
export type CodexExecutorConfig = z.infer<ConfigSchemas["CodexExecutor"]>;
export type CommandExecutorConfig = z.infer<ConfigSchemas["CommandExecutor"]>;
export type OpenAIExecutorConfig = z.infer<ConfigSchemas["OpenAIExecutor"]>;
export type StoreConfig = z.infer<ConfigSchemas["StoreSchema"]>;
export type Config = z.infer<ConfigSchemas["ConfigSchema"]> & { timezone: string };

/** The whole config's schema (the README's table is checked against its keys). */
export function configSchema(): ConfigSchemas["ConfigSchema"] {
  return configSchemas().ConfigSchema;
}

/** One executor's entry of `executors`, as parseConfig checks it. */
export function executorConfigSchema(): ConfigSchemas["ExecutorConfigSchema"] {
  return configSchemas().ExecutorConfigSchema;
}

/** Turns a zod issue list into one sentence per problem, each naming the key. */
export function describeIssues(error: z.ZodError, input: unknown, prefix = ""): string {
  return error.issues.map((issue) => describeIssue(issue as z.core.$ZodIssue, input, prefix).replace(/\.$/, "")).join("; ");
}

/** Validates a config object; throws a UserError naming every bad key. */
export function parseConfig(raw: unknown, source = "config"): Config {
  const schemas = configSchemas();
  const result = schemas.ConfigSchema.safeParse(raw ?? {});
  if (!result.success) throw new UserError(`Invalid ${source}: ${describeIssues(result.error, raw ?? {})}.`);
  const cfg = result.data;
  if (!cfg.executors[cfg.default_executor]) {
    if (cfg.default_executor === "claude") cfg.executors.claude = schemas.ClaudeCodeExecutor.parse({ type: "claude-code" });
    else throw new UserError(`Invalid ${source}: default_executor "${cfg.default_executor}" is not defined under "executors"`);
  }
  // The approver secret and the daemon's token are a person's; a run never gets them (SPEC §20).
  for (const secret of [cfg.approver_token_env, cfg.http.token_env]) {
    if (cfg.env_allow.includes(secret)) {
      throw new UserError(
        `Invalid ${source}: env_allow names ${secret}, ${secret === cfg.approver_token_env ? "the approver secret (approver_token_env)" : "the daemon's token (http.token_env)"}, which never goes to a run; remove it from env_allow.`,
      );
    }
  }
  if (cfg.approver_token_env === cfg.http.token_env) {
    throw new UserError(
      `Invalid ${source}: approver_token_env and http.token_env both name ${cfg.http.token_env}; the approver secret must not be the token every MCP client holds. Name another variable.`,
    );
  }
  cfg.work_dir_roots = cfg.work_dir_roots.map((p) => path.resolve(p));
  return { ...cfg, timezone: cfg.timezone ?? systemTimezone() };
}

/**
 * The config's `always_on`, unless AGENT_CRON_ALWAYS_ON says otherwise (a client's MCP entry
 * can set it without a config file; the test suite pins "client" so that no test leaves a
 * background owner behind).
 */
export function alwaysOn(config: Pick<Config, "always_on">, env: NodeJS.ProcessEnv = process.env): Config["always_on"] {
  const value = env.AGENT_CRON_ALWAYS_ON;
  if (value === undefined || value === "") return config.always_on;
  if (value === "daemon" || value === "client") return value;
  throw new UserError(`AGENT_CRON_ALWAYS_ON must be "daemon" or "client", got ${JSON.stringify(value)}.`);
}

export { defaultDataDir } from "./kernel/data-dir.js";

/**
 * Loads the config file: an explicit path must exist; the default `<data-dir>/config.json`
 * is optional. A file that does not parse stops start-up with a message naming it.
 */
export function loadConfig(dataDir: string, explicitPath?: string): { config: Config; path: string | null } {
  const file = explicitPath ? path.resolve(explicitPath) : path.join(dataDir, "config.json");
  let text: string;
  try {
    // A FIFO or a device would hang the read: only a regular file is read.
    if (!statSync(file).isFile())
      throw new UserError(`Config file ${file} is not a regular file (a FIFO, device or directory); point --config at a JSON file.`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof UserError) throw err;
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && !explicitPath) {
      return { config: parseConfig({}), path: null };
    }
    throw new UserError(`Cannot read config file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UserError(`Config file ${file} is not valid JSON: ${(err as Error).message}. Fix it or remove it.`);
  }
  return { config: parseConfig(raw, `config file ${file}`), path: file };
}
