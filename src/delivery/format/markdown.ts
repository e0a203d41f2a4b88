/**
 * Markdown → a channel's markup, with one token walker for every target.
 *
 * The answer is parsed by markdown-it (`html: false`, so HTML in an answer is text) and its
 * tokens are walked once; a per-target `Renderer` says what each construct becomes. The
 * walker does not produce a string but a list of atoms:
 *
 *   - text:  the words, kept unescaped with the target's escape function beside them;
 *   - open / close: a pair of markup strings (`<b>`…`</b>`, `*`…`*`, `<url|`…`>`), matched by id;
 *   - mark:  markup that needs no closing (a newline, a bullet, a quote prefix).
 *
 * Where cutting happens: on these atoms, after conversion and before serialization
 * (`fitAtoms`, `splitAtoms`). Cutting the Markdown source first cannot guarantee a limit,
 * because conversion changes lengths unevenly (`&` becomes `&amp;`, `[t](u)` becomes
 * `<u|t>`, Telegram counts text without its tags); cutting the converted string can split an
 * entity or a tag and leave tags open. On atoms the length of each piece is known exactly for
 * the target's way of counting (`Measure`), a text is cut only between graphemes (never
 * inside a surrogate pair, an emoji sequence or an escape, which is applied after the cut),
 * markup is never cut, and every pair still open at the cut is closed, its closing markup
 * having been reserved in the budget as the pair was opened. The cut prefers a line break
 * or a space near the limit. `splitAtoms` does the same repeatedly to spread a text over
 * several blocks (Slack sections), reopening the pairs at the start of the next block.
 */
import MarkdownIt from "markdown-it";
import type { Token } from "markdown-it";
import { type DeliveryMessage, answerMarkdown, errorDetail, graphemeIter, splitAt, truncationNote } from "./message.js";

export type Escape = (s: string) => string;
export type TextAtom = { k: "text"; s: string; esc: Escape };
export type OpenAtom = { k: "open"; id: number; s: string; close: string; block?: "code" | "quote" | "heading" };
export type CloseAtom = { k: "close"; id: number; s: string };
export type MarkAtom = { k: "mark"; s: string; newline?: boolean };
export type Atom = TextAtom | OpenAtom | CloseAtom | MarkAtom;

/** An open/close pair of markup strings. */
export type Pair = readonly [string, string];

export interface Renderer {
  /** Escapes words. `lineStart`: they begin a line, where some characters are markup. */
  text(s: string, lineStart: boolean): string;
  /** Escapes the content of code (a span or a block). */
  code(s: string): string;
  strong?: Pair;
  em?: Pair;
  strike?: Pair;
  /** The markup around an inline code span, given its content. */
  codeSpan(content: string): Pair;
  /** The markup around a code block, given its language and content. */
  codeBlock(lang: string, content: string): Pair;
  /** The markup around a link's text; null when the target cannot link it (then `text (url)`). */
  link(href: string): Pair | null;
  heading(level: number): Pair;
  /** A quote is a prefix on each of its lines, or a pair of tags around it. */
  quote: { prefix: string; nested: boolean } | { tags: Pair };
  bullet(ordered: boolean, n: number): string;
  hr: string;
  /** Put before a newline that ends a line inside a paragraph (CommonMark's `\`). */
  hardBreak?: string;
  /** A single newline shows as a line break (Teams needs a blank line outside lists). */
  singleNewline?: boolean;
}

const md = new MarkdownIt({ html: false, linkify: false });

/** Beyond this many characters an answer is not parsed at all: no channel shows that much. */
export const SOURCE_MAX = 200_000;

/** A quote or a list item: what starts its first line, and what starts each line after. */
interface Container {
  first: string;
  rest: string;
  used: boolean;
}

/** Converts Markdown (and plain text) into atoms for one target; blocks are separated as they come. */
export class Walker {
  readonly atoms: Atom[] = [];
  /** The source was longer than SOURCE_MAX and only its start was converted. */
  sourceCut = false;
  private nextId = 1;
  private pending = 0;
  private trailingNewlines = Infinity;
  private lineStarted = false;
  private containers: Container[] = [];
  private lists: { ordered: boolean; n: number }[] = [];
  private quoteDepth = 0;
  private cell = 0;
  private linkStack: { pair: Pair | null; id: number; href: string; from: number }[] = [];

  constructor(private readonly r: Renderer) {}

