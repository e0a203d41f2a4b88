/**
 * Webhooks end to end, through the built server: a node:http receiver on 127.0.0.1 (the
 * operator allowed private networks) gets a POST signed per Standard Webhooks, verified
 * with the `standardwebhooks` package exactly as a receiver would; retries on 5xx/429, none
 * on 400 or a redirect; the run record lists each attempt. With the default config a
 * loopback, private or metadata target is refused at add_cron.
 */
import { randomBytes } from "node:crypto";
import dns from "node:dns/promises";
import os from "node:os";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Run } from "../../src/core/jobs.js";
import { ChatReceivers, type Seen } from "../helpers/chat-receivers.js";
import { Server, fixtureExecutor, makeDataDir, ms, readDataFiles, removeDir, sleep, textOf, waitFor, type Json } from "../reliability/helpers.js";

const SECRET = "whsec_" + randomBytes(24).toString("base64");

/** Verifies one request as a Standard Webhooks receiver does; throws if the signature is wrong. */
function verify(seen: Seen): Json {
  return new Webhook(SECRET).verify(seen.body, {
    "webhook-id": String(seen.headers["webhook-id"]),
    "webhook-timestamp": String(seen.headers["webhook-timestamp"]),
    "webhook-signature": String(seen.headers["webhook-signature"]),
  }) as Json;
}

describe("webhooks through the server (private networks allowed by the operator)", () => {
  let rx: ChatReceivers;
  let s: Server;
  let dir: string;

  beforeAll(async () => {
    rx = await ChatReceivers.start();
    dir = makeDataDir({ webhooks: { allow_private_networks: true }, executors: { fail: fixtureExecutor("fail-agent.mjs", "3") } }, "agent-cron-webhook-");
    s = await Server.start(dir, { env: { AGENT_CRON_WEBHOOK_SECRET: SECRET } });
  });
  afterAll(async () => {
    await s?.close();
    await rx?.close();
    await removeDir(dir);
  });

  /** The run's record once its webhook attempts are written to it. */
  const deliveredRun = (job: string, attempts = 1) =>
    waitFor(async () => (await s.runs(job)).find((r) => (r.deliveries?.length ?? 0) >= attempts), { timeout: 15_000, what: `deliveries of ${job}` });

  it.concurrent("POSTs the finished run, signed: verified with the standardwebhooks package, with an Idempotency-Key of job and occurrence", async () => {
    const url = rx.url("/done");
    const job = (await s.tool("add_cron", { name: "signed", schedule: "in 1s", prompt: "signed output", on_complete: url, on_fail: rx.url("/signed-failed") }))
      .job;
    const run = (await deliveredRun("signed")) as Run;
    expect(run.status).toBe("completed");
    expect(run.deliveries).toEqual([
      { channel: "on_complete", event: "completed", attempt: 1, ok: true, at: expect.any(String), http_status: 200, message_id: null, error: null },
    ]);
    expect(run.delivery).toBe("delivered");

    const [seen] = rx.at("/done");
    expect(rx.at("/signed-failed")).toEqual([]);
    expect(seen.headers["content-type"]).toMatch(/^application\/json/);
    expect(seen.headers["idempotency-key"]).toBe(`${job.id}:${run.scheduled_for}`);
    const payload = verify(seen);
    expect(payload.type).toBe("run.completed");
    expect(payload.job).toEqual({ id: job.id, name: "signed" });
    expect(payload.run).toMatchObject({ id: run.id, job_id: job.id, status: "completed", scheduled_for: run.scheduled_for, response: "signed output" });
    expect(Math.abs(Number(seen.headers["webhook-timestamp"]) * 1000 - seen.at)).toBeLessThan(60_000);
    // The check is real: a changed body or another secret fails it.
    expect(() => verify({ ...seen, body: seen.body.replace("completed", "failed") })).toThrow();
    expect(() => new Webhook("whsec_" + randomBytes(24).toString("base64")).verify(seen.body, seen.headers as Record<string, string>)).toThrow();
    // Delivery is on the record on disk too.
    const onDisk = readDataFiles(dir)
      .runs.get(job.id)!
      .find((r) => r.id === run.id)!;
    expect(onDisk.deliveries?.map((d) => d.http_status)).toEqual([200]);
  });

  it.concurrent("retries a failed run's webhook on 503 and 429, with the same webhook-id and a valid signature each time, until 200", async () => {
    const url = rx.url("/flaky", [{ status: 503 }, { status: 429 }, { status: 200 }]);
    await s.tool("add_cron", { name: "retried", schedule: "@yearly", prompt: "p", executor: "fail", retries: 0, on_fail: url });
    const started = (await s.tool("run_now", { job: "retried", wait: true })).run as Run;
    expect(started.status).toBe("failed");
    const run = (await deliveredRun("retried", 3)) as Run;
    expect(run.deliveries!.map((d) => [d.attempt, d.event, d.http_status])).toEqual([
      [1, "failed", 503],
      [2, "failed", 429],
      [3, "failed", 200],
    ]);
    expect(run.deliveries!.map((d) => d.error)).toEqual(["HTTP 503", "HTTP 429", null]);
    const seen = rx.at("/flaky");
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((x) => x.headers["webhook-id"])).size).toBe(1);
    expect(new Set(seen.map((x) => x.headers["idempotency-key"])).size).toBe(1);
    for (const x of seen) expect(verify(x).type).toBe("run.failed");
    // With backoff: the attempts are spread out, not fired back to back.
    expect(seen[2].at - seen[0].at).toBeGreaterThanOrEqual(900);
  });

  it.concurrent("does not retry on 400, and does not follow a redirect", async () => {
    const bad = rx.url("/bad", [{ status: 400 }]);
    const moved = rx.url("/moved", [{ status: 302, headers: { location: rx.url("/elsewhere") } }]);
    await s.tool("add_cron", { name: "refused-400", schedule: "@yearly", prompt: "p", on_complete: bad });
    await s.tool("add_cron", { name: "redirected", schedule: "@yearly", prompt: "p", on_complete: moved });
    await s.tool("run_now", { job: "refused-400", wait: true });
    await s.tool("run_now", { job: "redirected", wait: true });
    const r400 = (await deliveredRun("refused-400")) as Run;
    const r302 = (await deliveredRun("redirected")) as Run;
    // Longer than the first retry delay (1 s): a retry would have come by now.
    await sleep(2500);
    expect(rx.at("/bad")).toHaveLength(1);
    expect(rx.at("/moved")).toHaveLength(1);
    expect(rx.at("/elsewhere")).toEqual([]);
    expect(r400.deliveries!.map((d) => [d.attempt, d.http_status, d.error])).toEqual([[1, 400, "HTTP 400"]]);
    expect(r302.deliveries!.map((d) => [d.attempt, d.http_status])).toEqual([[1, 302]]);
    expect((await s.runs("refused-400"))[0].deliveries).toHaveLength(1);
  });

  it.concurrent("sends nothing for a silent job or an event left out of notify_on", async () => {
    const quiet = rx.url("/quiet");
    await s.tool("add_cron", { name: "silent", schedule: "@yearly", prompt: "p", on_complete: quiet, silent: true });
    await s.tool("add_cron", { name: "fail-only", schedule: "@yearly", prompt: "p", on_complete: quiet, notify_on: ["failed"] });
    await s.tool("run_now", { job: "silent", wait: true });
    await s.tool("run_now", { job: "fail-only", wait: true });
    await sleep(1500);
    expect(rx.at("/quiet")).toEqual([]);
    expect((await s.runs("silent"))[0].deliveries ?? []).toEqual([]);
  });
});

