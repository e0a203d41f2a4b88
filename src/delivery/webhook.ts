import { createHmac } from "node:crypto";
import type { LookupAddress } from "node:dns";
import net from "node:net";
import type { Agent } from "undici";
import type { Config } from "../config.js";
import { AgentCronError, UserError, codeOf } from "../kernel/errors.js";
import type { Delivery, Job, Run } from "../core/jobs.js";
import type { WebhookEvent } from "../core/delivery-plan.js";

export type { WebhookEvent } from "../core/delivery-plan.js";
import { JSON_HEADERS, oneAttempt, postWithRetries } from "./post.js";

const TIMEOUT_MS = 10_000;

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
      a === 0 ||
      a === 10 ||
      a === 127 ||
      a >= 224 ||
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
    throw new UserError(
      `${field} points to a private or loopback address (${u.hostname}); the operator must set webhooks.allow_private_networks to allow that.`,
    );
  }
}

/** Standard Webhooks signing: HMAC-SHA256 over "id.timestamp.body" with the secret's bytes. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** Standard Webhooks headers for one attempt: id, a fresh timestamp, and the signature when there is a secret. */
export function signedHeaders(id: string, body: string, secret: string | undefined): Record<string, string> {
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    ...JSON_HEADERS,
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    ...(secret ? { "webhook-signature": sign(secret, id, timestamp, body) } : {}),
  };
}

/**
 * Delivers run webhooks: POST JSON, signed, with an Idempotency-Key of job and occurrence,
 * a 10 s timeout, retries with backoff on network errors, 5xx and 429 only, and no
 * redirects. The private-network guard checks the address actually connected to, so a
 * name that resolves (or re-resolves) to a private address is refused too.
 */
export class WebhookSender {
  /** The guarded connection pool, made with the first webhook (undici loads lazily). */
  private agent: Promise<Agent> | null = null;

  constructor(
    private readonly config: Config,
    private readonly env: NodeJS.ProcessEnv,
    private readonly retryBaseMs = 1000,
  ) {}

  private guardedAgent(): Promise<Agent> {
    // node:dns with the HTTP client, when a first webhook goes out: a server that sends none
    // never loads it (issue 27's RSS).
    this.agent ??= Promise.all([import("../kernel/http-client.js"), import("node:dns")]).then(([{ Agent }, dns]) => this.makeAgent(Agent, dns.default));
    return this.agent;
  }

  private makeAgent(AgentClass: typeof Agent, dns: typeof import("node:dns")): Agent {
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
              return callback(
                new AgentCronError(
                  "AC_PRIVATE_ADDRESS",
                  `${hostname} resolves to the private address ${bad.address}; refused (webhooks.allow_private_networks is off)`,
                ),
                "",
                0,
              );
            }
            if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
            callback(null, list[0].address, list[0].family);
          });
        },
      },
    });
  }

  async close(): Promise<void> {
    if (this.agent) await (await this.agent).close().catch(() => {});
  }

  async deliver(job: Job, run: Run, url: string, event: WebhookEvent, signal?: AbortSignal): Promise<Delivery[]> {
    const channel = url === job.on_complete && event === "completed" ? "on_complete" : "on_fail";
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    if (!this.config.webhooks.allow_private_networks && isPrivateAddress(host)) {
      return oneAttempt(channel, event, false, `Refused: ${host} is a private address.`);
    }
    const body = JSON.stringify({ type: `run.${event}`, job: { id: job.id, name: job.name }, run });
    const secret = this.env[this.config.webhooks.secret_env];
    const idempotency = { "idempotency-key": `${job.id}:${run.scheduled_for ?? run.id}` };
    return postWithRetries(() => ({ url, headers: { ...signedHeaders(`msg_${run.id}`, body, secret), ...idempotency }, body }), {
      channel,
      event,
      timeoutMs: TIMEOUT_MS,
      retryBaseMs: this.retryBaseMs,
      signal,
      dispatcher: await this.guardedAgent(),
      isFinal: (err) => codeOf(err) === "AC_PRIVATE_ADDRESS",
    });
  }
}