  /** Markdown, as a block after whatever came before. */
  markdown(source: string): this {
    let text = source;
    if (text.length > SOURCE_MAX) {
      const nl = text.lastIndexOf("\n", SOURCE_MAX);
      const high = /[\uD800-\uDBFF]/.test(text[SOURCE_MAX - 1]);
      text = text.slice(0, nl > SOURCE_MAX / 2 ? nl : high ? SOURCE_MAX - 1 : SOURCE_MAX);
      this.sourceCut = true;
    }
    this.blockTokens(md.parse(text, {}));
    return this;
  }

  /** Plain text (no markup in it is interpreted), as a paragraph; its newlines are kept. */
  plain(text: string): this {
    this.block(2);
    return this.lines(text);
  }

  /** Plain text where the current line is; its newlines are kept. */
  lines(text: string): this {
    text.split(/\r?\n/).forEach((line, i) => {
      if (i > 0) this.lineBreak();
      if (line) this.text(line);
    });
    return this;
  }

  /** Words in an open/close pair (a footer in italics, a title in bold). */
  wrapped(pair: Pair | undefined, words: () => void): this {
    const id = this.open(pair);
    words();
    this.close(id, pair);
    return this;
  }

  /** Asks for a separation of `n` newlines before the next content (2: a blank line). */
  block(n: number): void {
    const want = n === 1 && this.r.singleNewline === false && this.lists.length === 0 ? 2 : n;
    this.pending = Math.max(this.pending, want - this.trailingNewlines);
  }

  lineBreak(): void {
    if (this.r.hardBreak && this.pending === 0 && this.trailingNewlines === 0) this.atoms.push({ k: "mark", s: this.r.hardBreak });
    this.block(1);
  }

  /** Emits what content needs first: the pending newlines, then the line's prefix. */
  private flush(): void {
    if (this.pending > 0 && this.trailingNewlines !== Infinity) {
      const blank = this.containers
        .filter((c) => c.used)
        .map((c) => c.rest)
        .join("")
        .trimEnd();
      this.atoms.push({ k: "mark", s: "\n" + `${blank}\n`.repeat(this.pending - 1), newline: true });
      this.trailingNewlines += this.pending;
      this.lineStarted = false;
    }
    this.pending = 0;
    if (!this.lineStarted) {
      const prefix = this.containers.map((c) => (c.used ? c.rest : ((c.used = true), c.first))).join("");
      if (prefix) this.atoms.push({ k: "mark", s: prefix });
      this.lineStarted = true;
    }
  }

  text(s: string): this {
    if (!s) return this;
    const lineStart = this.atLineStart();
    this.flush();
    const r = this.r;
    this.atoms.push({ k: "text", s, esc: (x) => r.text(x, lineStart) });
    this.trailingNewlines = 0;
    return this;
  }

  mark(s: string): void {
    this.flush();
    this.atoms.push({ k: "mark", s });
    this.trailingNewlines = 0;
  }

  /** Code content (a span or a block), escaped as code. */
  code(s: string): void {
    if (!s) return;
    this.flush();
    const r = this.r;
    this.atoms.push({ k: "text", s, esc: (x) => r.code(x) });
    this.trailingNewlines = 0;
  }

  /** True when nothing but markup has been written on the current line yet. */
  private atLineStart(): boolean {
    if (this.pending > 0 || !this.lineStarted) return true;
    for (let i = this.atoms.length - 1; i >= 0; i--) {
      const a = this.atoms[i];
      if (a.k === "text") return false;
      if (a.k === "mark") return true;
    }
    return true;
  }

  open(pair: Pair | undefined, block?: OpenAtom["block"]): number {
    if (!pair) return 0;
    this.flush();
    const id = this.nextId++;
    this.atoms.push({ k: "open", id, s: pair[0], close: pair[1], block });
    return id;
  }

  close(id: number, pair: Pair | undefined): void {
    if (!pair || !id) return;
    this.atoms.push({ k: "close", id, s: pair[1] });
  }

