/**
 * ntfy: the body of a JSON publish (POST to the server's root, the topic named in the body).
 *
 *   { topic, title, message, markdown: true, priority, tags, click?, actions? }
 *
 * The message is at most 4096 bytes (beyond that ntfy turns it into an attachment or refuses
 * it), so it is cut to 4096 UTF-8 bytes. Tags that name an emoji are shown by ntfy before the
 * title, so the title is sent without its own emoji. Priority 4 (high) for failures and
 * pauses, 3 (default) otherwise. The answer is CommonMark, sent with markdown: true.
 */
import { markdownRenderer } from "./commonmark.js";
import { UTF8, Walker, fitAtoms, measure, messageBody, render, type Renderer } from "./markdown.js";
import { type DeliveryEvent, type DeliveryMessage, FOOTER_SEPARATOR, footerParts, isWebLink, shorten, titleParts } from "./message.js";

export const NTFY_MESSAGE_MAX_BYTES = 4096;

export const NTFY_TAGS: Record<DeliveryEvent | "test", string> = {
  completed: "white_check_mark",
  changed: "repeat",
  failed: "x",
  paused: "pause_button",
  canceled: "no_entry_sign",
  needs_attention: "raising_hand",
  quiet: "zzz",
  test: "test_tube",
};

export const ntfyRenderer: Renderer = markdownRenderer({
  heading: (level) => ["#".repeat(level) + " ", ""],
  strike: ["~~", "~~"],
  hr: "---",
  nestedQuotes: true,
  longFences: true,
  hardBreak: "\\",
});

/** ntfy's Markdown for a Markdown text (no limit applied). */
export function toNtfyMarkdown(markdown: string): string {
  return render(new Walker(ntfyRenderer).markdown(markdown).atoms);
}

export interface NtfyPayload {
  topic?: string;
  title: string;
  message: string;
  markdown: true;
  priority: 1 | 2 | 3 | 4 | 5;
  tags: string[];
  click?: string;
  actions?: { action: "view"; label: string; url: string; clear?: boolean }[];
}

export interface NtfyOptions {
  /** The topic; the channel may also add it to the body itself. */
  topic?: string;
}

export function ntfyPayload(msg: DeliveryMessage, opts: NtfyOptions = {}): NtfyPayload {
  const web = isWebLink(msg.link);
  const r = ntfyRenderer;
  const foot = new Walker(r);
  foot.wrapped(r.em, () => {
    const facts = footerParts(msg);
    if (facts.length) foot.text(facts.join(FOOTER_SEPARATOR) + FOOTER_SEPARATOR);
    if (web) foot.wrapped(r.link(msg.link)!, () => foot.text("full output"));
    else {
      foot.text("full output: ");
      foot.wrapped(r.codeSpan(msg.link), () => foot.code(msg.link));
    }
  });
  const gap = "\n\n";
  const body = messageBody(msg, r);
  const budget = NTFY_MESSAGE_MAX_BYTES - measure(foot.atoms, UTF8) - Buffer.byteLength(gap);
  const fitted = fitAtoms(body.atoms, budget, UTF8, msg.link, (s) => r.text(s, false), body.sourceCut);

  const { text } = titleParts(msg);
  const urgent = !msg.test && (msg.event === "failed" || msg.event === "paused");
  return {
    ...(opts.topic ? { topic: opts.topic } : {}),
    title: shorten(text, 250),
    message: render(fitted.atoms) + gap + render(foot.atoms),
    markdown: true,
    priority: urgent ? 4 : 3,
    tags: [NTFY_TAGS[msg.test ? "test" : msg.event]],
    ...(web ? { click: msg.link, actions: [{ action: "view" as const, label: "Full output", url: msg.link }] } : {}),
  };
}
