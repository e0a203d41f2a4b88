import { z } from "zod";

/**
 * Delivery channels, as the operator names them in config.json (`channels`). Secrets (webhook
 * URLs that carry a token, bot tokens) come from environment variables; `url` is there for
 * endpoints that are not secret and for tests that point a channel at loopback. Callers pick
 * channels by name and never give a URL.
 */
/** Exactly one of url and url_env. */
function oneEndpoint(cfg: { url?: string; url_env?: string }, ctx: z.RefinementCtx): void {
  if ((cfg.url === undefined) === (cfg.url_env === undefined)) {
    ctx.addIssue({ code: "custom", path: ["url_env"], message: "set exactly one of url_env (the variable holding the webhook URL) and url" });
  }
}

/** Built for each config parse and then dropped (src/config.ts says why). */
export function channelsSchema() {
  const envName = z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name like SLACK_WEBHOOK_URL")
    .describe("Name of the environment variable that holds the secret");
  const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
  const timeout = z.number().min(1).max(120).default(10).describe("Seconds to wait for the receiver's answer, per attempt (default 10)");

  const endpoint = {
    url: httpUrl.optional().describe("The endpoint itself, when it is no secret (or a loopback receiver in tests)"),
    url_env: envName.optional().describe("The variable holding the endpoint URL (a Slack, Discord or Teams webhook URL is a secret)"),
    timeout_seconds: timeout,
  };

  const Slack = z.strictObject({ type: z.literal("slack").describe("Slack incoming webhook: Block Kit with mrkdwn"), ...endpoint }).superRefine(oneEndpoint);
  const Discord = z.strictObject({ type: z.literal("discord").describe("Discord webhook: an embed"), ...endpoint }).superRefine(oneEndpoint);
  const Teams = z
    .strictObject({ type: z.literal("teams").describe("Microsoft Teams Workflows webhook: an Adaptive Card"), ...endpoint })
    .superRefine(oneEndpoint);
  const Webhook = z
    .strictObject({
      type: z.literal("webhook").describe("Any HTTP endpoint: the message as JSON, signed per Standard Webhooks when secret_env is set"),
      ...endpoint,
      secret_env: envName.optional().describe("The variable holding the signing secret (whsec_…)"),
    })
    .superRefine(oneEndpoint);
  const Telegram = z.strictObject({
    type: z.literal("telegram").describe("Telegram Bot API sendMessage, HTML parse mode"),
    token_env: envName.describe("The variable holding the bot token"),
    chat_id: z
      .union([z.string().min(1).max(64), z.number().int()])
      .transform(String)
      .describe("The chat to post to (a number, or @channelname)"),
    api_base: httpUrl.default("https://api.telegram.org").describe("The Bot API's base URL (tests point it at loopback)"),
    timeout_seconds: timeout,
  });
  const Ntfy = z
    .strictObject({
      type: z.literal("ntfy").describe("ntfy topic: title, priority, tags and Markdown"),
      ...endpoint,
      url: httpUrl.optional().describe('The topic URL, e.g. "https://ntfy.sh/my-topic"'),
      token_env: envName.optional().describe("The variable holding an access token, for protected topics"),
      priority: z.number().int().min(1).max(5).optional().describe("ntfy priority 1-5 for every message (default: 4 for failures and pauses, 3 otherwise)"),
    })
    .superRefine(oneEndpoint);
  const Desktop = z.strictObject({ type: z.literal("desktop").describe("The desktop's notifier: notify-send, osascript or a PowerShell toast") });

  const ChannelConfigSchema = z.discriminatedUnion("type", [Slack, Discord, Teams, Telegram, Ntfy, Desktop, Webhook]);
  return z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "channel names use letters, digits, _ . - (up to 64)"), ChannelConfigSchema)
    .default({})
    .describe("Delivery channels by name; jobs name them in deliver_to");
}
export type ChannelConfig = z.infer<ReturnType<typeof channelsSchema>>[string];
