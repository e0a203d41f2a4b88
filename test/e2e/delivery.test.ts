/**
 * Delivery to people (SPEC §11), through the built server: each channel type against a
 * loopback receiver that answers as the service does; verified delivery, retries and
 * Retry-After; `changed` and `paused`; one delivery per run with two servers on one data dir;
 * a delivery pending at kill -9 is sent by the next owner; bad input stores nothing.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCEPTED, ChatReceivers, REFUSALS } from "../helpers/chat-receivers.js";
import { startRaw } from "../helpers/server.js";
import {
  Server,
  expireLock,
  fixtureExecutor,
  makeDataDir,
  readDataFiles,
  readOwner,
  removeDir,
  runCli,
  sleep,
  waitFor,
  type Json,
} from "../reliability/helpers.js";

const YEARLY = "0 0 1 1 *";
const SECRET = "whsec_" + Buffer.from("a delivery test secret of 32 bytes").toString("base64");
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
});

let rx: ChatReceivers;
let fakeBin: string;
beforeAll(async () => {
  rx = await ChatReceivers.start();
  cleanup.push(() => rx.close());
  // A notify-send that writes its argv where the test can read it.
  fakeBin = mkdtempSync(path.join(os.tmpdir(), "agent-cron-fakebin-"));
  cleanup.push(() => removeDir(fakeBin));
  writeFileSync(path.join(fakeBin, "notify-send"), `#!/bin/sh\nprintf '%s\\n' "$@" > "${fakeBin}/notify-send.args"\n`);
  chmodSync(path.join(fakeBin, "notify-send"), 0o755);
});

/** The env the server reads its channel secrets from. */
function channelEnv(): Record<string, string> {
  return {
    SLACK_URL: rx.url("/slack/ok"),
    SLACK_BAD_URL: rx.url("/slack/bad", [REFUSALS.slackInvalidPayload]),
    SLACK_SLOW_URL: rx.url("/slack/throttled", [REFUSALS.slackRateLimited(1), ACCEPTED]),
    DISCORD_URL: rx.url("/discord/ok"),
    DISCORD_SLOW_URL: rx.url("/discord/throttled", [REFUSALS.discordRateLimited(0.3), ACCEPTED]),
    TEAMS_URL: rx.url("/teams/ok"),
    FLAKY_URL: rx.url("/webhook/flaky", [REFUSALS.unavailable, ACCEPTED]),
    HOOK_URL: rx.url("/webhook/ok"),
    HANG_URL: rx.url("/webhook/hang", ["hang"]),
    TELEGRAM_TOKEN: "123456:ABC-secret-token",
    NTFY_TOKEN: "tk_ntfytoken",
    HOOK_SECRET: SECRET,
    PATH: `${fakeBin}:${process.env.PATH}`,
    AGENT_CRON_RETRY_BASE_MS: "100",
  };
}

function channels(): Json {
  return {
    team: { type: "slack", url_env: "SLACK_URL" },
    team_bad: { type: "slack", url_env: "SLACK_BAD_URL" },
    team_slow: { type: "slack", url_env: "SLACK_SLOW_URL" },
    ops: { type: "discord", url_env: "DISCORD_URL" },
    ops_slow: { type: "discord", url_env: "DISCORD_SLOW_URL" },
    office: { type: "teams", url_env: "TEAMS_URL" },
    me: { type: "telegram", token_env: "TELEGRAM_TOKEN", chat_id: "123456789", api_base: `${rx.base}/telegram` },
    me_wrong_chat: { type: "telegram", token_env: "TELEGRAM_TOKEN", chat_id: "999", api_base: `${rx.base}/telegram-refusing` },
    phone: { type: "ntfy", url: `${rx.base}/ntfy/agent-cron-topic`, token_env: "NTFY_TOKEN" },
    desktop: { type: "desktop" },
    hook: { type: "webhook", url_env: "HOOK_URL", secret_env: "HOOK_SECRET" },
    flaky: { type: "webhook", url_env: "FLAKY_URL" },
    silent_receiver: { type: "webhook", url_env: "HANG_URL", timeout_seconds: 1 },
    unset: { type: "slack", url_env: "NOT_SET_ANYWHERE" },
  };
}

