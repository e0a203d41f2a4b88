import { createHmac } from "node:crypto";
import dns, { type LookupAddress } from "node:dns";
import net from "node:net";
import type { Agent } from "undici";
import type { Config } from "../config.js";
import { UserError, errorMessage } from "../core/errors.js";
import type { Delivery, Job, Run } from "../core/jobs.js";

const TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 4;

/**
 * Is this address one a webhook must not reach by default: loopback, private, link-local
 * (cloud metadata lives at 169.254.169.254), carrier-grade NAT, unspecified, multicast,
 * reserved, or an IPv6 form of those (ULA, link-local, IPv4-mapped)?
 */
export function isPrivateAddress(address: string): boolean {
  const v = net.isIP(address);
  if (v === 4) {
    const [a, b] = address.split(".").map(Number);
    return (
      a === 0 || a === 10 || a === 127 || a >= 224 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 192 && b === 0) ||
      (a === 198 && (b === 18 || b === 19))
    );
  }
  if (v === 6) {
    const h = ipv6Hextets(address.replace(/^\[|\]$/g, ""));
    if (!h) return true;
    const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    const zeros = (n: number) => h.slice(0, n).every((x) => x === 0);
    // ::, ::1, and every form that carries an IPv4 address: compatible (::a.b.c.d, which
    // URLs spell ::7f00:1), mapped (::ffff:a.b.c.d), translated (::ffff:0:a.b.c.d), 6to4.
    if (zeros(7) && h[7] <= 1) return true;
    if (zeros(6)) return isPrivateAddress(v4(h[6], h[7]));
    if (zeros(5) && h[5] === 0xffff) return isPrivateAddress(v4(h[6], h[7]));
    if (zeros(4) && h[4] === 0xffff && h[5] === 0) return isPrivateAddress(v4(h[6], h[7]));
    if (h[0] === 0x2002) return isPrivateAddress(v4(h[1], h[2]));
    return (
      (h[0] & 0xfe00) === 0xfc00 || // unique local
      (h[0] & 0xffc0) === 0xfe80 || // link-local
      (h[0] & 0xff00) === 0xff00 || // multicast
      (h[0] === 0x64 && h[1] === 0xff9b) || // NAT64
      (h[0] === 0x2001 && (h[1] === 0x0db8 || h[1] === 0)) || // documentation, Teredo
      (h[0] === 0x100 && zeros(4)) // discard
    );
  }
  return false;
}

