import { escapeHtml } from "./html.js";

/**
 * A run's output as HTML: markdown-it with raw HTML off (HTML in an answer shows as text),
 * links only to http(s) and mailto, and no images at all: an image is a request the page
 * would make to wherever the agent pointed it (CSP blocks that too, but it is not emitted).
 * An image becomes a link the reader may follow.
 *
 * One renderer for the dashboard (server side, markdown-it loaded with the first run page) and
 * the MCP App view (bundled into the page by scripts/bundle.mjs): both call `markdownRenderer`
 * with markdown-it's constructor, so the two show an answer the same way.
 */

/** Larger outputs show as plain text: rendering megabytes of Markdown would stall the daemon. */
export const MARKDOWN_MAX_CHARS = 512 * 1024;

const SAFE_LINK = /^(?:https?:\/\/|mailto:)/i;

type MarkdownItCtor = typeof import("markdown-it").default;
type MarkdownIt = InstanceType<MarkdownItCtor>;

/** `render(text)` → safe HTML, from markdown-it's constructor (imported by the caller). */
export function markdownRenderer(MarkdownItCtor: MarkdownItCtor): (text: string) => string {
  const m = new MarkdownItCtor({ html: false, linkify: true, typographer: false });
  m.validateLink = (url: string) => SAFE_LINK.test(url.trim());
  const rules = m.renderer.rules;
  rules.link_open = (tokens, idx, options, _env, self) => {
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow");
    return self.renderToken(tokens, idx, options);
  };
  // Table alignment comes as style="text-align:…", which the CSP refuses: a class instead.
  for (const cell of ["th_open", "td_open"] as const) {
    rules[cell] = (tokens, idx, options, _env, self) => {
      const align = /text-align:(left|right|center)/.exec(String(tokens[idx].attrGet("style") ?? ""))?.[1];
      if (tokens[idx].attrs) tokens[idx].attrs = tokens[idx].attrs!.filter(([name]) => name !== "style");
      if (align) tokens[idx].attrJoin("class", `align-${align}`);
      return self.renderToken(tokens, idx, options);
    };
  }
  rules.image = (tokens, idx) => {
    const token = tokens[idx];
    const src = String(token.attrGet("src") ?? "");
    const alt = token.children?.map((c) => c.content).join("") || "image";
    const label = `image: ${alt}`;
    return SAFE_LINK.test(src)
      ? `<a class="image-link" href="${escapeHtml(src)}" rel="noopener noreferrer nofollow">${escapeHtml(label)}</a>`
      : `<span class="image-link">${escapeHtml(label)}</span>`;
  };
  return (text) => (text.length > MARKDOWN_MAX_CHARS ? `<pre class="output-plain">${escapeHtml(text)}</pre>` : (m as MarkdownIt).render(text));
}

let render: ((text: string) => string) | null = null;

export async function renderMarkdown(text: string): Promise<string> {
  // Loaded with the first run page, not with the daemon.
  render ??= markdownRenderer((await import("markdown-it")).default);
  return render(text);
}
