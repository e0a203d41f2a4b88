import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Config } from "../config.js";
import { chainedJobs } from "./chain.js";
import { Dispatcher } from "./dispatcher.js";
import { UnauthorizedError, UserError, errorMessage } from "../kernel/errors.js";
import { AppEventBus } from "./events.js";
import { AddJobInput, UpdateJobInput } from "./job-input.js";
import {
  checkTimezone,
  compileSchema,
  draftJob,
  hashToken,
  legacyNameProblem,
  parseInput,
  withApprovalEvent,
  patchedJob,
  sameDefinition,
  type DefinitionContext,
  type DeliveryChecks,
} from "./job-definitions.js";
import { afterNotRun, stopped, whyNotRun, withDerivedFields } from "./job-rules.js";
import { maxRunsReached, type ApprovalChannel, type Job, type Run, type RunStatus, type RunWithOutput } from "./jobs.js";
import { LATE_MS, brokenJobProblem, handledUntil, nextRuns, planCatchUp, sameTimeline, type CatchUpPlan } from "./planner.js";
import type {
  CheckProcessResult,
  ExecutionRequest,
  Executor,
  ExecutorRegistry,
  JobRepo,
  Notifier,
  Occurrence,
  OccurrenceQueue,
  OrphanFinder,
  RunRepo,
  RunToolsPort,
} from "./ports.js";
import { forgetUnusedOutputSchemas, keptOutputSchemas } from "./output.js";
import { parseRunToolArgs, runToolsOf, withNote, type RunSaid, type RunToolName } from "./run-tools.js";
import { listJobs, listRuns, resolveJob, resolveRun, type Page } from "./queries.js";
import { FleetScheduler, systemClock, type Clock } from "./scheduler.js";
import { describeSchedule, nextOccurrences, parseSchedule, scheduleOfJob, type ParsedSchedule } from "./schedule.js";
import { toIsoInZone } from "../kernel/time.js";
import { jitterDelayMs } from "./prompt-context.js";
import { deliveryTargets } from "./delivery-plan.js";
import { ClockWatch, SAMPLE_EVERY_MS, type ClockSample } from "./clock-watch.js";
import { MAX_SCHEDULE_HISTORY, OccurrenceCache, auditJob, auditReport, indexRecords, type AuditReport, type JobAudit, type RecordIndex } from "./ledger.js";

/** cancel_run of a run in another process waits this long for its record to end. */
const REMOTE_CANCEL_WAIT_MS = 15_000;

export type { Page } from "./queries.js";

/** Who approved or rejected a job, and through what, as the edge that checked them says. */
export interface Approver {
  by: string;
  via: Extract<ApprovalChannel, "cli" | "dashboard">;
}

/** In a fleet, a chained run owed this long after its upstream ended is started by whoever finds it. */
const CHAIN_SETTLE_MS = 10_000;
export { encodeCursor } from "./queries.js";
export { hashToken } from "./job-definitions.js";

/**
 * What the App is made of. The composition root (src/compose.ts) builds them from the config:
 * the files backend (a data dir this process owns) or the postgres backend (a database shared
 * by a fleet). Nothing here knows which.
 */
export interface AppParts {
  config: Config;
  jobs: JobRepo;
  runs: RunRepo;
  queue: OccurrenceQueue;
  orphans: OrphanFinder;
  /** The executors of a config; called again when the config is reloaded. */
  executors(config: Config): ExecutorRegistry;
  /** How delivery checks a job's webhooks and channels when it is defined (src/delivery/). */
  deliveryChecks: DeliveryChecks;
  /** The notifier (channels, webhooks); `onError` is where it reports a write that failed. */
  notifier(ctx: { config: Config; onError(what: string, err: unknown): void }): Notifier;
  /**
   * True when this process is the only one on its store (files): what was left undelivered
   * at start is its own to send, and an occurrence marked handled without a record is its own
   * to record.
   */
  exclusive: boolean;
  /** Where the jobs are kept, for messages ("jobs.json in D", "the database at H"). */
  jobsLocation: string;
  /** The local data dir (config, socket, lock; outputs with the files backend): never a work_dir. */
  dataDir: string;
  /** Where runs without a work_dir get their folder; see defaultWorkRoot. */
  workRoot: string;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** Kills the process groups of this App's runs (those left when it closes, after the grace). */
  killProcessGroups(): void;
  /** Runs a gate check for an executor that starts no program of its own (openai): no sandbox. */
  runCheck(argv: string[], req: ExecutionRequest): Promise<CheckProcessResult>;
  /** Tools inside runs (agent-cron run-tools); none when absent. */
  runTools?: RunToolsPort;
  /**
   * Samples the wall, monotonic and boot clocks, to notice sleep, wake and clock steps
   * (clock-watch.ts); none: not watched (tests on a fake clock).
   */
  sampleClocks?: () => ClockSample;
  /**
   * Resolves once this process's copy of the store holds every change acknowledged anywhere
   * before the call (a fleet's mirror catching up: read-your-writes across processes). None
   * for a store with one writer.
   */
  sync?(): Promise<void>;
  /** cancel_run of a run another process of a fleet runs: asks it (see App.cancelRun). */
  remoteCancel?: { request(runId: string): Promise<void>; onRequest(listener: (runId: string) => void): void };
}

/**
 * The domain: jobs, runs and the scheduler behind one API that tools, resources and the CLI
 * share. No MCP here; errors meant for callers are UserErrors with one clear sentence. The
 * decisions live beside it (planner: when; job-rules: state transitions; job-definitions:
 * what a job may be; queries: answers); this class is the runtime that applies them: the
 * fleet timer, firing, recovery, and the writes in the order that keeps them safe.
 */
export class App {
  readonly events = new AppEventBus();
  readonly clock: Clock;
  readonly dataDir: string;
  readonly jobs: JobRepo;
  readonly runs: RunRepo;
  private current: Config;
  private executors: ExecutorRegistry;
  private readonly scheduler: FleetScheduler;
  private readonly dispatcher: Dispatcher;
  private readonly schedules = new Map<string, ParsedSchedule>();
  private readonly notifier: Notifier;
  private readonly queue: OccurrenceQueue;
  private started = false;
  /** Set first thing in close(): a sweep still going then must not arm another. */
  private closed = false;
  private sweepTimer: unknown = null;
  private clockWatch: ClockWatch | null = null;
  private watchTimer: unknown = null;
  private readonly env: NodeJS.ProcessEnv;
  private readonly definitions: DefinitionContext;

