import http from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.js";
import type { Job, Run } from "../../src/core/jobs.js";
import { webhookFor } from "../../src/core/delivery-plan.js";
import { WebhookSender, checkWebhookUrl, isPrivateAddress } from "../../src/delivery/webhook.js";

const SECRET = "whsec_" + Buffer.from("a-test-secret-of-some-length!!").toString("base64");
const servers: http.Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));

type Seen = { headers: http.IncomingHttpHeaders; body: string };

/** A receiver on loopback that answers each request with the next status in `statuses`. */
async function receiver(statuses: number[], extraHeaders: Record<string, string> = {}) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ headers: req.headers, body });
      res.writeHead(statuses[Math.min(seen.length - 1, statuses.length - 1)], extraHeaders).end("ok");
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, seen };
}

const job = (over: Partial<Job> = {}) =>
  ({
    id: "11111111-1111-4111-8111-111111111111",
    name: "nightly",
    silent: false,
    notify_on: ["completed", "failed", "canceled"],
    on_complete: null,
    on_fail: null,
    ...over,
  }) as Job;
const run = (over: Partial<Run> = {}) =>
  ({ id: "22222222-2222-4222-8222-222222222222", job_id: job().id, status: "completed", scheduled_for: "2026-12-01T09:00:00.000+01:00", ...over }) as Run;

function sender(allowPrivate: boolean) {
  const config = parseConfig({ webhooks: { allow_private_networks: allowPrivate } });
  return new WebhookSender(config, { AGENT_CRON_WEBHOOK_SECRET: SECRET }, 10);
}

describe("webhooks", () => {
  it("signs per Standard Webhooks, verified by the standardwebhooks package as a receiver would", async () => {
    const rx = await receiver([200]);
    const deliveries = await sender(true).deliver(job({ on_complete: rx.url }), run(), rx.url, "completed");
    expect(deliveries).toMatchObject([{ channel: "on_complete", attempt: 1, ok: true, http_status: 200, error: null }]);
    const { headers, body } = rx.seen[0];
    const verified = new Webhook(SECRET).verify(body, {
      "webhook-id": String(headers["webhook-id"]),
      "webhook-timestamp": String(headers["webhook-timestamp"]),
      "webhook-signature": String(headers["webhook-signature"]),
    }) as { type: string; job: { id: string; name: string }; run: Run };
    expect(verified.type).toBe("run.completed");
    expect(verified.job).toEqual({ id: job().id, name: "nightly" });
    expect(headers["idempotency-key"]).toBe(`${job().id}:2026-12-01T09:00:00.000+01:00`);
    expect(() => new Webhook(SECRET).verify(body + " ", headers as Record<string, string>)).toThrow();
  });

  it("retries on 5xx and 429 with the same webhook-id, then stops on success", async () => {
    const rx = await receiver([503, 429, 200]);
    const d = await sender(true).deliver(job(), run(), rx.url, "completed");
    expect(d.map((x) => x.http_status)).toEqual([503, 429, 200]);
    expect(new Set(rx.seen.map((s) => s.headers["webhook-id"])).size).toBe(1);
  });

  it("does not retry a 400, and does not follow redirects", async () => {
    const bad = await receiver([400]);
    expect((await sender(true).deliver(job(), run(), bad.url, "failed")).map((x) => x.http_status)).toEqual([400]);
    const moved = await receiver([302], { location: "http://127.0.0.1:1/elsewhere" });
    const d = await sender(true).deliver(job(), run(), moved.url, "failed");
    expect(d.map((x) => x.http_status)).toEqual([302]);
    expect(moved.seen).toHaveLength(1);
  });

  it("refuses loopback, private and metadata targets by default, checking resolved addresses", async () => {
    const rx = await receiver([200]);
    for (const url of ["http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://localhost/x"]) {
      expect(() => checkWebhookUrl(url, "on_fail", false)).toThrow(/private or loopback/);
    }
    const s = sender(false);
    const literal = await s.deliver(job(), run(), rx.url, "completed");
    expect(literal[0].error).toMatch(/private address/);
    // A name is checked where it resolves: localhost is loopback.
    const named = await s.deliver(job(), run(), rx.url.replace("127.0.0.1", "localhost"), "completed");
    expect(named[0].error).toMatch(/private address/);
    expect(named).toHaveLength(1);
    expect(rx.seen).toHaveLength(0);
  });

  it("classifies addresses", () => {
    for (const a of [
      "127.0.0.1",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fd00::1",
      "fe80::1",
      "::ffff:127.0.0.1",
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111"]) expect(isPrivateAddress(a), a).toBe(false);
  });

  it("refuses loopback hidden in IPv6 forms that embed an IPv4 address, as URLs spell them", () => {
    // new URL() rewrites [::127.0.0.1] to [::7f00:1] and [::ffff:0:127.0.0.1] to [::ffff:0:7f00:1].
    for (const host of [
      "[::127.0.0.1]",
      "[::ffff:0:127.0.0.1]",
      "[::ffff:127.0.0.1]",
      "[::ffff:7f00:1]",
      "[::10.0.0.1]",
      "[2002:7f00:1::]",
      "[0:0:0:0:0:0:0:1]",
      "[::]",
    ]) {
      expect(() => checkWebhookUrl(`http://${host}/hook`, "on_complete", false), host).toThrow(/private or loopback/);
    }
    for (const a of ["::7f00:1", "::ffff:0:7f00:1", "::ffff:0:a00:1", "2002:a00:1::1", "64:ff9b::8.8.8.8"]) expect(isPrivateAddress(a), a).toBe(true);
    // Public addresses in the same forms pass.
    for (const a of ["::ffff:8.8.8.8", "2002:808:808::1", "2606:4700:4700::1111"]) expect(isPrivateAddress(a), a).toBe(false);
    expect(() => checkWebhookUrl("http://[2606:4700:4700::1111]/hook", "on_complete", false)).not.toThrow();
  });

  it("sends per notify_on and silent", () => {
    const j = job({ on_complete: "https://example.test/ok", on_fail: "https://example.test/fail", notify_on: ["failed"] });
    expect(webhookFor(j, run({ status: "completed" }))).toBeNull();
    expect(webhookFor(j, run({ status: "timed_out" }))).toEqual({ url: "https://example.test/fail", event: "failed" });
    expect(webhookFor({ ...j, silent: true }, run({ status: "failed" }))).toBeNull();
    expect(webhookFor(j, run({ status: "skipped" }))).toBeNull();
  });
});

describe("retries and the owner's abort signal", () => {
  it("leaves no listener on the long-lived signal after retries (one was added per retry and never removed)", async () => {
    const { EventEmitter } = await import("node:events");
    const { postWithRetries } = await import("../../src/delivery/post.js");
    const { url, seen } = await receiver([503, 503, 503, 200]);
    const owner = new AbortController();
    for (let i = 0; i < 3; i++) {
      const attempts = await postWithRetries(() => ({ url, headers: {}, body: "{}" }), {
        channel: "c",
        event: "completed",
        timeoutMs: 5000,
        retryBaseMs: 1,
        signal: owner.signal,
      });
      expect(attempts.length).toBeGreaterThan(0);
    }
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(EventEmitter.getEventListeners(owner.signal, "abort")).toHaveLength(0);
  });
});
