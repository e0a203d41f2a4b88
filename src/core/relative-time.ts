/**
 * A time as people read it beside systemctl list-timers and gh: "in 5h", "2h ago", "in 20m",
 * "just now"; the largest unit that fits, one decimal-free number. The CLI, the dashboard (its
 * server and, as this function's own source, its page script) and the MCP App view all say
 * times this way. Self-contained on purpose: the dashboard's script embeds its source.
 */
export function relativeTime(at: string | number | null | undefined, now = Date.now()): string {
  const t = typeof at === "number" ? at : at ? Date.parse(at) : NaN;
  if (!Number.isFinite(t)) return "-";
  const diff = t - now;
  const s = Math.abs(diff) / 1000;
  if (s < 5) return "just now";
  const span = s < 90 ? `${Math.round(s)}s` : s < 90 * 60 ? `${Math.round(s / 60)}m` : s < 36 * 3600 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return diff > 0 ? `in ${span}` : `${span} ago`;
}
