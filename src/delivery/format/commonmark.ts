/**
 * Renderers that write Markdown again (Discord, ntfy, Teams): the answer is parsed and
 * written back in the dialect the service understands, so that what the service cannot show
 * is dropped or spelled out, and text that only looks like markup stays text.
 *
 * Escaping: a backslash goes only before characters that would otherwise act as markup
 * (`*`, `` ` ``, `[`, `]`, `~`, `_` at a word boundary, `||`, `<` before a tag, mention or
 * autolink, `&` before an entity, a backslash before punctuation, and `#`, `>`, `-`, `+`,
 * `1.` at the start of a line). URLs in the text are left as they are, so that the service
 * still links them.
 */
import type { Pair, Renderer } from "./markdown.js";

const URL_RUN = /https?:\/\/[^\s<>]*[^\s<>.,;:!?)\]'"]/g;
const WORD = /[\p{L}\p{N}]/u;

function escapeRun(s: string, lineStart: boolean): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const prev = i > 0 ? s[i - 1] : "";
    const next = i + 1 < s.length ? s[i + 1] : "";
    switch (c) {
      case "*":
      case "`":
      case "[":
      case "]":
      case "~":
        out += "\\" + c;
        break;
      case "_":
        out += prev && next && WORD.test(prev) && WORD.test(next) ? c : "\\" + c;
        break;
      case "|":
        out += prev === "|" || next === "|" || !prev || !next ? "\\" + c : c;
        break;
      case "<":
        out += /[A-Za-z/!?@#:]/.test(next) ? "\\" + c : c;
        break;
      case "&":
        out += /^&(#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);/i.test(s.slice(i)) ? "\\" + c : c;
        break;
      case "\\":
        out += !next || /[!-/:-@[-`{-~]/.test(next) ? "\\\\" : c;
        break;
      default:
        out += c;
    }
  }
  if (lineStart) {
    out = out
      .replace(/^(\s*)(#{1,6})(?=\s|$)/, "$1\\$2")
      .replace(/^(\s*)>/, "$1\\>")
      .replace(/^(\s*)([-+])(?=[\s#-]|$)/, "$1\\$2")
      .replace(/^(\s*)(=+\s*)$/, "$1\\$2")
      .replace(/^(\s*\d{1,9})([.)])(?=\s|$)/, "$1\\$2");
  }
  return out;
}

/** Text made safe for Markdown: only what would be markup is escaped; URLs stay as they are. */
export function escapeMarkdown(s: string, lineStart = false): string {
  let out = "";
  let last = 0;
  for (const m of s.matchAll(URL_RUN)) {
    const at = m.index ?? 0;
    if (at > last) out += escapeRun(s.slice(last, at), lineStart && last === 0);
    out += m[0];
    last = at + m[0].length;
  }
  if (last < s.length) out += escapeRun(s.slice(last), lineStart && last === 0);
  return out;
}

/** A code span that its content cannot end: one backtick more than the longest run inside. */
export function codeSpanPair(content: string): Pair {
  const longest = Math.max(0, ...Array.from(content.matchAll(/`+/g), (m) => m[0].length));
  const ticks = "`".repeat(longest + 1);
  const pad = content.startsWith("`") || content.endsWith("`") ? " " : "";
  return [ticks + pad, pad + ticks];
}

/** A link destination that no parenthesis or space in it can end early. */
export function linkDestination(href: string): string {
  return href.replace(/[()\s<>]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

const isLinkable = (href: string) => /^(https?|mailto):/i.test(href);

export interface Dialect {
  /** The markup of a heading of this level. */
  heading(level: number): Pair;
  strike?: Pair;
  hr: string;
  nestedQuotes: boolean;
  /** Fences of any length are understood (CommonMark); else only ``` (then ``` inside is broken up). */
  longFences: boolean;
  /** Put before a newline that is a hard line break. */
  hardBreak?: string;
  singleNewline?: boolean;
  /** The markup around a code block; by default a fence with its language. */
  codeBlock?: (lang: string, content: string) => Pair;
  code?: (s: string) => string;
  em?: Pair;
}

/** A renderer for a Markdown dialect. */
export function markdownRenderer(d: Dialect): Renderer {
  const breakFences = (s: string) => s.replace(/```/g, "``\u200b`");
  return {
    text: (s, lineStart) => escapeMarkdown(s, lineStart),
    code: d.code ?? (d.longFences ? (s) => s : breakFences),
    strong: ["**", "**"],
    em: d.em ?? ["*", "*"],
    strike: d.strike,
    codeSpan: codeSpanPair,
    codeBlock:
      d.codeBlock ??
      ((lang, content) => {
        const longest = d.longFences ? Math.max(0, ...Array.from(content.matchAll(/`{3,}/g), (m) => m[0].length)) : 0;
        const fence = "`".repeat(Math.max(3, longest + 1));
        return [`${fence}${/^[\w+#.-]{1,32}$/.test(lang) ? lang : ""}\n`, `\n${fence}`];
      }),
    link: (href) => (isLinkable(href) ? ["[", `](${linkDestination(href)})`] : null),
    heading: d.heading,
    quote: { prefix: "> ", nested: d.nestedQuotes },
    bullet: (ordered, n) => (ordered ? `${n}. ` : "- "),
    hr: d.hr,
    hardBreak: d.hardBreak,
    singleNewline: d.singleNewline,
  };
}
