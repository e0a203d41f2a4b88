import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import path from "node:path";
import type { Config } from "../config.js";
import { resolveProgram as resolveOnPath } from "../executors/command.js";
import { createExecutors } from "../executors/index.js";
import { killOrphanedRuns } from "../executors/orphans.js";
import type { Executor } from "../executors/types.js";
import { channelProblem } from "../delivery/channels.js";
import { Deliverer } from "../delivery/deliverer.js";
import { retryBaseFromEnv } from "../delivery/post.js";
import { WebhookSender, checkWebhookUrl } from "../delivery/webhook.js";
import { JobStore } from "../store/jobs-store.js";
import { RunStore } from "../store/runs-store.js";
import { Dispatcher } from "./dispatcher.js";
import { UnauthorizedError, UserError, errorMessage, type Fence } from "./errors.js";
import { AppEventBus } from "./events.js";
import type { z } from "zod";
import { describeIssue } from "./issues.js";
import { AddJobInput, UpdateJobInput } from "./job-input.js";
import { DEFAULT_DELIVER_ON, MAX_PROMPT_BYTES, RUN_STATUSES, maxRunsReached, type Job, type Run, type RunStatus, type RunWithOutput } from "./jobs.js";
import { compileOutputSchema } from "./output.js";
import { FleetScheduler, systemClock, type Clock } from "./scheduler.js";
import {
  describeSchedule,
  latestOccurrenceBetween,
  nextOccurrences,
  occurrencesBetween,
  parseSchedule,
  scheduleOfJob,
  type ParsedSchedule,
} from "./schedule.js";
import { isValidTimezone, toIsoInZone } from "./time.js";
import { defaultWorkRoot, resolveWorkDir } from "./work-dirs.js";
import { jitterDelayMs } from "./prompt-context.js";
import { deliveryTargets } from "./delivery-plan.js";

export interface AppOptions {
  dataDir: string;
  config: Config;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** Executors by name; built from the config when absent. */
  executors?: Map<string, Executor>;
  /** First delivery retry delay (tests shorten it; env AGENT_CRON_RETRY_BASE_MS too). */
  webhookRetryBaseMs?: number;
  /** Checked before every write: throws once this process no longer owns the data dir. */
  fence?: Fence;
  /** Where runs without a work_dir get their folder; see defaultWorkRoot. */
  workRoot?: string;
  /** The config file, hidden from sandboxed runs with the data dir. */
  configPath?: string | null;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
  /** How many match the filter, across every page (where it is known). */
  total?: number;
}

/** Occurrences recorded as `missed` per job and catch-up, at most. */
const MAX_MISSED_RECORDS = 20;
/** Occurrences run by one catch-up with catch_up: all, at most. */
const MAX_CATCH_UP_RUNS = 1000;
const SCAN_LIMIT = 10_000;
/** An occurrence this late is treated as missed (the machine slept or the clock jumped). */
const LATE_MS = 5_000;

/**
 * The domain: jobs, runs and the scheduler behind one API that tools, resources and the CLI
 * share. No MCP here; errors meant for callers are UserErrors with one clear sentence.
 */
export class App {
  readonly events = new AppEventBus();
  readonly clock: Clock;
  readonly dataDir: string;
  private current: Config;
  private executors: Map<string, Executor>;
  private readonly scheduler: FleetScheduler;
  private readonly dispatcher: Dispatcher;
  private readonly schedules = new Map<string, ParsedSchedule>();
  private webhooks: WebhookSender;
  private readonly deliverer: Deliverer;
  /** Occurrences waiting out their jitter_seconds: timer → its waiter. */
  private readonly jitterWaits = new Map<unknown, () => void>();
  private started = false;
  private readonly env: NodeJS.ProcessEnv;
  private readonly injectedExecutors: boolean;
  private readonly webhookRetryBaseMs: number | undefined;
  private readonly configPath: string | null;

  private constructor(
    opts: AppOptions,
    readonly jobs: JobStore,
    readonly runs: RunStore,
  ) {
    this.events.setMaxListeners(0);
    this.dataDir = opts.dataDir;
    this.configPath = opts.configPath ?? null;
    this.current = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.env = opts.env ?? process.env;
    this.injectedExecutors = opts.executors !== undefined;
    this.webhookRetryBaseMs = opts.webhookRetryBaseMs ?? retryBaseFromEnv(this.env);
    this.executors = opts.executors ?? this.buildExecutors(opts.config);
    this.webhooks = new WebhookSender(opts.config, this.env, this.webhookRetryBaseMs);
    // Deliveries go out after the run is recorded and outside any concurrency slot, so a slow
    // receiver never holds up agent runs; their attempts are then added to the run record.
    const app = this;
    this.deliverer = new Deliverer({
      get config() {
        return app.config;
      },
      env: this.env,
      runs: this.runs,
      webhooks: () => this.webhooks,
      getJob: (id) => this.jobs.get(id),
      linkFor: (runId) => `cron://runs/${runId}`,
      onError: (what, err) => this.events.emit("notice", "error", `${what}: ${errorMessage(err)}`, {}),
      retryBaseMs: this.webhookRetryBaseMs,
    });
    this.events.on("run", (run, change) => {
      if (change === "finished") this.deliverer.deliver(run.id);
    });
    this.scheduler = new FleetScheduler((id, at) => this.onDue(id, at), this.clock);
    this.dispatcher = new Dispatcher({
      get config() {
        return app.config;
      },
      dataDir: this.dataDir,
      workRoot: this.runs.workRoot,
      runs: this.runs,
      events: this.events,
      clock: this.clock,
      executor: (name) => this.executor(name),
      getJob: (id) => this.jobs.get(id),
      updateJob: (id, change) => this.updateRecord(id, change),
    });
  }

  get config(): Config {
    return this.current;
  }

