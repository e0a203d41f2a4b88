/**
 * Slack: a message for an incoming webhook or chat.postMessage, in Block Kit.
 *
 *   { text, blocks: [header, section…, context], unfurl_links, unfurl_media }
 *
 * `text` is the notification's fallback (the title). The answer is Slack mrkdwn, spread over
 * section blocks of at most 3000 characters each (Slack's limit for a section's text), with
 * at most 50 blocks in all; a header's plain text is at most 150 characters.
 */
import { UTF16, Walker, fitAtoms, messageBody, render, splitAtoms, type Renderer } from "./markdown.js";
import { type DeliveryMessage, FOOTER_SEPARATOR, NO_OUTPUT, footerParts, isWebLink, shorten, title } from "./message.js";

export const SLACK_SECTION_MAX = 3000;
export const SLACK_HEADER_MAX = 150;
export const SLACK_BLOCKS_MAX = 50;
/** The answer is cut here even though Slack would take more: the whole output is a link away. */
export const SLACK_ANSWER_MAX = 12_000;

/** Slack's three escapes; everything else is text as it is. */
export const escapeSlack = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

const escapeUrl = (url: string) => escapeSlack(url.replace(/\|/g, "%7C"));

export const slackRenderer: Renderer = {
  text: (s) => escapeSlack(s),
  code: (s) => escapeSlack(s),
  strong: ["*", "*"],
  em: ["_", "_"],
  strike: ["~", "~"],
  codeSpan: () => ["`", "`"],
  codeBlock: () => ["```\n", "\n```"],
  link: (href) => (/^(https?|mailto):/i.test(href) ? [`<${escapeUrl(href)}|`, ">"] : null),
  heading: () => ["*", "*"],
  quote: { prefix: "> ", nested: false },
  bullet: (ordered, n) => (ordered ? `${n}. ` : "• "),
  hr: "———",
};

/** Slack mrkdwn for a Markdown text (no limit applied). */
export function toSlackMrkdwn(markdown: string): string {
  return render(new Walker(slackRenderer).markdown(markdown).atoms);
}

type TextObject = { type: "mrkdwn" | "plain_text"; text: string; emoji?: boolean };
export type SlackBlock = { type: "header"; text: TextObject } | { type: "section"; text: TextObject } | { type: "context"; elements: TextObject[] };

export interface SlackPayload {
  text: string;
  blocks: SlackBlock[];
  unfurl_links: boolean;
  unfurl_media: boolean;
  channel?: string;
}

export interface SlackOptions {
  /** For chat.postMessage; an incoming webhook posts to its own channel. */
  channel?: string;
  /** The most of the answer to show, in characters (at most what 48 sections hold). */
  maxAnswerChars?: number;
}

export function slackPayload(msg: DeliveryMessage, opts: SlackOptions = {}): SlackPayload {
  const heading = title(msg);
  const walker = messageBody(msg, slackRenderer);

  const sectionsMax = SLACK_BLOCKS_MAX - 2;
  const budget = Math.min(opts.maxAnswerChars ?? SLACK_ANSWER_MAX, SLACK_SECTION_MAX * sectionsMax);
  const fitted = fitAtoms(walker.atoms, budget, UTF16, msg.link, escapeSlack, walker.sourceCut);
  let parts = splitAtoms(fitted.atoms, SLACK_SECTION_MAX, UTF16).map(render);
  if (parts.length > sectionsMax) parts = parts.slice(0, sectionsMax);
  if (parts.length === 0) parts = [NO_OUTPUT];

  const link = isWebLink(msg.link) ? `<${escapeUrl(msg.link)}|full output>` : `full output: \`${escapeSlack(msg.link)}\``;
  const facts = [...footerParts(msg).map(escapeSlack), link].join(FOOTER_SEPARATOR);
  const blocks: SlackBlock[] = [
    { type: "header", text: { type: "plain_text", text: shorten(heading, SLACK_HEADER_MAX), emoji: true } },
    ...parts.map((text): SlackBlock => ({ type: "section", text: { type: "mrkdwn", text } })),
    { type: "context", elements: [{ type: "mrkdwn", text: facts }] },
  ];
  return {
    ...(opts.channel ? { channel: opts.channel } : {}),
    text: escapeSlack(heading),
    blocks,
    unfurl_links: false,
    unfurl_media: false,
  };
}