async function server(extra: Json = {}, prefix = "agent-cron-deliver-"): Promise<{ s: Server; dir: string }> {
  const dir = makeDataDir(
    {
      channels: channels(),
      executors: { fail: fixtureExecutor("fail-agent.mjs", "3"), quiet: { type: "command", command: [process.execPath, "-e", ""], sandbox: "none" } },
      ...extra,
    },
    prefix,
  );
  cleanup.push(() => removeDir(dir));
  const s = await Server.start(dir, { env: channelEnv() });
  cleanup.push(() => s.kill9());
  return { s, dir };
}

async function deliveredRun(s: Server, job: string): Promise<Json> {
  const { run } = await s.tool("run_now", { job, wait: true });
  return waitFor(
    async () => {
      const r = (await s.tool("get_run", { run: run.id })).run;
      return r.delivery !== "pending" && r;
    },
    { timeout: 20_000, what: `the delivery of ${job}` },
  );
}

describe("delivery to channels", () => {
  let s: Server;
  beforeAll(async () => {
    ({ s } = await server());
  });

  it('Slack: Block Kit with mrkdwn and a fallback text, accepted on 200 "ok"', async () => {
    await s.tool("add_cron", { name: "audit", schedule: YEARLY, prompt: "**All good**: 3 files, see `log.txt`", deliver_to: ["team"] });
    const run = await deliveredRun(s, "audit");
    expect(run.delivery).toBe("delivered");
    expect(run.deliveries).toEqual([
      { channel: "team", event: "completed", attempt: 1, ok: true, http_status: 200, message_id: null, error: null, at: expect.any(String) },
    ]);
    const [msg] = rx.at("/slack/ok");
    expect(msg.headers["content-type"]).toMatch(/application\/json/);
    expect(msg.json.text).toMatch(/audit completed/);
    expect(Array.isArray(msg.json.blocks)).toBe(true);
    for (const block of msg.json.blocks) expect(["header", "section", "context", "divider"]).toContain(block.type);
    const mrkdwn = msg.json.blocks.flatMap((b: Json) => [b.text, ...(b.elements ?? [])]).filter((t: Json) => t?.type === "mrkdwn");
    expect(mrkdwn.map((t: Json) => t.text).join("\n")).toContain("*All good*");
    expect(JSON.stringify(msg.json)).toContain("`log.txt`");
    const row = (await s.tool("list_runs", { job: "audit" })).runs[0];
    expect(row.delivery).toBe("delivered");
  });

  it("Slack: invalid_payload is a failed delivery, recorded and not retried; the run stays completed", async () => {
    await s.tool("add_cron", { name: "bad-payload", schedule: YEARLY, prompt: "hello", deliver_to: ["team_bad"] });
    const run = await deliveredRun(s, "bad-payload");
    expect(run.status).toBe("completed");
    expect(run.delivery).toBe("failed");
    expect(run.deliveries).toEqual([
      {
        channel: "team_bad",
        event: "completed",
        attempt: 1,
        ok: false,
        http_status: 400,
        message_id: null,
        error: "HTTP 400: invalid_payload",
        at: expect.any(String),
      },
    ]);
    expect((await s.tool("list_runs", { job: "bad-payload" })).runs[0].delivery).toBe("failed");
    const cli = await runCli(["runs", "bad-payload", "--data-dir", s.dataDir]);
    expect(cli.stdout).toMatch(/DELIVERY/);
    expect(cli.stdout).toMatch(/failed/);
  });

  it("Slack: 429 waits out Retry-After, then delivers", async () => {
    await s.tool("add_cron", { name: "throttled", schedule: YEARLY, prompt: "hello", deliver_to: ["team_slow"] });
    const run = await deliveredRun(s, "throttled");
    expect(run.deliveries.map((d: Json) => [d.attempt, d.ok, d.http_status])).toEqual([
      [1, false, 429],
      [2, true, 200],
    ]);
    const [first, second] = rx.at("/slack/throttled");
    expect(second.at - first.at).toBeGreaterThanOrEqual(950);
  });

  it("Discord: an embed with title, description and color, sent with wait=true and accepted on 200 with the message's id; 429's JSON retry_after is honoured", async () => {
    await s.tool("add_cron", { name: "disc", schedule: YEARLY, prompt: "# Report\n- one\n- two", deliver_to: ["ops", "ops_slow"] });
    const run = await deliveredRun(s, "disc");
    expect(run.delivery).toBe("delivered");
    const [msg] = rx.at("/discord/ok");
    const [embed] = msg.json.embeds;
    expect(embed.title).toMatch(/disc completed/);
    expect(embed.title.length).toBeLessThanOrEqual(256);
    expect(embed.description).toContain("one");
    expect(embed.description.length).toBeLessThanOrEqual(4096);
    expect(Number.isInteger(embed.color)).toBe(true);
    const slow = run.deliveries.filter((d: Json) => d.channel === "ops_slow");
    expect(slow.map((d: Json) => [d.attempt, d.ok, d.http_status, d.message_id])).toEqual([
      [1, false, 429, null],
      [2, true, 200, "1182736459182736459"],
    ]);
  });

  it("Teams: an Adaptive Card in a message attachment, accepted on 202", async () => {
    await s.tool("add_cron", { name: "teams-job", schedule: YEARLY, prompt: "done", deliver_to: ["office"] });
    const run = await deliveredRun(s, "teams-job");
    expect(run.deliveries[0]).toMatchObject({ ok: true, http_status: 202 });
    const [msg] = rx.at("/teams/ok");
    expect(msg.json.type).toBe("message");
    expect(msg.json.attachments[0].contentType).toBe("application/vnd.microsoft.card.adaptive");
    const card = msg.json.attachments[0].content;
    expect(card.type).toBe("AdaptiveCard");
    expect(card.version).toMatch(/^1\.\d$/);
    expect(card.body.some((b: Json) => b.type === "TextBlock" && /teams-job completed/.test(b.text))).toBe(true);
  });

  it('Telegram: sendMessage with HTML parse mode, accepted only on "ok": true; a refusal\'s description is recorded', async () => {
    await s.tool("add_cron", { name: "tg", schedule: YEARLY, prompt: "Use <b> tags & **bold**", deliver_to: ["me", "me_wrong_chat"] });
    rx.url("/telegram-refusing/bot123456:ABC-secret-token/sendMessage", [REFUSALS.telegramChatNotFound]);
    const run = await deliveredRun(s, "tg");
    const [msg] = rx.at("/telegram/bot123456:ABC-secret-token/sendMessage");
    expect(msg.json).toMatchObject({ chat_id: "123456789", parse_mode: "HTML" });
    expect(msg.json.text).toContain("&lt;b&gt; tags &amp; <b>bold</b>");
    expect(msg.json.text.length).toBeLessThanOrEqual(4096);
    const refused = run.deliveries.filter((d: Json) => d.channel === "me_wrong_chat");
    expect(refused).toEqual([expect.objectContaining({ ok: false, http_status: 400, error: "HTTP 400: Bad Request: chat not found" })]);
    expect(run.delivery).toBe("failed");
    // The bot token is in the URL; it never reaches a record.
    expect(JSON.stringify(run)).not.toContain("ABC-secret-token");
  });

  it("ntfy: JSON publishing to the server root with topic, title, priority, tags and Markdown, with the access token", async () => {
    await s.tool("add_cron", { name: "phone-job", schedule: YEARLY, prompt: "ping", deliver_to: ["phone"] });
    const run = await deliveredRun(s, "phone-job");
    expect(run.delivery).toBe("delivered");
    const [msg] = rx.at("/ntfy/");
    expect(msg.headers.authorization).toBe("Bearer tk_ntfytoken");
    expect(msg.json).toMatchObject({ topic: "agent-cron-topic", markdown: true });
    expect(msg.json.title).toMatch(/phone-job completed/);
    expect(msg.json.message).toContain("ping");
    expect(Number.isInteger(msg.json.priority)).toBe(true);
    expect(Array.isArray(msg.json.tags)).toBe(true);
  });

  it("desktop: the platform's notifier is run with the title and the answer", async () => {
    await s.tool("add_cron", { name: "desk", schedule: YEARLY, prompt: "on your desk", deliver_to: ["desktop"] });
    const run = await deliveredRun(s, "desk");
    expect(run.deliveries).toEqual([expect.objectContaining({ channel: "desktop", ok: true })]);
    const args = readFileSync(path.join(fakeBin, "notify-send.args"), "utf8");
    expect(args).toMatch(/desk completed/);
    expect(args).toContain("on your desk");
  });

  it("webhook channel: signed per Standard Webhooks; a 503 is retried, then delivered", async () => {
    await s.tool("add_cron", { name: "hooked", schedule: YEARLY, prompt: "payload", deliver_to: ["hook", "flaky"] });
    const run = await deliveredRun(s, "hooked");
    expect(run.delivery).toBe("delivered");
    const [msg] = rx.at("/webhook/ok");
    const verified = new Webhook(SECRET).verify(msg.body, {
      "webhook-id": String(msg.headers["webhook-id"]),
      "webhook-timestamp": String(msg.headers["webhook-timestamp"]),
      "webhook-signature": String(msg.headers["webhook-signature"]),
    }) as Json;
    expect(verified.message).toMatchObject({ event: "completed", runId: run.id, response: "payload" });
    expect(run.deliveries.filter((d: Json) => d.channel === "flaky").map((d: Json) => [d.attempt, d.ok, d.http_status])).toEqual([
      [1, false, 503],
      [2, true, 200],
    ]);
  });

  it("a receiver that never answers is given up on after 4 attempts, each timed out; the next run is not held up", async () => {
    await s.tool("add_cron", { name: "hangs", schedule: YEARLY, prompt: "x", deliver_to: ["silent_receiver"] });
    const t0 = Date.now();
    const { run } = await s.tool("run_now", { job: "hangs", wait: true });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await s.tool("run_now", { job: "hangs", wait: true })).run.status).toBe("completed");
    const done = await waitFor(
      async () => {
        const r = (await s.tool("get_run", { run: run.id })).run;
        return r.delivery !== "pending" && r;
      },
      { timeout: 20_000, what: "the hanging delivery to be given up" },
    );
    expect(done.delivery).toBe("failed");
    expect(done.deliveries.map((d: Json) => [d.attempt, d.ok, d.error])).toEqual([1, 2, 3, 4].map((n) => [n, false, "no answer within 1 s"]));
  });

  it("an empty answer is never delivered as a result: it goes out as needing attention (SPEC §18)", async () => {
    await s.tool("add_cron", { name: "empty", schedule: YEARLY, prompt: "say nothing", executor: "quiet", deliver_to: ["team"] });
    const before = rx.at("/slack/ok").length;
    const { run } = await s.tool("run_now", { job: "empty", wait: true });
    expect(run.status).toBe("completed");
    expect(run.warnings[0]).toMatch(/^empty: /);
    await waitFor(() => rx.at("/slack/ok").length === before + 1, { timeout: 20_000 });
    const text = JSON.stringify(rx.at("/slack/ok").at(-1)!.json);
    expect(text).toMatch(/empty completed having done nothing: needs attention/);
    expect(text).not.toMatch(/empty completed in/);
  });

  it("deliver_on changed: only answers that differ from the previous completed run's go out", async () => {
    await s.tool("add_cron", { name: "watch", schedule: YEARLY, prompt: "status A", deliver_to: ["ops"], deliver_on: ["changed"] });
    const before = rx.at("/discord/ok").length;
    const first = await deliveredRun(s, "watch");
    const second = (await s.tool("run_now", { job: "watch", wait: true })).run;
    await s.tool("update_cron", { job: "watch", prompt: "status B" });
    const third = await deliveredRun(s, "watch");
    await sleep(300);
    expect([first.delivery, (await s.tool("get_run", { run: second.id })).run.delivery, third.delivery]).toEqual(["delivered", null, "delivered"]);
    const sent = rx.at("/discord/ok").slice(before);
    expect(sent).toHaveLength(2);
    expect(sent[1].json.embeds[0].description).toContain("status B");
    expect(third.deliveries[0].event).toBe("changed");
  });

  it("a job that pauses itself after failures in a row is delivered as paused", async () => {
    await s.tool("add_cron", {
      name: "breaks",
      schedule: YEARLY,
      prompt: "x",
      executor: "fail",
      retries: 0,
      pause_after_failures: 2,
      deliver_to: ["ops"],
      deliver_on: ["paused"],
    });
    const first = (await s.tool("run_now", { job: "breaks", wait: true })).run;
    const second = await deliveredRun(s, "breaks");
    expect((await s.tool("get_run", { run: first.id })).run.delivery).toBeNull();
    expect(second.deliveries[0]).toMatchObject({ channel: "ops", event: "paused", ok: true });
    const sent = rx.at("/discord/ok").at(-1)!;
    expect(sent.json.embeds[0].title).toMatch(/breaks paused/);
  });

  it("refuses unknown channels, unknown deliver_on values and channels whose variable is unset; nothing is stored", async () => {
    expect(await errorOf(s, { deliver_to: ["nope"] })).toMatch(
      /^add_cron failed: deliver_to names "nope", which is not a configured channel; the channels are: team, team_bad/,
    );
    expect(await errorOf(s, { deliver_on: ["sometimes"] })).toMatch(/deliver_on/);
    expect(await errorOf(s, { deliver_to: ["unset"] })).toMatch(
      /deliver_to names "unset", which cannot send: channels\.unset\.url_env names NOT_SET_ANYWHERE, which is not set/,
    );
    expect((await s.tool("list_crons", { query: "refused-" })).total).toBe(0);
  });
});

