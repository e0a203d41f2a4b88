import os from "node:os";
import path from "node:path";

/** The data dir when none is given: env AGENT_CRON_DATA_DIR, else ~/.agent-cron. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.AGENT_CRON_DATA_DIR || path.join(os.homedir(), ".agent-cron");
}
