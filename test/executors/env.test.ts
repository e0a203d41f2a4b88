import { describe, expect, it } from "vitest";
import { AUTH_VARS, buildChildEnv } from "../../src/executors/env.js";

const runVars = { runId: "run-1", jobId: "job-1", sessionId: "sess-1", scheduledFor: "2026-12-01T09:00:00.000+01:00" };
const serverEnv = {
  PATH: "/usr/bin",
  HOME: "/home/me",
  LANG: "C.UTF-8",
  SECRET_TOKEN: "s3cret",
  AGENT_CRON_TOKEN: "http-token",
  ANTHROPIC_API_KEY: "sk-ant",
  OPENAI_API_KEY: "sk-openai",
  CLAUDECODE: "1",
  CLAUDE_CODE_ENTRYPOINT: "cli",
  MY_VAR: "mine",
};

describe("buildChildEnv", () => {
  it("passes only the base variables present and the run variables", () => {
    expect(buildChildEnv({ serverEnv, runVars })).toEqual({
      PATH: "/usr/bin",
      HOME: "/home/me",
      LANG: "C.UTF-8",
      AGENT_CRON_RUN_ID: "run-1",
      AGENT_CRON_JOB_ID: "job-1",
      AGENT_CRON_SESSION_ID: "sess-1",
      AGENT_CRON_SCHEDULED_FOR: "2026-12-01T09:00:00.000+01:00",
    });
  });

  it("adds env_allow names and the type's auth variables that the server has", () => {
    const env = buildChildEnv({ serverEnv, runVars, envAllow: ["MY_VAR", "ABSENT"], authVars: AUTH_VARS["claude-code"] });
    expect(env.MY_VAR).toBe("mine");
    expect(env.ANTHROPIC_API_KEY).toBe("sk-ant");
    expect("ABSENT" in env).toBe(false);
    expect("CLAUDE_CONFIG_DIR" in env).toBe(false);
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.SECRET_TOKEN).toBeUndefined();
    expect(env.AGENT_CRON_TOKEN).toBeUndefined();
  });

  it("gives codex its own auth variables only", () => {
    const env = buildChildEnv({ serverEnv, runVars, authVars: AUTH_VARS.codex });
    expect(env.OPENAI_API_KEY).toBe("sk-openai");
    expect(env.ANTHROPIC_API_KEY).toBeUndefined();
  });

  it("lets the executor's env map win over the server, but not over the run variables", () => {
    const env = buildChildEnv({
      serverEnv,
      runVars,
      executorEnv: { HOME: "/srv/agent", FLAG: "1", AGENT_CRON_RUN_ID: "forged" },
    });
    expect(env).toMatchObject({ HOME: "/srv/agent", FLAG: "1", AGENT_CRON_RUN_ID: "run-1" });
  });

  it("never passes CLAUDECODE or CLAUDE_CODE_ENTRYPOINT, even when listed", () => {
    const env = buildChildEnv({
      serverEnv,
      runVars,
      envAllow: ["CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"],
      executorEnv: { CLAUDECODE: "1" },
    });
    expect("CLAUDECODE" in env).toBe(false);
    expect("CLAUDE_CODE_ENTRYPOINT" in env).toBe(false);
  });
});
