import { describe, expect, it } from "vitest";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { TEAMS_MESSAGE_MAX_BYTES, type TeamsElement, teamsPayload } from "../../../src/delivery/format/teams.js";
import { CRON_LINK, longAnswer, message, wellFormed } from "./fixtures.js";

const card = (p: ReturnType<typeof teamsPayload>) => p.attachments[0].content;
const texts = (body: TeamsElement[]) => body.map((e) => (e.type === "TextBlock" ? e.text : e.inlines.map((i) => i.text).join("")));

describe("teamsPayload", () => {
  it("is a message with one Adaptive Card 1.4 attachment, with an Action.OpenUrl for a web link", () => {
    expect(teamsPayload(message({ response: "All **12** services are healthy." }))).toEqual({
      type: "message",
      attachments: [
        {
          contentType: "application/vnd.microsoft.card.adaptive",
          contentUrl: null,
          content: {
            $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
            type: "AdaptiveCard",
            version: "1.4",
            body: [
              { type: "TextBlock", text: "✅ log-audit completed in 42 s", wrap: true, weight: "Bolder", size: "Medium", color: "Good" },
              { type: "TextBlock", text: "All **12** services are healthy.", wrap: true },
              {
                type: "TextBlock",
                text: "took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · [full output](https://cron.example.com/runs/run_01)",
                wrap: true,
                isSubtle: true,
                size: "Small",
                spacing: "Medium",
              },
            ],
            actions: [{ type: "Action.OpenUrl", title: "Open full output", url: "https://cron.example.com/runs/run_01" }],
            msteams: { width: "Full" },
          },
        },
      ],
    });
  });

  it("has no action for a cron:// link, and says it in the footer", () => {
    const c = card(teamsPayload(message({ link: CRON_LINK })));
    expect(c.actions).toBeUndefined();
    expect(texts(c.body).at(-1)!.endsWith(`full output: ${CRON_LINK}`)).toBe(true);
  });

  it("writes the Markdown subset Teams knows, and code apart in a monospace TextRun", () => {
    const c = card(
      teamsPayload(
        message({
          response:
            "# Report\n\nSome **bold**, _italic_, ~~struck~~ and `code`; [a link](https://example.com).\nNext line.\n\n- one\n- two\n\n```sh\necho '**not bold**' && ls\n```\n\nAfter.",
        }),
      ),
    );
    expect(c.body.slice(1, -1)).toEqual([
      {
        type: "TextBlock",
        text: "**Report**\n\nSome **bold**, _italic_, struck and `code`; [a link](https://example.com).\n\nNext line.\n\n- one\n- two",
        wrap: true,
      },
      { type: "RichTextBlock", inlines: [{ type: "TextRun", text: "echo '**not bold**' && ls", fontType: "Monospace" }] },
      { type: "TextBlock", text: "After.", wrap: true },
    ]);
  });

  it("colors the title by event and shows (no output) for an empty answer", () => {
    const c = card(teamsPayload(message({ event: "failed", status: "failed", error: "Boom.", response: "" })));
    expect(c.body[0]).toMatchObject({ type: "TextBlock", text: "❌ log-audit failed: boom", color: "Attention" });
    expect(c.body[1]).toEqual({ type: "TextBlock", text: "(no output)", wrap: true });
    expect(card(teamsPayload(message({ event: "paused", error: "x" }))).body[0]).toMatchObject({ color: "Warning" });
  });

  it("escapes markup in the job's name and in the answer's literal text", () => {
    const c = card(teamsPayload(message({ jobName: "nightly_*build*", response: "literal \\*stars\\* and \\[brackets\\](x)" })));
    expect(texts(c.body)[0]).toBe("✅ nightly\\_\\*build\\* completed in 42 s");
    expect(texts(c.body)[1]).toBe("literal \\*stars\\* and \\[brackets\\](x)");
  });

  it("keeps a long answer with emoji and CJK under about 28 KB, ending with the pointer", () => {
    for (const size of [10_000, 60_000]) {
      const p = teamsPayload(message({ response: longAnswer(size) }));
      const json = JSON.stringify(p);
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(TEAMS_MESSAGE_MAX_BYTES);
      expect(wellFormed(json)).toBe(true);
      const body = texts(card(p).body);
      if (size > 20_000) expect(body.at(-2)!.endsWith(truncationNote("https://cron.example.com/runs/run_01"))).toBe(true);
    }
    const cjk = teamsPayload(message({ response: "漢字かな😀".repeat(10_000) }));
    expect(Buffer.byteLength(JSON.stringify(cjk))).toBeLessThanOrEqual(TEAMS_MESSAGE_MAX_BYTES);
    expect(Buffer.byteLength(JSON.stringify(cjk))).toBeGreaterThan(TEAMS_MESSAGE_MAX_BYTES - 2000);
  });
});