  private buildExecutors(config: Config): Map<string, Executor> {
    // A sandboxed run sees none of these: the data dir (prompts, outputs, the socket's
    // secret), the config file, and every run's default work dir but its own.
    const hiddenPaths = [this.dataDir, this.runs.workRoot, ...(this.configPath ? [this.configPath] : [])];
    return createExecutors(config, { serverEnv: this.env, killGraceMs: config.kill_grace_seconds * 1000, hiddenPaths });
  }

  /**
   * Takes a new config while running (config.json was edited): executors, limits and
   * webhook settings apply to the next run; runs in flight finish with what they started with.
   */
  applyConfig(config: Config): void {
    this.current = config;
    if (!this.injectedExecutors) this.executors = this.buildExecutors(config);
    this.dispatcher.setConcurrency(config.max_concurrent);
    const old = this.webhooks;
    this.webhooks = new WebhookSender(config, this.env, this.webhookRetryBaseMs);
    void this.deliverer.idle().then(() => old.close());
  }

  /**
   * Opens the data dir (the caller holds its lock): loads and validates every file, and marks
   * runs left `running` interrupted.
   */
  static async open(opts: AppOptions): Promise<App> {
    const jobs = await JobStore.open(opts.dataDir, opts.fence);
    const workRoot = opts.workRoot ?? defaultWorkRoot(opts.env ?? process.env);
    const runs = new RunStore(opts.dataDir, opts.config.runs_per_job, { fence: opts.fence, workRoot });
    runs.load();
    const app = new App(opts, jobs, runs);
    await app.pauseBrokenJobs();
    await app.recoverInterrupted();
    app.dispatcher.seedSpend(runs.all());
    return app;
  }

  /** What start-up found wrong with the stored jobs, one sentence each, naming file and job. */
  readonly startupProblems: string[] = [];
  private readonly broken = new Set<string>();

  /**
   * A stored job that can no longer be scheduled (its timezone left tzdata, a hand-edited
   * schedule or date) must not stop the server and every other job: it is paused, with the
   * reason in last_error, and start-up says which file and job.
   */
  private async pauseBrokenJobs(): Promise<void> {
    for (const job of [...this.jobs.all()]) {
      const problem = brokenJobProblem(job);
      if (!problem) continue;
      this.broken.add(job.id);
      const where = path.join(this.dataDir, "jobs.json");
      const label = job.name ? `"${job.name}" (${job.id})` : job.id;
      this.startupProblems.push(`Job ${label} in ${where} cannot be scheduled: ${problem}. It is paused; fix it with update_cron (or agent-cron update), then resume it.`);
      if (job.state === "active") {
        await this.jobs.put({
          ...job,
          state: "paused",
          enabled: false,
          next_run_at: null,
          last_error: `Cannot be scheduled: ${problem}. Fix it with update_cron, then resume the job.`,
          updated_at: toIsoInZone(new Date(this.clock.now()), this.config.timezone),
        });
      }
    }
  }

  private async recoverInterrupted(): Promise<void> {
    const now = toIsoInZone(new Date(this.clock.now()), this.config.timezone);
    const writes: Promise<unknown>[] = [];
    const orphaned: string[] = [];
    for (const run of [...this.runs.all()]) {
      // Only the owner of the data dir opens it, so a run still `running` belongs to a process
      // that has gone (exited mid-run or was killed).
      if (run.status !== "running") continue;
      orphaned.push(run.id);
      const started = Date.parse(run.started_at ?? "") || this.clock.now();
      const ended: Run = {
        ...run,
        status: "interrupted",
        finished_at: now,
        duration_ms: this.clock.now() - started,
        error: "The server stopped while the run was going; this occurrence is not run again.",
      };
      // deliver_on failed covers interrupted: what it owes is sent once this owner starts.
      const job = this.jobs.get(run.job_id);
      ended.delivery_due = job ? deliveryTargets(job, ended, { paused: false, changed: false }) : [];
      ended.delivery = ended.delivery_due.length ? "pending" : null;
      writes.push(this.runs.put(ended));
      if (!job) continue;
      writes.push(
        this.updateRecord(job.id, (j) => ({
          last_status: "interrupted",
          last_error: "The server stopped while the last run was going.",
          // An interrupted one-shot has had its turn.
          ...(j.run_at !== null && run.trigger !== "manual" ? { state: "completed" as const, enabled: false, next_run_at: null } : {}),
        })),
      );
    }
    await Promise.all(writes);
    killOrphanedRuns(orphaned);
    await this.recordLostOccurrences();
  }

  /**
   * An occurrence is marked handled (last_scheduled_for) just before its run record is
   * written; a crash between the two would leave no trace of it. Give it its record.
   */
  private async recordLostOccurrences(): Promise<void> {
    for (const job of [...this.jobs.all()]) {
      const at = job.last_scheduled_for;
      if (this.broken.has(job.id)) continue;
      if (!at || this.runs.ofJob(job.id).some((r) => r.scheduled_for === at)) continue;
      await this.dispatcher.record(job, { scheduledFor: Date.parse(at), trigger: "schedule" }, "interrupted", "The server stopped as this occurrence was starting; it is not run again.");
    }
  }

  /** Starts the fleet timer: catches up on what was missed, then schedules every active job. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.clock.now();
    for (const job of [...this.jobs.all()]) {
      if (job.state !== "active") continue;
      await this.catchUp(job, now);
      this.reschedule(this.jobs.get(job.id));
    }
    this.scheduler.start();
    // What the previous owner had not finished handing over; only the owner sends.
    this.deliverer.resumePending();
  }

  /** Stops scheduling, then lets runs finish for up to `graceMs` and interrupts the rest. */
  async close(graceMs = 0): Promise<void> {
    this.scheduler.stop();
    // Occurrences waiting out their jitter are let go (the dispatcher is closing: they return).
    for (const [timer, resolve] of this.jitterWaits) {
      this.clock.clearTimer(timer);
      resolve();
    }
    this.jitterWaits.clear();
    await this.dispatcher.close(graceMs);
    await this.deliverer.close();
    await this.webhooks.close();
    await this.jobs.idle();
    this.jobs.close();
  }