  private constructor(private readonly parts: AppParts) {
    this.events.setMaxListeners(0);
    this.dataDir = parts.dataDir;
    this.jobs = parts.jobs;
    this.runs = parts.runs;
    this.queue = parts.queue;
    this.current = parts.config;
    this.clock = parts.clock ?? systemClock;
    this.env = parts.env ?? process.env;
    this.executors = parts.executors(parts.config);
    const app = this;
    this.definitions = {
      get config() {
        return app.config;
      },
      env: this.env,
      checkExecutor: (name) => void this.executor(name),
      forbiddenWorkDirs: [parts.dataDir, parts.workRoot],
      resolveJob: (ref) => this.resolveJob(ref),
      getJob: (id) => this.jobs.get(id),
      delivery: parts.deliveryChecks,
    };
    // Deliveries go out after the run is recorded (the pipeline's last step, given the record)
    // and outside any concurrency slot, so a slow receiver never holds up agent runs; their
    // attempts are then merged into the run record.
    this.notifier = parts.notifier({
      config: parts.config,
      onError: (what, err) => this.events.emit("notice", "error", `${what}: ${errorMessage(err)}`, {}),
    });
    this.events.on("run", (run) => this.ledger.delete(run.job_id));
    this.scheduler = new FleetScheduler((id, at) => this.onDue(id, at), this.clock);
    this.dispatcher = new Dispatcher({
      get config() {
        return app.config;
      },
      dataDir: this.dataDir,
      workRoot: parts.workRoot,
      runs: this.runs,
      events: this.events,
      clock: this.clock,
      executor: (name) => this.executor(name),
      getJob: (id) => this.jobs.get(id),
      updateJob: (id, change) => this.updateRecord(id, change),
      killProcessGroups: parts.killProcessGroups,
      exclusive: parts.exclusive,
      chainedAfter: (job, run) => chainedJobs(this.jobs.all(), job.id, run),
      runCheck: (executor, argv, req) => (executor.runCheck ? executor.runCheck(argv, req) : parts.runCheck(argv, req)),
      openRunTools: parts.runTools
        ? (job, run, said, dir) =>
            parts.runTools!.open({ runId: run.id, jobId: job.id, dir, tools: runToolsOf(job) }, (tool, args) =>
              this.runToolCall(job.id, run.id, said, tool as RunToolName, args),
            )
        : undefined,
      deliver: (run) => this.notifier.deliver(run),
      // A crash test kills the process at a named point (e.g. between a run's final record and
      // the start of its chained runs); nothing sets it outside tests.
      fault: (point) => {
        if (this.env.AGENT_CRON_FAULT === point) process.kill(process.pid, "SIGKILL");
      },
      waitBehind: parts.queue.waitBehind?.bind(parts.queue),
      fleetSlot: parts.queue.fleetSlot?.bind(parts.queue),
    });
    this.queue.consume((jobId, occ) => this.runOccurrence(jobId, occ));
    this.jobs.onExternalChange?.((id, job, previous) => {
      // Called from the database's notification handler: a job this process cannot schedule
      // (a zone this Node does not know) must not throw there and end the process.
      try {
        this.onExternalJob(id, job, previous);
      } catch (err) {
        this.scheduler.set(id, null);
        this.warn(id, err);
      }
    });
    parts.remoteCancel?.onRequest((runId) => {
      void this.dispatcher.cancel(runId, "Canceled on request (through another agent-cron process).").catch((err) => this.warn(runId, err));
    });
    // Run events of other processes are passed on to clients (their runs are theirs to deliver).
    this.runs.onExternalChange?.((run) => {
      this.events.emit("run", run, run.status === "running" ? "started" : "finished", this.jobs.get(run.job_id));
    });
  }

  get config(): Config {
    return this.current;
  }

  /** Waits until this process's answers include every change acknowledged before (see AppParts.sync). */
  async synced(): Promise<void> {
    await this.parts.sync?.();
  }

  /** The notifier, for the HTTP daemon to point messages at its dashboard. */
  get delivery(): Notifier {
    return this.notifier;
  }

  /**
   * Takes a new config while running (config.json was edited): executors, limits and
   * webhook settings apply to the next run; runs in flight finish with what they started with.
   */
  applyConfig(config: Config): void {
    this.current = config;
    this.executors = this.parts.executors(config);
    this.dispatcher.setConcurrency(config.max_concurrent);
    this.notifier.applyConfig(config);
  }

