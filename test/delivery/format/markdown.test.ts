import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Atom, TELEGRAM, UTF16, Walker, cutAtoms, fitAtoms, measure, render, splitAtoms } from "../../../src/delivery/format/markdown.js";
import { truncationNote } from "../../../src/delivery/format/message.js";
import { toPlainText } from "../../../src/delivery/format/plain.js";
import { slackRenderer } from "../../../src/delivery/format/slack.js";
import { telegramRenderer } from "../../../src/delivery/format/telegram.js";
import { CRON_LINK, checkTelegramHtml, longAnswer, wellFormed } from "./fixtures.js";

const tg = (md: string) => new Walker(telegramRenderer).markdown(md);

describe("the shared walker", () => {
  it("separates blocks with one blank line and list items with none", () => {
    expect(toPlainText("# A\n\npara one\nstill one\n\n- x\n- y\n\n1. a\n2. b\n\nend")).toBe("A\n\npara one\nstill one\n\n• x\n• y\n\n1. a\n2. b\n\nend");
  });

  it("indents nested lists and continuation lines under their bullet", () => {
    expect(toPlainText("- top\n  - inner\n    more inner\n- next")).toBe("• top\n  • inner\n    more inner\n• next");
    expect(toPlainText("3. c\n4. d")).toBe("3. c\n4. d");
  });

  it("prefixes every line of a quote, blank ones included", () => {
    expect(toPlainText("> one\n>\n> two")).toBe("> one\n>\n> two");
  });

  it("says a link's address when the target cannot link and the text is not the address", () => {
    expect(toPlainText("[docs](https://d.example) and <https://auto.example>")).toBe("docs (https://d.example) and https://auto.example");
  });

  it("keeps HTML in the answer as text (html: false)", () => {
    expect(toPlainText("a <b>bold</b> &amp; <script>x</script>")).toBe("a <b>bold</b> & <script>x</script>");
  });

  it("writes tables as one line per row", () => {
    expect(toPlainText("| a | b |\n|---|---|\n| 1 | 2 |")).toBe("a | b\n1 | 2");
  });
});

describe("cutting atoms", () => {
  it("closes every pair open at the cut and reopens it in the rest", () => {
    const atoms = tg(`**${"word ".repeat(40).trim()}**`).atoms;
    const { head, rest } = cutAtoms(atoms, 50, TELEGRAM);
    expect(render(head)).toMatch(/^<b>(word ?)+<\/b>$/);
    expect(measure(head, TELEGRAM)).toBeLessThanOrEqual(50);
    expect(rest).not.toBeNull();
    expect(render(rest!)).toMatch(/^<b>(word ?)+<\/b>$/);
  });

  it("never cuts inside an escape: the escape is applied after the cut", () => {
    const atoms = new Walker(slackRenderer).markdown("&".repeat(100)).atoms;
    for (let budget = 20; budget < 40; budget++) {
      const out = render(cutAtoms(atoms, budget, UTF16).head);
      expect(out.length).toBeLessThanOrEqual(budget);
      expect(out).toMatch(/^(&amp;)+$/);
    }
  });

  it("prefers a line break near the limit to a cut inside a paragraph", () => {
    const atoms = tg(`${"a".repeat(90)}\n\n${"b ".repeat(100)}`).atoms;
    const { head } = cutAtoms(atoms, 100, TELEGRAM);
    expect(render(head)).toBe("a".repeat(90));
  });

  it("drops a bullet or an empty pair left at the end, and keeps them for the next part", () => {
    const atoms = tg(`- ${"x".repeat(20)}\n- **${"y".repeat(30)}**`).atoms;
    const parts = splitAtoms(atoms, 25, TELEGRAM);
    expect(parts.map(render)).toEqual([`• ${"x".repeat(20)}`, `• <b>${"y".repeat(23)}</b>`, `<b>${"y".repeat(7)}</b>`]);
  });

  it("adds the pointer only when something was cut", () => {
    const atoms = tg("short").atoms;
    expect(render(fitAtoms(atoms, 100, TELEGRAM, CRON_LINK, (s) => s).atoms)).toBe("short");
    const cut = render(fitAtoms(tg("word ".repeat(100)).atoms, 100, TELEGRAM, CRON_LINK, (s) => s).atoms);
    expect(cut.endsWith(truncationNote(CRON_LINK))).toBe(true);
    expect(cut.length).toBeLessThanOrEqual(100);
  });

  it("adds the pointer when the source itself was too long to convert", () => {
    const w = tg("x ".repeat(150_000));
    expect(w.sourceCut).toBe(true);
    const out = render(fitAtoms(w.atoms, 1_000_000, TELEGRAM, CRON_LINK, (s) => s, true).atoms);
    expect(out.endsWith(truncationNote(CRON_LINK))).toBe(true);
  });

  it("keeps any answer within the budget, well-formed and balanced (property)", () => {
    const piece = fc.constantFrom(
      "**b ",
      "** ",
      "_i_ ",
      "`c<d>` ",
      "[l](https://x.y/?a=1&b=2) ",
      "\n\n",
      "\n- ",
      "\n> ",
      "\n```\ncode & <x>\n```\n",
      "😀",
      "👩‍👩‍👧‍👦",
      "漢字",
      "<b>",
      "&amp;",
      " ",
      "word ",
      "~~s~~ ",
      "# h\n",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 200 }), fc.integer({ min: 60, max: 600 }), (pieces, budget) => {
        const w = tg(pieces.join(""));
        const fitted = fitAtoms(w.atoms, budget, TELEGRAM, CRON_LINK, (s) => telegramRenderer.text(s, false));
        const html = render(fitted.atoms);
        const { problems, visible } = checkTelegramHtml(html);
        expect(problems).toEqual([]);
        expect(visible.length).toBeLessThanOrEqual(budget);
        expect(wellFormed(html)).toBe(true);
        if (fitted.truncated) expect(html.endsWith(truncationNote(CRON_LINK))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("splits a long answer into parts that each fit and each balance", () => {
    const atoms = tg(longAnswer(10_000)).atoms;
    const parts = splitAtoms(atoms as Atom[], 3000, TELEGRAM);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const p of parts) {
      const html = render(p);
      expect(measure(p, TELEGRAM)).toBeLessThanOrEqual(3000);
      expect(checkTelegramHtml(html).problems).toEqual([]);
      expect(wellFormed(html)).toBe(true);
    }
  });
});

describe("links", () => {
  it("never nests a link in a link (an image inside a link keeps only its words)", () => {
    const html = new Walker(telegramRenderer).markdown("[![badge](https://img.example/b.svg)](https://example.com)").atoms;
    expect(render(html)).toBe('<a href="https://example.com">badge</a>');
    expect(toPlainText("[![badge](https://img.example/b.svg)](https://example.com)")).toBe("badge (https://example.com)");
  });
});