  private blockTokens(tokens: Token[]): void {
    const r = this.r;
    const stack: { id: number; pair: Pair | undefined }[] = [];
    for (const tok of tokens) {
      switch (tok.type) {
        case "paragraph_open":
          this.block(tok.hidden ? 1 : 2);
          break;
        case "heading_open": {
          this.block(2);
          const pair = r.heading(Number(tok.tag.slice(1)) || 1);
          stack.push({ id: this.open(pair, "heading"), pair });
          break;
        }
        case "blockquote_open": {
          this.block(2);
          const outer = this.quoteDepth++ > 0;
          if ("tags" in r.quote) {
            // Telegram cannot nest quotes: an inner quote joins the outer one.
            const pair = outer ? undefined : r.quote.tags;
            this.containers.push({ first: "", rest: "", used: false });
            stack.push({ id: this.open(pair, "quote"), pair });
          } else {
            const prefix = outer && !r.quote.nested ? "" : r.quote.prefix;
            this.containers.push({ first: prefix, rest: prefix, used: false });
            stack.push({ id: 0, pair: undefined });
          }
          break;
        }
        case "blockquote_close": {
          this.quoteDepth--;
          this.containers.pop();
          const top = stack.pop();
          if (top) this.close(top.id, top.pair);
          break;
        }
        case "heading_close": {
          const top = stack.pop();
          if (top) this.close(top.id, top.pair);
          break;
        }
        case "bullet_list_open":
        case "ordered_list_open":
          this.block(this.lists.length ? 1 : 2);
          this.lists.push({ ordered: tok.type === "ordered_list_open", n: Number(tok.attrGet("start") ?? 1) });
          break;
        case "bullet_list_close":
        case "ordered_list_close":
          this.lists.pop();
          break;
        case "list_item_open": {
          this.block(1);
          const list = this.lists[this.lists.length - 1] ?? { ordered: false, n: 1 };
          const bullet = r.bullet(list.ordered, list.n++);
          this.containers.push({ first: bullet, rest: " ".repeat(bullet.length), used: false });
          break;
        }
        case "list_item_close":
          this.containers.pop();
          break;
        case "fence":
        case "code_block": {
          this.block(2);
          const content = tok.content.replace(/\n$/, "");
          const pair = r.codeBlock(tok.type === "fence" ? (tok.info.trim().split(/\s+/)[0] ?? "") : "", content);
          const id = this.open(pair, "code");
          this.code(content);
          this.close(id, pair);
          break;
        }
        case "hr":
          this.block(2);
          this.mark(r.hr);
          break;
        case "tr_open":
          this.block(1);
          this.cell = 0;
          break;
        case "th_open":
        case "td_open":
          if (this.cell++ > 0) this.mark(" | ");
          break;
        case "table_open":
          this.block(2);
          break;
        case "inline":
          this.inline(tok.children ?? []);
          break;
        case "html_block":
          this.block(2);
          this.lines(tok.content.replace(/\n$/, ""));
          break;
        default:
          break;
      }
    }
  }

  private inline(children: Token[]): void {
    const r = this.r;
    const stack: { id: number; pair: Pair | undefined }[] = [];
    const openPair = (pair: Pair | undefined) => stack.push({ id: this.open(pair), pair });
    const closePair = () => {
      const top = stack.pop();
      if (top) this.close(top.id, top.pair);
    };
    for (const tok of children) {
      switch (tok.type) {
        case "text":
        case "html_inline":
          this.text(tok.content);
          break;
        case "softbreak":
          this.block(1);
          break;
        case "hardbreak":
          this.lineBreak();
          break;
        case "strong_open":
          openPair(r.strong);
          break;
        case "em_open":
          openPair(r.em);
          break;
        case "s_open":
          openPair(r.strike);
          break;
        case "strong_close":
        case "em_close":
        case "s_close":
          closePair();
          break;
        case "code_inline": {
          const pair = r.codeSpan(tok.content);
          const id = this.open(pair);
          this.code(tok.content);
          this.close(id, pair);
          break;
        }
        case "link_open":
          this.linkOpen(String(tok.attrGet("href") ?? ""));
          break;
        case "link_close":
          this.linkClose();
          break;
        case "image": {
          this.linkOpen(String(tok.attrGet("src") ?? ""));
          this.text(tok.content || "image");
          this.linkClose();
          break;
        }
        default:
          if (tok.content) this.text(tok.content);
      }
    }
    while (stack.length) closePair();
  }

  private linkOpen(href: string): void {
    // A link inside a link (an image in a link) would nest the markup: only its words are kept.
    const nested = this.linkStack.length > 0;
    const pair = href && !nested ? this.r.link(href) : null;
    this.linkStack.push({ pair, id: pair ? this.open(pair) : 0, href: nested ? "" : href, from: this.atoms.length });
  }

  private linkClose(): void {
    const link = this.linkStack.pop();
    if (!link) return;
    if (link.pair) {
      this.close(link.id, link.pair);
      return;
    }
    const words = this.atoms
      .slice(link.from)
      .map((a) => (a.k === "text" ? a.s : ""))
      .join("");
    if (link.href && words.trim() !== link.href && words.trim() !== link.href.replace(/^mailto:/, "")) this.text(` (${link.href})`);
  }
}