  /**
   * Builds the App over a backend's parts: pauses stored jobs that can no longer be scheduled,
   * and records runs left `running` by a process that is gone as interrupted.
   */
  static async create(parts: AppParts): Promise<App> {
    const app = new App(parts);
    await app.pauseBrokenJobs();
    await app.recoverInterrupted();
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
      const lookalike = legacyNameProblem(job);
      if (lookalike) this.startupProblems.push(lookalike);
      const problem = brokenJobProblem(job);
      if (!problem) continue;
      this.broken.add(job.id);
      const label = job.name ? `"${job.name}" (${job.id})` : job.id;
      this.startupProblems.push(
        `Job ${label} in ${this.parts.jobsLocation} cannot be scheduled: ${problem}. It is paused; fix it with update_cron (or agent-cron update), then resume it.`,
      );
      if (job.state === "active") {
        await this.jobs.update(job.id, (j) =>
          withDerivedFields({
            ...j,
            ...stopped("paused"),
            last_error: `Cannot be scheduled: ${problem}. Fix it with update_cron, then resume the job.`,
            updated_at: toIsoInZone(new Date(this.clock.now()), this.config.timezone),
          }),
        );
      }
    }
  }

  /** Runs whose process is gone become `interrupted`, once, and are owed their deliveries. */
  private async recoverInterrupted(): Promise<void> {
    const orphans = await this.parts.orphans.claimOrphans();
    const now = this.clock.now();
    for (const run of orphans) {
      const started = Date.parse(run.started_at ?? "") || now;
      const ended: Run = {
        ...run,
        status: "interrupted",
        finished_at: toIsoInZone(new Date(now), this.config.timezone),
        duration_ms: now - started,
        error: "The server stopped while the run was going; this occurrence is not run again.",
      };
      // deliver_on failed covers interrupted.
      const job = this.jobs.get(run.job_id);
      ended.delivery_due = job ? deliveryTargets(job, ended, { paused: false, changed: false }) : [];
      ended.delivery = ended.delivery_due.length ? "pending" : null;
      await this.runs.put(ended);
      this.ledger.delete(run.job_id);
      if (job) {
        await this.updateRecord(job.id, (j) => ({
          ...afterNotRun(j, run.trigger, "interrupted"),
          last_error: "The server stopped while the last run was going.",
        }));
      }
      // The only process sends what is pending once it starts; in a fleet, the one that found it.
      if (!this.parts.exclusive && ended.delivery === "pending") this.notifier.deliver(ended);
    }
    if (this.parts.exclusive) await this.recordLostOccurrences();
    // A fleet: what a process that is gone left undelivered is sent by the one that claimed it.
    for (const id of (await this.parts.orphans.claimDeliveries?.()) ?? []) {
      const run = this.runs.get(id);
      if (run) this.notifier.deliver(run);
    }
  }

  /**
   * Chained runs a finished run still owes (`chain_due`): its process died between its final
   * record and starting them. The only process starts them at start-up; in a fleet, any process
   * that finds one settled a while ago (the finisher normally has), each once (chain.ts).
   */
  private async resumeChains(): Promise<void> {
    const upstreams = new Set<string>();
    for (const j of this.jobs.all()) if (j.after) upstreams.add(j.after.job);
    const settled = this.clock.now() - (this.parts.exclusive ? 0 : CHAIN_SETTLE_MS);
    for (const id of upstreams) {
      for (const run of this.runs.ofJob(id)) {
        if (!run.chain_due.length || run.status === "running" || Date.parse(run.finished_at ?? "") > settled) continue;
        await this.dispatcher.startChained(run);
      }
    }
  }

  /**
   * An occurrence is marked handled (last_scheduled_for) just before its run record is
   * written; a crash between the two would leave no trace of it. Give it its record.
   */
  private async recordLostOccurrences(): Promise<void> {
    for (const job of [...this.jobs.all()]) {
      const at = job.last_scheduled_for;
      if (!at || this.broken.has(job.id)) continue;
      // A run that started after the occurrence was marked has its record: its job's history
      // need not be read (start-up reads only the histories it must).
      // Not for a job whose occurrence may wait (jitter) or whose runs go in a backlog: a manual
      // or backlog run can start after the mark while the marked occurrence has not.
      const adjacent = job.jitter_seconds === 0 && job.catch_up !== "all";
      if (adjacent && job.last_run_at && Date.parse(job.last_run_at) >= Date.parse(at)) continue;
      if (this.runs.ofJob(job.id).some((r) => r.scheduled_for === at)) continue;
      await this.dispatcher.recordNotRun(
        job,
        { scheduledFor: Date.parse(at), trigger: "schedule" },
        "interrupted",
        "The server stopped as this occurrence was starting; it is not run again.",
      );
    }
  }

  /**
   * Occurrences in [from, to] are run when they come due, however late, rather than caught up:
   * they fell in a hand-over from an older owner, so they were not missed, only delayed.
   */
  private runLate: { from: number; to: number } | null = null;

  /**
   * Starts the fleet timer: catches up on what was missed, then schedules every active job.
   * `handoverSince`: the previous owner handed over and took no occurrence after this time;
   * the ones since then run (late) instead of going through catch-up.
   */
  async start(opts: { handoverSince?: number } = {}): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.clock.now();
    const caughtUpTo = opts.handoverSince !== undefined && opts.handoverSince < now ? opts.handoverSince : now;
    if (caughtUpTo < now) this.runLate = { from: caughtUpTo, to: now };
    for (const job of [...this.jobs.all()]) {
      if (job.state !== "active") continue;
      await this.catchUp(job, caughtUpTo);
      this.reschedule(this.jobs.get(job.id));
    }
    this.scheduler.start();
    await this.resumeChains().catch((err) =>
      this.events.emit("notice", "error", `Starting chained runs left by a stopped process failed: ${errorMessage(err)}`, {}),
    );
    this.watchClocks();
    // What the previous owner had not finished handing over; only the owner sends.
    if (this.parts.exclusive) this.notifier.resumePending();
    this.armSweep();
    this.armSelfAudit();
  }

  /**
   * What /readyz and /metrics ask of this process's runtime: ready once the scheduler runs and
   * every run record is written (a store that refuses writes is not ready, with the reason).
   */
  health(): { ready: boolean; reason: string | null; running: number; queued: number; fleet_processes: number | null } {
    const load = this.dispatcher.load;
    const reason = this.dispatcher.isClosing
      ? "shutting down"
      : !this.started
        ? "the scheduler has not started"
        : load.unwritten
          ? `${load.unwritten} run record(s) could not be written to ${this.parts.jobsLocation}; they are tried again every few seconds`
          : null;
    return { ready: reason === null, reason, running: load.running, queued: load.queued, fleet_processes: this.parts.orphans.liveProcesses?.() ?? null };
  }

  /**
   * Samples the clocks every second (SPEC §17): a suspend, a stall or a clock step is noticed
   * within a few seconds, and what came due meanwhile fires at once, through catch-up.
   */
  private watchClocks(): void {
    const sample = this.parts.sampleClocks;
    if (!sample || this.closed) return;
    this.clockWatch ??= new ClockWatch(sample);
    this.watchTimer = this.clock.setTimer(() => {
      this.checkClocks();
      this.watchClocks();
    }, SAMPLE_EVERY_MS);
  }

  private checkClocks(): void {
    const jump = this.clockWatch?.check();
    if (!jump) return;
    const by = Math.round((jump.to - jump.from) / 1000);
    const tz = this.config.timezone;
    this.events.emit(
      "notice",
      "warning",
      `${jump.reason === "host asleep" ? "The host was asleep (or agent-cron was suspended)" : "The system clock was changed"}: the wall clock went from ${toIsoInZone(new Date(jump.from), tz)} to ${toIsoInZone(new Date(jump.to), tz)} (${by >= 0 ? "+" : ""}${by} s). Occurrences that came due meanwhile go through each job's catch_up.`,
      { reason: jump.reason, from: new Date(jump.from).toISOString(), to: new Date(jump.to).toISOString() },
    );
    this.scheduler.poke();
  }

  /** In a fleet, runs of processes that died are looked for again and again. */
  private armSweep(): void {
    const every = this.parts.orphans.everyMs;
    if (every === null || this.closed) return;
    this.sweepTimer = this.clock.setTimer(() => {
      void this.recoverInterrupted()
        .then(() => this.resumeChains())
        .catch((err) => this.events.emit("notice", "error", `Looking for interrupted runs failed: ${errorMessage(err)}`, {}))
        .finally(() => this.armSweep());
    }, every);
  }

  /** Stops scheduling, then lets runs finish for up to `graceMs` and interrupts the rest. */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    this.scheduler.stop();
    if (this.sweepTimer !== null) this.clock.clearTimer(this.sweepTimer);
    if (this.auditTimer !== null) this.clock.clearTimer(this.auditTimer);
    this.auditTimer = null;
    this.sweepTimer = null;
    if (this.watchTimer !== null) this.clock.clearTimer(this.watchTimer);
    this.watchTimer = null;
    // Occurrences waiting out their jitter are let go.
    await this.queue.close();
    await this.dispatcher.close(graceMs);
    await this.notifier.close();
    await this.jobs.idle();
    await this.jobs.close();
    await this.runs.close?.();
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
    return nextRuns(job, this.scheduleOf(job), count, from);
  }

  /**
   * Arms the job's next occurrence after the last one handled, not after "now": one that
   * passed while the server was busy (a slow start, a long catch-up) still fires, late; one
   * far in the past goes through catch-up (onDue).
   */
  private reschedule(job: Job | undefined, after = -Infinity): void {
    if (!job) return;
    const next = job.state === "active" ? this.nextRuns(job, 1, after)[0] : undefined;
    if (!next && job.state === "active" && job.expires_at !== null) {
      // Nothing left before expires_at: the job completes once that time has passed (and the
      // jitter of its last occurrence with it), not while that occurrence may still start.
      this.expiring.add(job.id);
      this.scheduler.set(job.id, Date.parse(job.expires_at) + job.jitter_seconds * 1000 + 1000);
      return;
    }
    this.expiring.delete(job.id);
    this.scheduler.set(job.id, next ? next.getTime() : null);
  }

  /** Jobs armed to complete at their expires_at, not to run. */
  private readonly expiring = new Set<string>();

  private async expire(jobId: string): Promise<void> {
    const now = this.clock.now();
    const result = await this.change(jobId, (j) =>
      j.state === "active" && j.expires_at !== null && Date.parse(j.expires_at) <= now && this.nextRuns(j, 1, now).length === 0 ? stopped("completed") : null,
    );
    if (!result?.changed) this.reschedule(result?.job);
  }

  private onDue(jobId: string, at: number): void {
    const job = this.jobs.get(jobId);
    if (job?.state !== "active" || this.dispatcher.isClosing) return;
    if (this.expiring.delete(jobId)) {
      void this.expire(jobId).catch((err) => this.warn(jobId, err));
      return;
    }
    const now = this.clock.now();
    const handedOver = this.runLate !== null && at >= this.runLate.from && at <= this.runLate.to;
    if (now - at > LATE_MS && !handedOver) {
      // Said first, so that what is recorded missed carries why (host asleep, clock changed).
      this.checkClocks();
      // The machine slept or the clock jumped: this is catch-up territory, not a normal fire.
      void this.catchUp(job, now).then(
        () => this.reschedule(this.jobs.get(jobId)),
        (err) => {
          this.warn(jobId, err);
          // A failed catch-up loses nothing (and a store that stays down is not asked in a tight loop).
          this.retryLater(jobId);
        },
      );
      return;
    }
    void this.fire(job, at).catch((err) => this.warn(jobId, err));
  }

  /**
   * Takes one occurrence for the fleet (marked handled, so it never runs twice) and has the
   * queue run it, after its share of the jitter. Another process may have taken it first.
   */
  private async fire(job: Job, at: number): Promise<void> {
    // Jitter spreads recurring fleets; a one-shot runs at its time.
    const delay = job.run_at === null ? jitterDelayMs(job.id, at, job.jitter_seconds) : 0;
    // Past `at` even if the take fails (disk full): never spin on one occurrence. Armed first,
    // the job's next run is known and written with the take (see takenFields).
    this.reschedule(this.jobs.get(job.id), at);
    const next = this.scheduler.nextFor(job.id);
    const nextRunAt = next === null ? null : toIsoInZone(new Date(next), job.timezone);
    const taking = this.queue.take(job, { scheduledFor: at, trigger: "schedule", nextRunAt }, delay);
    let taken: Job | null;
    try {
      taken = await taking;
    } catch (err) {
      // Not taken: armed again in a moment from what is handled then, so this occurrence is
      // tried again (or caught up) rather than passed over.
      this.retryLater(job.id);
      throw err;
    }
    if (taken) this.events.emit("job", taken, "updated");
  }

  /** Arms a job again in a second from what is handled then (a take or catch-up failed). */
  private retryLater(jobId: string): void {
    this.scheduler.set(jobId, null);
    this.clock.setTimer(() => {
      if (!this.dispatcher.isClosing) this.reschedule(this.jobs.get(jobId));
    }, 1000);
  }

  /** A taken occurrence, handed back by the queue (after its jitter, or by a fleet worker). */
  private async runOccurrence(jobId: string, occ: Occurrence): Promise<void> {
    try {
      const current = this.jobs.get(jobId);
      if (!current) return;
      if (occ.missed && occ.scheduledFor !== null) {
        // A fleet's catch-up queues what it only records too (see OccurrenceQueue.takeCatchUp).
        await this.dispatcher.recordNotRun(current, occ, "missed", this.missedReason(occ.scheduledFor, current));
        return;
      }
      // Paused, changed, sent back for approval or closing meanwhile: the occurrence was
      // taken, so it gets its record (the ledger has no hole), without running.
      const not = this.dispatcher.isClosing
        ? { status: "skipped" as const, why: "The server stopped before this occurrence could start." }
        : whyNotRun(current, occ.scheduledFor);
      if (not) {
        await this.dispatcher.recordNotRun(current, occ, not.status, not.why);
        return;
      }
      if (occ.backlog) await this.dispatcher.startOccurrence(current, occ);
      else await this.dispatcher.occur(current, occ);
      await this.syncNextRun(jobId);
    } catch (err) {
      this.warn(jobId, err);
    }
  }

  /**
   * Handles occurrences between the job's last one and `now` per its catch_up policy, once
   * per job across a fleet: only the process that moves last_scheduled_for runs and records
   * the plan.
   */
  private async catchUp(job: Job, now: number): Promise<void> {
    const planFor = (j: Job) => planCatchUp(j, this.scheduleOf(j), now, j.catch_up_window_seconds ?? this.config.catch_up_window_seconds);
    let plan = planFor(job);
    if (!plan) return;
    if (this.queue.takeCatchUp) {
      // A fleet queues the whole plan with the job's change: its workers run and record it.
      const taken = await this.queue.takeCatchUp(job.id, planFor);
      if (taken) {
        await this.missedSpan(job, taken.plan);
        this.events.emit("job", this.jobs.get(job.id) ?? taken.job, "updated");
        if (taken.plan.truncated) this.missedNotice(taken.job, job.last_scheduled_for ?? job.created_at, taken.plan.record.length);
      }
      return;
    }
    // Planned again from the newest copy: on a shared store another process may have taken
    // some of these occurrences (or caught up) since this copy was read.
    const taken = await this.change(job.id, (j) => {
      plan = planFor(j);
      return !plan || handledUntil(j) >= plan.newest ? null : { last_scheduled_for: toIsoInZone(new Date(plan.newest), j.timezone) };
    });
    if (!taken?.changed || !plan) return;
    await this.missedSpan(job, plan);
    for (const t of plan.record) {
      await this.dispatcher.recordNotRun(job, { scheduledFor: t, trigger: "catch_up" }, "missed", this.missedReason(t, job));
    }
    if (plan.truncated) this.missedNotice(job, job.last_scheduled_for ?? job.created_at, plan.record.length);
    if (plan.run.length <= 1) {
      const current = this.jobs.get(job.id);
      if (plan.run.length && current?.state === "active") await this.dispatcher.occur(current, { scheduledFor: plan.run[0], trigger: "catch_up" });
      return;
    }
    // A backlog (catch_up: all) is the job's own queue: its runs go one after another,
    // oldest first, whatever overlap says (each waits for the previous backlog run only, so
    // live occurrences under overlap allow cannot starve it), and in the background, so
    // start-up and the other jobs do not wait for it.
    void this.runBacklog(job.id, plan.run).catch((err) => this.warn(job.id, err));
  }

  /** A truncated plan's older occurrences get no record each; the ledger keeps them as one stretch, missed. */
  private async missedSpan(job: Job, plan: CatchUpPlan): Promise<void> {
    if (!plan.truncated || !plan.record.length) return;
    const since = Math.max(handledUntil(job), Date.parse(job.created_at));
    const span = {
      from: toIsoInZone(new Date(since), job.timezone),
      to: toIsoInZone(new Date(plan.record[0]), job.timezone),
      reason: `the server was not running (catch_up: ${job.catch_up})`,
    };
    await this.updateRecord(job.id, (j) => ({ missed_spans: [...j.missed_spans, span].slice(-MAX_SCHEDULE_HISTORY) }));
  }

  /** Why an occurrence was not run: the gap it fell into, or the server not running. */
  private missedReason(at: number, job: Job): string {
    const why = this.clockWatch?.reasonFor(at);
    if (why === "host asleep") return `host asleep: the machine slept or agent-cron was suspended when this came due (catch_up: ${job.catch_up}).`;
    if (why === "clock changed") return `clock changed: the system clock was moved past this occurrence (catch_up: ${job.catch_up}).`;
    return `Missed while the server was not running (catch_up: ${job.catch_up}).`;
  }

  private missedNotice(job: Job, since: string, recorded: number): void {
    this.events.emit("notice", "warning", `Job ${job.name ?? job.id} missed occurrences since ${since}; the newest ${recorded} are recorded.`, {
      job_id: job.id,
    });
  }

  private async runBacklog(jobId: string, times: number[]): Promise<void> {
    for (const t of times) {
      const current = this.jobs.get(jobId);
      if (current?.state !== "active" || this.dispatcher.isClosing) return;
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
    // The stored one has come due and was fired since: its take writes the next one with it.
    // At capacity runs end behind their takes, and this was a job write per occurrence.
    const stored = job.next_run_at === null ? null : Date.parse(job.next_run_at);
    if (stored !== null && at !== null && stored <= this.clock.now() && at > stored) return;
    if (next !== job.next_run_at) await this.updateRecord(jobId, () => ({ next_run_at: next }));
  }

  /** Another process of the fleet changed a job: schedule it here as it now is. */
  private onExternalJob(id: string, job: Job | undefined, previous: Job | undefined): void {
    if (!job) {
      this.scheduler.set(id, null);
      this.schedules.delete(id);
      this.ledger.delete(id);
      void this.dispatcher.cancelJob(id, "Canceled because its job was removed.");
      if (previous) this.events.emit("job", previous, "removed");
      return;
    }
    // Another process took an occurrence or recorded a run: the one armed here is still this
    // process's next. Armed again from the row's last handled one, it would fire once more the
    // occurrences fired here whose takes wait out the hand-off, and once the fleet's takes are
    // LATE_MS behind, catch each job up on its own (a transaction each) as if the server had
    // been down: with two and three processes at capacity that was most of the work.
    const armed = this.scheduler.nextFor(id);
    const keep = previous !== undefined && armed !== null && !this.expiring.has(id) && sameTimeline(previous, job) && handledUntil(job) < armed;
    if (this.started && !keep) this.reschedule(job);
    this.events.emit("job", job, previous ? "updated" : "added");
  }

  /** When each error was last said: the same sentence again within a minute is not repeated. */
  private readonly said = new Map<string, number>();

  /**
   * An occurrence that could not be taken or run. A store that is down (a full disk, a lost
   * database) fails every job's every occurrence with the same sentence: it is said once a
   * minute, not once per job and second.
   */
  private warn(jobId: string, err: unknown): void {
    const why = errorMessage(err);
    const now = this.clock.now();
    const last = this.said.get(why);
    if (last !== undefined && now - last < 60_000) return;
    if (this.said.size > 1000) this.said.clear();
    this.said.set(why, now);
    this.events.emit("notice", "error", `Job ${jobId}: ${why}`, { job_id: jobId });
  }

  // The ledger (SPEC §18)

  /**
   * Each job's records as the audit reads them, rebuilt when one of its runs changes (a run
   * event) or its history is not the one it was built from.
   */
  private readonly ledger = new Map<string, { index: RecordIndex; source: readonly Run[]; length: number; last: Run | undefined }>();
  private auditTimer: unknown = null;
  /** Unaccounted occurrences already reported by the self-audit ("job id@time"), so each is said once. */
  private readonly reported = new Set<string>();
  /** What the last audit found, for a metric (see unaccountedOccurrences in ledger.ts). */
  lastAudit: { unaccounted: number; at: number } | null = null;

  /**
   * Every occurrence of the jobs (or one job) since `since` (default 7 days; "24h", "30m",
   * "2w" or an ISO time) against its records: counts by outcome per job, and each occurrence
   * that is due and has none.
   */
  audit(opts: { job?: string; since?: string; limit?: number } = {}): AuditReport {
    const now = this.clock.now();
    const since = parseSince(opts.since, now);
    const jobs = opts.job ? [this.resolveJob(opts.job)] : [...this.jobs.all()];
    const cache = new OccurrenceCache();
    const audits: JobAudit[] = [];
    for (const job of jobs) {
      let source: readonly Run[];
      try {
        source = this.runs.ofJob(job.id);
      } catch (err) {
        // A history that cannot be read is named; the other jobs are still audited.
        this.warn(job.id, err);
        continue;
      }
      let entry = this.ledger.get(job.id);
      if (!entry || entry.source !== source || entry.length !== source.length || entry.last !== source[source.length - 1]) {
        entry = { index: indexRecords(source, this.config.runs_per_job), source, length: source.length, last: source[source.length - 1] };
        this.ledger.set(job.id, entry);
      }
      audits.push(auditJob(job, entry.index, { since, now, waiting: (id) => this.dispatcher.waiting(id) }, cache));
    }
    const report = auditReport(audits, { since, now, timezone: this.config.timezone, limit: Math.min(Math.max(1, opts.limit ?? 20), 1000) });
    this.lastAudit = { unaccounted: report.unaccounted, at: now };
    return report;
  }

  private armSelfAudit(): void {
    const minutes = this.config.audit_interval_minutes;
    if (!minutes || this.dispatcher.isClosing) return;
    this.auditTimer = this.clock.setTimer(() => {
      void this.selfAudit()
        .catch((err) => this.events.emit("notice", "error", `The self-audit failed: ${errorMessage(err)}`, {}))
        .finally(() => this.armSelfAudit());
    }, minutes * 60_000);
  }

  /**
   * The server audits itself: an occurrence newly found without a record is said once, as a
   * notice to clients (and the log), and delivered once to its job's channels or config alerts.
   */
  async selfAudit(): Promise<AuditReport> {
    const report = this.audit({ limit: 1000 });
    for (const a of report.jobs) {
      const fresh = a.unaccounted_at.filter((t) => !this.reported.has(`${a.job_id}@${t}`));
      if (!fresh.length) continue;
      for (const t of fresh) this.reported.add(`${a.job_id}@${t}`);
      const job = this.jobs.get(a.job_id);
      const label = a.name ?? a.job_id;
      const title = `${a.unaccounted} occurrence${a.unaccounted === 1 ? "" : "s"} of ${label} ha${a.unaccounted === 1 ? "s" : "ve"} no record`;
      this.events.emit("notice", "warning", `Audit: ${title}: ${fresh.join(", ")}.`, { job_id: a.job_id, unaccounted_at: fresh });
      const channels = job?.deliver_to.length ? job.deliver_to : this.config.alerts;
      if (job && channels.length && this.notifier.alert) {
        const attempts = await this.notifier.alert(
          channels,
          job,
          title,
          `Due with no record (agent-cron audit ${label}):\n${fresh.map((t) => `- ${t}`).join("\n")}`,
        );
        const refused = attempts.filter((d) => !d.ok);
        if (refused.length)
          this.events.emit(
            "notice",
            "error",
            `The audit's alert for ${label} was not delivered: ${refused.map((d) => `${d.channel}: ${d.error}`).join("; ")}`,
            { job_id: a.job_id },
          );
      }
    }
    return report;
  }

  // Jobs

  executor(name: string): Executor {
    const e = this.executors.get(name);
    if (!e) throw new UserError(`Unknown executor "${name}"; the config defines: ${this.executors.names().join(", ") || "none"}.`);
    return e;
  }

  executorNames(): string[] {
    return this.executors.names();
  }

  /** Finds a job by id, name, or the unique start of its id (8 characters or more, as the CLI prints). */
  resolveJob(ref: string): Job {
    return resolveJob(this.jobs, ref);
  }

  /** The job's executor: the one it names, or the config's default_executor at this moment. */
  executorOf(job: Job): string {
    return job.executor ?? this.config.default_executor;
  }

  /**
   * The one way a stored job changes: `fn` is applied to the newest copy (in a fleet, the
   * stored row, under its lock) and returns the fields to change, or null for none; `enabled`
   * and `updated_at` follow.
   */
  private async change(id: string, fn: (job: Job) => Partial<Job> | null): Promise<{ job: Job; changed: boolean } | undefined> {
    const result = await this.jobs.update(id, (current) => {
      const fields = fn(current);
      if (!fields) return null;
      return withDerivedFields({ ...current, ...fields, updated_at: toIsoInZone(new Date(this.clock.now()), current.timezone) });
    });
    if (result?.changed) this.events.emit("job", result.job, "updated");
    return result;
  }

  /**
   * A run's bookkeeping on its job. A change that leaves every field as it is (a run that
   * completed after one that completed) writes nothing: on a shared store that is a check of
   * the row's revision instead of a write and its notification to every process.
   */
  private async updateRecord(id: string, fn: (job: Job) => Partial<Job>): Promise<Job | undefined> {
    return (
      await this.change(id, (job) => {
        const fields = fn(job);
        const same = (Object.keys(fields) as (keyof Job)[]).every((k) => Object.is(job[k], fields[k]) || JSON.stringify(job[k]) === JSON.stringify(fields[k]));
        return same ? null : fields;
      })
    )?.job;
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
    await compileSchema(input.output_schema);
    const now = this.clock.now();
    const { job: draft, schedule } = draftJob(this.definitions, input, createdBy, now);
    if (draft.name) {
      const existing = this.jobs.byName(draft.name);
      if (existing) {
        if (sameDefinition(existing, draft)) return { job: existing, created: false, warnings: [] };
        throw new UserError(`A job named "${draft.name}" already exists with a different definition; use update_cron to change it, or choose another name.`);
      }
    }
    const first = nextRuns({ ...draft, state: "active" }, schedule, 1, now)[0];
    if (!first) throw new UserError("The job would never run: its expires_at ends it before the first occurrence.");
    if (this.jobs.size >= this.config.max_jobs) {
      throw new UserError(
        `There are already ${this.jobs.size} jobs, the limit set by max_jobs in the config; remove some (completed jobs count too) or ask the operator to raise max_jobs.`,
      );
    }
    if (opts.dryRun) return { job: draft, created: true, warnings: [] };
    const mode = this.config.approval;
    if (opts.origin !== "cli" && (mode === "required" || (mode === "ask" && !opts.approved))) draft.state = "pending_approval";
    else if (opts.origin !== "cli" && mode === "ask") {
      draft.approvals = withApprovalEvent([], {
        event: "approved",
        at: draft.created_at,
        by: `the user of ${createdBy}, asked by the client`,
        via: "elicitation",
      });
    }
    let triggerToken: string | undefined;
    if (draft.trigger === "http") {
      // Shown once, in this answer; only its hash is kept.
      triggerToken = randomBytes(24).toString("base64url");
      draft.trigger_token_hash = hashToken(triggerToken);
    }
    draft.next_run_at = draft.state === "active" ? toIsoInZone(first, draft.timezone) : null;
    const job = withDerivedFields(draft);
    await this.jobs.insert(job);
    this.schedules.set(job.id, schedule);
    this.events.emit("job", job, "added");
    if (this.started) this.reschedule(job);
    return { job, created: true, warnings: await this.executorWarnings(this.executorOf(job)), triggerToken };
  }

  /** `by` names the client that asks, for the record when the change sends the job back for approval. */
  async updateJob(ref: string, rawPatch: unknown, opts: { origin?: "cli" | "mcp"; by?: string } = {}): Promise<Job> {
    const patch = parseInput(UpdateJobInput, rawPatch);
    // Before the job is read: from here to the store, no await may let another change in.
    await compileSchema(patch.output_schema);
    const { id } = this.resolveJob(ref);
    const now = this.clock.now();
    const result = await this.jobs.update(id, (current) =>
      withDerivedFields(
        patchedJob(this.definitions, current, patch, now, (candidate) => this.nextRuns(candidate, 1, now)[0], {
          origin: opts.origin,
          by: opts.by,
          nameTaken: (name) => this.jobs.byName(name) !== undefined,
        }).job,
      ),
    );
    if (!result) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
    if (patch.output_schema !== undefined) this.releaseUnusedSchemas();
    this.events.emit("job", result.job, "updated");
    if (this.started) this.reschedule(result.job);
    return result.job;
  }

  // pause, resume and approve decide on the copy they are handed by update(): in a fleet the
  // mirror may be a moment behind (another process sent the job back for approval), and a
  // decision made on it would overwrite that change.

  async pause(ref: string): Promise<Job> {
    return this.changeJob(ref, (j) => (j.state === "active" ? stopped("paused") : null));
  }

  async resume(ref: string): Promise<Job> {
    const now = this.clock.now();
    return this.changeJob(ref, (j) => {
      this.refusePending(j, "be resumed");
      if (j.state === "active") return null;
      if (j.state === "completed") throw new UserError(`Job "${j.name ?? j.id}" has completed; give it a new schedule with update_cron to run it again.`);
      // Resuming does not replay what passed while paused.
      const { fields, first } = this.activatedFromNow({ ...j, consecutive_failures: 0 }, now);
      if (!first && j.run_at !== null)
        throw new UserError(`Job "${j.name ?? j.id}" was a one-shot whose time has passed; give it a new schedule with update_cron.`);
      return { ...fields, consecutive_failures: 0 };
    });
  }

  /**
   * A person approves a job an agent made (agent-cron approve, the dashboard); no tool can.
   * `actor` says who and through what, as the edge that checked them found it (SPEC §20).
   */
  async approve(ref: string, actor: Approver = { by: "a person", via: "cli" }): Promise<Job> {
    const now = this.clock.now();
    return this.changeJob(ref, (j) => {
      if (j.state !== "pending_approval") throw new UserError(`Job "${j.name ?? j.id}" is not waiting for approval (it is ${j.state}).`);
      const at = toIsoInZone(new Date(now), j.timezone);
      return { ...this.activatedFromNow(j, now).fields, last_error: null, approvals: withApprovalEvent(j.approvals, { event: "approved", at, ...actor }) };
    });
  }

  /** A job made active with scheduling restarting from now: completed instead when nothing is left to run. */
  private activatedFromNow(j: Job, now: number): { fields: Partial<Job>; first: Date | undefined } {
    const schedule_from = toIsoInZone(new Date(now), j.timezone);
    const first = this.nextRuns({ ...j, state: "active", schedule_from }, 1, now)[0];
    const state = first ? { state: "active" as const, next_run_at: toIsoInZone(first, j.timezone) } : stopped("completed");
    return { fields: { ...state, schedule_from }, first };
  }

  /** A change decided on the job's newest copy (`fn` returns null for none), then scheduled as it now is. */
  private async changeJob(ref: string, fn: (job: Job) => Partial<Job> | null): Promise<Job> {
    const { id } = this.resolveJob(ref);
    const result = await this.change(id, fn);
    if (!result) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
    if (result.changed) this.reschedule(result.job);
    return result.job;
  }

  /**
   * A call from inside a run (agent-cron run-tools), already matched to its run by the
   * channel's token: the run's own outcome, its job's notes, and (self_service) its own
   * pause and schedule. Nothing else of the server is reachable from here.
   */
  private async runToolCall(jobId: string, runId: string, said: RunSaid, tool: RunToolName, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
    const args = parseRunToolArgs(tool, raw);
    const job = this.jobs.get(jobId);
    if (!job) throw new UserError("This run's job has been removed.");
    const at = toIsoInZone(new Date(this.clock.now()), job.timezone);
    switch (tool) {
      case "report_nothing":
        said.outcome = "quiet";
        said.note = args.reason;
        return { summary: "Recorded: nothing to report. This run ends quiet and no message goes out; end your turn now.", outcome: "quiet" };
      case "ask_person":
        said.outcome = "needs_attention";
        said.note = args.question;
        return { summary: "Your question goes to a person; this run ends as needing attention. End your turn now.", outcome: "needs_attention" };
      case "remember": {
        const updated = await this.updateRecord(jobId, (j) => ({ notes: withNote(j.notes, { at, run_id: runId, text: args.note }) }));
        const kept = updated?.notes.length ?? 0;
        return {
          summary: `Remembered. The job keeps ${kept} note${kept === 1 ? "" : "s"}; later runs get them under "Notes from earlier runs:".`,
          notes_kept: kept,
        };
      }
      case "pause_me": {
        if (!job.self_service) throw new UserError("pause_me is only for jobs with self_service: true.");
        const paused = await this.changeJob(jobId, (j) =>
          j.state === "active" ? { ...stopped("paused"), last_error: `Paused by its own run ${runId}: ${args.reason}` } : null,
        );
        return {
          summary: `Job ${paused.name ?? paused.id} is ${paused.state}; a person resumes it with agent-cron resume ${paused.name ?? paused.id}.`,
          state: paused.state,
        };
      }
      case "reschedule_me": {
        if (!job.self_service) throw new UserError("reschedule_me is only for jobs with self_service: true.");
        // A run is an agent: under approval its new schedule waits for a person (as an MCP client's would).
        const updated = await this.updateJob(jobId, { schedule: args.schedule }, { origin: "mcp", by: `its own run ${runId}` });
        const when = updated.state === "active" ? `next run ${updated.next_run_at}` : `it is ${updated.state}`;
        return {
          summary: `Job ${updated.name ?? updated.id} now runs on "${updated.schedule}"; ${when}.`,
          state: updated.state,
          next_run_at: updated.next_run_at,
        };
      }
    }
  }

  /**
   * A person turns down a job waiting for approval: it is removed, with nothing run. The job
   * record goes with it, so who rejected it is said as a notice (clients' log, stderr).
   */
  async reject(ref: string, actor: Approver = { by: "a person", via: "cli" }): Promise<string> {
    const job = this.resolveJob(ref);
    if (job.state !== "pending_approval")
      throw new UserError(`Job "${job.name ?? job.id}" is not waiting for approval (it is ${job.state}); remove it instead.`);
    const id = await this.remove(job.id);
    const at = toIsoInZone(new Date(this.clock.now()), job.timezone);
    this.events.emit(
      "notice",
      "info",
      `Job ${job.name ? `"${job.name}" (${job.id})` : job.id} was rejected by ${actor.by} through ${actor.via} at ${at}, and removed.`,
      { job_id: job.id, rejected_by: actor.by, via: actor.via, at },
    );
    return id;
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
    if (maxRunsReached(job))
      throw new UserError(`Job "${job.name ?? job.id}" has made its max_runs (${job.max_runs}); raise it with update_cron to take more events.`);
    return this.dispatcher.occur(job, { scheduledFor: null, trigger: "event", payload });
  }

  private refusePending(job: Job, what: string): void {
    if (job.state === "pending_approval") {
      throw new UserError(
        `Job "${job.name ?? job.id}" is waiting for a person's approval, so it cannot ${what}; they approve it with: agent-cron approve ${job.name ?? job.id}.`,
      );
    }
  }

  async remove(ref: string, keepRuns = false): Promise<string> {
    const job = this.resolveJob(ref);
    this.scheduler.set(job.id, null);
    await this.dispatcher.cancelJob(job.id, "Canceled because its job was removed.");
    await this.jobs.delete(job.id);
    this.schedules.delete(job.id);
    if (job.output_schema) this.releaseUnusedSchemas();
    this.ledger.delete(job.id);
    if (!keepRuns) await this.runs.removeJob(job.id);
    this.events.emit("job", job, "removed");
    return job.id;
  }

  /** Frees the compiled output_schemas no job uses any more (two jobs may share one). */
  private releaseUnusedSchemas(): void {
    if (keptOutputSchemas() === 0) return;
    const used = new Set<string>();
    for (const j of this.jobs.all()) if (j.output_schema) used.add(JSON.stringify(j.output_schema));
    forgetUnusedOutputSchemas(used);
  }

  listJobs(opts: { state?: Job["state"]; query?: string; limit?: number; cursor?: string }): Page<Job> {
    return listJobs(this.jobs, opts);
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
    const ended = await this.dispatcher.cancel(run.id);
    if (ended) return ended;
    const remote = this.parts.remoteCancel;
    if (!remote) throw new UserError(`Run ${runId} is held by another agent-cron process (pid ${run.pid}); cancel it there.`);
    // The process running it cancels it; asked again every 2 s (a process reconnecting to the
    // database can miss one request) until the record says it ended.
    const deadline = Date.now() + REMOTE_CANCEL_WAIT_MS;
    for (;;) {
      await remote.request(run.id);
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = this.runs.get(run.id);
        if (now && now.status !== "running") return now;
      }
      if (Date.now() > deadline) {
        throw new UserError(
          `Run ${run.id} is going in another agent-cron process (pid ${run.pid}), which was asked to cancel it and has not ended it within ${REMOTE_CANCEL_WAIT_MS / 1000} s; its record will say canceled when it does (or interrupted, if that process is gone).`,
        );
      }
    }
  }

  getRunRecord(runId: string): Run {
    return resolveRun(this.runs, runId);
  }

  async getRun(runId: string): Promise<RunWithOutput> {
    const run = this.getRunRecord(runId);
    // By the resolved id: `runId` may be the 8-character start that lists print.
    const text = (await this.runs.readOutput(run.id)) ?? (run.status === "running" ? null : "");
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
    return listRuns(this.jobs, this.runs, opts);
  }

  recentRuns(jobId: string, count: number): Run[] {
    return this.runs.ofJob(jobId).slice(-count).reverse();
  }

  preview(schedule: string, timezone: string | undefined, count = 5) {
    const tz = checkTimezone(timezone ?? this.config.timezone);
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

  /** Looking a program up on PATH costs a stat per PATH entry; once a minute is enough. */
  private readonly programChecks = new Map<string, { found: boolean; at: number }>();

  async executorWarnings(name: string): Promise<string[]> {
    const executor = this.executors.get(name);
    // "sandbox": "auto" where bubblewrap does not work: the model should know its job runs unconfined.
    const sandbox = (await executor?.sandboxWarning?.()) ?? null;
    return [...this.programWarnings(name, executor?.program ?? null), ...(sandbox ? [sandbox] : [])];
  }

  private programWarnings(name: string, program: string | null): string[] {
    if (!program) return [];
    let check = this.programChecks.get(program);
    if (!check || Date.now() - check.at > 60_000) {
      check = { found: this.executors.programFound(program), at: Date.now() };
      this.programChecks.set(program, check);
    }
    return check.found
      ? []
      : [
          `Executor "${name}" runs "${program}", which was not found on the server's PATH; runs will fail until the operator installs it or sets executors.${name} in the config.`,
        ];
  }
}

/** `since` of an audit: a span back from now ("7d", "24h", "30m", "2w") or an ISO time; default 7 days. */
export function parseSince(since: string | undefined, now: number): number {
  if (since === undefined || since === "") return now - 7 * 86_400_000;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$/i.exec(since);
  if (m) {
    const unit = { m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2].toLowerCase() as "m"];
    return now - Number(m[1]) * unit;
  }
  const at = Date.parse(since);
  if (Number.isFinite(at) && /^\d{4}-\d{2}-\d{2}/.test(since)) return Math.min(at, now);
  throw new UserError(`since "${since}" is neither a span back from now (such as 7d, 24h, 30m) nor an ISO time (such as 2026-12-01T00:00Z).`);
}
