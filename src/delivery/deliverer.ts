import type { Config } from "../config.js";
import { errorMessage } from "../kernel/errors.js";
import type { Delivery, DeliveryTarget, Job, Run } from "../core/jobs.js";
import type { Delivered, RunRepo } from "../core/ports.js";
import { isEmptyRun, withTargetDone } from "../core/delivery-plan.js";
import type { WebhookEvent, WebhookSender } from "./webhook.js";
import { sendToChannel } from "./channels.js";
import { oneAttempt } from "./post.js";
import type { DeliveryMessage } from "./format/message.js";

export interface DelivererHost {
  readonly config: Config;
  readonly env: NodeJS.ProcessEnv;
  readonly runs: RunRepo;
  readonly webhooks: () => WebhookSender;
  getJob(id: string): Job | undefined;
  /** Where a person reads the whole output: the dashboard's page for the run, or its resource URI. */
  linkFor(runId: string): string;
  /** A write failed: say so somewhere a person sees it (the dispatcher's notice channel). */
  onError(what: string, err: unknown): void;
  retryBaseMs?: number;
}

/**
 * Hands finished runs to their channels and webhooks, outside any concurrency slot and
 * without holding up the next occurrence. What a run still owes is in its record
 * (`delivery_due`), written with the run's ending, and each target's attempts are written as
 * soon as it is done: a delivery pending when the process stops is sent by the next owner,
 * and only the owner of the data dir sends, so a run is not delivered once per process.
 */
export class Deliverer {
  private readonly active = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly host: DelivererHost) {}

  /**
   * Starts delivering `run`, the record just stored (the pipeline's last step, or a recovery
   * that read it), when it owes something; returns at once. The record is not read back: what
   * it owes was decided with its ending and written with it.
   */
  deliver(run: Run, given: Delivered = {}): void {
    if (this.active.has(run.id) || this.abort.signal.aborted) return;
    if (run.delivery !== "pending" || run.delivery_due.length === 0) return;
    const p = this.deliverAll(run, given)
      .catch((err) => this.host.onError(`Run ${run.id}: its deliveries could not be recorded`, err))
      .finally(() => this.active.delete(run.id));
    this.active.set(run.id, p);
  }

  /** At start-up: what the previous owner had not finished delivering. */
  resumePending(): number {
    let n = 0;
    const pending = this.host.runs.pendingDelivery?.() ?? [...this.host.runs.all()].filter((r) => r.delivery === "pending");
    for (const run of pending) {
      this.deliver(run);
      n++;
    }
    return n;
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.active.values()]);
  }

  /** Stops retrying; what is still owed stays in the records for the next owner. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.idle();
  }

  private async deliverAll(run: Run, given: Delivered): Promise<void> {
    const job = given.job ?? this.host.getJob(run.job_id);
    const output = given.output ?? (await this.host.runs.readOutput(run.id).catch(() => null)) ?? run.response ?? "";
    await Promise.all(
      run.delivery_due.map(async (target) => {
        const attempts = await this.send(target, job, run, output);
        if (this.abort.signal.aborted && !attempts.some((a) => a.ok)) return;
        await this.recordDone(run.id, target, attempts);
      }),
    );
  }

  private async send(target: DeliveryTarget, job: Job | undefined, run: Run, output: string): Promise<Delivery[]> {
    const fail = (error: string) => oneAttempt(target.channel, target.event, false, error);
    try {
      if (target.channel === "on_complete" || target.channel === "on_fail") {
        const url = job?.[target.channel];
        if (!job || !url) return fail("The job or its webhook URL was removed before delivery.");
        return await this.host.webhooks().deliver(job, run, url, target.event as WebhookEvent, this.abort.signal);
      }
      const cfg = this.host.config.channels[target.channel];
      if (!cfg) return fail(`The channel "${target.channel}" is no longer in the config.`);
      return await sendToChannel(target.channel, cfg, this.message(target, job, run, output), this.host.env, {
        retryBaseMs: this.host.retryBaseMs,
        signal: this.abort.signal,
      });
    } catch (err) {
      return fail(errorMessage(err));
    }
  }

  private message(target: DeliveryTarget, job: Job | undefined, run: Run, output: string): DeliveryMessage {
    return {
      event: target.event,
      jobId: run.job_id,
      jobName: job?.name ?? null,
      runId: run.id,
      status: isEmptyRun(run) ? "empty" : run.status,
      error:
        target.event === "paused"
          ? (job?.last_error ?? run.error)
          : target.event === "needs_attention" || target.event === "quiet"
            ? run.outcome_note
            : (run.error ?? run.warnings.find((w) => w.startsWith("empty:")) ?? null),
      response: output,
      durationMs: run.duration_ms,
      costUsd: run.usage?.cost_usd ?? null,
      nextRunAt: job?.next_run_at ?? null,
      timezone: job?.timezone ?? "UTC",
      link: this.host.linkFor(run.id),
    };
  }

  /** One target is done: its attempts join the newest stored record (see withTargetDone). */
  private async recordDone(runId: string, target: DeliveryTarget, attempts: Delivery[]): Promise<void> {
    await this.host.runs.update(runId, (latest) => withTargetDone(latest, target, attempts));
  }
}
