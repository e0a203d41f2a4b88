/**
 * The message a delivery channel receives when a run ends, and the wording every channel
 * shares: the title line, the footer, human durations, and cutting plain text to a limit.
 * Everything here is pure: no clock, no environment, no I/O.
 */

export type DeliveryEvent = "completed" | "failed" | "canceled" | "changed" | "paused" | "needs_attention" | "quiet";

export interface DeliveryMessage {
  event: DeliveryEvent;
  jobId: string;
  /** The job's name; when null the first 8 characters of the id are shown. */
  jobName: string | null;
  runId: string;
  /** The run's status: completed, failed, timed_out, interrupted, canceled, skipped… */
  status: string;
  /** The run's error sentence (failed/timed_out) or the pause reason (paused). */
  error: string | null;
  /** The agent's answer, Markdown (may be long, may be empty). */
  response: string;
  durationMs: number | null;
  costUsd: number | null;
  /** ISO 8601 with offset, in the job's timezone, or null. */
  nextRunAt: string | null;
  timezone: string;
  /** Where the whole output is: a dashboard URL (http…) or cron://runs/<id>. */
  link: string;
  /** A test message from `agent-cron test-channel`. */
  test?: boolean;
}

/** What is said when the answer is empty. */
export const NO_OUTPUT = "(no output)";
/** The body of a test message whose response is empty. */
export const TEST_BODY = "This is a test message from `agent-cron test-channel`. If you can read it, the channel works.";
/** The longest error or reason shown in a title; the whole of it goes in the body. */
const TITLE_REASON_MAX = 100;

/** The name a person knows the job by. */
export function displayName(msg: Pick<DeliveryMessage, "jobName" | "jobId">): string {
  const name = msg.jobName?.replace(/\s+/g, " ").trim();
  return name ? name : msg.jobId.slice(0, 8);
}

