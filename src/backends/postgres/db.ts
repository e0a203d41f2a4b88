import pg from "pg";
import { UnavailableError } from "../../kernel/errors.js";

/** Our tables live in their own schema; pg-boss keeps its own beside it. */
export const SCHEMA = "agent_cron";
export const BOSS_SCHEMA = "agent_cron_boss";
/** One channel for every change: the payload says what changed (see notify.ts). */
export const CHANNEL = "agent_cron";
/** pg_advisory_lock(LIVE_LOCK, hashtext(process id)): a process's sign of life (see fleet.ts). */
export const LIVE_LOCK = 1633907302;

/**
 * The database as agent-cron uses it: one pool whose errors never crash the process, and
 * errors worded for the caller. A lost connection becomes one sentence naming the server
 * (never the password), an UnavailableError: a runtime failure, not the caller's fault.
 */
export class Db {
  readonly pool: pg.Pool;
  /** host:port/database, for messages. */
  readonly where: string;
  /** Called once per connection problem seen, so the backend can degrade and resync. */
  onConnectionError: (err: unknown) => void = () => {};
  private ended = false;

  private readonly max: number;

  constructor(
    readonly url: string,
    opts: { max: number; applicationName?: string },
  ) {
    this.where = describeUrl(url);
    this.max = opts.max;
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.max,
      application_name: opts.applicationName ?? "agent-cron",
      // Calls fail within seconds when the server is gone, instead of hanging a tool call.
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      // A process frozen with a transaction open must not hold a job's row lock forever; no
      // statement of ours runs long, so one that does is stuck.
      options: "-c statement_timeout=30000 -c lock_timeout=15000 -c idle_in_transaction_session_timeout=30000",
    });
    // An idle connection that breaks (the server restarted) emits here; without a listener
    // Node would end the process.
    this.pool.on("error", (err) => this.onConnectionError(err));
    // A checked-out client that breaks emits on itself, and its query rejects anyway.
    this.pool.on("connect", (client) => client.on("error", () => {}));
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      throw this.wrap(err);
    }
  }

  /** Runs `fn` in one transaction on one connection; rolls back on any error. */
  async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.wrap(err);
    }
    let broken: unknown;
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      if (isConnectionError(err)) broken = err;
      else await client.query("ROLLBACK").catch((e) => (broken = e));
      throw this.wrap(err);
    } finally {
      // A connection that failed mid-transaction is thrown away, not reused.
      client.release(broken === undefined ? undefined : (broken as Error));
    }
  }

  /** A database error as the caller should read it. */
  wrap(err: unknown): unknown {
    if (err instanceof UnavailableError) return err;
    if (!isConnectionError(err)) return err;
    // pg-pool says the same when every connection is busy for connectionTimeoutMillis: the
    // server is there, this process is overloaded.
    if (/timeout exceeded when trying to connect/i.test((err as Error).message ?? "") && this.pool.totalCount >= this.max && this.pool.idleCount === 0) {
      return new UnavailableError(`The database at ${this.where} is busy: no connection of this process was free for 5 s; try again.`);
    }
    this.onConnectionError(err);
    return new DbUnreachableError(this.where, connectionReason(err));
  }

  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end().catch(() => {});
  }
}

export function unreachableSentence(where: string, err: unknown): string {
  return new DbUnreachableError(where, connectionReason(err)).message;
}

/** The database does not answer (AC_DB_UNREACHABLE); `reason` says how, for a sentence worded elsewhere. */
export class DbUnreachableError extends UnavailableError {
  constructor(
    where: string,
    readonly reason: string | null,
  ) {
    super(`The database at ${where} is unreachable${reason ? `: ${reason}` : ""}; agent-cron retries and resumes when it is back.`, "AC_DB_UNREACHABLE");
  }
}

/** host:port/database of a postgres URL, without user or password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const db = decodeURIComponent(u.pathname.replace(/^\//, "")) || "postgres";
    return `${u.hostname || "localhost"}:${u.port || "5432"}/${db}`;
  } catch {
    return "(an unreadable URL)";
  }
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE", "ENOENT"]);

/** True for errors that mean "the server cannot be reached", as opposed to a refused statement. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== "object") return false;
  const code = typeof e.code === "string" ? e.code : "";
  if (CONNECTION_CODES.has(code)) return true;
  // Class 08: connection exceptions; 57P01-57P03: the server is shutting down or starting.
  if (/^08/.test(code) || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300") return true;
  const message = typeof e.message === "string" ? e.message : "";
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|not queryable|connect ECONNREFUSED|Client was closed/i.test(
    message,
  );
}

function connectionReason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    case "ECONNREFUSED":
      return "the connection was refused (is the server running?)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "its host name does not resolve";
    case "ETIMEDOUT":
      return "the connection timed out";
    case "57P01":
    case "57P02":
      return "the server is shutting down";
    case "57P03":
      return "the server is starting up";
    case "53300":
      return "the server has no connection slot left (max_connections)";
  }
  const message = (e.message ?? String(err)).replace(/\s+/g, " ").trim();
  if (/timeout exceeded when trying to connect/i.test(message)) return "the connection timed out";
  if (/Connection terminated/i.test(message)) return "the connection was closed";
  return message.replace(/\.$/, "") || "the connection failed";
}
