import { UserError } from "../../kernel/errors.js";
import type { PostgresBackend, PostgresBackendOptions } from "./backend.js";

export type { PostgresBackend } from "./backend.js";

/** pg-boss 12 declares Node >= 22.12 (it uses what older Nodes lack). */
const MIN_NODE: [number, number] = [22, 12];

/** The backend's options, with the URL still in the environment (`urlEnv` names the variable). */
export interface OpenPostgresOptions extends Omit<PostgresBackendOptions, "url"> {
  env: NodeJS.ProcessEnv;
  /** The Node version to check (tests); default this process's. */
  nodeVersion?: string;
}

/**
 * The postgres backend's door. It loads nothing heavy itself: the Node version and the URL
 * are checked first, then `pg` and `pg-boss` are imported (a chunk of their own in the
 * bundle), so the files backend never loads them and keeps working on Node 20.
 */
export async function openPostgresBackend(opts: OpenPostgresOptions): Promise<PostgresBackend> {
  checkNodeVersion(opts.nodeVersion ?? process.versions.node);
  const url = databaseUrl(opts.env, opts.urlEnv);
  const { openBackend } = await loadPostgres(() => import("./backend.js"));
  return openBackend({ ...opts, url });
}

/**
 * pg and pg-boss are optional peers of the package, not installed with it (a files store, the
 * usual one, never needs them, and pg-boss 12 asks for a newer Node than agent-cron): a module
 * that needs them is loaded through here, which says what to install when they are missing.
 */
export async function loadPostgres<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const missing = e.code === "ERR_MODULE_NOT_FOUND" && /['"](pg|pg-boss)['"]/.exec(e.message)?.[1];
    if (!missing) throw err;
    throw new UserError(
      `The postgres store needs the packages pg and pg-boss (${missing} is not installed): agent-cron installs them only on request. ` +
        `Run npm install pg@^8 pg-boss@^12 where agent-cron is installed (npm install -g pg pg-boss beside a global install), or set "store": {"type": "files"} in the config.`,
    );
  }
}

export function checkNodeVersion(version: string): void {
  const [major, minor] = version.split(".").map(Number);
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return;
  throw new UserError(
    `The postgres store needs Node.js ${MIN_NODE.join(".")} or newer (for pg-boss 12); this is Node.js ${version}. Run agent-cron with a newer Node, or set "store": {"type": "files"} in the config.`,
  );
}

export function databaseUrl(env: NodeJS.ProcessEnv, urlEnv: string): string {
  const url = env[urlEnv]?.trim();
  if (!url) {
    throw new UserError(
      `The config's store is postgres, but ${urlEnv} is not set; set it to the database URL, e.g. ${urlEnv}=postgres://agent_cron:PASSWORD@db.example:5432/agent_cron.`,
    );
  }
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw new UserError(`${urlEnv} must be a postgres:// URL (postgres://user:password@host:5432/database), got something else.`);
  }
  return url;
}
