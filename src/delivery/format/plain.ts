/**
 * Plain text: the answer with its markup removed (desktop notifications). Lists keep "• ",
 * quotes "> ", and a link whose text is not its address says the address in parentheses.
 */
import { Walker, render, type Renderer } from "./markdown.js";

const none = ["", ""] as const;

export const plainRenderer: Renderer = {
  text: (s) => s,
  code: (s) => s,
  codeSpan: () => none,
  codeBlock: () => none,
  link: () => null,
  heading: () => none,
  quote: { prefix: "> ", nested: false },
  bullet: (ordered, n) => (ordered ? `${n}. ` : "• "),
  hr: "———",
};

/** The text of a Markdown answer without its markup. */
export function toPlainText(markdown: string): string {
  return render(new Walker(plainRenderer).markdown(markdown).atoms);
}