  // Scheduling

  private scheduleOf(job: Job): ParsedSchedule {
    let s = this.schedules.get(job.id);
    // A one-shot's time is its run_at: a new delay ("in 20m" again) is a new time.
    const runAt = job.run_at === null ? null : Date.parse(job.run_at);
    if (!s || s.source !== job.schedule || s.timezone !== job.timezone || (s.kind === "once" && s.runAt?.getTime() !== runAt)) {
      s = scheduleOfJob(job);
      this.schedules.set(job.id, s);
    }
    return s;
  }

  /** The job's next occurrences, never at or before the last one handled. */
  nextRuns(job: Job, count: number, from = this.clock.now()): Date[] {
    if (job.state !== "active") return [];
    const after = new Date(Math.max(from, handledUntil(job), Date.parse(job.created_at)));
    let runs = nextOccurrences(this.scheduleOf(job), after, count, new Date(job.created_at));
    const expires = job.expires_at ? Date.parse(job.expires_at) : Infinity;
    runs = runs.filter((d) => d.getTime() <= expires);
    if (job.max_runs !== null) runs = runs.slice(0, Math.max(0, job.max_runs - job.run_count));
    return runs;
  }

  /**
   * Arms the job's next occurrence after the last one handled, not after "now": one that
   * passed while the server was busy (a slow start, a long catch-up) still fires, late; one
   * far in the past goes through catch-up (onDue).
   */
  private reschedule(job: Job | undefined, after = -Infinity): void {
    if (!job) return;
    const next = job.state === "active" ? this.nextRuns(job, 1, after)[0] : undefined;
    this.scheduler.set(job.id, next ? next.getTime() : null);
  }

