import { describe, expect, it } from "vitest";
import {
  DISCORD_DESCRIPTION_MAX,
  DISCORD_EMBED_TOTAL_MAX,
  DISCORD_FOOTER_MAX,
  DISCORD_TITLE_MAX,
  discordPayload,
  toDiscordMarkdown,
} from "../../../src/delivery/format/discord.js";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { CRON_LINK, longAnswer, message, wellFormed } from "./fixtures.js";

describe("Discord Markdown", () => {
  it("keeps what Discord understands", () => {
    expect(toDiscordMarkdown("**b** *i* _i_ ~~s~~ `c`")).toBe("**b** *i* *i* ~~s~~ `c`");
    expect(toDiscordMarkdown("# One\n\n## Two\n\n### Three\n\n#### Four")).toBe("# One\n\n## Two\n\n### Three\n\n**Four**");
    expect(toDiscordMarkdown("[docs](https://example.com/a_(b))")).toBe("[docs](https://example.com/a_%28b%29)");
    expect(toDiscordMarkdown("- one\n- two\n  - three\n\n1. a\n2. b")).toBe("- one\n- two\n  - three\n\n1. a\n2. b");
    expect(toDiscordMarkdown("> q1\n> q2")).toBe("> q1\n> q2");
    expect(toDiscordMarkdown("```ts\nconst x = 1;\n```")).toBe("```ts\nconst x = 1;\n```");
    expect(toDiscordMarkdown("``a `tick` b``")).toBe("``a `tick` b``");
  });

  it("escapes only text that would otherwise be markup", () => {
    // \* in the source is a literal star: it must stay one
    expect(toDiscordMarkdown("2 \\* 3 = 6, \\_x\\_, \\~~no\\~~, a \\`tick\\`")).toBe("2 \\* 3 = 6, \\_x\\_, \\~\\~no\\~\\~, a \\`tick\\`");
    expect(toDiscordMarkdown("\\# not a heading")).toBe("\\# not a heading");
    expect(toDiscordMarkdown("\\- not a list")).toBe("\\- not a list");
    expect(toDiscordMarkdown("\\> not a quote")).toBe("\\> not a quote");
    // nothing that is not markup is escaped
    expect(toDiscordMarkdown("snake_case_name, a < b, a & b, 50% off (really) - ok #1 done.")).toBe(
      "snake_case_name, a < b, a & b, 50% off (really) - ok #1 done.",
    );
    expect(toDiscordMarkdown("see https://example.com/a_b_c*d for more")).toBe("see https://example.com/a_b_c*d for more");
    expect(toDiscordMarkdown("a literal <b>tag</b> and @everyone")).toBe("a literal \\<b>tag\\</b> and @everyone");
  });

  it("keeps a code block's fence from being closed by its content", () => {
    const out = toDiscordMarkdown("````\nsome ``` inside\n````");
    expect(out.startsWith("```\n")).toBe(true);
    expect(out.endsWith("\n```")).toBe(true);
    expect((out.match(/```/g) ?? []).length).toBe(2);
  });
});

describe("discordPayload", () => {
  it("is one embed with title, description, color, url and footer, mentioning no one", () => {
    expect(discordPayload(message({ response: "All **12** services are healthy." }))).toEqual({
      embeds: [
        {
          title: "✅ log-audit completed in 42 s",
          description: "All **12** services are healthy.",
          color: 0x2ecc71,
          url: "https://cron.example.com/runs/run_01",
          footer: { text: "took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris)" },
        },
      ],
      allowed_mentions: { parse: [] },
    });
  });

  it("colors by event", () => {
    const color = (over: Parameters<typeof message>[0]) => discordPayload(message(over)).embeds[0].color;
    expect(color({ event: "completed" })).toBe(0x2ecc71);
    expect(color({ event: "changed" })).toBe(0x2ecc71);
    expect(color({ event: "failed", status: "failed", error: "x" })).toBe(0xe74c3c);
    expect(color({ event: "paused", error: "x" })).toBe(0xf39c12);
    expect(color({ event: "canceled", status: "canceled" })).toBe(0xf39c12);
  });

  it("puts a cron:// link in the footer and sets no url", () => {
    const embed = discordPayload(message({ link: CRON_LINK })).embeds[0];
    expect(embed.url).toBeUndefined();
    expect(embed.footer.text.endsWith(`full output: ${CRON_LINK}`)).toBe(true);
  });

  it("takes a username and avatar", () => {
    const p = discordPayload(message(), { username: "agent-cron", avatarUrl: "https://x.example/a.png" });
    expect(p.username).toBe("agent-cron");
    expect(p.avatar_url).toBe("https://x.example/a.png");
  });

  it("keeps a 10,000-character answer within the embed limits, ending with the pointer", () => {
    const p = discordPayload(message({ jobName: "j".repeat(400), response: longAnswer(10_000) }));
    const e = p.embeds[0];
    expect(e.title.length).toBeLessThanOrEqual(DISCORD_TITLE_MAX);
    expect(e.description.length).toBeLessThanOrEqual(DISCORD_DESCRIPTION_MAX);
    expect(e.footer.text.length).toBeLessThanOrEqual(DISCORD_FOOTER_MAX);
    expect(e.title.length + e.description.length + e.footer.text.length).toBeLessThanOrEqual(DISCORD_EMBED_TOTAL_MAX);
    expect(wellFormed(e.description)).toBe(true);
    expect(e.description.endsWith(truncationNote("https://cron.example.com/runs/run_01"))).toBe(true);
    expect((e.description.match(/```/g) ?? []).length % 2).toBe(0);
  });

  it("closes a code block cut in the middle before the pointer", () => {
    const e = discordPayload(message({ response: "```\n" + "a line of code 漢字 😀\n".repeat(500) + "```" })).embeds[0];
    expect(e.description.length).toBeLessThanOrEqual(DISCORD_DESCRIPTION_MAX);
    expect(e.description).toMatch(/\n```\n… \(truncated; whole output: https:\/\/cron\.example\.com\/runs\/run_01\)$/);
  });
});
