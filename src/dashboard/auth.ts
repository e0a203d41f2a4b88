import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** A login cookie lasts this long; the token itself is asked for again after. */
const COOKIE_MAX_AGE_S = 30 * 24 * 3600;
/** An approver's sign-in lasts a working day: approving is rarer than looking. */
const APPROVER_MAX_AGE_S = 12 * 3600;

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
 *
 * Approving and rejecting jobs need more (SPEC §20): the approver secret (config
 * `approver_token_env`), which is not the MCP token, so no agent holding that token can
 * approve. Signed in, the browser holds a second cookie (an HMAC of that secret), and the
 * approve and reject forms carry a CSRF field bound to it, which a page without the
 * approver's cookie never shows. Without an approver secret the dashboard cannot approve.
 */
export class DashboardAuth {
  readonly cookieName: string;
  private readonly session: Buffer | null;
  private readonly csrfKey: Buffer;
  private readonly tokenDigest: Buffer | null;
  private readonly approverDigest: Buffer | null;
  private readonly approverSession: Buffer | null;

  constructor(token: string | undefined, port: number, approverToken?: string) {
    // One name per port: two daemons on one host (cookies ignore ports) keep their logins apart.
    this.cookieName = `agent_cron_${port}`;
    this.tokenDigest = token ? mac("agent-cron token digest", token) : null;
    this.session = token ? mac(token, "agent-cron dashboard session v1") : null;
    this.csrfKey = token ? mac(token, "agent-cron dashboard csrf v1") : randomBytes(32);
    // Only digests are kept, never the secret itself.
    const approver = approverToken && approverToken !== token ? approverToken : undefined;
    this.approverDigest = approver ? mac("agent-cron approver digest", approver) : null;
    this.approverSession = approver ? mac(approver, "agent-cron approver session v1") : null;
  }

  /** An approver secret is configured: the dashboard can approve, for who signs in with it. */
  get approverConfigured(): boolean {
    return this.approverSession !== null;
  }

  approverMatches(candidate: string): boolean {
    return this.approverDigest !== null && sameBytes(mac("agent-cron approver digest", candidate), this.approverDigest);
  }

  /** The request carries the approver's cookie. */
  isApprover(req: IncomingMessage): boolean {
    if (!this.approverSession) return false;
    const value = readCookie(req.headers.cookie, `${this.cookieName}_approver`);
    return value !== null && sameBytes(Buffer.from(value), Buffer.from(this.approverSession.toString("base64url")));
  }

  approverCookie(): string {
    return `${this.cookieName}_approver=${this.approverSession!.toString("base64url")}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${APPROVER_MAX_AGE_S}`;
  }

  approverLogoutCookie(): string {
    return `${this.cookieName}_approver=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }

  /** The CSRF field of the approve and reject forms: bound to the approver's sign-in, shown only to it. */
  approverCsrf(): string {
    return mac(this.csrfKey, `approver:${this.approverSession?.toString("base64url") ?? "none"}`).toString("base64url");
  }

  approverCsrfValid(value: string | null): boolean {
    return this.approverSession !== null && value !== null && sameBytes(Buffer.from(value), Buffer.from(this.approverCsrf()));
  }

  get required(): boolean {
    return this.session !== null;
  }

  /** The token as typed or passed in `?token=`, compared in constant time. */
  tokenMatches(candidate: string): boolean {
    if (!this.tokenDigest) return true;
    return sameBytes(mac("agent-cron token digest", candidate), this.tokenDigest);
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