/** An IPv6 address as its eight 16-bit groups (an embedded dotted IPv4 tail included), or null. */
function ipv6Hextets(text: string): number[] | null {
  let x = text.toLowerCase().split("%")[0];
  const dotted = x.match(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    x = x.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = x.split("::");
  const part = (p: string | undefined) => (p ? p.split(":").map((g) => parseInt(g, 16)) : []);
  const left = part(head);
  const right = part(tail);
  const missing = 8 - left.length - right.length;
  const groups = x.includes("::") ? [...left, ...Array(Math.max(0, missing)).fill(0), ...right] : left;
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

/** Checks a webhook URL when a job is saved: http(s), and no literal private address unless allowed. */
export function checkWebhookUrl(url: string, field: string, allowPrivate: boolean): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`${field} is not a valid URL: "${url}".`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UserError(`${field} must be an http(s) URL, got "${u.protocol}".`);
  if (u.username || u.password) throw new UserError(`${field} must not carry a user name or password; use the signing secret instead.`);
  // A trailing dot is the same name fully qualified: "localhost." is localhost.
  const host = u.hostname.replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (!allowPrivate && (isPrivateAddress(host) || host === "localhost" || host.endsWith(".localhost"))) {
    throw new UserError(`${field} points to a private or loopback address (${u.hostname}); the operator must set webhooks.allow_private_networks to allow that.`);
  }
}

/** Standard Webhooks signing: HMAC-SHA256 over "id.timestamp.body" with the secret's bytes. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

export type WebhookEvent = "completed" | "failed" | "canceled";

/** Which webhook (if any) a finished run triggers. */
export function webhookFor(job: Job, run: Run): { url: string; event: WebhookEvent } | null {
  if (job.silent) return null;
  const event: WebhookEvent | null =
    run.status === "completed" ? "completed" :
    run.status === "failed" || run.status === "timed_out" || run.status === "interrupted" ? "failed" :
    run.status === "canceled" ? "canceled" : null;
  if (!event || !job.notify_on.includes(event)) return null;
  const url = event === "completed" ? job.on_complete : job.on_fail;
  return url ? { url, event } : null;
}

/**
 * Delivers run webhooks: POST JSON, signed, with an Idempotency-Key of job and occurrence,
 * a 10 s timeout, retries with backoff on network errors, 5xx and 429 only, and no
 * redirects. The private-network guard checks the address actually connected to, so a
 * name that resolves (or re-resolves) to a private address is refused too.
 */
export class WebhookSender {
  /** undici costs ~100 ms and 13 MB to load: only a server that sends a webhook pays it. */
  private undici: Promise<{ agent: Agent; request: typeof import("undici").request }> | null = null;

  constructor(
    private readonly config: Config,
    private readonly env: NodeJS.ProcessEnv,
    private readonly retryBaseMs = 1000,
  ) {
  }

  private client() {
    this.undici ??= import("undici").then(({ Agent, request }) => ({ agent: this.makeAgent(Agent), request }));
    return this.undici;
  }

  private makeAgent(AgentClass: typeof import("undici").Agent): Agent {
    const allowPrivate = this.config.webhooks.allow_private_networks;
    return new AgentClass({
      connect: {
        timeout: TIMEOUT_MS,
        lookup: (hostname, options, callback) => {
          dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
            if (err) return callback(err, "", 0);
            const list = addresses as LookupAddress[];
            const bad = list.find((a) => isPrivateAddress(a.address));
            if (bad && !allowPrivate) {
              return callback(new Error(`${hostname} resolves to the private address ${bad.address}; refused (webhooks.allow_private_networks is off)`), "", 0);
            }
            if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
            callback(null, list[0].address, list[0].family);
          });
        },
      },
    });
  }

  async close(): Promise<void> {
    if (this.undici) await (await this.undici).agent.close().catch(() => {});
  }

  async deliver(job: Job, run: Run, url: string, event: WebhookEvent): Promise<Delivery[]> {
    const deliveries: Delivery[] = [];
    const channel = url === job.on_complete && event === "completed" ? "on_complete" : "on_fail";
    const record = (attempt: number, status: number | null, error: string | null) =>
      deliveries.push({ channel, event, attempt, ok: error === null, http_status: status, error, at: new Date().toISOString() });
    const body = JSON.stringify({ type: `run.${event}`, job: { id: job.id, name: job.name }, run });
    const id = `msg_${run.id}`;
    const secret = this.env[this.config.webhooks.secret_env];
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    if (!this.config.webhooks.allow_private_networks && isPrivateAddress(host)) {
      record(1, null, `Refused: ${host} is a private address.`);
      return deliveries;
    }
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const timestamp = Math.floor(Date.now() / 1000);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "agent-cron",
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "idempotency-key": `${job.id}:${run.scheduled_for ?? run.id}`,
      };
      if (secret) headers["webhook-signature"] = sign(secret, id, timestamp, body);
      let status: number | null = null;
      let error: string | null = null;
      let retryAfterMs = 0;
      try {
        const { agent, request } = await this.client();
        const res = await request(url, {
          method: "POST",
          headers,
          body,
          dispatcher: agent,
          headersTimeout: TIMEOUT_MS,
          bodyTimeout: TIMEOUT_MS,
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        status = res.statusCode;
        await res.body.dump().catch(() => {});
        if (status >= 300) error = `HTTP ${status}`;
        retryAfterMs = retryAfter(res.headers["retry-after"]);
      } catch (err) {
        error = errorMessage((err as { cause?: unknown }).cause ?? err);
      }
      record(attempt, status, error);
      const retryable = status === null ? !/refused \(webhooks/.test(error ?? "") : status === 429 || status >= 500;
      if (!error || !retryable || attempt === MAX_ATTEMPTS) break;
      await new Promise((r) => setTimeout(r, Math.max(retryAfterMs, this.retryBaseMs * 2 ** (attempt - 1))));
    }
    return deliveries;
  }
}

function retryAfter(value: string | string[] | undefined): number {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return 0;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.min(secs, 60) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.min(Math.max(0, at - Date.now()), 60_000) : 0;
}

