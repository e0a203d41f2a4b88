/**
 * Microsoft Teams: the body of a Workflows ("Post to a channel when a webhook request is
 * received") webhook call, one Adaptive Card 1.4.
 *
 *   { type: "message", attachments: [{ contentType: "application/vnd.microsoft.card.adaptive",
 *     content: { $schema, type: "AdaptiveCard", version: "1.4", body: […], actions: […] } }] }
 *
 * A TextBlock understands a subset of Markdown: bold, italic, lists and links; no headings,
 * code, quotes or tables. Headings become bold lines; a code block becomes a RichTextBlock
 * whose TextRun uses the monospace font (a TextRun takes no Markdown, so code shows as it is);
 * an inline code span keeps its backticks. Outside lists a line break needs a blank line.
 * The whole message is kept under about 28 KB. Action.OpenUrl only for an http(s) link.
 */
import { escapeMarkdown, linkDestination, markdownRenderer } from "./commonmark.js";
import { type Atom, JSON_UTF8, type OpenAtom, fitAtoms, messageBody, render, type Renderer } from "./markdown.js";
import { type DeliveryEvent, type DeliveryMessage, FOOTER_SEPARATOR, NO_OUTPUT, footerParts, isWebLink, shorten, title } from "./message.js";

/** Teams refuses messages over about 28 KB; this leaves room for the envelope it adds. */
export const TEAMS_MESSAGE_MAX_BYTES = 27_000;

export const teamsRenderer: Renderer = markdownRenderer({
  heading: () => ["**", "**"],
  em: ["_", "_"],
  hr: "———",
  nestedQuotes: false,
  longFences: true,
  singleNewline: false,
  // Code blocks are taken out of the TextBlock (see segments): the pair only marks where.
  codeBlock: () => ["", ""],
  code: (s) => s,
});

const COLORS: Record<DeliveryEvent, "Good" | "Attention" | "Warning"> = {
  completed: "Good",
  changed: "Good",
  failed: "Attention",
  paused: "Warning",
  canceled: "Warning",
  needs_attention: "Warning",
  quiet: "Good",
};

export type TeamsElement =
  | { type: "TextBlock"; text: string; wrap: true; weight?: "Bolder"; size?: "Small" | "Medium"; color?: string; isSubtle?: boolean; spacing?: "Medium" }
  | { type: "RichTextBlock"; inlines: { type: "TextRun"; text: string; fontType: "Monospace" }[] };

export interface AdaptiveCard {
  $schema: "http://adaptivecards.io/schemas/adaptive-card.json";
  type: "AdaptiveCard";
  version: "1.4";
  body: TeamsElement[];
  actions?: { type: "Action.OpenUrl"; title: string; url: string }[];
  msteams: { width: "Full" };
}

export interface TeamsPayload {
  type: "message";
  attachments: [{ contentType: "application/vnd.microsoft.card.adaptive"; contentUrl: null; content: AdaptiveCard }];
}

/** The card's elements for the answer: Markdown TextBlocks, and code apart in monospace. */
function segments(atoms: Atom[]): TeamsElement[] {
  const out: TeamsElement[] = [];
  let run: Atom[] = [];
  let code: OpenAtom | null = null;
  const flush = () => {
    const text = code ? render(run).replace(/^\n+|\n+$/g, "") : render(run).trim();
    if (text) out.push(code ? { type: "RichTextBlock", inlines: [{ type: "TextRun", text, fontType: "Monospace" }] } : { type: "TextBlock", text, wrap: true });
    run = [];
  };
  for (const a of atoms) {
    if (a.k === "open" && a.block === "code" && !code) {
      flush();
      code = a;
    } else if (a.k === "close" && code && a.id === code.id) {
      flush();
      code = null;
    } else run.push(a);
  }
  flush();
  return out;
}

export function teamsPayload(msg: DeliveryMessage): TeamsPayload {
  const web = isWebLink(msg.link);
  const facts = footerParts(msg).map((f) => escapeMarkdown(f));
  facts.push(web ? `[full output](${linkDestination(msg.link)})` : `full output: ${escapeMarkdown(msg.link)}`);
  const head: TeamsElement = {
    type: "TextBlock",
    text: escapeMarkdown(shorten(title(msg), 300)),
    wrap: true,
    weight: "Bolder",
    size: "Medium",
    ...(msg.test ? {} : { color: COLORS[msg.event] }),
  };
  const foot: TeamsElement = { type: "TextBlock", text: facts.join(FOOTER_SEPARATOR), wrap: true, isSubtle: true, size: "Small", spacing: "Medium" };
  const card = (answer: TeamsElement[]): TeamsPayload => ({
    type: "message",
    attachments: [
      {
        contentType: "application/vnd.microsoft.card.adaptive",
        contentUrl: null,
        content: {
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          type: "AdaptiveCard",
          version: "1.4",
          body: [head, ...(answer.length ? answer : [{ type: "TextBlock", text: NO_OUTPUT, wrap: true } as const]), foot],
          ...(web ? { actions: [{ type: "Action.OpenUrl" as const, title: "Open full output", url: msg.link }] } : {}),
          msteams: { width: "Full" },
        },
      },
    ],
  });
  const size = (p: TeamsPayload) => Buffer.byteLength(JSON.stringify(p));

  const body = messageBody(msg, teamsRenderer);
  let budget = TEAMS_MESSAGE_MAX_BYTES - size(card([])) - 256;
  let payload = card([]);
  // Each element adds its own JSON around the text: measure the card, and cut more if needed.
  for (let attempt = 0; attempt < 8; attempt++) {
    const fitted = fitAtoms(body.atoms, Math.max(0, budget), JSON_UTF8, msg.link, (s) => teamsRenderer.text(s, false), body.sourceCut);
    payload = card(segments(fitted.atoms));
    const over = size(payload) - TEAMS_MESSAGE_MAX_BYTES;
    if (over <= 0) break;
    budget -= over + 512;
  }
  return payload;
}