/** True when the link can be opened in a browser (http or https). */
export function isWebLink(link: string): boolean {
  try {
    const u = new URL(link);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

/** 850 ms, 42 s, 3 min 5 s, 1 h 2 min. */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "0 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const totalS = Math.round(ms / 1000);
  if (totalS < 60) return `${totalS} s`;
  if (totalS < 3600) {
    const m = Math.floor(totalS / 60);
    const s = totalS % 60;
    return s ? `${m} min ${s} s` : `${m} min`;
  }
  const totalMin = Math.round(totalS / 60);
  const h = Math.floor(totalMin / 60);
  const m = totalMin % 60;
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** $0.0123 below a dollar, $1.23 from there. */
export function formatCost(usd: number): string {
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** `2026-12-02 09:00 (Europe/Paris)`: the wall-clock time in the job's timezone. */
export function formatNextRun(iso: string, timezone: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  try {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    }).formatToParts(at);
    const get = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? "";
    return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")} (${timezone})`;
  } catch {
    // An unknown timezone: the ISO string already holds the job's wall-clock time.
    const wall = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
    return wall ? `${wall[1]} ${wall[2]} (${timezone})` : iso;
  }
}

/**
 * The first sentence of an error, without its final stop, reduced to its first clause
 * (before "; ") and shortened to `max` characters on a word boundary. Starts lower-case
 * when it reads as a sentence start ("Timed out after 30 min" → "timed out after 30 min").
 */
export function shortReason(error: string, max = TITLE_REASON_MAX): string {
  let s = error.replace(/\s+/g, " ").trim();
  const end = /[.!?](?=\s|$)/.exec(s);
  if (end) s = s.slice(0, end.index);
  const clause = s.indexOf("; ");
  if (clause > 0) s = s.slice(0, clause);
  s = s.replace(/[.:;,\s]+$/, "");
  if (/^[A-Z][a-z]*(?:\s+[a-z0-9"'(]|$)/.test(s)) s = s[0].toLowerCase() + s.slice(1);
  return shorten(s, max);
}

/** The title's emoji and its words, apart (ntfy shows the emoji from a tag instead). */
export function titleParts(msg: DeliveryMessage): { emoji: string; text: string } {
  if (msg.test) return { emoji: "🧪", text: "Test message from agent-cron" };
  const name = displayName(msg);
  const took = msg.durationMs === null ? "" : ` in ${humanDuration(msg.durationMs)}`;
  switch (msg.event) {
    case "completed":
      if (msg.status === "empty") return { emoji: "⚠️", text: `${name} completed having done nothing: needs attention` };
      return { emoji: "✅", text: msg.status === "completed" || !msg.status ? `${name} completed${took}` : `${name} ${msg.status.replace(/_/g, " ")}` };
    case "changed":
      return { emoji: "🔁", text: `${name} completed${took}, answer changed` };
    case "failed": {
      if (msg.error?.trim()) return { emoji: "❌", text: `${name} failed: ${shortReason(msg.error)}` };
      const how: Record<string, string> = { failed: "failed", timed_out: "timed out", interrupted: "was interrupted" };
      return { emoji: "❌", text: `${name} ${how[msg.status] ?? `failed (${msg.status.replace(/_/g, " ")})`}` };
    }
    case "paused": {
      const reason = msg.error?.trim() ? shortReason(msg.error) : "";
      if (!reason) return { emoji: "⏸", text: `${name} paused itself` };
      // "Paused after 3 failed runs in a row" reads better without saying "paused" twice.
      const after = /^paused\s+(after|because|since|when)\b/i.exec(reason);
      return { emoji: "⏸", text: after ? `${name} paused itself ${reason.slice(after[0].length - after[1].length)}` : `${name} paused itself: ${reason}` };
    }
    case "canceled":
      return { emoji: "🚫", text: `${name} canceled` };
    case "needs_attention":
      return {
        emoji: "🙋",
        text: `${name} needs attention${msg.error?.trim() ? `: ${shorten(msg.error.replace(/\s+/g, " ").trim(), TITLE_REASON_MAX)}` : ""}`,
      };
    case "quiet":
      return { emoji: "💤", text: `${name}: nothing to report${msg.error?.trim() ? ` (${shortReason(msg.error)})` : ""}` };
  }
}

/** `✅ log-audit completed in 42 s`, `❌ log-audit failed: timed out after 30 min`, … */
export function title(msg: DeliveryMessage): string {
  const { emoji, text } = titleParts(msg);
  return `${emoji} ${text}`;
}

/**
 * The error or reason in full, when the title had to shorten it (the body shows it above the
 * answer); null when the title already says it all.
 */
export function errorDetail(msg: DeliveryMessage): string | null {
  if (msg.test || !(msg.event === "failed" || msg.event === "paused" || msg.event === "needs_attention")) return null;
  const error = msg.error?.trim();
  if (!error) return null;
  const short = shortReason(error);
  const whole = error.replace(/\s+/g, " ").replace(/[.\s]+$/, "");
  return short.toLowerCase() === whole.toLowerCase() ? null : error;
}

/** The Markdown the body is made of: the answer, or what stands for an empty one. */
export function answerMarkdown(msg: DeliveryMessage): string {
  if (msg.response.trim()) return msg.response;
  return msg.test ? TEST_BODY : NO_OUTPUT;
}

/** The footer's facts, each plain text: `took 42 s`, `$0.0123`, `next run … (tz)`. */
export function footerParts(msg: DeliveryMessage): string[] {
  const parts: string[] = [];
  if (msg.durationMs !== null) parts.push(`took ${humanDuration(msg.durationMs)}`);
  if (msg.costUsd !== null) parts.push(formatCost(msg.costUsd));
  if (msg.nextRunAt) parts.push(`next run ${formatNextRun(msg.nextRunAt, msg.timezone)}`);
  return parts;
}

export const FOOTER_SEPARATOR = " · ";

/** `took 42 s · $0.0123 · next run 2026-12-02 09:00 (Europe/Paris) · full output: <link>` */
export function footer(msg: DeliveryMessage): string {
  return [...footerParts(msg), `full output: ${msg.link}`].join(FOOTER_SEPARATOR);
}

/** The sentence appended where an output was cut. */
export function truncationNote(link: string): string {
  return `… (truncated; whole output: ${link})`;
}

/** How long a string is for a given limit (UTF-16 units by default, as JavaScript counts). */
export type Length = (s: string) => number;
export const utf16Length: Length = (s) => s.length;
export const utf8Length: Length = (s) => Buffer.byteLength(s, "utf8");

let segmenter: Intl.Segmenter | null = null;
/** Long strings are segmented a piece at a time: the segmenter slows down on long inputs. */
const SEGMENT_CHUNK = 1024;

/**
 * The user-perceived characters of a string, one at a time: a cut between two of them splits
 * no surrogate pair, emoji sequence, flag or combining mark.
 */
export function* graphemeIter(s: string): Generator<string> {
  segmenter ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
  let at = 0;
  while (at < s.length) {
    const end = Math.min(s.length, at + SEGMENT_CHUNK);
    const segs = Array.from(segmenter.segment(s.slice(at, end)), (x) => x.segment);
    // The piece's last grapheme may go on in the next piece: it is segmented again there.
    if (end < s.length && segs.length > 1) segs.pop();
    for (const g of segs) {
      yield g;
      at += g.length;
    }
  }
}

export function graphemes(s: string): string[] {
  return Array.from(graphemeIter(s));
}

/**
 * The longest start of `s` that is at most `max` long, cut between graphemes; prefers a cut
 * at whitespace when that loses at most `slack` of length. Returns the kept start (without
 * trailing whitespace) and the rest (without leading whitespace). Reads `s` only as far as
 * the cut.
 */
export function splitAt(s: string, max: number, measure: (part: string) => number, slack: number): [string, string] {
  const kept: string[] = [];
  const ends: number[] = [0]; // ends[k]: the length of the first k graphemes in code units
  let used = 0;
  for (const g of graphemeIter(s)) {
    const c = measure(g);
    if (used + c > max) break;
    kept.push(g);
    ends.push(ends[ends.length - 1] + g.length);
    used += c;
  }
  let n = kept.length;
  // The measure may not add up per grapheme (an escape that depends on context): make sure.
  while (n > 0 && measure(s.slice(0, ends[n])) > max) n--;
  if (ends[n] < s.length) {
    let lost = 0;
    for (let k = n; k > 0; k--) {
      if (/^\s/.test(s.slice(ends[k], ends[k] + 1))) {
        n = k;
        break;
      }
      lost += measure(kept[k - 1]);
      if (lost > slack) break;
    }
  }
  return [s.slice(0, ends[n]).trimEnd(), s.slice(ends[n]).trimStart()];
}

/**
 * Plain text cut to `maxChars`: returned unchanged when it fits, else cut on a grapheme
 * boundary (at whitespace when one is near) and followed by
 * `… (truncated; whole output: <pointer>)`, the whole at most `maxChars` long. For text
 * without markup only; marked-up text is cut by `fitAtoms` (markdown.ts) before it is
 * serialized, so that no entity or tag is split and every tag is closed.
 */
export function cutToLimit(text: string, maxChars: number, pointer: string, measure: Length = utf16Length): string {
  if (measure(text) <= maxChars) return text;
  const note = truncationNote(pointer);
  const room = maxChars - measure(note);
  if (room <= 0) return shorten(note, maxChars, measure);
  const [head] = splitAt(text, room, measure, Math.min(200, room * 0.2));
  return head + note;
}

/** A one-line text cut to `max` with an ellipsis (titles, headers). */
export function shorten(text: string, max: number, measure: Length = utf16Length): string {
  if (measure(text) <= max) return text;
  const [head] = splitAt(text, Math.max(0, max - measure("…")), measure, Math.min(30, max * 0.3));
  return head + "…";
}
