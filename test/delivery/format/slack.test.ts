import { describe, expect, it } from "vitest";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { SLACK_BLOCKS_MAX, SLACK_HEADER_MAX, SLACK_SECTION_MAX, slackPayload, toSlackMrkdwn } from "../../../src/delivery/format/slack.js";
import { CRON_LINK, checkSlackMrkdwn, longAnswer, message, wellFormed } from "./fixtures.js";

describe("Slack mrkdwn", () => {
  it("converts emphasis, code, links, lists, quotes and headings", () => {
    expect(toSlackMrkdwn("**bold** _it_ *it2* ~~gone~~ `x < y`")).toBe("*bold* _it_ _it2_ ~gone~ `x &lt; y`");
    expect(toSlackMrkdwn("[the docs](https://example.com/a?b=1&c=2)")).toBe("<https://example.com/a?b=1&amp;c=2|the docs>");
    expect(toSlackMrkdwn("<https://example.com>")).toBe("<https://example.com|https://example.com>");
    expect(toSlackMrkdwn("- one\n- two\n  - three")).toBe("• one\n• two\n  • three");
    expect(toSlackMrkdwn("1. one\n2. two")).toBe("1. one\n2. two");
    expect(toSlackMrkdwn("> quoted\n> lines")).toBe("> quoted\n> lines");
    expect(toSlackMrkdwn("# Title\n\ntext")).toBe("*Title*\n\ntext");
    expect(toSlackMrkdwn("```js\nif (a < b && c) {}\n```")).toBe("```\nif (a &lt; b &amp;&amp; c) {}\n```");
  });

  it("escapes &, < and > in text that looks like markup", () => {
    expect(toSlackMrkdwn("a <b>literal</b> & <!channel> <@U123>")).toBe("a &lt;b&gt;literal&lt;/b&gt; &amp; &lt;!channel&gt; &lt;@U123&gt;");
  });

  it("does not link what is not a web or mail address", () => {
    expect(toSlackMrkdwn("[run](cron://runs/x)")).toBe("run (cron://runs/x)");
  });
});

describe("slackPayload", () => {
  it("is a Block Kit message: header, mrkdwn sections, context footer, text fallback", () => {
    const p = slackPayload(message({ response: "All **12** services are <healthy>." }));
    expect(p).toEqual({
      text: "✅ log-audit completed in 42 s",
      blocks: [
        { type: "header", text: { type: "plain_text", text: "✅ log-audit completed in 42 s", emoji: true } },
        { type: "section", text: { type: "mrkdwn", text: "All *12* services are &lt;healthy&gt;." } },
        {
          type: "context",
          elements: [
            { type: "mrkdwn", text: "took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · <https://cron.example.com/runs/run_01|full output>" },
          ],
        },
      ],
      unfurl_links: false,
      unfurl_media: false,
    });
  });

  it("names a cron:// link as code rather than as a link, and adds a channel for chat.postMessage", () => {
    const p = slackPayload(message({ link: CRON_LINK, durationMs: null, costUsd: null, nextRunAt: null }), { channel: "C123" });
    expect(p.channel).toBe("C123");
    expect(p.blocks.at(-1)).toEqual({ type: "context", elements: [{ type: "mrkdwn", text: "full output: `cron://runs/run_01`" }] });
  });

  it("shows the whole error above the answer when the title shortened it, and (no output) for an empty answer", () => {
    const p = slackPayload(message({ event: "failed", status: "timed_out", error: "Timed out after 30 min; the process group was killed.", response: "" }));
    expect(p.text).toBe("❌ log-audit failed: timed out after 30 min");
    expect(p.blocks[1]).toEqual({
      type: "section",
      text: { type: "mrkdwn", text: "*Error:* Timed out after 30 min; the process group was killed.\n\n(no output)" },
    });
    const done = slackPayload(message({ response: "  \n" }));
    expect(done.blocks[1]).toEqual({ type: "section", text: { type: "mrkdwn", text: "(no output)" } });
  });

  it("cuts a long header and escapes the fallback text", () => {
    const p = slackPayload(message({ jobName: `<${"x".repeat(200)}>` }));
    const header = p.blocks[0] as { text: { text: string } };
    expect(header.text.text.length).toBeLessThanOrEqual(SLACK_HEADER_MAX);
    expect(p.text.startsWith("✅ &lt;xxx")).toBe(true);
  });

  it("keeps a 10,000-character answer with emoji and CJK within Slack's limits, ending with the pointer", () => {
    const p = slackPayload(message({ response: longAnswer(10_000) }), { maxAnswerChars: 6000 });
    const sections = p.blocks.filter((b) => b.type === "section") as { text: { type: string; text: string } }[];
    expect(p.blocks.length).toBeLessThanOrEqual(SLACK_BLOCKS_MAX);
    expect(sections.length).toBeGreaterThanOrEqual(2);
    let total = 0;
    for (const s of sections) {
      expect(s.text.type).toBe("mrkdwn");
      expect(s.text.text.length).toBeGreaterThan(0);
      expect(s.text.text.length).toBeLessThanOrEqual(SLACK_SECTION_MAX);
      expect(wellFormed(s.text.text)).toBe(true);
      expect(checkSlackMrkdwn(s.text.text)).toEqual([]);
      // a code block cut between sections is closed in one and reopened in the next
      expect((s.text.text.match(/```/g) ?? []).length % 2).toBe(0);
      total += s.text.text.length;
    }
    expect(total).toBeLessThanOrEqual(6000 + sections.length * 10);
    expect(sections.at(-1)!.text.text.endsWith(truncationNote("https://cron.example.com/runs/run_01"))).toBe(true);
  });

  it("spreads a bold paragraph over sections, each closed and reopened", () => {
    const p = slackPayload(message({ response: `**${"bold words ".repeat(600).trim()}**` }), { maxAnswerChars: 20_000 });
    const sections = p.blocks.filter((b) => b.type === "section") as { text: { text: string } }[];
    expect(sections.length).toBeGreaterThanOrEqual(3);
    for (const s of sections) {
      expect(s.text.text).toMatch(/^\*(bold|words) /);
      expect(s.text.text.endsWith("*")).toBe(true);
      expect(s.text.text.length).toBeLessThanOrEqual(SLACK_SECTION_MAX);
    }
  });

  it("never goes over 50 blocks", () => {
    const p = slackPayload(message({ response: "word ".repeat(60_000) }), { maxAnswerChars: 1_000_000 });
    expect(p.blocks.length).toBeLessThanOrEqual(SLACK_BLOCKS_MAX);
    for (const b of p.blocks) if (b.type === "section") expect(b.text.text.length).toBeLessThanOrEqual(SLACK_SECTION_MAX);
  });
});
