import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** A login cookie lasts this long; the token itself is asked for again after. */
const COOKIE_MAX_AGE_S = 30 * 24 * 3600;
/** Wrong tokens allowed per minute before /login answers 429 for the rest of it. */
const LOGIN_FAILURES_PER_MINUTE = 20;

const mac = (key: Buffer | string, text: string) => createHmac("sha256", key).update(text).digest();

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Who may use the dashboard, and that a POST comes from its own pages.
 *
 * With a token (`http.token_env`): a browser proves it once (the /login form or `?token=`)
 * and then holds a cookie whose value is an HMAC of the token, never the token: a cookie
 * that leaks opens the dashboard only, and changing the token ends every login. Scripts may
 * send `Authorization: Bearer <token>` instead.
 *
 * Every POST needs an Origin equal to the page's own and a CSRF field: an HMAC of the login
 * (or, without a token, of nothing) under a key derived from the token or, without one, made
 * at start. A page from another site can neither read the field nor forge the Origin.
 */
export class DashboardAuth {
  readonly cookieName: string;
  private readonly session: Buffer | null;
  private readonly csrfKey: Buffer;
  private readonly tokenDigest: Buffer | null;
  /** Wrong tokens this minute, per client address: one client guessing cannot lock others out. */
  private failures = { minute: 0, byClient: new Map<string, number>() };

  constructor(token: string | undefined, port: number) {
    // One name per port: two daemons on one host (cookies ignore ports) keep their logins apart.
    this.cookieName = `agent_cron_${port}`;
    this.tokenDigest = token ? mac("agent-cron token digest", token) : null;
    this.session = token ? mac(token, "agent-cron dashboard session v1") : null;
    this.csrfKey = token ? mac(token, "agent-cron dashboard csrf v1") : randomBytes(32);
  }

  get required(): boolean {
    return this.session !== null;
  }

  /** The token as typed or passed in `?token=`, compared in constant time. */
  tokenMatches(candidate: string): boolean {
    if (!this.tokenDigest) return true;
    return sameBytes(mac("agent-cron token digest", candidate), this.tokenDigest);
  }

  /** Too many wrong tokens from this client this minute: refuse its next ones without checking. */
  throttled(client: string): boolean {
    const minute = Math.floor(Date.now() / 60_000);
    return this.failures.minute === minute && (this.failures.byClient.get(client) ?? 0) >= LOGIN_FAILURES_PER_MINUTE;
  }

  noteFailure(client: string): void {
    const minute = Math.floor(Date.now() / 60_000);
    // A new minute, or a flood of addresses: start counting afresh (bounded memory).
    if (this.failures.minute !== minute || this.failures.byClient.size > 10_000) this.failures = { minute, byClient: new Map() };
    this.failures.byClient.set(client, (this.failures.byClient.get(client) ?? 0) + 1);
  }

  /** The request carries a valid login cookie or bearer token (always true without a token). */
  authorized(req: IncomingMessage): boolean {
    if (!this.session) return true;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
    if (bearer !== undefined) return this.tokenMatches(bearer);
    const value = readCookie(req.headers.cookie, this.cookieName);
    return value !== null && sameBytes(Buffer.from(value), Buffer.from(this.session.toString("base64url")));
  }

  loginCookie(): string {
    return `${this.cookieName}=${this.session!.toString("base64url")}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${COOKIE_MAX_AGE_S}`;
  }

  logoutCookie(): string {
    return `${this.cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }

  /** The hidden field every form of an authorized page carries. */
  csrfToken(): string {
    return mac(this.csrfKey, this.session ? this.session.toString("base64url") : "open").toString("base64url");
  }

  csrfValid(value: string | null): boolean {
    return value !== null && sameBytes(Buffer.from(value), Buffer.from(this.csrfToken()));
  }
}

/**
 * A POST's Origin must be the page's own: scheme-less host and port equal to the Host the
 * request was sent to (which the daemon has already checked against http.allowed_hosts).
 * Browsers send Origin with every POST; one without it is not from a dashboard page.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (!origin || !host || origin === "null") return false;
  if (req.headers["sec-fetch-site"] && req.headers["sec-fetch-site"] !== "same-origin") return false;
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
