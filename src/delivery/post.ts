import type { Agent } from "undici";
import { errorMessage } from "../kernel/errors.js";
import type { Delivery } from "../core/jobs.js";

/** Attempts per target: the first and three retries, on network errors, 5xx and 429 only. */
export const MAX_ATTEMPTS = 4;
/** A Retry-After longer than this is cut to it: a delivery must end within minutes. */
const MAX_RETRY_AFTER_MS = 120_000;

/** Whether the receiver took it; some services answer in the body beyond a 2xx status. */
export interface Verdict {
  ok: boolean;
  error: string | null;
  /** How long the receiver asked us to wait (Discord's and Telegram's retry_after). */
  retryAfterMs?: number;
  /** The id the service gave the message, where it answers with one. */
  messageId?: string | null;
}

export interface PostRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Secrets that must never appear in a recorded error (a token in the URL path). */
  secrets?: string[];
  accepted?: (status: number, body: string) => Verdict;
}

export interface PostOptions {
  /** What the attempts are recorded as: a channel name, or on_complete / on_fail. */
  channel: string;
  event: string;
  timeoutMs: number;
  /** First back-off; doubles per retry (tests shorten it). */
  retryBaseMs?: number;
  /** Stops waiting between attempts (the owner is closing; the next one sends what is owed). */
  signal?: AbortSignal;
  /** The connection pool to use (the webhook guard's, which checks resolved addresses). */
  dispatcher?: Agent;
  /** A network error that no retry can mend (an address the guard refused), told by its code. */
  isFinal?: (err: unknown) => boolean;
}

/** The record of a target that took a single try, or none at all (nothing to send to). */
export function oneAttempt(channel: string, event: string, ok: boolean, error: string | null): Delivery[] {
  return [{ channel, event, attempt: 1, ok, http_status: null, message_id: null, error, at: new Date().toISOString() }];
}

/** AGENT_CRON_RETRY_BASE_MS: end-to-end tests shorten the first back-off with it. */
export function retryBaseFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const ms = Number(env.AGENT_CRON_RETRY_BASE_MS);
  return ms > 0 ? ms : undefined;
}

export const JSON_HEADERS = { "content-type": "application/json", "user-agent": "agent-cron" };

/** 2xx is accepted; the rest says its status and the start of the receiver's answer. */
export function by2xx(status: number, body: string): Verdict {
  return status >= 200 && status < 300
    ? { ok: true, error: null }
    : { ok: false, error: `HTTP ${status}${body.trim() ? `: ${body.trim().slice(0, 200)}` : ""}` };
}

/**
 * POSTs until the receiver accepts or it is no use: one attempt each time `build` makes a
 * request (built per attempt, so a signature's timestamp is fresh), 429 and 5xx waiting as
 * long as Retry-After or the verdict asks (doubling from `retryBaseMs` otherwise), network
 * errors and timeouts retried, anything else final. Every attempt is recorded; never throws.
 */
export async function postWithRetries(build: () => PostRequest, opts: PostOptions): Promise<Delivery[]> {
  const attempts: Delivery[] = [];
  const base = opts.retryBaseMs ?? 1000;
  const { request } = await import("../kernel/http-client.js");
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const req = build();
    let status: number | null = null;
    let verdict: Verdict;
    let final = false;
    try {
      const res = await request(req.url, {
        method: "POST",
        headers: req.headers,
        body: req.body,
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
        signal: AbortSignal.any([AbortSignal.timeout(opts.timeoutMs), ...(opts.signal ? [opts.signal] : [])]),
      });
      status = res.statusCode;
      const text = (await res.body.text().catch(() => "")).slice(0, 4096);
      verdict = (req.accepted ?? by2xx)(status, text);
      if (verdict.retryAfterMs === undefined) verdict.retryAfterMs = retryAfter(res.headers["retry-after"]);
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      const timedOut = (err as Error).name === "TimeoutError" || (cause as Error)?.name === "TimeoutError" || /timeout/i.test(errorMessage(cause));
      verdict = { ok: false, error: timedOut ? `no answer within ${opts.timeoutMs / 1000} s` : errorMessage(cause) };
      final = opts.isFinal?.(err) ?? false;
    }
    const error = verdict.error === null ? null : redact(verdict.error, req.secrets ?? []);
    attempts.push({
      channel: opts.channel,
      event: opts.event,
      attempt,
      ok: verdict.ok,
      http_status: status,
      message_id: verdict.messageId ?? null,
      error,
      at: new Date().toISOString(),
    });
    const retryable = status === null ? !final : status === 429 || status >= 500;
    if (verdict.ok || !retryable || attempt === MAX_ATTEMPTS || opts.signal?.aborted) break;
    await pause(Math.min(Math.max(verdict.retryAfterMs ?? 0, base * 2 ** (attempt - 1)), MAX_RETRY_AFTER_MS), opts.signal);
    if (opts.signal?.aborted) break;
  }
  return attempts;
}

/** Waits, or less when `signal` aborts; its listener goes with the wait (the signal outlives many). */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
function retryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return secs * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join("<redacted>");
  return out;
}

/** A field of a JSON answer as a message id (Slack's ts, Discord's id, Telegram's result.message_id). */
// biome-ignore lint/suspicious/noExplicitAny: a provider's answer is untyped JSON; `pick` reads one field of it and returns unknown
export function idIn(body: string, pick: (answer: any) => unknown): string | null {
  try {
    const v = pick(JSON.parse(body));
    return typeof v === "string" || typeof v === "number" ? String(v) : null;
  } catch {
    return null;
  }
}
