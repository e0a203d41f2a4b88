/**
 * Discord: the body of an Execute Webhook call, one embed.
 *
 *   { embeds: [{ title, description, color, url?, footer: { text } }], allowed_mentions: { parse: [] } }
 *
 * Limits: embed title ≤ 256 characters, description ≤ 4096, footer text ≤ 2048, and all the
 * embed's text together ≤ 6000; `content` (unused here) ≤ 2000. The description is Discord's
 * Markdown (`#`…`###` headings, `**`, `*`, `~~`, code, `[text](url)`, `- ` lists, `> ` quotes).
 * `allowed_mentions` with nothing to parse: an answer that says @everyone pings no one.
 */
import { markdownRenderer } from "./commonmark.js";
import { UTF16, Walker, fitAtoms, messageBody, render, type Renderer } from "./markdown.js";
import { type DeliveryEvent, type DeliveryMessage, FOOTER_SEPARATOR, footerParts, isWebLink, shorten, title } from "./message.js";

export const DISCORD_TITLE_MAX = 256;
export const DISCORD_DESCRIPTION_MAX = 4096;
export const DISCORD_FOOTER_MAX = 2048;
export const DISCORD_EMBED_TOTAL_MAX = 6000;

export const DISCORD_COLORS: Record<DeliveryEvent, number> = {
  completed: 0x2ecc71,
  changed: 0x2ecc71,
  failed: 0xe74c3c,
  paused: 0xf39c12,
  canceled: 0xf39c12,
  needs_attention: 0x3498db,
  quiet: 0x95a5a6,
};

export const discordRenderer: Renderer = markdownRenderer({
  heading: (level) => (level <= 3 ? ["#".repeat(level) + " ", ""] : ["**", "**"]),
  strike: ["~~", "~~"],
  hr: "———",
  nestedQuotes: false,
  longFences: false,
});

/** Discord Markdown for a Markdown text (no limit applied). */
export function toDiscordMarkdown(markdown: string): string {
  return render(new Walker(discordRenderer).markdown(markdown).atoms);
}

export interface DiscordEmbed {
  title: string;
  description: string;
  color: number;
  url?: string;
  footer: { text: string };
}

export interface DiscordPayload {
  embeds: [DiscordEmbed];
  allowed_mentions: { parse: string[] };
  username?: string;
  avatar_url?: string;
}

export interface DiscordOptions {
  /** Overrides the webhook's name. */
  username?: string;
  avatarUrl?: string;
}

export function discordPayload(msg: DeliveryMessage, opts: DiscordOptions = {}): DiscordPayload {
  const heading = shorten(title(msg), DISCORD_TITLE_MAX);
  const web = isWebLink(msg.link);
  // A web link makes the title clickable; any other link is said in the footer.
  const footerText = shorten([...footerParts(msg), ...(web ? [] : [`full output: ${msg.link}`])].join(FOOTER_SEPARATOR) || "agent-cron", DISCORD_FOOTER_MAX);
  const body = messageBody(msg, discordRenderer);
  const budget = Math.min(DISCORD_DESCRIPTION_MAX, DISCORD_EMBED_TOTAL_MAX - heading.length - footerText.length);
  const fitted = fitAtoms(body.atoms, budget, UTF16, msg.link, (s) => discordRenderer.text(s, false), body.sourceCut);
  const embed: DiscordEmbed = {
    title: heading,
    description: render(fitted.atoms),
    color: DISCORD_COLORS[msg.event],
    ...(web ? { url: msg.link } : {}),
    footer: { text: footerText },
  };
  return {
    embeds: [embed],
    allowed_mentions: { parse: [] },
    ...(opts.username ? { username: opts.username } : {}),
    ...(opts.avatarUrl ? { avatar_url: opts.avatarUrl } : {}),
  };
}
