import { describe, expect, it } from "vitest";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { NTFY_MESSAGE_MAX_BYTES, ntfyPayload, toNtfyMarkdown } from "../../../src/delivery/format/ntfy.js";
import { CRON_LINK, longAnswer, message, wellFormed } from "./fixtures.js";

describe("ntfy Markdown", () => {
  it("writes CommonMark back, with hard breaks and long fences kept", () => {
    expect(toNtfyMarkdown("# H\n\n**b** *i* ~~s~~ `c`\nsoft  \nhard")).toBe("# H\n\n**b** *i* ~~s~~ `c`\nsoft\\\nhard");
    expect(toNtfyMarkdown("````\n```inner```\n````")).toBe("````\n```inner```\n````");
    expect(toNtfyMarkdown("> a\n> > b")).toBe("> a\n>\n> > b");
  });
});

describe("ntfyPayload", () => {
  it("is a JSON publish body: title without emoji, Markdown message, priority, tags, click", () => {
    expect(ntfyPayload(message({ response: "All **12** services are healthy." }), { topic: "ops" })).toEqual({
      topic: "ops",
      title: "log-audit completed in 42 s",
      message:
        "All **12** services are healthy.\n\n*took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · [full output](https://cron.example.com/runs/run_01)*",
      markdown: true,
      priority: 3,
      tags: ["white_check_mark"],
      click: "https://cron.example.com/runs/run_01",
      actions: [{ action: "view", label: "Full output", url: "https://cron.example.com/runs/run_01" }],
    });
  });

  it("raises the priority for failures and pauses, and tags each event with its emoji", () => {
    const of = (over: Parameters<typeof message>[0]) => ntfyPayload(message(over));
    expect(of({ event: "failed", status: "failed", error: "x" })).toMatchObject({ priority: 4, tags: ["x"] });
    expect(of({ event: "paused", error: "x" })).toMatchObject({ priority: 4, tags: ["pause_button"] });
    expect(of({ event: "changed" })).toMatchObject({ priority: 3, tags: ["repeat"] });
    expect(of({ event: "canceled", status: "canceled" })).toMatchObject({ priority: 3, tags: ["no_entry_sign"] });
    expect(of({ test: true })).toMatchObject({ priority: 3, tags: ["test_tube"], title: "Test message from agent-cron" });
  });

  it("leaves the topic to the channel when not given, and has no click for a cron:// link", () => {
    const p = ntfyPayload(message({ link: CRON_LINK }));
    expect("topic" in p).toBe(false);
    expect(p.click).toBeUndefined();
    expect(p.actions).toBeUndefined();
    expect(p.message.endsWith("full output: `cron://runs/run_01`*")).toBe(true);
  });

  it("keeps a 10,000-character answer with emoji and CJK within 4096 bytes, ending with the pointer", () => {
    for (const response of [longAnswer(10_000), "漢字😀👩‍👩‍👧‍👦".repeat(3000)]) {
      const p = ntfyPayload(message({ response }));
      expect(Buffer.byteLength(p.message)).toBeLessThanOrEqual(NTFY_MESSAGE_MAX_BYTES);
      expect(Buffer.byteLength(p.message)).toBeGreaterThan(NTFY_MESSAGE_MAX_BYTES - 300);
      expect(wellFormed(p.message)).toBe(true);
      const body = p.message.slice(0, p.message.lastIndexOf("\n\n*took"));
      expect(body.endsWith(truncationNote("https://cron.example.com/runs/run_01"))).toBe(true);
    }
  });
});
