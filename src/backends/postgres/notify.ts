import pg from "pg";
import { CHANNEL, LIVE_LOCK } from "./db.js";

/**
 * What a NOTIFY on the agent_cron channel says. Sent with pg_notify inside the writing
 * statement, so listeners hear of a change only once it is committed. The record itself
 * travels along when it fits (NOTIFY payloads stop at 8000 bytes); otherwise the listener
 * reads it back by id.
 */
export interface Change {
  /** The process that wrote it: a process ignores its own news. */
  o: string;
  /** j: a job written; jd: a job removed; r: a run written; rd: a job's runs removed; w: work queued; s: a sync mark (its sender waits for it); c: cancel the run `id`. */
  k: "j" | "jd" | "r" | "rd" | "w" | "s" | "c";
  id: string;
  /** The record's rev (jd/rd: the rev at removal). */
  v: number;
  /** A run's seq (its place in its job's history). */
  s?: number;
  /** The record, when it fit. */
  d?: unknown;
  /** A job written by a take: only its fields that changed, on the row as it was at rev `b`. */
  p?: Record<string, unknown>;
  b?: number;
}

/** Records up to this many bytes travel in the notification; larger ones are read back. */
export const INLINE_LIMIT = 7000;

/** SQL for the payload's `d` from an SQL text expression holding the record's JSON: null when too large to travel. */
export function inlineSql(jsonText: string): string {
  return `(CASE WHEN octet_length(${jsonText}) <= ${INLINE_LIMIT} THEN ${jsonText} END)`;
}

/**
 * SQL for a NOTIFY about the row `alias` just written: kind, id and rev from the row, the
 * record from the SQL expression `inline` (json text or null; see inlineSql), then `more`
 * key-value pairs. Every payload starts with origin and kind, which Listener.ownNews reads.
 */
export function notifySql(kind: Change["k"], alias: string, origin: string, inline: string, more = ""): string {
  return `pg_notify('${CHANNEL}', json_build_object('o', ${origin}::text, 'k', '${kind}', 'id', ${alias}.id, 'v', ${alias}.rev, 's', ${alias}.seq, 'd', ${inline}::json${more ? `, ${more}` : ""})::text)`;
}

/**
 * SQL for a NOTIFY about a job row `alias` just written either whole (`whole`, its JSON text) or
 * by merging `patch` (json, null when whole) into the row as it was at rev `base`: the
 * notification carries the record (`d`) or the fields with the rev they apply to (`p`, `b`).
 */
export function notifyJobSql(alias: string, origin: string, whole: string, patch: string, base: string): string {
  // The fields travel under the same limit as a record: a changed prompt of 10 KB made the
  // payload too long for NOTIFY, which failed the write and every other in its statement.
  const fits = `octet_length(${patch}::text) <= ${INLINE_LIMIT}`;
  return notifySql("j", alias, origin, inlineSql(whole), `'b', CASE WHEN ${fits} THEN ${base} END, 'p', CASE WHEN ${fits} THEN ${patch} END`);
}

/**
 * The LISTEN connection: one client of its own (a pooled one could be handed to a query
 * while a notification is due). It never gives up: when the connection drops it reconnects
 * with back-off, and `onReconnect` lets the owner re-read what it may have missed. A ping
 * every few seconds notices a connection that died silently.
 */
export class Listener {
  private client: pg.Client | null = null;
  private closed = false;
  private attempt = 0;
  private pingTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  connected = false;

  constructor(
    private readonly url: string,
    /** This process's id: its advisory lock is held on this connection (null: none). */
    private readonly liveLock: string | null,
    private readonly handlers: {
      onChange(change: Change): void;
      /** Connected again after a loss: resolves once the owner has caught up. */
      onReconnect(): Promise<void>;
      onLost(err: unknown): void;
    },
  ) {}

  /** The first connection: throws when it cannot be made (start-up reports it). */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5000, keepAlive: true, application_name: "agent-cron listen" });
    let lost = false;
    const onLost = (err: unknown) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = null;
      this.connected = false;
      if (this.pingTimer) clearInterval(this.pingTimer);
      this.pingTimer = null;
      client.end().catch(() => {});
      if (this.closed) return;
      this.handlers.onLost(err);
      this.scheduleRetry();
    };
    client.on("error", onLost);
    client.on("end", () => onLost(new Error("Connection terminated")));
    client.on("notification", (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      if (this.ownNews(msg.payload)) return;
      let change: Change;
      try {
        change = JSON.parse(msg.payload) as Change;
      } catch {
        return;
      }
      this.handlers.onChange(change);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      // This process's sign of life (see fleet.ts): held while this connection lives. Tried, not
      // waited for: after a network cut the old connection may hold it still, which says the same.
      if (this.liveLock) await client.query("SELECT pg_try_advisory_lock($1, hashtext($2))", [LIVE_LOCK, this.liveLock]);
    } catch (err) {
      lost = true;
      client.end().catch(() => {});
      throw err;
    }
    this.client = client;
    this.connected = true;
    this.attempt = 0;
    this.pingTimer = setInterval(() => {
      client.query({ text: "SELECT 1", query_timeout: 5000 } as pg.QueryConfig).catch(onLost);
    }, 5000);
    this.pingTimer.unref();
  }

  /**
   * News this process wrote itself of a kind it ignores (everything but its sync marks), known
   * by its first bytes, without parsing it: a process at capacity hears every one of its own
   * takes and run records back, each a whole record, and parsing them showed in its profile
   * (docs/postgres.md, Capacity, round 6). json_build_object writes `{"o" : <origin>, "k" : <kind>`;
   * a payload written otherwise is parsed, as before.
   */
  private ownNews(payload: string): boolean {
    if (!this.liveLock) return false;
    this.ownPrefix ??= `{"o" : ${JSON.stringify(this.liveLock)}, "k" : "`;
    if (!payload.startsWith(this.ownPrefix)) return false;
    const kind = payload.slice(this.ownPrefix.length, payload.indexOf('"', this.ownPrefix.length));
    return kind !== "s";
  }

  private ownPrefix: string | null = null;

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = Math.min(2000, 100 * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.connect();
    } catch {
      this.scheduleRetry();
      return;
    }
    try {
      await this.handlers.onReconnect();
    } catch {
      // Catching up failed (the server went again): drop this connection (its "end" starts
      // over) rather than listen without having caught up.
      void this.client?.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    const client = this.client;
    this.client = null;
    this.connected = false;
    await client?.end().catch(() => {});
  }
}
