import { spawn } from "node:child_process";
import type { ChannelConfig } from "../kernel/channel-config.js";
import { errorMessage } from "../kernel/errors.js";
import type { Delivery } from "../core/jobs.js";
import { resolveProgram } from "../executors/command.js";
import { JSON_HEADERS, by2xx, idIn, oneAttempt, postWithRetries, type PostRequest } from "./post.js";
import { signedHeaders } from "./webhook.js";
import type { DeliveryMessage } from "./format/message.js";
import { desktopNotifier } from "./format/notifier.js";

/** The formatters bring markdown-it (~10 MB): loaded with the first delivery, not at start. */
const formatters = () =>
  Promise.all([
    import("./format/slack.js"),
    import("./format/discord.js"),
    import("./format/teams.js"),
    import("./format/telegram.js"),
    import("./format/ntfy.js"),
    import("./format/desktop.js"),
  ]).then(([slack, discord, teams, telegram, ntfy, desktop]) => ({ ...slack, ...discord, ...teams, ...telegram, ...ntfy, ...desktop }));
type Formatters = Awaited<ReturnType<typeof formatters>>;

/** Why a configured channel cannot send in this environment (a variable is unset), or null. */
export function channelProblem(name: string, cfg: ChannelConfig, env: NodeJS.ProcessEnv): string | null {
  const unset = (key: string, variable: string) => `channels.${name}.${key} names ${variable}, which is not set in the server's environment`;
  switch (cfg.type) {
    case "slack":
    case "discord":
    case "teams":
    case "webhook":
    case "ntfy":
      if (!cfg.url && cfg.url_env && !env[cfg.url_env]) return unset("url_env", cfg.url_env);
      if (cfg.type === "ntfy" && cfg.token_env && !env[cfg.token_env]) return unset("token_env", cfg.token_env);
      if (cfg.type === "webhook" && cfg.secret_env && !env[cfg.secret_env]) return unset("secret_env", cfg.secret_env);
      return endpointProblem(name, cfg, env);
    case "telegram":
      return env[cfg.token_env] ? null : unset("token_env", cfg.token_env);
    case "desktop":
      return resolveProgram(desktopNotifier(), process.env.PATH) ? null : `channels.${name}: no desktop notifier was found on PATH (${desktopNotifier()})`;
  }
}

/** A URL taken from a variable is checked when it is used: it must be http(s). */
function endpointProblem(name: string, cfg: { url?: string; url_env?: string }, env: NodeJS.ProcessEnv): string | null {
  const url = cfg.url ?? (cfg.url_env ? env[cfg.url_env] : undefined);
  if (!url) return `channels.${name} has neither url nor url_env`;
  try {
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") return null;
  } catch {
    // worded below
  }
  return `channels.${name}.${cfg.url ? "url" : `url_env (${cfg.url_env})`} is not an http(s) URL`;
}