/**
 * The body every channel shows: the error or pause reason in full when the title had to
 * shorten it (`Error: …`, plain text), then the answer converted from Markdown.
 */
export function messageBody(msg: DeliveryMessage, r: Renderer): Walker {
  const w = new Walker(r);
  const detail = errorDetail(msg);
  if (detail) {
    w.block(2);
    w.wrapped(r.strong, () => w.text(msg.event === "paused" ? "Reason:" : "Error:"));
    w.text(" ").lines(detail);
  }
  return w.markdown(answerMarkdown(msg));
}

/** Atoms as the target's text. */
export function render(atoms: readonly Atom[]): string {
  let out = "";
  for (const a of atoms) out += a.k === "text" ? a.esc(a.s) : a.s;
  return out;
}

/**
 * How a service counts toward its limit. `text` gets the words before and after escaping;
 * `markup` gets markup and says whether it is a pair's opening, its closing or a mark.
 */
export interface Measure {
  text(raw: string, escaped: string): number;
  markup(s: string, kind: "open" | "close" | "mark"): number;
}

/** UTF-16 code units of what is sent (Slack, Discord: an upper bound of their characters). */
export const UTF16: Measure = { text: (_raw, out) => out.length, markup: (s) => s.length };
/** UTF-8 bytes of what is sent (ntfy). */
export const UTF8: Measure = { text: (_raw, out) => Buffer.byteLength(out), markup: (s) => Buffer.byteLength(s) };
/** UTF-8 bytes of what is sent once it is inside a JSON string (a Teams card's size). */
const jsonBytes = (s: string) => Buffer.byteLength(JSON.stringify(s)) - 2;
export const JSON_UTF8: Measure = { text: (_raw, out) => jsonBytes(out), markup: (s) => jsonBytes(s) };
/** Telegram counts the text after entity parsing: tags count nothing, `&amp;` counts one. */
export const TELEGRAM: Measure = { text: (raw) => raw.length, markup: (s, kind) => (kind === "mark" ? s.length : 0) };

function atomCost(a: Atom, m: Measure): number {
  if (a.k === "text") return m.text(a.s, a.esc(a.s));
  if (a.k === "open") return m.markup(a.s, "open");
  if (a.k === "close") return m.markup(a.s, "close");
  return m.markup(a.s, "mark");
}

export function measure(atoms: readonly Atom[], m: Measure): number {
  return atoms.reduce((n, a) => n + atomCost(a, m), 0);
}

interface Cut {
  /** The atoms kept, every pair closed. */
  head: Atom[];
  /** What did not fit (its open pairs reopened first), or null when everything fit. */
  rest: Atom[] | null;
}

const isContent = (a: Atom) => a.k === "text";

/**
 * The longest start of `atoms` that measures at most `budget`, closed. `lookback`: a cut at a
 * line break is preferred when it keeps at least (1 - lookback) of the budget.
 */
