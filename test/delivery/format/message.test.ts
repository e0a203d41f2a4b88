import { describe, expect, it } from "vitest";
import {
  cutToLimit,
  displayName,
  errorDetail,
  footer,
  formatCost,
  formatNextRun,
  humanDuration,
  shorten,
  shortReason,
  title,
  titleParts,
  truncationNote,
  utf8Length,
} from "../../../src/delivery/format/message.js";
import { CRON_LINK, message, wellFormed } from "./fixtures.js";

describe("titles", () => {
  it("says what happened, per event", () => {
    expect(title(message())).toBe("✅ log-audit completed in 42 s");
    expect(title(message({ event: "changed" }))).toBe("🔁 log-audit completed in 42 s, answer changed");
    expect(title(message({ event: "failed", status: "timed_out", error: "Timed out after 30 min; the process group was killed." }))).toBe(
      "❌ log-audit failed: timed out after 30 min",
    );
    expect(title(message({ event: "failed", status: "failed", error: "Codex reported an error: rate limited. Try later." }))).toBe(
      "❌ log-audit failed: codex reported an error: rate limited",
    );
    expect(
      title(
        message({
          event: "paused",
          status: "failed",
          error: "Cannot be scheduled: the cron expression has no next time. Fix it with update_cron, then resume the job.",
        }),
      ),
    ).toBe("⏸ log-audit paused itself: cannot be scheduled: the cron expression has no next time");
    expect(
      title(
        message({ event: "paused", status: "failed", error: "Paused after 3 failed runs in a row; last error: boom. Fix the cause, then resume the job." }),
      ),
    ).toBe("⏸ log-audit paused itself after 3 failed runs in a row");
    expect(title(message({ event: "canceled", status: "canceled", durationMs: 3000 }))).toBe("🚫 log-audit canceled");
    expect(title(message({ test: true }))).toBe("🧪 Test message from agent-cron");
  });

  it("words a failure without an error by its status", () => {
    expect(title(message({ event: "failed", status: "timed_out", error: null }))).toBe("❌ log-audit timed out");
    expect(title(message({ event: "failed", status: "interrupted", error: "  " }))).toBe("❌ log-audit was interrupted");
    expect(title(message({ event: "failed", status: "failed", error: null }))).toBe("❌ log-audit failed");
    expect(title(message({ event: "paused", error: null }))).toBe("⏸ log-audit paused itself");
  });

  it("uses the first 8 characters of the id when the job has no name, and no duration when unknown", () => {
    expect(title(message({ jobName: null, durationMs: null }))).toBe("✅ 0f3c9a7e completed");
    expect(displayName({ jobName: "  multi\nline   name ", jobId: "x" })).toBe("multi line name");
  });

  it("shortens a long error on a word boundary and keeps proper nouns' case", () => {
    const long = `The model answered ${"with a very long explanation ".repeat(10)}and then stopped.`;
    const reason = shortReason(long);
    expect(reason.length).toBeLessThanOrEqual(100);
    expect(reason.endsWith("…")).toBe(true);
    expect(reason.startsWith("the model answered with")).toBe(true);
    expect(shortReason("Claude Code gave no structured_output.")).toBe("Claude Code gave no structured_output");
    expect(shortReason("HTTP 500 from the endpoint.")).toBe("HTTP 500 from the endpoint");
  });

  it("splits the emoji from the words (ntfy shows a tag's emoji instead)", () => {
    expect(titleParts(message({ event: "failed", error: "Boom." }))).toEqual({ emoji: "❌", text: "log-audit failed: boom" });
  });

  it("puts the whole error in the body only when the title had to shorten it", () => {
    expect(errorDetail(message({ event: "failed", error: "Boom." }))).toBeNull();
    expect(errorDetail(message({ event: "failed", error: "Timed out after 30 min; the process group was killed." }))).toBe(
      "Timed out after 30 min; the process group was killed.",
    );
    expect(errorDetail(message({ event: "completed", error: "Something long; very long." }))).toBeNull();
  });
});

