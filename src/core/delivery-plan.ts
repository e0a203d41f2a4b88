import type { Delivery, DeliveryTarget, Job, Run } from "./jobs.js";

/**
 * What a finished run owes people: each channel in `deliver_to` whose `deliver_on` matches
 * how it ended, and the job's own webhook. Decided once, when the run ends, and stored in
 * the same write as the ending, so a restart sends exactly what was still owed.
 *
 * `paused`: this run made the job pause itself. `changed`: the run completed with an answer
 * unlike the previous completed run's (a first answer counts as changed).
 */
export function deliveryTargets(job: Job, run: Run, how: { paused: boolean; changed: boolean }): DeliveryTarget[] {
  if (job.silent) return [];
  const on = new Set(job.deliver_on);
  // What the run's agent said of its run (run tools) decides over how it ended: a question
  // always goes to the channels; "nothing to report" only under deliver_on "always".
  if (run.status === "completed" && run.outcome === "needs_attention") return job.deliver_to.map((channel) => ({ channel, event: "needs_attention" }));
  if (run.status === "completed" && run.outcome === "quiet") return on.has("always") ? job.deliver_to.map((channel) => ({ channel, event: "quiet" })) : [];
  if (on.has("always")) for (const e of ["completed", "failed", "canceled"] as const) on.add(e);
  const targets: DeliveryTarget[] = [];
  const failed = run.status === "failed" || run.status === "timed_out" || run.status === "interrupted";
  const hasAnswer = (run.response ?? "").trim() !== "";
  for (const channel of job.deliver_to) {
    let event: DeliveryTarget["event"] | null = null;
    if (how.paused && on.has("paused")) event = "paused";
    else if (run.status === "completed") {
      // An empty answer is never delivered as a result; a run that did nothing is delivered as
      // needing attention (SPEC §18), to those who hear of its endings.
      if (isEmptyRun(run)) event = on.has("completed") || on.has("failed") ? "completed" : null;
      else if (!hasAnswer) event = null;
      else if (how.changed && on.has("changed")) event = "changed";
      else if (on.has("completed")) event = "completed";
    } else if (failed && on.has("failed")) event = "failed";
    else if (run.status === "canceled" && on.has("canceled")) event = "canceled";
    if (event) targets.push({ channel, event });
  }
  const hook = webhookFor(job, run);
  if (hook) targets.push({ channel: hook.event === "completed" ? "on_complete" : "on_fail", event: hook.event });
  return targets;
}

/**
 * The run once one target is done: its attempts join the record and it leaves `delivery_due`;
 * the run is delivered once no target is owed (or failed, when some target's last attempt
 * was refused). Applied to the newest stored copy, so targets ending together all count.
 */
export function withTargetDone(run: Run, target: DeliveryTarget, attempts: Delivery[]): Run {
  const due = run.delivery_due.filter((t) => t.channel !== target.channel || t.event !== target.event);
  const deliveries = [...(run.deliveries ?? []), ...attempts];
  return { ...run, deliveries, delivery_due: due, delivery: due.length ? "pending" : finalState(deliveries) };
}

/** Delivered when every channel's last attempt was accepted. */
function finalState(deliveries: Delivery[]): "delivered" | "failed" {
  const last = new Map<string, boolean>();
  for (const d of deliveries) last.set(`${d.channel}:${d.event}`, d.ok);
  return [...last.values()].every(Boolean) ? "delivered" : "failed";
}

/** A run that "succeeded" having done nothing: it carries an `empty:` warning. */
export function isEmptyRun(run: Pick<Run, "warnings">): boolean {
  return run.warnings.some((w) => w.startsWith("empty:"));
}

export type WebhookEvent = "completed" | "failed" | "canceled";

/** Which webhook (if any) a finished run triggers. */
export function webhookFor(job: Job, run: Run): { url: string; event: WebhookEvent } | null {
  if (job.silent) return null;
  const event: WebhookEvent | null =
    run.status === "completed"
      ? "completed"
      : run.status === "failed" || run.status === "timed_out" || run.status === "interrupted"
        ? "failed"
        : run.status === "canceled"
          ? "canceled"
          : null;
  if (!event || !job.notify_on.includes(event)) return null;
  const url = event === "completed" ? job.on_complete : job.on_fail;
  return url ? { url, event } : null;
}