  private onDue(jobId: string, at: number): void {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== "active" || this.dispatcher.isClosing) return;
    const now = this.clock.now();
    if (now - at > LATE_MS) {
      // The machine slept or the clock jumped: this is catch-up territory, not a normal fire.
      void this.catchUp(job, now).then(() => this.reschedule(this.jobs.get(jobId)), (err) => this.warn(jobId, err));
      return;
    }
    void this.fire(job, at, "schedule").catch((err) => this.warn(jobId, err));
  }

  /** Takes one occurrence: records it as handled (so it never runs twice), then dispatches it. */
  private async fire(job: Job, at: number, trigger: "schedule" | "catch_up"): Promise<void> {
    // The store applies the change in memory at once, so the next occurrence is armed before
    // the write finishes and a slow disk never delays the fleet.
    const written = this.updateRecord(job.id, () => ({ last_scheduled_for: toIsoInZone(new Date(at), job.timezone) }));
    // Past `at` even if that write failed (disk full): never spin on one occurrence.
    this.reschedule(this.jobs.get(job.id), at);
    const updated = await written;
    if (!updated) return;
    // Jitter spreads recurring fleets; a one-shot runs at its time.
    const delay = trigger === "schedule" && updated.run_at === null ? jitterDelayMs(job.id, at, updated.jitter_seconds) : 0;
    let current: Job | undefined = updated;
    if (delay > 0) {
      // scheduled_for stays the nominal time; the start waits its stable share of the jitter.
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimer(() => {
          this.jitterWaits.delete(timer);
          resolve();
        }, delay);
        this.jitterWaits.set(timer, resolve);
      });
      current = this.jobs.get(job.id);
      // Paused, changed (a new schedule counts from its change), removed or closing meanwhile.
      const restarted = Date.parse(current?.schedule_from ?? "") > at;
      if (!current || current.state !== "active" || restarted || this.dispatcher.isClosing) return;
    }
    await this.dispatcher.occur(current, { scheduledFor: at, trigger });
    await this.syncNextRun(job.id);
  }

  /**
   * Handles occurrences between the job's last one and `now` per its catch_up policy.
   * Occurrences older than the catch-up window are only recorded.
   */
  private async catchUp(job: Job, now: number): Promise<void> {
    // next_run_at is the first occurrence after the last one handled: if it is still ahead,
    // nothing was missed (the common case at start-up, and cheap to check for 100,000 jobs).
    if (job.next_run_at && Date.parse(job.next_run_at) > now) return;
    const sched = this.scheduleOf(job);
    const anchor = new Date(job.created_at);
    const expires = job.expires_at ? Date.parse(job.expires_at) : Infinity;
    const until = Math.min(now, expires);
    const since = Math.max(handledUntil(job), Date.parse(job.created_at));
    const newest = latestOccurrenceBetween(sched, new Date(since), new Date(until), anchor)?.getTime();
    if (newest === undefined) return;
    // Only the window's occurrences may run; older ones are recorded, and only the newest
    // few of those, so a laptop closed for a month does not write a month of records.
    const windowStart = Math.max(since, now - (job.catch_up_window_seconds ?? this.config.catch_up_window_seconds) * 1000);
    const inWindow = newest >= windowStart ? occurrencesBetween(sched, new Date(windowStart), new Date(until), MAX_CATCH_UP_RUNS, anchor).map((d) => d.getTime()) : [];
    const toRun = job.catch_up === "none" ? [] : job.catch_up === "latest" ? [newest].filter((t) => t >= windowStart) : inWindow;
    const running = new Set(toRun);
    let recentBefore = occurrencesBetween(sched, new Date(since), new Date(until), SCAN_LIMIT, anchor).map((d) => d.getTime());
    if (recentBefore.length === SCAN_LIMIT) {
      // Too many to list from the start: a regular schedule's last SCAN_LIMIT occurrences
      // span about as long as its first ones.
      const span = recentBefore[SCAN_LIMIT - 1] - recentBefore[0];
      recentBefore = occurrencesBetween(sched, new Date(newest - span), new Date(until), SCAN_LIMIT, anchor).map((d) => d.getTime());
    }
    const recorded = recentBefore.filter((t) => !running.has(t)).slice(-MAX_MISSED_RECORDS);

    await this.updateRecord(job.id, () => ({ last_scheduled_for: toIsoInZone(new Date(newest), job.timezone) }));
    for (const t of recorded) {
      await this.dispatcher.record(job, { scheduledFor: t, trigger: "catch_up" }, "missed", `Missed while the server was not running (catch_up: ${job.catch_up}).`);
    }
    if (recorded.length === MAX_MISSED_RECORDS) {
      this.events.emit("notice", "warning", `Job ${job.name ?? job.id} missed occurrences since ${job.last_scheduled_for ?? job.created_at}; the newest ${recorded.length} are recorded.`, { job_id: job.id });
    }
    if (toRun.length <= 1) {
      const current = this.jobs.get(job.id);
      if (toRun.length && current?.state === "active") await this.dispatcher.occur(current, { scheduledFor: toRun[0], trigger: "catch_up" });
      return;
    }
    // A backlog (catch_up: all) is the job's own queue: its runs go one after another,
    // oldest first, whatever overlap says (each waits for the previous backlog run only, so
    // live occurrences under overlap allow cannot starve it), and in the background, so
    // start-up and the other jobs do not wait for it.
    void this.runBacklog(job.id, toRun).catch((err) => this.warn(job.id, err));
  }

  private async runBacklog(jobId: string, times: number[]): Promise<void> {
    for (const t of times) {
      const current = this.jobs.get(jobId);
      if (!current || current.state !== "active" || this.dispatcher.isClosing) return;
      const run = await this.dispatcher.startOccurrence(current, { scheduledFor: t, trigger: "catch_up" });
      if (!run) return;
      await this.dispatcher.whenDone(run.id);
    }
  }

  private async syncNextRun(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    const at = this.scheduler.nextFor(jobId);
    const next = at === null ? null : toIsoInZone(new Date(at), job.timezone);
    if (next !== job.next_run_at) await this.updateRecord(jobId, () => ({ next_run_at: next }));
  }

  private warn(jobId: string, err: unknown): void {
    this.events.emit("notice", "error", `Job ${jobId}: ${errorMessage(err)}`, { job_id: jobId });
  }

  // Jobs

  executor(name: string): Executor {
    const e = this.executors.get(name);
    if (!e) throw new UserError(`Unknown executor "${name}"; the config defines: ${[...this.executors.keys()].join(", ") || "none"}.`);
    return e;
  }

  executorNames(): string[] {
    return [...this.executors.keys()];
  }

  /** Finds a job by id, name, or the unique start of its id (8 characters or more, as the CLI prints). */
  resolveJob(ref: string): Job {
    const job = this.jobs.get(ref) ?? this.jobs.byName(ref) ?? byIdPrefix(ref, this.jobs.all(), "job");
    if (!job) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
    return job;
  }

  /** The job's executor: the one it names, or the config's default_executor at this moment. */
  executorOf(job: Job): string {
    return job.executor ?? this.config.default_executor;
  }

  private async updateRecord(id: string, change: (job: Job) => Partial<Job>): Promise<Job | undefined> {
    const current = this.jobs.get(id);
    if (!current) return undefined;
    const next: Job = { ...current, ...change(current), updated_at: toIsoInZone(new Date(this.clock.now()), current.timezone) };
    await this.jobs.put(next);
    this.events.emit("job", next, "updated");
    return next;
  }

  /**
   * Adds a job. `origin` "cli" is a person at a terminal; anything else came through an MCP
   * client, and under config `approval` it may need a person's approval first (SPEC §13):
   * `approved` says the user accepted it through elicitation (honoured under `ask` only).
   * `dryRun` checks everything and stores nothing (to describe the job before asking).
   */
  async addJob(
    rawInput: unknown,
    createdBy: string,
    opts: { origin?: "cli" | "mcp"; approved?: boolean; dryRun?: boolean } = {},
  ): Promise<{ job: Job; created: boolean; warnings: string[]; triggerToken?: string }> {
    const input = parseInput(AddJobInput, rawInput);
    // Before anything is read: from here to the store, no await may let another change in.
    await this.compileSchema(input.output_schema);
    const now = this.clock.now();
    const nowIso = (tz: string) => toIsoInZone(new Date(now), tz);
    const timezone = this.checkTimezone(input.timezone ?? this.config.timezone);
    const sched = parseSchedule(input.schedule, timezone, new Date(now));
    // A job that names no executor follows default_executor at run time, so changing the
    // default fixes jobs made before the change.
    const executor = input.executor ?? null;
    this.executor(executor ?? this.config.default_executor);
    const draft: Job = {
      id: randomUUID(),
      name: input.name ?? null,
      schedule: input.schedule.trim(),
      run_at: sched.runAt ? toIsoInZone(sched.runAt, timezone) : null,
      timezone,
      prompt: this.checkPrompt(input.prompt),
      executor,
      work_dir: input.work_dir === undefined ? null : this.checkWorkDir(input.work_dir),
      session: input.session ?? "isolated",
      session_id: null,
      type: input.type ?? "medium",
      timeout_seconds: input.timeout_seconds ?? 1800,
      retries: input.retries ?? 3,
      retry_delay_seconds: input.retry_delay_seconds ?? 1,
      output_format: input.output_format ?? "text",
      output_schema: input.output_schema ?? null,
      overlap: input.overlap ?? "skip",
      catch_up: input.catch_up ?? "latest",
      max_runs: input.max_runs ?? null,
      expires_at: input.expires_at === undefined ? null : this.checkTime(input.expires_at, timezone, "expires_at", now),
      max_cost_usd: input.max_cost_usd ?? null,
      pause_after_failures: input.pause_after_failures ?? 5,
      enabled: input.enabled ?? true,
      state: input.enabled === false ? "paused" : "active",
      silent: input.silent ?? false,
      notify_on: input.notify_on ? [...new Set(input.notify_on)] : ["completed", "failed", "canceled"],
      on_complete: input.on_complete ?? null,
      on_fail: input.on_fail ?? null,
      deliver_to: input.deliver_to ? [...new Set(input.deliver_to)] : [],
      deliver_on: input.deliver_on ? [...new Set(input.deliver_on)] : [...DEFAULT_DELIVER_ON],
      on_permission_denied: input.on_permission_denied ?? "fail",
      requires_mcp: input.requires_mcp ? [...new Set(input.requires_mcp)] : [],
      prompt_context: input.prompt_context ?? null,
      jitter_seconds: input.jitter_seconds ?? 0,
      catch_up_window_seconds: input.catch_up_window_seconds ?? null,
      trigger: input.trigger ?? "schedule",
      trigger_token_hash: null,
      created_by: createdBy,
      created_at: nowIso(timezone),
      updated_at: nowIso(timezone),
      last_run_at: null,
      last_status: null,
      last_error: null,
      last_scheduled_for: null,
      schedule_from: null,
      next_run_at: null,
      run_count: 0,
      consecutive_failures: 0,
    };
    this.checkOutputSettings(draft);
    this.checkWebhooks(draft);
    this.checkChannels(draft);

    if (draft.name) {
      const existing = this.jobs.byName(draft.name);
      if (existing) {
        if (sameDefinition(existing, draft)) return { job: existing, created: false, warnings: [] };
        throw new UserError(
          `A job named "${draft.name}" already exists with a different definition; use update_cron to change it, or choose another name.`,
        );
      }
    }
    const first = this.nextRuns({ ...draft, state: "active" }, 1, now)[0];
    if (!first) throw new UserError("The job would never run: its expires_at ends it before the first occurrence.");
    if (this.jobs.size >= this.config.max_jobs) {
      throw new UserError(`There are already ${this.jobs.size} jobs, the limit set by max_jobs in the config; remove some (completed jobs count too) or ask the operator to raise max_jobs.`);
    }
    if (opts.dryRun) return { job: draft, created: true, warnings: [] };
    const mode = this.config.approval;
    const needsApproval = opts.origin !== "cli" && (mode === "required" || (mode === "ask" && !opts.approved));
    if (needsApproval) {
      draft.state = "pending_approval";
      draft.enabled = false;
    }
    let triggerToken: string | undefined;
    if (draft.trigger === "http") {
      // Shown once, in this answer; only its hash is kept.
      triggerToken = randomBytes(24).toString("base64url");
      draft.trigger_token_hash = hashToken(triggerToken);
    }
    draft.next_run_at = draft.state === "active" ? toIsoInZone(first, timezone) : null;
    await this.jobs.put(draft);
    this.schedules.set(draft.id, sched);
    this.events.emit("job", draft, "added");
    if (this.started) this.reschedule(draft);
    return { job: draft, created: true, warnings: this.executorWarnings(this.executorOf(draft)), triggerToken };
  }

  async updateJob(ref: string, rawPatch: unknown, opts: { origin?: "cli" | "mcp" } = {}): Promise<Job> {
    const patch = parseInput(UpdateJobInput, rawPatch);
    // Before the job is read: from here to the store, no await may let another change in.
    await this.compileSchema(patch.output_schema);
    const job = this.resolveJob(ref);
    const now = this.clock.now();
    const timezone = patch.timezone !== undefined ? this.checkTimezone(patch.timezone) : job.timezone;
    const next: Job = { ...job };
    for (const [key, value] of Object.entries(patch)) {
      if (value !== undefined) (next as Record<string, unknown>)[key] = value;
    }
    next.timezone = timezone;
    if (patch.schedule !== undefined || patch.timezone !== undefined) {
      const sched = parseSchedule(next.schedule, timezone, new Date(now));
      next.schedule = next.schedule.trim();
      next.run_at = sched.runAt ? toIsoInZone(sched.runAt, timezone) : null;
      if (next.state === "completed") next.state = "active";
      next.enabled = next.state === "active";
    }
    if (patch.prompt !== undefined) next.prompt = this.checkPrompt(patch.prompt);
    if (patch.executor) this.executor(patch.executor);
    if (typeof patch.work_dir === "string") next.work_dir = this.checkWorkDir(patch.work_dir);
    if (typeof patch.expires_at === "string") next.expires_at = this.checkTime(patch.expires_at, timezone, "expires_at", now);
    if (patch.notify_on) next.notify_on = [...new Set(patch.notify_on)];
    if (patch.deliver_to) next.deliver_to = [...new Set(patch.deliver_to)];
    if (patch.deliver_on) next.deliver_on = [...new Set(patch.deliver_on)];
    if (patch.session === "isolated") next.session_id = null;
    if (patch.name && patch.name !== job.name && this.jobs.byName(patch.name)) {
      throw new UserError(`Another job is already named "${patch.name}"; choose another name.`);
    }
    this.checkOutputSettings(next);
    this.checkWebhooks(next);
    this.checkChannels(next);
    if (patch.schedule !== undefined || patch.timezone !== undefined) {
      // A new schedule counts from now: nothing before the change is caught up.
      next.schedule_from = toIsoInZone(new Date(now), timezone);
    }
    next.updated_at = toIsoInZone(new Date(now), timezone);
    const first = this.nextRuns(next, 1, now)[0];
    if (next.state === "active" && !first) {
      // add_cron refuses such a job; an update must not make one.
      const why = maxRunsReached(next)
        ? `it has run ${next.run_count} times and max_runs is ${next.max_runs}`
        : next.expires_at && Date.parse(next.expires_at) <= now
          ? `its expires_at ${next.expires_at} has passed`
          : "its schedule has no occurrence left before expires_at";
      throw new UserError(`After this change the job would never run: ${why}. Change that too, or pause or remove the job.`);
    }
    // Under approval "required", an agent that changes what a job does or where sends it back
    // to a person; so does a change to a job still waiting.
    const risky = RISKY_FIELDS.some((k) => patch[k] !== undefined);
    if (opts.origin !== "cli" && this.config.approval === "required" && risky && next.state !== "completed") {
      next.state = "pending_approval";
      next.enabled = false;
    }
    next.next_run_at = first && next.state === "active" ? toIsoInZone(first, timezone) : null;
    await this.jobs.put(next);
    this.events.emit("job", next, "updated");
    if (this.started) this.reschedule(next);
    return next;
  }

  async pause(ref: string): Promise<Job> {
    const job = this.resolveJob(ref);
    if (job.state !== "active") return job;
    const next = (await this.updateRecord(job.id, () => ({ state: "paused", enabled: false, next_run_at: null })))!;
    this.reschedule(next);
    return next;
  }

  async resume(ref: string): Promise<Job> {
    const job = this.resolveJob(ref);
    this.refusePending(job, "be resumed");
    if (job.state === "active") return job;
    if (job.state === "completed") {
      throw new UserError(`Job "${job.name ?? job.id}" has completed; give it a new schedule with update_cron to run it again.`);
    }
    const now = this.clock.now();
    // Resuming does not replay what passed while paused: scheduling restarts from now.
    const resumed = { ...job, state: "active" as const, enabled: true, consecutive_failures: 0, schedule_from: toIsoInZone(new Date(now), job.timezone) };
    const first = this.nextRuns(resumed, 1, now)[0];
    if (!first && job.run_at !== null) {
      throw new UserError(`Job "${job.name ?? job.id}" was a one-shot whose time has passed; give it a new schedule with update_cron.`);
    }
    const next = (await this.updateRecord(job.id, () => ({
      state: first ? "active" : "completed",
      enabled: !!first,
      consecutive_failures: 0,
      schedule_from: resumed.schedule_from,
      next_run_at: first ? toIsoInZone(first, job.timezone) : null,
    })))!;
    this.reschedule(next);
    return next;
  }

  /** A person approves a job an agent made (agent-cron approve, the dashboard); no tool can. */
  async approve(ref: string): Promise<Job> {
    const job = this.resolveJob(ref);
    if (job.state !== "pending_approval") throw new UserError(`Job "${job.name ?? job.id}" is not waiting for approval (it is ${job.state}).`);
    const now = this.clock.now();
    const next = (await this.updateRecord(job.id, () => ({
      state: "active",
      enabled: true,
      last_error: null,
      schedule_from: toIsoInZone(new Date(now), job.timezone),
    })))!;
    const first = this.nextRuns(next, 1, now)[0];
    const stored = (await this.updateRecord(job.id, () =>
      first ? { next_run_at: toIsoInZone(first, job.timezone) } : { state: "completed" as const, enabled: false, next_run_at: null },
    ))!;
    this.reschedule(stored);
    return stored;
  }

  /** A person turns down a job waiting for approval: it is removed, with nothing run. */
  async reject(ref: string): Promise<string> {
    const job = this.resolveJob(ref);
    if (job.state !== "pending_approval") throw new UserError(`Job "${job.name ?? job.id}" is not waiting for approval (it is ${job.state}); remove it instead.`);
    return this.remove(job.id);
  }

  /**
   * An event for a job with trigger "http" (POST /hooks/{job_id}): the token must match the
   * job's, compared as hashes in constant time. Runs under the job's overlap policy, with the
   * body appended to the prompt. The same answer for an unknown job as for a wrong token.
   */
  async triggerEvent(jobId: string, token: string, payload: string): Promise<Run | null> {
    const job = this.jobs.get(jobId);
    const expected = job?.trigger === "http" ? job.trigger_token_hash : null;
    // Both are SHA-256 hex digests, so equal lengths: compared without an early exit.
    const ok = expected !== null && /^[0-9a-f]{64}$/.test(expected) && timingSafeEqual(Buffer.from(hashToken(token), "hex"), Buffer.from(expected, "hex"));
    if (!job || !ok) throw new UnauthorizedError("The token does not match this job's event trigger.");
    this.refusePending(job, "run");
    if (job.state !== "active") throw new UserError(`Job "${job.name ?? job.id}" is ${job.state}; resume it to take events.`);
    if (maxRunsReached(job)) throw new UserError(`Job "${job.name ?? job.id}" has made its max_runs (${job.max_runs}); raise it with update_cron to take more events.`);
    return this.dispatcher.occur(job, { scheduledFor: null, trigger: "event", payload });
  }

  private refusePending(job: Job, what: string): void {
    if (job.state === "pending_approval") {
      throw new UserError(`Job "${job.name ?? job.id}" is waiting for a person's approval, so it cannot ${what}; they approve it with: agent-cron approve ${job.name ?? job.id}.`);
    }
  }

  async remove(ref: string, keepRuns = false): Promise<string> {
    const job = this.resolveJob(ref);
    this.scheduler.set(job.id, null);
    await this.dispatcher.cancelJob(job.id, "Canceled because its job was removed.");
    await this.jobs.delete(job.id);
    this.schedules.delete(job.id);
    if (!keepRuns) await this.runs.removeJob(job.id);
    this.events.emit("job", job, "removed");
    return job.id;
  }

  listJobs(opts: { state?: Job["state"]; query?: string; limit?: number; cursor?: string }): Page<Job> {
    const limit = clampLimit(opts.limit, 20, 100);
    const after = opts.cursor ? decodeCursor(opts.cursor) : null;
    const query = opts.query?.toLowerCase();
    const items: Job[] = [];
    let passed = after === null;
    let total = 0;
    let more = false;
    for (const job of this.jobs.all()) {
      const matches =
        (!opts.state || job.state === opts.state) && (!query || !!job.name?.toLowerCase().includes(query) || job.prompt.toLowerCase().includes(query));
      if (matches) total++;
      if (!passed) {
        passed = job.id === after;
        continue;
      }
      if (!matches) continue;
      if (items.length === limit) more = true;
      else items.push(job);
    }
    if (!passed) throw new UserError("That cursor is no longer valid (its job was removed); list again without a cursor.");
    return { items, total, next_cursor: more ? encodeCursor(items[items.length - 1].id) : null };
  }

  // Runs

  async runNow(ref: string): Promise<Run> {
    const job = this.resolveJob(ref);
    this.refusePending(job, "run");
    return this.dispatcher.start(job, { scheduledFor: null, trigger: "manual" });
  }

  /** Waits for a run to end (or returns it if it has). */
  async waitForRun(runId: string): Promise<Run> {
    const pending = this.dispatcher.whenDone(runId);
    return pending ? await pending : this.getRunRecord(runId);
  }

  async cancelRun(runId: string): Promise<Run> {
    const run = this.getRunRecord(runId);
    if (run.status !== "running") return run;
    const ended = await this.dispatcher.cancel(runId);
    if (!ended) {
      throw new UserError(`Run ${runId} is held by another agent-cron process (pid ${run.pid}); cancel it there.`);
    }
    return ended;
  }

  getRunRecord(runId: string): Run {
    const run = this.runs.get(runId) ?? byIdPrefix(runId, this.runs.all(), "run");
    if (!run) throw new UserError(`No run with id "${runId}"; list_runs shows recent runs.`);
    return run;
  }

  async getRun(runId: string): Promise<RunWithOutput> {
    const run = this.getRunRecord(runId);
    const text = (await this.runs.readOutput(runId)) ?? (run.status === "running" ? null : "");
    let output: unknown = text;
    const job = this.jobs.get(run.job_id);
    if (text !== null && job && job.output_format !== "text" && run.status === "completed") {
      try {
        output = JSON.parse(text);
      } catch {
        output = text;
      }
    }
    return { ...run, output };
  }

  listRuns(opts: { job?: string; status?: RunStatus; limit?: number; cursor?: string }): Page<Run> {
    const limit = clampLimit(opts.limit, 20, 100);
    if (opts.status && !RUN_STATUSES.includes(opts.status)) throw new UserError(`Unknown run status "${opts.status}".`);
    let runs: Run[];
    if (opts.job) {
      runs = [...this.runs.ofJob(this.resolveJob(opts.job).id)].reverse();
    } else {
      const keyed = [...this.runs.all()].map((r) => ({ r, t: runTime(r) }));
      keyed.sort((a, b) => b.t - a.t || (a.r.id < b.r.id ? 1 : -1));
      runs = keyed.map((k) => k.r);
    }
    if (opts.status) runs = runs.filter((r) => r.status === opts.status);
    let start = 0;
    if (opts.cursor) {
      const id = decodeCursor(opts.cursor);
      start = runs.findIndex((r) => r.id === id) + 1;
      if (start === 0) throw new UserError("That cursor is no longer valid (its run left the history); list again without a cursor.");
    }
    const items = runs.slice(start, start + limit);
    const more = start + limit < runs.length;
    return { items, next_cursor: more ? encodeCursor(items[items.length - 1].id) : null };
  }

  recentRuns(jobId: string, count: number): Run[] {
    return this.runs.ofJob(jobId).slice(-count).reverse();
  }

  preview(schedule: string, timezone: string | undefined, count = 5) {
    const tz = this.checkTimezone(timezone ?? this.config.timezone);
    const now = new Date(this.clock.now());
    const sched = parseSchedule(schedule, tz, now);
    const runs = nextOccurrences(sched, now, Math.min(Math.max(1, count), 50), now);
    return {
      description: describeSchedule(sched),
      next_runs: runs.map((d) => toIsoInZone(d, tz)),
      next_runs_utc: runs.map((d) => d.toISOString()),
    };
  }

  formatTime(date: Date, timezone = this.config.timezone): string {
    return toIsoInZone(date, timezone);
  }

  // Validation

  private checkTimezone(tz: string): string {
    if (!isValidTimezone(tz)) throw new UserError(`Unknown timezone "${tz}"; use an IANA name such as Europe/Paris or America/New_York.`);
    return tz;
  }

  private checkPrompt(prompt: string): string {
    const bytes = Buffer.byteLength(prompt);
    if (!prompt.trim()) throw new UserError("prompt is empty; say what the agent should do.");
    if (bytes > MAX_PROMPT_BYTES) throw new UserError(`prompt is ${bytes} bytes; the limit is ${MAX_PROMPT_BYTES} (32 KiB). Put long instructions in a file in the work dir and refer to it.`);
    if (prompt.includes("\u0000")) throw new UserError("prompt contains a NUL character; remove it.");
    return prompt;
  }

  private checkWorkDir(dir: string): string {
    return resolveWorkDir(dir, this.config.work_dir_roots, [this.dataDir, this.runs.workRoot]);
  }

  private checkTime(value: string, timezone: string, field: string, now: number): string {
    let d: Date | null;
    try {
      d = parseSchedule(value, timezone, new Date(0)).runAt;
    } catch {
      d = null;
    }
    if (!d || !/^\d{4}-\d{2}-\d{2}T/.test(value.trim())) throw new UserError(`${field} must be an ISO date-time such as 2026-12-31T23:59, got "${value}".`);
    if (d.getTime() <= now) throw new UserError(`${field} ${toIsoInZone(d, timezone)} is in the past.`);
    return toIsoInZone(d, timezone);
  }

  private checkWebhooks(job: Job): void {
    const allow = this.config.webhooks.allow_private_networks;
    if (job.on_complete) checkWebhookUrl(job.on_complete, "on_complete", allow);
    if (job.on_fail) checkWebhookUrl(job.on_fail, "on_fail", allow);
  }

  /** Callers pick channels by name; the operator's config says where they go. */
  private checkChannels(job: Job): void {
    const channels = this.config.channels;
    for (const name of job.deliver_to) {
      const channel = channels[name];
      if (!channel) {
        const known = Object.keys(channels);
        throw new UserError(
          `deliver_to names "${name}", which is not a configured channel; ` +
            (known.length ? `the channels are: ${known.join(", ")}.` : "the operator has configured no channels (config key channels)."),
        );
      }
      const missing = channelProblem(name, channel, this.env);
      if (missing) throw new UserError(`deliver_to names "${name}", which cannot send: ${missing}.`);
    }
  }

  /**
   * A new output_schema must compile (ajv loads lazily, so this awaits). Done before a change
   * reads the job it changes: an await between that read and the store would let a
   * concurrent change be overwritten.
   */
  private async compileSchema(schema: Record<string, unknown> | null | undefined): Promise<void> {
    if (!schema) return;
    if (JSON.stringify(schema).length > 64 * 1024) throw new UserError("output_schema is larger than 64 KiB.");
    await compileOutputSchema(schema);
  }

  private checkOutputSettings(job: Job): void {
    if (job.output_format === "structured" && !job.output_schema) {
      throw new UserError('output_format "structured" needs an output_schema (a JSON Schema object).');
    }
  }

  /** Looking a program up on PATH costs a stat per PATH entry; once a minute is enough. */
  private readonly programChecks = new Map<string, { found: boolean; at: number }>();

  executorWarnings(name: string): string[] {
    const program = this.executors.get(name)?.program;
    if (!program) return [];
    let check = this.programChecks.get(program);
    if (!check || Date.now() - check.at > 60_000) {
      check = { found: resolveOnPath(program) !== null, at: Date.now() };
      this.programChecks.set(program, check);
    }
    return check.found
      ? []
      : [`Executor "${name}" runs "${program}", which was not found on the server's PATH; runs will fail until the operator installs it or sets executors.${name} in the config.`];
  }
}