/** The HTTP request a channel sends for a message; null for the desktop channel. */
function requestFor(name: string, cfg: ChannelConfig, msg: DeliveryMessage, env: NodeJS.ProcessEnv, f: Formatters): PostRequest | null {
  const urlOf = (c: { url?: string; url_env?: string }) => c.url ?? env[c.url_env ?? ""] ?? "";
  switch (cfg.type) {
    case "slack": {
      const url = urlOf(cfg);
      return {
        url,
        headers: JSON_HEADERS,
        body: JSON.stringify(f.slackPayload(msg)),
        secrets: [url],
        // Slack's incoming webhooks answer 200 "ok"; anything else is an error code in the body.
        // Slack's Web API (chat.postMessage) answers {"ok": true, "ts": …} instead: its ts is the message id.
        accepted: (status, body) =>
          status === 200 && body.trim() === "ok"
            ? { ok: true, error: null }
            : status === 200 && idIn(body, (a) => a.ok === true && a.ts) !== null
              ? { ok: true, error: null, messageId: idIn(body, (a) => a.ts) }
              : { ok: false, error: `HTTP ${status}: ${body.trim().slice(0, 200) || "no body"}` },
      };
    }
    case "discord": {
      // wait=true: Discord answers with the message it made, whose id is the evidence of delivery.
      const base = urlOf(cfg);
      const url = /[?&]wait=/.test(base) ? base : `${base}${base.includes("?") ? "&" : "?"}wait=true`;
      return {
        url,
        headers: JSON_HEADERS,
        body: JSON.stringify(f.discordPayload(msg)),
        secrets: [base],
        accepted: (status, body) => {
          if (status !== 429) return { ...by2xx(status, body), messageId: status >= 200 && status < 300 ? idIn(body, (a) => a.id) : null };
          // Discord says how long to wait in the JSON body as well as in Retry-After.
          let retryAfterMs: number | undefined;
          try {
            const seconds = Number(JSON.parse(body).retry_after);
            if (Number.isFinite(seconds)) retryAfterMs = seconds * 1000;
          } catch {
            // the header then
          }
          return { ok: false, error: "HTTP 429: rate limited", retryAfterMs };
        },
      };
    }
    case "teams": {
      const url = urlOf(cfg);
      return { url, headers: JSON_HEADERS, body: JSON.stringify(f.teamsPayload(msg)), secrets: [url], accepted: by2xx };
    }
    case "telegram": {
      const token = env[cfg.token_env] ?? "";
      const url = `${cfg.api_base.replace(/\/+$/, "")}/bot${token}/sendMessage`;
      return {
        url,
        headers: JSON_HEADERS,
        body: JSON.stringify(f.telegramPayload(msg, { chatId: cfg.chat_id })),
        secrets: [token],
        // The Bot API answers {"ok": true, "result": …} or {"ok": false, "description": …}.
        accepted: (status, body) => {
          let answer: { ok?: unknown; description?: unknown; parameters?: { retry_after?: unknown } } = {};
          try {
            answer = JSON.parse(body);
          } catch {
            // not JSON: not accepted
          }
          if (status === 200 && answer.ok === true) return { ok: true, error: null, messageId: idIn(body, (a) => a.result?.message_id) };
          const retry = Number(answer.parameters?.retry_after);
          return {
            ok: false,
            error: `HTTP ${status}: ${typeof answer.description === "string" ? answer.description : body.trim().slice(0, 200) || "no body"}`,
            retryAfterMs: Number.isFinite(retry) ? retry * 1000 : undefined,
          };
        },
      };
    }
    case "ntfy": {
      const topicUrl = new URL(urlOf(cfg));
      const topic =
        topicUrl.pathname
          .replace(/^\/+|\/+$/g, "")
          .split("/")
          .pop() ?? "";
      // JSON publishing goes to the server's root, naming the topic in the body.
      const root = new URL(topicUrl.pathname.replace(/[^/]+\/*$/, ""), topicUrl).href;
      const token = cfg.token_env ? env[cfg.token_env] : undefined;
      return {
        url: root,
        headers: { ...JSON_HEADERS, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ ...f.ntfyPayload(msg), topic, ...(cfg.priority ? { priority: cfg.priority } : {}) }),
        secrets: token ? [token] : [],
        accepted: by2xx,
      };
    }
    case "webhook": {
      const url = urlOf(cfg);
      const body = JSON.stringify({ type: `run.${msg.event}`, channel: name, message: msg });
      const secret = cfg.secret_env ? env[cfg.secret_env] : undefined;
      return { url, headers: signedHeaders(`msg_${msg.runId}_${name}`, body, secret), body, secrets: [url], accepted: by2xx };
    }
    case "desktop":
      return null;
  }
}

export interface SendOptions {
  /** First back-off; doubles per retry (tests shorten it). */
  retryBaseMs?: number;
  signal?: AbortSignal;
}

/**
 * Hands one message to one channel and says what happened, attempt by attempt. An attempt
 * counts only when the receiver accepted it; 429 waits as long as the receiver asks,
 * network errors and 5xx are retried, anything else is final. Never throws.
 */
export async function sendToChannel(
  name: string,
  cfg: ChannelConfig,
  msg: DeliveryMessage,
  env: NodeJS.ProcessEnv,
  opts: SendOptions = {},
): Promise<Delivery[]> {
  const problem = channelProblem(name, cfg, env);
  if (problem) return oneAttempt(name, msg.event, false, `${problem}.`);
  const f = await formatters();
  if (cfg.type === "desktop") {
    const { ok, error } = await notifyDesktop(f.desktopCommand(msg));
    return oneAttempt(name, msg.event, ok, error);
  }
  // Built per attempt: a signed webhook's timestamp must be fresh.
  return postWithRetries(() => requestFor(name, cfg, msg, env, f)!, {
    channel: name,
    event: msg.event,
    timeoutMs: cfg.timeout_seconds * 1000,
    retryBaseMs: opts.retryBaseMs,
    signal: opts.signal,
  });
}

/** The platform's notifier; accepted when it exits 0. */
function notifyDesktop(argv: string[]): Promise<{ ok: boolean; error: string | null }> {
  const [program, ...args] = argv;
  const resolved = resolveProgram(program, process.env.PATH);
  if (!resolved) return Promise.resolve({ ok: false, error: `${program} was not found on PATH` });
  return new Promise((resolve) => {
    const child = spawn(resolved, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-500)));
    child.on("error", (err) => resolve({ ok: false, error: errorMessage(err) }));
    child.on("close", (code, signal) =>
      resolve(
        code === 0 ? { ok: true, error: null } : { ok: false, error: `${program} exited with ${code ?? signal}${stderr.trim() ? `: ${stderr.trim()}` : ""}` },
      ),
    );
  });
}

export interface ChannelRow {
  channel: string;
  type: ChannelConfig["type"];
  status: "ok" | "missing";
  detail: string;
}

/** What `doctor` says of each channel: whether it can send here, and what is missing. */
export function channelRows(channels: Record<string, ChannelConfig>, env: NodeJS.ProcessEnv): ChannelRow[] {
  return Object.entries(channels).map(([channel, cfg]) => {
    const problem = channelProblem(channel, cfg, env);
    return { channel, type: cfg.type, status: problem ? "missing" : "ok", detail: problem ?? "ready (agent-cron test-channel sends a test message)" };
  });
}

/** A message that says it is a test, for `agent-cron test-channel`. */
export function testMessage(): DeliveryMessage {
  return {
    event: "completed",
    jobId: "00000000-0000-4000-8000-000000000000",
    jobName: "test-channel",
    runId: "00000000-0000-4000-8000-000000000000",
    status: "completed",
    error: null,
    response: "This is a **test message** from `agent-cron test-channel`: if you read it, this channel works.",
    durationMs: 1234,
    costUsd: null,
    nextRunAt: null,
    timezone: "UTC",
    link: "cron://runs/00000000-0000-4000-8000-000000000000",
    test: true,
  };
}