export function cutAtoms(atoms: readonly Atom[], budget: number, m: Measure, lookback = 0.2): Cut {
  const out: Atom[] = [];
  const stack: OpenAtom[] = [];
  const skipped = new Set<number>();
  let used = 0;
  let closing = 0;
  let safe: { len: number; used: number; stack: OpenAtom[]; at: number } | null = null;

  const finish = (kept: Atom[], open: OpenAtom[], remaining: Atom[]): Cut => {
    // Drop what ends the head without content (a bullet, an empty pair, spaces): it moves on.
    const head = [...kept];
    const openNow = [...open];
    const moved: Atom[] = [];
    for (;;) {
      const last = head[head.length - 1];
      if (!last) break;
      if (last.k === "mark") moved.unshift(head.pop()!);
      else if (last.k === "open" && openNow[openNow.length - 1]?.id === last.id) {
        openNow.pop();
        moved.unshift(head.pop()!);
      } else if (last.k === "text" && !last.s.trim()) head.pop();
      else if (last.k === "text" && last.s !== last.s.trimEnd()) {
        head[head.length - 1] = { ...last, s: last.s.trimEnd() };
        break;
      } else break;
    }
    for (let i = openNow.length - 1; i >= 0; i--) head.push({ k: "close", id: openNow[i].id, s: openNow[i].close });
    const after = [...moved, ...remaining];
    while (after.length && after[0].k === "mark" && (after[0] as MarkAtom).newline) after.shift();
    const rest = [...openNow, ...after];
    return { head, rest: rest.some(isContent) ? rest : null };
  };

  const cutHere = (i: number, remaining: Atom[]): Cut => {
    if (safe && safe.used >= budget * (1 - lookback) && safe.len < out.length) {
      return finish(out.slice(0, safe.len), safe.stack, atoms.slice(safe.at));
    }
    return finish(out, stack, remaining.length ? remaining : atoms.slice(i));
  };

  for (let i = 0; i < atoms.length; i++) {
    const a = atoms[i];
    if (a.k === "close") {
      if (skipped.has(a.id) || stack[stack.length - 1]?.id !== a.id) continue;
      stack.pop();
      const c = m.markup(a.s, "close");
      closing -= c;
      used += c;
      out.push(a);
      continue;
    }
    const room = budget - used - closing;
    if (a.k === "open") {
      const opening = m.markup(a.s, "open");
      const c = m.markup(a.close, "close");
      if (opening + c <= room) {
        out.push(a);
        stack.push(a);
        used += opening;
        closing += c;
        continue;
      }
      if (!out.some(isContent)) {
        skipped.add(a.id); // it could never fit: its content goes without it
        continue;
      }
      return cutHere(i, []);
    }
    if (a.k === "mark") {
      if (a.newline) safe = { len: out.length, used, stack: [...stack], at: i };
      const c = m.markup(a.s, "mark");
      if (c <= room) {
        out.push(a);
        used += c;
        continue;
      }
      if (!out.some(isContent)) continue;
      return cutHere(i, []);
    }
    const c = atomCost(a, m);
    if (c <= room) {
      out.push(a);
      used += c;
      continue;
    }
    const [keep, rest] = splitAt(a.s, room, (x) => m.text(x, a.esc(x)), Math.min(200, budget * lookback));
    const remaining: Atom[] = [...(rest ? [{ ...a, s: rest }] : []), ...atoms.slice(i + 1)];
    // A line break near enough beats a cut inside the words.
    if (safe && safe.used >= budget * (1 - lookback) && safe.len < out.length) {
      return finish(out.slice(0, safe.len), safe.stack, atoms.slice(safe.at));
    }
    if (keep) out.push({ ...a, s: keep });
    else if (!out.some(isContent)) {
      // Not one grapheme fits an empty head: take one anyway so that splitting advances.
      const g = graphemeIter(a.s).next().value ?? a.s;
      const more = a.s.slice(g.length);
      out.push({ ...a, s: g });
      return finish(out, stack, [...(more ? [{ ...a, s: more }] : []), ...atoms.slice(i + 1)]);
    }
    return finish(out, stack, remaining);
  }
  return { head: out, rest: null };
}

/** Closing markup ends a block (a code fence): what follows it starts on a new line. */
function endsWithBlock(atoms: readonly Atom[], opens: Map<number, OpenAtom>): boolean {
  const last = atoms[atoms.length - 1];
  return last?.k === "close" && opens.get(last.id)?.block !== undefined;
}

/**
 * Atoms cut to `budget` (as `m` counts) with the truncation note pointing at `link`;
 * unchanged when they fit and the source was not cut. `note` renders the note's words.
 */
export function fitAtoms(
  atoms: readonly Atom[],
  budget: number,
  m: Measure,
  link: string,
  esc: Escape,
  sourceCut = false,
): { atoms: Atom[]; truncated: boolean } {
  if (!sourceCut && measure(atoms, m) <= budget) return { atoms: [...atoms], truncated: false };
  const note: TextAtom = { k: "text", s: truncationNote(link), esc };
  const noteCost = atomCost(note, m) + m.markup("\n", "mark");
  const { head } = cutAtoms(atoms, Math.max(0, budget - noteCost), m);
  const opens = new Map(atoms.filter((a): a is OpenAtom => a.k === "open").map((a) => [a.id, a]));
  const tail: Atom[] = endsWithBlock(head, opens) ? [{ k: "mark", s: "\n" }, note] : [note];
  return { atoms: [...head, ...tail], truncated: true };
}

/** Atoms spread over parts of at most `max` each, each part closed and the next reopened. */
export function splitAtoms(atoms: readonly Atom[], max: number, m: Measure): Atom[][] {
  const parts: Atom[][] = [];
  let rest: readonly Atom[] | null = atoms;
  for (let guard = 0; rest?.length && guard < 100_000; guard++) {
    const cut = cutAtoms(rest, max, m, 0.5);
    if (cut.head.some(isContent)) parts.push(cut.head);
    rest = cut.rest;
  }
  return parts;
}
