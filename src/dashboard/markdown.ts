import { escapeHtml } from "./html.js";

/**
 * A run's output as HTML: markdown-it with raw HTML off (HTML in an answer shows as text),
 * links only to http(s) and mailto, and no images at all: an image is a request the page
 * would make to wherever the agent pointed it (CSP blocks that too, but it is not emitted).
 * An image becomes a link the reader may follow.
 */

/** Larger outputs show as plain text: rendering megabytes of Markdown would stall the daemon. */
export const MARKDOWN_MAX_CHARS = 512 * 1024;

const SAFE_LINK = /^(?:https?:\/\/|mailto:)/i;

type MarkdownIt = InstanceType<typeof import("markdown-it").default>;

let md: MarkdownIt | null = null;

async function renderer(): Promise<MarkdownIt> {
  if (md) return md;
  // Loaded with the first run page, not with the daemon.
  const { default: MarkdownItCtor } = await import("markdown-it");
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
  md = m;
  return m;
}

export async function renderMarkdown(text: string): Promise<string> {
  if (text.length > MARKDOWN_MAX_CHARS) return `<pre class="output-plain">${escapeHtml(text)}</pre>`;
  return (await renderer()).render(text);
}