/** What a caller defined, for add_cron's retry-safety check. */
const DEFINITION_FIELDS = [
  "schedule", "timezone", "prompt", "executor", "work_dir", "session", "type", "timeout_seconds", "retries",
  "retry_delay_seconds", "output_format", "output_schema", "overlap", "catch_up", "max_runs", "max_cost_usd",
  "pause_after_failures", "silent", "notify_on", "on_complete", "on_fail", "deliver_to", "deliver_on",
  "on_permission_denied", "requires_mcp", "prompt_context", "jitter_seconds", "catch_up_window_seconds", "trigger",
] as const;

function sameDefinition(a: Job, b: Job): boolean {
  return DEFINITION_FIELDS.every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

function parseInput<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: z.ZodError } }, raw: unknown): T {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  throw new UserError(describeIssue(r.error.issues[0] as z.core.$ZodIssue, raw));
}

/** Occurrences at or before this instant are done with (run, recorded, or skipped on purpose). */
function handledUntil(job: Job): number {
  return Math.max(job.last_scheduled_for ? Date.parse(job.last_scheduled_for) : -Infinity, job.schedule_from ? Date.parse(job.schedule_from) : -Infinity);
}

/** Why a stored job cannot be scheduled, or null when it can. */
function brokenJobProblem(job: Job): string | null {
  if (!isValidTimezone(job.timezone)) return `timezone "${job.timezone}" is not known to this system's time zone data`;
  for (const field of ["created_at", "updated_at", "last_scheduled_for", "schedule_from", "run_at", "expires_at"] as const) {
    const v = job[field];
    if (v !== null && !Number.isFinite(Date.parse(v))) return `${field} "${v}" is not a date`;
  }
  try {
    scheduleOfJob(job);
  } catch (err) {
    return `schedule "${job.schedule}": ${errorMessage(err).replace(/\.$/, "")}`;
  }
  return null;
}