async function errorOf(s: Server, fields: Json): Promise<string> {
  const r = await s.call("add_cron", { name: `refused-${Math.random()}`, schedule: YEARLY, prompt: "p", ...fields });
  expect(r.isError).toBe(true);
  return (r.content as { text: string }[])[0].text;
}

describe("channel config", () => {
  it("a malformed channel stops start-up naming its key; nothing is overwritten", async () => {
    for (const [channel, key] of [
      [{ type: "slack", url: "not a url" }, /channels\.bad\.url/],
      [{ type: "slack", url: "https://hooks.slack.test/x", url_env: "ALSO" }, /channels\.bad\.url_env.*exactly one/],
      [{ type: "telegram", chat_id: "1" }, /channels\.bad\.token_env/],
      [{ type: "pager" }, /channels\.bad/],
    ] as const) {
      const dir = makeDataDir({ channels: { bad: channel } }, "agent-cron-deliver-cfg-");
      cleanup.push(() => removeDir(dir));
      const before = readFileSync(path.join(dir, "config.json"), "utf8");
      const r = await startRaw(dir);
      expect(r.ready).toBe(false);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(key);
      expect(readFileSync(path.join(dir, "config.json"), "utf8")).toBe(before);
    }
  });
});

describe("delivery across processes and restarts", () => {
  it("two servers on one data dir deliver each run once", async () => {
    const { s: a, dir } = await server({}, "agent-cron-deliver-two-");
    const b = await Server.start(dir, { env: channelEnv() });
    cleanup.push(() => b.kill9());
    await b.tool("add_cron", { name: "twice", schedule: "@every 1s", prompt: "tick", deliver_to: ["team"] });
    const path0 = rx.at("/slack/ok").length;
    await sleep(3500);
    await b.tool("pause", { job: "twice" });
    await sleep(1000);
    const runs = (await a.tool("list_runs", { job: "twice", limit: 100 })).runs.filter((r: Json) => r.status === "completed");
    const sent = rx.at("/slack/ok").slice(path0);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(sent.length).toBe(runs.length);
  });

  it("a run interrupted by kill -9 is delivered as failed by the next owner", async () => {
    const dir = makeDataDir(
      { channels: { ops: { type: "discord", url_env: "DISCORD_URL" } }, executors: { sleep: fixtureExecutor("sleep-agent.mjs", "{prompt}") } },
      "agent-cron-deliver-int-",
    );
    cleanup.push(() => removeDir(dir));
    const a = await Server.start(dir, { env: channelEnv() });
    await a.tool("add_cron", { name: "cut-short", schedule: YEARLY, prompt: "30000", executor: "sleep", deliver_to: ["ops"] });
    const { run } = await a.tool("run_now", { job: "cut-short" });
    const before = rx.at("/discord/ok").length;
    await a.kill9();
    expireLock(dir);
    const b = await Server.start(dir, { env: channelEnv() });
    cleanup.push(() => b.kill9());
    const done = await waitFor(
      async () => {
        const r = (await b.tool("get_run", { run: run.id })).run;
        return r.delivery === "delivered" && r;
      },
      { timeout: 15_000, what: "the interrupted run's delivery" },
    );
    expect(done.status).toBe("interrupted");
    expect(done.deliveries).toEqual([expect.objectContaining({ channel: "ops", event: "failed", ok: true })]);
    expect(
      rx
        .at("/discord/ok")
        .slice(before)
        .map((m) => m.json.embeds[0].title),
    ).toEqual([expect.stringMatching(/cut-short/)]);
  });

  it("a delivery pending when the owner is killed (kill -9) is sent by the next owner, once", async () => {
    const dir = makeDataDir({ channels: { later: { type: "webhook", url_env: "LATER_URL" } } }, "agent-cron-deliver-kill-");
    cleanup.push(() => removeDir(dir));
    // The first attempt is told to come back in 3 s: the owner dies while it waits.
    const url = rx.url("/webhook/later", [REFUSALS.slackRateLimited(3), ACCEPTED]);
    const env = { ...channelEnv(), LATER_URL: url };
    const a = await Server.start(dir, { env });
    await a.tool("add_cron", { name: "pending", schedule: YEARLY, prompt: "owed", deliver_to: ["later"] });
    const { run } = await a.tool("run_now", { job: "pending", wait: true });
    await waitFor(() => rx.at("/webhook/later").length === 1, { what: "the first attempt" });
    await a.kill9();
    expect(readDataFiles(dir).runs.get(run.job_id)![0].delivery).toBe("pending");
    expireLock(dir);
    const b = await Server.start(dir, { env });
    cleanup.push(() => b.kill9());
    expect(readOwner(dir)?.pid).toBe(b.pid);
    const done = await waitFor(
      async () => {
        const r = (await b.tool("get_run", { run: run.id })).run;
        return r.delivery === "delivered" && r;
      },
      { timeout: 15_000, what: "the next owner to deliver" },
    );
    expect(done.deliveries.filter((d: Json) => d.ok)).toHaveLength(1);
    await sleep(500);
    expect(rx.at("/webhook/later")).toHaveLength(2);
  });
});

describe("test-channel and doctor", () => {
  it("test-channel sends a test message and prints what the receiver said; a refusal exits 1", async () => {
    const { dir } = await server({}, "agent-cron-deliver-cli-");
    const env = channelEnv();
    const ok = await runCli(["test-channel", "team", "--data-dir", dir], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^team \(slack\): delivered after 1 attempt\n {2}attempt 1: accepted, HTTP 200/);
    expect(rx.at("/slack/ok").at(-1)!.json.text).toMatch(/Test message from agent-cron/);
    const bad = await runCli(["test-channel", "team_bad", "--data-dir", dir], { env });
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toMatch(/HTTP 400: invalid_payload/);
    const unknown = await runCli(["test-channel", "nope", "--data-dir", dir], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no channel named "nope"/);
  });

  it("doctor lists the channels and says what is missing", async () => {
    const { dir } = await server({}, "agent-cron-deliver-doctor-");
    const r = await runCli(["doctor", "--data-dir", dir], { env: channelEnv() });
    expect(r.stdout).toMatch(/team\s+slack\s+ok/);
    expect(r.stdout).toMatch(/unset\s+slack\s+missing\s+channels\.unset\.url_env names NOT_SET_ANYWHERE/);
  });
});
