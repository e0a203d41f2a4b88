import type { DeliveryMessage } from "../../../src/delivery/format/message.js";

/** A finished run as the deliverer describes it; override what a test is about. */
export function message(over: Partial<DeliveryMessage> = {}): DeliveryMessage {
  return {
    event: "completed",
    jobId: "0f3c9a7e-5b1d-4c8e-9f2a-1b2c3d4e5f60",
    jobName: "log-audit",
    runId: "run_01",
    status: "completed",
    error: null,
    response: "All **12** services are healthy.",
    durationMs: 42_000,
    costUsd: 0.0123,
    nextRunAt: "2026-12-02T09:00:00+01:00",
    timezone: "Europe/Paris",
    link: "https://cron.example.com/runs/run_01",
    ...over,
  };
}

export const CRON_LINK = "cron://runs/run_01";

/** True when a string holds no lone surrogate (no emoji or astral character was cut in two). */
export function wellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/**
 * A long answer of every kind of content: headings, bold and italic spanning words, links,
 * lists, quotes, code blocks, text that looks like markup, emoji (pairs, ZWJ sequences,
 * flags) and CJK. About `chars` characters long.
 */
export function longAnswer(chars = 10_000): string {
  const pieces = [
    "## Findings 第一部分\n\n",
    "The **audit of 日本語のログ found <b>nothing</b> & more** in _the last 24 h 😀 of logs_.\n\n",
    "- item one with `code <x> & y` and [a link](https://example.com/a?x=1&y=2)\n- item two 👩‍👩‍👧‍👦 家族 🇫🇷\n  - nested ~~old~~ value\n\n",
    "> a quote with **bold 漢字** inside\n> and a second line 🎉\n\n",
    "```python\nprint('<tag> & \"quotes\"')  # 中文注释 😀\nfor i in range(10):\n    pass\n```\n\n",
    "1. first step\n2. second step with *emphasis 🚀 here*\n\n",
    "Plain paragraph: 漢字かなカナ混じり文 with emoji 😀😃😄😁 and symbols < > & \" ' * _ ~ ` | # that are not markup.\n\n",
  ];
  let out = "";
  for (let i = 0; out.length < chars; i++) out += pieces[i % pieces.length];
  return out;
}

/** Telegram's HTML: the tags parse_mode HTML allows, and the named entities it knows. */
const TELEGRAM_TAGS = new Set(["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"]);

/**
 * Checks text the way Telegram's HTML parser would: only allowed tags, every tag closed in
 * order, attributes quoted, `<`, `>` and `&` only as markup or as &lt; &gt; &amp; &quot; or a
 * numeric entity, nothing inside <pre> but <code>, no quote inside a quote. Returns the
 * problems (none when well-formed) and the visible text (what Telegram counts).
 */
export function checkTelegramHtml(html: string): { problems: string[]; visible: string } {
  const problems: string[] = [];
  const stack: string[] = [];
  let visible = "";
  const re = /<(\/?)([a-z-]+)((?:\s+[a-z-]+="[^"<>]*")*)\s*>|&(lt|gt|amp|quot|#\d+|#x[0-9a-f]+);|([<>&])|([^<>&]+)/giy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < html.length && (m = re.exec(html))) {
    at = re.lastIndex;
    const [, closing, tag, , entity, stray, text] = m;
    if (tag) {
      const name = tag.toLowerCase();
      if (!TELEGRAM_TAGS.has(name)) problems.push(`tag <${name}> is not allowed`);
      if (closing) {
        const top = stack.pop();
        if (top !== name) problems.push(`</${name}> closes <${top ?? "nothing"}>`);
      } else {
        if (stack.includes("pre") && name !== "code") problems.push(`<${name}> inside <pre>`);
        if (stack.includes("code")) problems.push(`<${name}> inside <code>`);
        if (name === "blockquote" && stack.includes("blockquote")) problems.push("nested <blockquote>");
        stack.push(name);
      }
    } else if (entity) {
      visible +=
        { lt: "<", gt: ">", amp: "&", quot: '"' }[entity.toLowerCase()] ??
        String.fromCodePoint(parseInt(entity.slice(entity[1] === "x" ? 2 : 1), entity[1] === "x" ? 16 : 10));
    } else if (stray) {
      problems.push(`raw "${stray}" at ${m.index}`);
      visible += stray;
    } else if (text) visible += text;
  }
  if (at < html.length) problems.push(`unparsed from ${at}`);
  if (stack.length) problems.push(`left open: ${stack.join(", ")}`);
  return { problems, visible };
}

/**
 * Checks Slack mrkdwn: `&` only in &amp; &lt; &gt;, `<` only opening a link `<url|text>` or
 * `<url>`, `>` only closing one or starting a quote line.
 */
export function checkSlackMrkdwn(text: string): string[] {
  const problems: string[] = [];
  const withoutLinks = text.replace(/<(?:https?|mailto):[^<>|\s]*(?:\|[^<>]*)?>/g, "");
  for (const line of withoutLinks.split("\n")) {
    const body = line.startsWith(">") ? line.slice(1) : line;
    if (/[<>]/.test(body)) problems.push(`raw < or > in: ${line.slice(0, 80)}`);
    if (/&(?!(amp|lt|gt);)/.test(body)) problems.push(`raw & in: ${line.slice(0, 80)}`);
  }
  return problems;
}
