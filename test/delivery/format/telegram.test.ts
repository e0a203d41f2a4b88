import { describe, expect, it } from "vitest";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { TELEGRAM_TEXT_MAX, telegramPayload, toTelegramHtml } from "../../../src/delivery/format/telegram.js";
import { CRON_LINK, checkTelegramHtml, longAnswer, message, wellFormed } from "./fixtures.js";

describe("Telegram HTML", () => {
  it("converts emphasis, code, links, lists, quotes and headings to the tags Telegram allows", () => {
    expect(toTelegramHtml("**b** *i* ~~s~~ `c`")).toBe("<b>b</b> <i>i</i> <s>s</s> <code>c</code>");
    expect(toTelegramHtml('[a "link"](https://example.com/?q=1&r="2")')).toBe('<a href="https://example.com/?q=1&amp;r=%222%22">a "link"</a>');
    expect(toTelegramHtml("# Heading\n\n- one\n- two")).toBe("<b>Heading</b>\n\n• one\n• two");
    expect(toTelegramHtml("> quoted\n> > nested")).toBe("<blockquote>quoted\n\nnested</blockquote>");
    expect(toTelegramHtml("```python\nx = 1 < 2\n```")).toBe('<pre><code class="language-python">x = 1 &lt; 2</code></pre>');
    expect(toTelegramHtml("```\nplain\n```")).toBe("<pre>plain</pre>");
  });

  it("escapes user text that looks like markup", () => {
    expect(toTelegramHtml("a literal <b>tag</b> & <i>more</i> &amp;")).toBe("a literal &lt;b&gt;tag&lt;/b&gt; &amp; &lt;i&gt;more&lt;/i&gt; &amp;");
    expect(checkTelegramHtml(toTelegramHtml("<pre>x</pre> <a href='y'>z</a> <tg-spoiler>")).problems).toEqual([]);
  });

  it("writes a link it cannot make as text with the address", () => {
    expect(toTelegramHtml("[run](cron://runs/x) [mail](mailto:a@b.c)")).toBe("run (cron://runs/x) mail (mailto:a@b.c)");
  });
});

describe("telegramPayload", () => {
  it("is a sendMessage body with parse_mode HTML", () => {
    const p = telegramPayload(message({ response: "All **12** services are <healthy>." }), { chatId: -1001234567890 });
    expect(p).toEqual({
      chat_id: -1001234567890,
      text:
        "<b>✅ log-audit completed in 42 s</b>\n\n" +
        "All <b>12</b> services are &lt;healthy&gt;.\n\n" +
        '<i>took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · <a href="https://cron.example.com/runs/run_01">full output</a></i>',
      parse_mode: "HTML",
      link_preview_options: { is_disabled: true },
    });
    expect(checkTelegramHtml(p.text).problems).toEqual([]);
  });

  it("takes a chat id as a string, a topic, and silence", () => {
    const p = telegramPayload(message({ link: CRON_LINK }), { chatId: "@ops_channel", messageThreadId: 7, silent: true });
    expect(p.chat_id).toBe("@ops_channel");
    expect(p.message_thread_id).toBe(7);
    expect(p.disable_notification).toBe(true);
    expect(p.text.endsWith("full output: <code>cron://runs/run_01</code></i>")).toBe(true);
  });

  it("says (no output) for a failure with an empty answer, the whole error above it", () => {
    const p = telegramPayload(message({ event: "failed", status: "timed_out", error: "Timed out after 30 min; the process group was killed.", response: "" }), {
      chatId: 1,
    });
    expect(p.text).toContain(
      "<b>❌ log-audit failed: timed out after 30 min</b>\n\n<b>Error:</b> Timed out after 30 min; the process group was killed.\n\n(no output)\n\n",
    );
  });

  it("keeps a 10,000-character answer with emoji and CJK within 4096 characters, tags balanced, ending with the pointer", () => {
    for (const size of [10_000, 10_050, 10_123, 25_000]) {
      const p = telegramPayload(message({ response: longAnswer(size) }), { chatId: 1 });
      const { problems, visible } = checkTelegramHtml(p.text);
      expect(problems).toEqual([]);
      expect(visible.length).toBeLessThanOrEqual(TELEGRAM_TEXT_MAX);
      expect(visible.length).toBeGreaterThan(TELEGRAM_TEXT_MAX - 400);
      expect(wellFormed(p.text)).toBe(true);
      const body = p.text.slice(0, p.text.lastIndexOf("\n\n<i>"));
      expect(body.endsWith(truncationNote("https://cron.example.com/runs/run_01"))).toBe(true);
    }
  });

  it("closes the tags of every kind of cut: inside bold, a link, a quote, a code block", () => {
    const cases = [
      `**${"紧急 ".repeat(3000)}**`,
      `[${"link text 😀 ".repeat(800)}](https://example.com)`,
      `> ${"quoted **bold** line\n> ".repeat(400)}`,
      "```\n" + "code line with <angle> & 🇫🇷\n".repeat(300) + "```",
    ];
    for (const response of cases) {
      const p = telegramPayload(message({ response }), { chatId: 1 });
      const { problems, visible } = checkTelegramHtml(p.text);
      expect(problems).toEqual([]);
      expect(visible.length).toBeLessThanOrEqual(TELEGRAM_TEXT_MAX);
      expect(p.text).toContain(truncationNote("https://cron.example.com/runs/run_01"));
    }
  });
});
