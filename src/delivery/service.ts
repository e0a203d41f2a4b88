import type { Config } from "../config.js";
import type { Delivery, Job, Run } from "../core/jobs.js";
import { sendToChannel } from "./channels.js";
import type { Delivered, Notifier, RunRepo } from "../core/ports.js";
import { Deliverer } from "./deliverer.js";
import { WebhookSender } from "./webhook.js";

export interface DeliveryOptions {
  config: Config;
  env: NodeJS.ProcessEnv;
  runs: RunRepo;
  getJob(id: string): Job | undefined;
  /** A write failed: say so where a person sees it. */
  onError(what: string, err: unknown): void;
  /** First retry delay (tests shorten it). */
  retryBaseMs?: number;
}

/**
 * The notifier the composition root gives the App: job webhooks and chat channels, with the
 * config it was last given. Messages link to the dashboard's run page once an HTTP daemon
 * serves one (setLinkBase), else to the run's resource URI.
 */
export class DeliveryService implements Notifier {
  private config: Config;
  private webhooks: WebhookSender;
  private linkBase: string | null = null;
  private readonly deliverer: Deliverer;

  constructor(private readonly opts: DeliveryOptions) {
    this.config = opts.config;
    this.webhooks = new WebhookSender(opts.config, opts.env, opts.retryBaseMs);
    const self = this;
    this.deliverer = new Deliverer({
      get config() {
        return self.config;
      },
      env: opts.env,
      runs: opts.runs,
      webhooks: () => this.webhooks,
      getJob: opts.getJob,
      linkFor: (runId) => (this.linkBase ? `${this.linkBase}/runs/${encodeURIComponent(runId)}` : `cron://runs/${runId}`),
      onError: opts.onError,
      retryBaseMs: opts.retryBaseMs,
    });
  }

  /** The dashboard's base URL (no trailing slash), or null when none is served. */
  setLinkBase(url: string | null): void {
    this.linkBase = url ? url.replace(/\/+$/, "") : null;
  }

  /** A new config (config.json edited): new webhook settings and channels for the next delivery. */
  applyConfig(config: Config): void {
    this.config = config;
    const old = this.webhooks;
    this.webhooks = new WebhookSender(config, this.opts.env, this.opts.retryBaseMs);
    void this.deliverer.idle().then(() => old.close());
  }

  async alert(channels: string[], job: Job, title: string, body: string): Promise<Delivery[]> {
    const attempts: Delivery[] = [];
    for (const name of channels) {
      const cfg = this.config.channels[name];
      if (!cfg) continue;
      const msg = {
        event: "failed" as const,
        jobId: job.id,
        jobName: job.name,
        runId: job.id,
        status: "unaccounted",
        error: title,
        response: body,
        durationMs: null,
        costUsd: null,
        nextRunAt: job.next_run_at,
        timezone: job.timezone,
        link: this.linkBase ? `${this.linkBase}/jobs/${encodeURIComponent(job.id)}` : `cron://jobs/${job.id}`,
      };
      attempts.push(...(await sendToChannel(name, cfg, msg, this.opts.env, { retryBaseMs: this.opts.retryBaseMs })));
    }
    return attempts;
  }

  deliver(run: Run, given?: Delivered): void {
    this.deliverer.deliver(run, given);
  }

  resumePending(): number {
    return this.deliverer.resumePending();
  }

  idle(): Promise<void> {
    return this.deliverer.idle();
  }

  async close(): Promise<void> {
    await this.deliverer.close();
    await this.webhooks.close();
  }
}
