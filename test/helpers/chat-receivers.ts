/**
 * Loopback receivers that answer as the real services do, for delivery tests:
 * Slack incoming webhooks (200 "ok", 400 "invalid_payload", 429 with Retry-After), Discord
 * webhooks (204, 429 with a JSON retry_after), the Telegram Bot API ({"ok": true, …} or
 * {"ok": false, "description": …}), Teams Workflows (202), ntfy (200 with the message JSON)
 * and a plain webhook (200). A path can be given a plan of answers, one per request (the last
 * repeats), including "hang" (never answer).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Seen {
  /** The path without its query. */
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  at: number;
}

export type Answer = { status: number; body?: string; headers?: Record<string, string> } | "hang";

/** How each service answers a request it accepts. */
const ACCEPT: Record<string, (seen: Seen) => Answer> = {
  slack: () => ({ status: 200, body: "ok", headers: { "content-type": "text/html" } }),
  // With ?wait=true Discord answers 200 with the message it made (its id), else 204.
  discord: (seen) =>
    seen.query.get("wait") === "true"
      ? {
          status: 200,
          body: JSON.stringify({ id: "1182736459182736459", type: 0, channel_id: "1100000000000000001", content: seen.json?.content ?? "" }),
          headers: { "content-type": "application/json" },
        }
      : { status: 204 },
  teams: () => ({ status: 202 }),
  telegram: (seen) => ({
    status: 200,
    body: JSON.stringify({
      ok: true,
      result: { message_id: 17, date: Math.floor(Date.now() / 1000), chat: { id: Number(seen.json?.chat_id) || 0, type: "private" }, text: "…" },
    }),
    headers: { "content-type": "application/json" },
  }),
  ntfy: (seen) => ({
    status: 200,
    body: JSON.stringify({ id: "hwQ2YpKdmg", time: Math.floor(Date.now() / 1000), event: "message", topic: seen.json?.topic, message: seen.json?.message }),
    headers: { "content-type": "application/json" },
  }),
  webhook: () => ({ status: 200, body: "thanks" }),
};

/** What the services answer when they refuse or throttle. */
export const REFUSALS = {
  slackInvalidPayload: { status: 400, body: "invalid_payload", headers: { "content-type": "text/html" } },
  slackRateLimited: (seconds: number) => ({ status: 429, body: "rate_limited", headers: { "retry-after": String(seconds) } }),
  discordRateLimited: (seconds: number) => ({
    status: 429,
    body: JSON.stringify({ message: "You are being rate limited.", retry_after: seconds, global: false }),
    headers: { "content-type": "application/json", "retry-after": String(Math.ceil(seconds)) },
  }),
  telegramChatNotFound: {
    status: 400,
    body: JSON.stringify({ ok: false, error_code: 400, description: "Bad Request: chat not found" }),
    headers: { "content-type": "application/json" },
  },
  unavailable: { status: 503, body: "upstream unavailable" },
} satisfies Record<string, Answer | ((s: number) => Answer)>;

export class ChatReceivers {
  readonly seen: Seen[] = [];
  private readonly server: http.Server;
  private readonly plans = new Map<string, Answer[]>();
  private readonly hanging = new Set<http.ServerResponse>();

  constructor() {
    this.server = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://receiver");
        const path = url.pathname;
        let json: unknown = null;
        try {
          json = JSON.parse(body);
        } catch {
          // not JSON
        }
        const seen: Seen = { path, query: url.searchParams, headers: req.headers, body, json, at: Date.now() };
        this.seen.push(seen);
        const plan = this.plans.get(path);
        const n = this.at(path).length;
        const kind = path.split("/")[1] ?? "webhook";
        const answer = plan ? plan[Math.min(n - 1, plan.length - 1)] : (ACCEPT[kind] ?? ACCEPT.webhook)(seen);
        const accept = answer === "hang" ? null : answer.status === 0 ? (ACCEPT[kind] ?? ACCEPT.webhook)(seen) : answer;
        if (accept === null || accept === "hang") {
          this.hanging.add(res);
          return;
        }
        res.writeHead(accept.status, accept.headers).end(accept.body ?? "");
      });
    });
  }

  static async start(): Promise<ChatReceivers> {
    const r = new ChatReceivers();
    await new Promise<void>((resolve) => r.server.listen(0, "127.0.0.1", resolve));
    return r;
  }

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /**
   * The URL of a receiver; its first path segment says which service it plays (slack,
   * discord, teams, telegram, ntfy, webhook). `plan` answers request n with plan[n-1];
   * `ACCEPTED` in a plan means "answer as the service does when it takes the message".
   */
  url(path: string, plan?: Answer[]): string {
    if (plan) this.plans.set(path, plan);
    return `${this.base}${path}`;
  }

  at(path: string): Seen[] {
    return this.seen.filter((s) => s.path === path);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** In a plan: answer as the service does when it accepts the message. */
export const ACCEPTED: Answer = { status: 0 };