describe("webhook targets with the default config (private networks not allowed)", () => {
  let s: Server;
  let dir: string;
  beforeAll(async () => {
    dir = makeDataDir({}, "agent-cron-webhook-default-");
    s = await Server.start(dir, { env: { AGENT_CRON_WEBHOOK_SECRET: SECRET } });
  });
  afterAll(async () => {
    await s?.close();
    await removeDir(dir);
  });

  const privateTargets = [
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://2130706433/hook",
    "http://[::ffff:10.0.0.1]/",
  ];

  it.each(privateTargets)("refuses %s at add_cron (on_complete and on_fail) with one clear sentence, storing nothing", async (url) => {
    const result = await s.call("add_cron", { schedule: "@daily", prompt: "p", on_complete: url });
    expect(result.isError).toBe(true);
    const text = textOf(result);
    expect(text).toMatch(/on_complete points to a private or loopback address.*allow_private_networks/);
    expect(text.split("\n")).toHaveLength(1);
    const failResult = await s.call("add_cron", { schedule: "@daily", prompt: "p", on_fail: url });
    expect(textOf(failResult)).toMatch(/on_fail .*allow_private_networks/);
    expect((await s.tool("list_crons")).jobs).toEqual([]);
  });

  it("refuses a private target in update_cron too, leaving the job as it was", async () => {
    const job = (await s.tool("add_cron", { name: "public", schedule: "@daily", prompt: "p", on_complete: "https://hooks.example.com/x" })).job;
    const result = await s.call("update_cron", { job: "public", on_complete: "http://169.254.169.254/" });
    expect(result.isError).toBe(true);
    expect((await s.tool("get_cron", { job: "public" })).job.on_complete).toBe("https://hooks.example.com/x");
    await s.tool("remove", { job: job.id });
  });

  it("refuses at delivery a name that resolves to a private address (the resolved address is checked, not only the name)", async (ctx) => {
    const name = os.hostname();
    const addresses = await dns.lookup(name, { all: true }).catch(() => []);
    const resolvesPrivate = addresses.some((a) => /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|::1$|f[cd])/.test(a.address));
    if (!resolvesPrivate || !/^[a-z0-9.-]+$/i.test(name) || name === "localhost") {
      ctx.skip(`${name} does not resolve to a private address here (${addresses.map((a) => a.address).join(", ") || "no address"})`);
    }
    const url = `http://${name}:9/hook`;
    await s.tool("add_cron", { name: "by-name", schedule: "@yearly", prompt: "p", on_complete: url });
    await s.tool("run_now", { job: "by-name", wait: true });
    const run = await waitFor(async () => (await s.runs("by-name")).find((r) => r.deliveries?.length), { timeout: 10_000, what: "the delivery record" });
    expect(run.deliveries).toHaveLength(1);
    expect(run.deliveries![0]).toMatchObject({ attempt: 1, http_status: null, ok: false, error: expect.stringMatching(/private address.*refused/) });
    expect(ms(run.deliveries![0].at)).toBeGreaterThan(0);
  });
});