/** The one record whose id starts with `prefix` (8+ characters); several is an error naming them. */
function byIdPrefix<T extends { id: string }>(prefix: string, records: Iterable<T>, kind: "job" | "run"): T | undefined {
  if (prefix.length < 8 || prefix.length >= 36 || !/^[0-9a-f-]+$/.test(prefix)) return undefined;
  const found: T[] = [];
  for (const r of records) if (r.id.startsWith(prefix)) found.push(r);
  if (found.length > 1) {
    const ids = found.slice(0, 5).map((r) => r.id).join(", ");
    throw new UserError(`"${prefix}" is the start of ${found.length} ${kind} ids (${ids}${found.length > 5 ? ", …" : ""}); give more characters.`);
  }
  return found[0];
}

function runTime(r: Run): number {
  return Date.parse(r.started_at ?? r.scheduled_for ?? "") || 0;
}

function clampLimit(limit: number | undefined, dflt: number, max: number): number {
  if (limit === undefined) return dflt;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new UserError(`limit must be a whole number from 1 to ${max}, got ${limit}.`);
  return limit;
}

export function encodeCursor(id: string): string {
  return Buffer.from(id).toString("base64url");
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new UserError("That cursor is not valid; pass the next_cursor of a previous answer, or none.");
  return id;
}

/** What a job does and where: changing one under approval "required" needs a person again. */
const RISKY_FIELDS = ["prompt", "schedule", "executor", "work_dir"] as const;

/** Event trigger tokens are kept as SHA-256 hashes, compared in constant time. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
