/**
 * Telegram: the body of a Bot API sendMessage call with parse_mode HTML.
 *
 *   { chat_id, text, parse_mode: "HTML", link_preview_options: { is_disabled: true } }
 *
 * Telegram's HTML knows only b/strong, i/em, u/ins, s/strike/del, span.tg-spoiler,
 * tg-spoiler, a href, code, pre and blockquote, and the entities &lt; &gt; &amp; &quot;.
 * A text is at most 4096 characters after entity parsing (tags count nothing, an entity one).
 * Headings become bold lines and lists "• " lines; quotes do not nest.
 */
import { TELEGRAM, Walker, fitAtoms, measure, messageBody, render, type Renderer } from "./markdown.js";
import { type DeliveryMessage, FOOTER_SEPARATOR, footerParts, isWebLink, shorten, title } from "./message.js";

export const TELEGRAM_TEXT_MAX = 4096;

export const escapeTelegram = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const escapeAttr = (s: string) => escapeTelegram(s).replace(/"/g, "&quot;");

export const telegramRenderer: Renderer = {
  text: (s) => escapeTelegram(s),
  code: (s) => escapeTelegram(s),
  strong: ["<b>", "</b>"],
  em: ["<i>", "</i>"],
  strike: ["<s>", "</s>"],
  codeSpan: () => ["<code>", "</code>"],
  codeBlock: (lang) => (/^[\w+#.-]{1,32}$/.test(lang) ? [`<pre><code class="language-${lang}">`, "</code></pre>"] : ["<pre>", "</pre>"]),
  link: (href) => (/^(https?|tg):/i.test(href) ? [`<a href="${escapeAttr(href)}">`, "</a>"] : null),
  heading: () => ["<b>", "</b>"],
  quote: { tags: ["<blockquote>", "</blockquote>"] },
  bullet: (ordered, n) => (ordered ? `${n}. ` : "• "),
  hr: "———",
};

/** Telegram HTML for a Markdown text (no limit applied). */
export function toTelegramHtml(markdown: string): string {
  return render(new Walker(telegramRenderer).markdown(markdown).atoms);
}

export interface TelegramOptions {
  chatId: string | number;
  /** A topic in a forum supergroup. */
  messageThreadId?: number;
  /** Sends without sound. */
  silent?: boolean;
}

export interface TelegramPayload {
  chat_id: string | number;
  text: string;
  parse_mode: "HTML";
  link_preview_options: { is_disabled: boolean };
  message_thread_id?: number;
  disable_notification?: boolean;
}

export function telegramPayload(msg: DeliveryMessage, opts: TelegramOptions): TelegramPayload {
  const r = telegramRenderer;
  const top = new Walker(r);
  top.wrapped(r.strong, () => top.text(shorten(title(msg), 256)));

  const foot = new Walker(r);
  foot.wrapped(r.em, () => {
    const facts = footerParts(msg);
    if (facts.length) foot.text(facts.join(FOOTER_SEPARATOR) + FOOTER_SEPARATOR);
    if (isWebLink(msg.link)) {
      const pair = r.link(msg.link)!;
      foot.wrapped(pair, () => foot.text("full output"));
    } else {
      foot.text("full output: ");
      foot.wrapped(r.codeSpan(msg.link), () => foot.code(msg.link));
    }
  });

  const body = messageBody(msg, r);
  const gap = "\n\n";
  const budget = TELEGRAM_TEXT_MAX - measure(top.atoms, TELEGRAM) - measure(foot.atoms, TELEGRAM) - 2 * gap.length;
  const fitted = fitAtoms(body.atoms, budget, TELEGRAM, msg.link, escapeTelegram, body.sourceCut);
  const text = render(top.atoms) + gap + render(fitted.atoms) + gap + render(foot.atoms);

  return {
    chat_id: opts.chatId,
    text,
    parse_mode: "HTML",
    link_preview_options: { is_disabled: true },
    ...(opts.messageThreadId !== undefined ? { message_thread_id: opts.messageThreadId } : {}),
    ...(opts.silent ? { disable_notification: true } : {}),
  };
}
