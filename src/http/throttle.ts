import type { IncomingMessage } from "node:http";

export interface ThrottleOptions {
  /** Wrong credentials answered at once before the delays start. */
  free: number;
  /** The first delay; each further wrong credential doubles it. */
  baseMs: number;
  maxMs: number;
  /** A client quiet this long starts afresh. */
  forgetMs: number;
  /** Past this much queued waiting, a wrong credential's connection is closed unanswered. */
  maxQueueMs: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { free: 3, baseMs: 250, maxMs: 30_000, forgetMs: 15 * 60_000, maxQueueMs: 5 * 60_000 };
const MAX_CLIENTS = 10_000;

/**
 * Slows guessing of the daemon's token, the approver secret and trigger tokens (SPEC §20).
 * A presented credential is always checked first, and a correct one is never delayed or
 * refused: another client's guesses can never lock a person out. A wrong one is answered
 * only after a delay that doubles with each wrong one from the same client, and one client's
 * wrong answers go out one after another, so guesses sent in parallel wait in line too.
 *
 * A client is its peer address. Every local client is 127.0.0.1, so they share one line;
 * that is why the check comes first: the line only ever holds wrong answers, so a person
 * with the right token is never behind a guesser (keying by the presented credential
 * instead would let a guesser that varies its guesses skip the line).
 */
export class GuessThrottle {
  private readonly clients = new Map<string, { failures: number; last: number; next: number }>();

  constructor(private readonly opts: ThrottleOptions = DEFAULT_THROTTLE) {}

  static key(req: IncomingMessage, scope: string): string {
    return `${scope}|${req.socket.remoteAddress ?? "?"}`;
  }

  /**
   * Counts a wrong credential; resolves true when its answer may go out, or false when the
   * client has queued so much waiting that its connection should be closed unanswered.
   */
  async failed(key: string): Promise<boolean> {
    const now = Date.now();
    let c = this.clients.get(key);
    if (!c || now - c.last > this.opts.forgetMs) c = { failures: 0, last: now, next: now };
    c.failures++;
    c.last = now;
    const extra = c.failures - this.opts.free;
    const delay = extra <= 0 ? 0 : Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** (extra - 1));
    const at = Math.max(now, c.next) + delay;
    this.clients.delete(key);
    this.clients.set(key, c);
    // Bounded memory under a flood of addresses: the longest quiet go first.
    for (const old of this.clients.keys()) {
      if (this.clients.size <= MAX_CLIENTS) break;
      this.clients.delete(old);
    }
    if (at - now > this.opts.maxQueueMs) return false;
    c.next = at;
    if (at > now) await new Promise((r) => setTimeout(r, at - now).unref());
    return true;
  }
}
