import { relativeTime } from "../core/relative-time.js";

/**
 * HTML built from tagged templates that escape every interpolated value unless it is already
 * Html. Job names, prompts, errors and outputs come from agents and are hostile by default:
 * nothing reaches the page without passing through `escapeHtml` or the Markdown renderer.
 */

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type Interpolation = Html | string | number | boolean | null | undefined | readonly Interpolation[];

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function piece(value: Interpolation): string {
  if (value === null || value === undefined || value === false || value === true) return "";
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(piece).join("");
  return escapeHtml(String(value));
}

/** `html\`<p>${name}</p>\``: the literal parts are trusted markup, every value is escaped. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += piece(values[i]) + strings[i + 1];
  return new Html(out);
}

/** Markup made elsewhere and already safe (the Markdown renderer's output). */
export const trusted = (markup: string) => new Html(markup);

// Intl.DateTimeFormat is costly to build and a jobs page formats two times per row.
const formats = new Map<string, Intl.DateTimeFormat>();
function formatFor(timezone: string, withYear: boolean): Intl.DateTimeFormat {
  const key = `${timezone}\u0000${withYear}`;
  let f = formats.get(key);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("en-GB", {
        timeZone: timezone,
        ...(withYear ? { year: "numeric" } : {}),
        month: "short",
        day: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        hourCycle: "h23",
      });
    } catch {
      // A zone gone from tzdata still shows, in UTC.
      f = formatFor("UTC", withYear);
    }
    formats.set(key, f);
  }
  return f;
}

/** An instant as words in a zone, "1 Dec, 09:00:05" (with the year when it is not this one). */
export function formatInZone(ms: number, timezone: string, now = Date.now()): string {
  const withYear = new Date(ms).getUTCFullYear() !== new Date(now).getUTCFullYear();
  return formatFor(timezone, withYear).format(ms);
}

/**
 * An instant as the dashboard shows every one, in one format: relative words ("in 5h", "2h
 * ago", as the CLI says them) as the text, the exact instant in `datetime`, and the exact time
 * in the job's zone as the title. The page's script keeps the words current and adds the
 * viewer's own zone to the title when it differs (SPEC §12: the viewer's zone and the job's).
 */
export function timeTag(iso: string | null | undefined, timezone: string, now = Date.now()): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return html`${iso}`;
  return html`<time datetime="${new Date(ms).toISOString()}" data-tz="${timezone}" title="${exactTime(ms, timezone, now)}">${relativeTime(ms, now)}</time>`;
}

/** "7 Dec, 09:00:05 Europe/Paris": a time's title, and what pictures' marks say. */
export function exactTime(ms: number, timezone: string, now = Date.now()): string {
  return `${formatInZone(ms, timezone, now)} ${timezone}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const h = Math.floor(m / 60);
  return `${h} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

export function formatCost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined) return "—";
  return usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(4)}`;
}
