import client from "prom-client";
import type { AppEventBus } from "../core/events.js";
import type { Delivery, Job, JobState, Run } from "../core/jobs.js";
import { VERSION } from "../version.js";

/** What /readyz and /metrics read of this process: the owner's runtime, or a follower's view of it. */
export interface Health {
  ready: boolean;
  /** Why it is not ready; null when it is. */
  reason: string | null;
  /** Runs going and waiting in this process; null when this process does not run them (a follower). */
  running: number | null;
  queued: number | null;
  /** On postgres: the fleet's live processes; null on a files store. */
  fleet_processes: number | null;
}

export interface MetricsSource {
  readonly events: AppEventBus;
  health?(): Health;
  /** Jobs by state (a count per state). */
  jobCounts?(): Promise<Partial<Record<JobState, number>>>;
  /** Unaccounted occurrences found by the last audit (SPEC §18); null until one has run. */
  unaccounted?(): number | null;
}

export interface Metrics {
  readonly contentType: string;
  /** The Prometheus text exposition of every metric now. */
  text(): Promise<string>;
  close(): void;
}

/** Run records already counted: a run heard twice (a rewrite, a fleet's echo) counts once. */
const SEEN_LIMIT = 10_000;

/**
 * The metrics of SPEC §22, on prom-client (the Prometheus client most Node services use: it
 * writes the text format, escapes label values and gives the process metrics; README,
 * "Libraries"). Counters follow the run and delivery events this process hears, so a follower
 * on the data dir counts what the owner does; gauges are read at scrape time.
 */
export function createMetrics(source: MetricsSource): Metrics {
  const registry = new client.Registry();
  // process_* and nodejs_* under their usual names, so stock Node dashboards read them too.
  client.collectDefaultMetrics({ register: registry });

  new client.Gauge({
    name: "agent_cron_build_info",
    help: "Always 1; the version of agent-cron serving these metrics",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: VERSION }, 1);

  const occurrences = new client.Counter({
    name: "agent_cron_occurrences_total",
    help: "Runs that ended, by outcome (the run's final status) and trigger (schedule, catch_up, manual, event)",
    labelNames: ["outcome", "trigger"],
    registers: [registry],
  });
  const lateness = new client.Histogram({
    name: "agent_cron_fire_lateness_seconds",
    help: "How long after its scheduled time a scheduled run started",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: "agent_cron_run_duration_seconds",
    help: "How long runs took, by outcome",
    labelNames: ["outcome"],
    buckets: [0.1, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers: [registry],
  });
  const tokens = new client.Counter({
    name: "agent_cron_tokens_total",
    help: "Tokens the executors reported, by direction (input, output) and executor",
    labelNames: ["direction", "executor"],
    registers: [registry],
  });
  const cost = new client.Counter({
    name: "agent_cron_cost_usd_total",
    help: "Cost in US dollars the executors reported, by executor",
    labelNames: ["executor"],
    registers: [registry],
  });
  const deliveries = new client.Counter({
    name: "agent_cron_deliveries_total",
    help: "Delivery attempts to channels and webhooks, by channel and outcome (ok: the receiver accepted it; failed)",
    labelNames: ["channel", "outcome"],
    registers: [registry],
  });
  const storeWrites = new client.Histogram({
    name: "agent_cron_store_write_seconds",
    help: "How long a durable write of the store took in this process, by store (jobs, runs)",
    labelNames: ["store"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  // Runs this process has heard start and not end: what a follower counts as running.
  const going = new Set<string>();
  const counted = new Set<string>();
  new client.Gauge({
    name: "agent_cron_runs_running",
    help: "Runs going now",
    registers: [registry],
    collect() {
      this.set(source.health?.().running ?? going.size);
    },
  });
  new client.Gauge({
    name: "agent_cron_runs_queued",
    help: "Runs waiting for a concurrency slot or behind their job's run (overlap: queue_one)",
    registers: [registry],
    collect() {
      this.set(source.health?.().queued ?? 0);
    },
  });
  new client.Gauge({
    name: "agent_cron_ready",
    help: "1 when the store and the scheduler are ready (as /readyz), else 0",
    registers: [registry],
    collect() {
      this.set(source.health ? Number(source.health().ready) : 1);
    },
  });
  // Declared only where they mean something: a files store has no fleet, and no audit has
  // numbers until the server audits itself (SPEC §18).
  if (source.health?.().fleet_processes != null) {
    new client.Gauge({
      name: "agent_cron_fleet_processes",
      help: "On the postgres store: the processes of the fleet known alive",
      registers: [registry],
      collect() {
        this.set(source.health?.().fleet_processes ?? 0);
      },
    });
  }
  if (source.unaccounted) {
    const unaccounted = source.unaccounted;
    new client.Gauge({
      name: "agent_cron_unaccounted_occurrences",
      help: "Occurrences the last audit found due with no record (SPEC §18); 0 until the first audit",
      registers: [registry],
      collect() {
        this.set(unaccounted() ?? 0);
      },
    });
  }
  if (source.jobCounts) {
    const jobCounts = source.jobCounts;
    new client.Gauge({
      name: "agent_cron_jobs",
      help: "Jobs by state",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        const counts = await jobCounts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n ?? 0);
      },
    });
  }

  const remember = (set: Set<string>, id: string) => {
    set.add(id);
    if (set.size > SEEN_LIMIT) set.delete(set.values().next().value!);
  };
  const onRun = (run: Run, change: "started" | "finished", job: Job | undefined) => {
    if (change === "started") {
      remember(going, run.id);
      if (run.trigger === "schedule" && run.scheduled_for && run.started_at) {
        lateness.observe(Math.max(0, Date.parse(run.started_at) - Date.parse(run.scheduled_for)) / 1000);
      }
      return;
    }
    going.delete(run.id);
    if (counted.has(run.id) || run.status === "running") return;
    remember(counted, run.id);
    occurrences.inc({ outcome: run.status, trigger: run.trigger });
    if (run.duration_ms !== null && run.started_at) duration.observe({ outcome: run.status }, run.duration_ms / 1000);
    const executor = run.executor ?? job?.executor ?? "default";
    if (run.usage) {
      if (run.usage.input_tokens) tokens.inc({ direction: "input", executor }, run.usage.input_tokens);
      if (run.usage.output_tokens) tokens.inc({ direction: "output", executor }, run.usage.output_tokens);
      if (run.usage.cost_usd) cost.inc({ executor }, run.usage.cost_usd);
    }
  };
  const onDelivery = (_run: Run, attempts: Delivery[]) => {
    for (const a of attempts) deliveries.inc({ channel: a.channel, outcome: a.ok ? "ok" : "failed" });
  };
  const onWrite = (store: "jobs" | "runs", seconds: number) => storeWrites.observe({ store }, seconds);
  source.events.on("run", onRun);
  source.events.on("delivery", onDelivery);
  source.events.on("store_write", onWrite);

  return {
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close() {
      registry.clear();
      source.events.off("run", onRun);
      source.events.off("delivery", onDelivery);
      source.events.off("store_write", onWrite);
    },
  };
}