describe("durations, costs, times", () => {
  it("reads like a person would say it", () => {
    expect(humanDuration(850)).toBe("850 ms");
    expect(humanDuration(42_000)).toBe("42 s");
    expect(humanDuration(42_400)).toBe("42 s");
    expect(humanDuration(59_600)).toBe("1 min");
    expect(humanDuration(185_000)).toBe("3 min 5 s");
    expect(humanDuration(180_000)).toBe("3 min");
    expect(humanDuration(3_720_000)).toBe("1 h 2 min");
    expect(humanDuration(7_200_000)).toBe("2 h");
    expect(humanDuration(0)).toBe("0 ms");
  });

  it("formats costs to the cent above a dollar, to a hundredth of a cent below", () => {
    expect(formatCost(0.0123)).toBe("$0.0123");
    expect(formatCost(0)).toBe("$0.0000");
    expect(formatCost(1.5)).toBe("$1.50");
  });

  it("shows the next run in the job's timezone, whatever offset the ISO string has", () => {
    expect(formatNextRun("2026-12-02T09:00:00+01:00", "Europe/Paris")).toBe("2026-12-02 09:00 (Europe/Paris)");
    expect(formatNextRun("2026-12-02T08:00:00Z", "Europe/Paris")).toBe("2026-12-02 09:00 (Europe/Paris)");
    expect(formatNextRun("2026-07-01T23:30:00-04:00", "America/New_York")).toBe("2026-07-01 23:30 (America/New_York)");
    expect(formatNextRun("2026-12-02T09:00:00+01:00", "Not/AZone")).toBe("2026-12-02 09:00 (Not/AZone)");
  });

  it("puts the facts and the link in the footer", () => {
    expect(footer(message())).toBe("took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · full output: https://cron.example.com/runs/run_01");
    expect(footer(message({ durationMs: null, costUsd: null, nextRunAt: null, link: CRON_LINK }))).toBe(`full output: ${CRON_LINK}`);
  });
});

describe("cutToLimit", () => {
  it("leaves a text that fits as it is", () => {
    expect(cutToLimit("short", 10, CRON_LINK)).toBe("short");
  });

  it("cuts within the limit, ends with the pointer, and never splits a surrogate pair or an emoji sequence", () => {
    const text = "😀👩‍👩‍👧‍👦🇫🇷漢字".repeat(500);
    for (const max of [100, 101, 102, 103, 150, 999]) {
      const cut = cutToLimit(text, max, CRON_LINK);
      expect(cut.length).toBeLessThanOrEqual(max);
      expect(cut.endsWith(truncationNote(CRON_LINK))).toBe(true);
      expect(wellFormed(cut)).toBe(true);
      const head = cut.slice(0, -truncationNote(CRON_LINK).length);
      expect(text.startsWith(head)).toBe(true);
      // whole graphemes only: the head is a whole number of the repeated units' graphemes
      expect(/(👩‍👩‍👧|👩‍👩|👩‍)$/.test(head)).toBe(false);
    }
  });

  it("prefers to cut at a space near the limit", () => {
    const text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu ".repeat(5);
    for (const room of [100, 101, 105, 117]) {
      const cut = cutToLimit(text, room + truncationNote("x").length, "x");
      const head = cut.slice(0, -truncationNote("x").length);
      expect(text.startsWith(head)).toBe(true);
      expect(text[head.length]).toBe(" ");
      expect(head.length).toBeGreaterThan(room - 10);
    }
  });

  it("counts bytes when told to", () => {
    const text = "漢".repeat(3000);
    const cut = cutToLimit(text, 4096, CRON_LINK, utf8Length);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(4096);
    expect(cut.endsWith(truncationNote(CRON_LINK))).toBe(true);
  });

  it("shortens one-line texts with an ellipsis", () => {
    expect(shorten("abcdef", 10)).toBe("abcdef");
    expect(shorten("abc def ghi jkl", 10)).toBe("abc def…");
    expect(shorten("😀".repeat(10), 5)).toBe("😀😀…");
  });
});
