import pLimit from "p-limit";
import type { Config } from "../config.js";
import { chainedJobs } from "./chain.js";
import { Dispatcher } from "./dispatcher.js";
import { UserError, errorMessage } from "../kernel/errors.js";
import { AppEventBus } from "./events.js";
import { legacyNameProblem, type DeliveryChecks } from "./job-definitions.js";
import { afterNotRun, caughtUpFields, stopped, withDerivedFields } from "./job-rules.js";
import { JobService } from "./job-service.js";
import { JobWriter } from "./job-writer.js";
import type { Job, Run } from "./jobs.js";
import { LATE_MS, brokenJobProblem, handledUntil, nextRuns, planCatchUp, sameTimeline, type CatchUpPlan } from "./planner.js";
import type {
  CheckProcessResult,
  ExecutionRequest,
  Executor,
  ExecutorRegistry,
  JobRepo,
  Notifier,
  OccurrenceQueue,
  OrphanFinder,
  RunRepo,
  RunToolsPort,
} from "./ports.js";
import { runToolsOf, type RunSaid, type RunToolName } from "./run-tools.js";
import { Queries } from "./queries.js";
import { FleetScheduler, systemClock, type Clock } from "./scheduler.js";
import { scheduleOfJob, type ParsedSchedule } from "./schedule.js";
import { toIsoInZone } from "../kernel/time.js";
import { deliveryTargets } from "./delivery-plan.js";
import { ClockWatch, SAMPLE_EVERY_MS, type ClockSample } from "./clock-watch.js";
import { MAX_SCHEDULE_HISTORY, RecordIndexCache, type AuditReport } from "./ledger.js";

export type { Page } from "./queries.js";
export type { Approver } from "./job-service.js";

/**
 * agent-cron's core, as every transport reaches it (core/api.ts composes it into the one API):
 * three parts with one job each, built together by createApp. No MCP here; errors meant for
 * callers are UserErrors with one clear sentence.
 */
export interface App {
  /** The process's engine: start and close, the fleet timer, occurrences and runs, recovery, health. */
  readonly runtime: Runtime;
  /** The commands: add, update, pause, resume, approve, reject, remove, run now, cancel, events. */
  readonly jobs: JobService;
  /** The answers: jobs, runs, previews, the audit, the dashboard's pictures. */
  readonly queries: Queries;
}

/**
 * Builds the App over a backend's parts: the runtime first (it pauses stored jobs that can no
 * longer be scheduled and records runs left `running` by a process that is gone as
 * interrupted), then the queries and the commands over it. The runtime reaches the other two
 * only through the links it is handed: the self-audit, and the job changes a run's own tools
 * make.
 */
export async function createApp(parts: AppParts): Promise<App> {
  const events = new AppEventBus();
  const writer = new JobWriter(parts.jobs, parts.clock ?? systemClock, events);
  const ledger = new RecordIndexCache();
  let app: App | undefined;
  const runtime = await Runtime.create(parts, {
    events,
    writer,
    ledger,
    audit: (opts) => app!.queries.audit(opts),
    runToolCall: (...call) => app!.jobs.runToolCall(...call),
  });
  const queries = new Queries(runtime, ledger);
  const jobs = new JobService(runtime, queries, writer, {
    env: parts.env ?? process.env,
    forbiddenWorkDirs: [parts.dataDir, parts.workRoot],
    deliveryChecks: parts.deliveryChecks,
    remoteCancel: parts.remoteCancel,
  });
  app = { runtime, jobs, queries };
  return app;
}

/** What the runtime shares with the job service and the queries, and reaches them by (see createApp). */
export interface RuntimeLinks {
  events: AppEventBus;
  writer: JobWriter;
  /** Each job's audit index: dropped here when a run of the job changes or the job goes. */
  ledger: RecordIndexCache;
  audit(opts: { limit: number }): AuditReport;
  runToolCall(jobId: string, runId: string, said: RunSaid, tool: RunToolName, args: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** In a fleet, a chained run owed this long after its upstream ended is started by whoever finds it. */
const CHAIN_SETTLE_MS = 10_000;
/** Jobs caught up at once at start-up (see start). */
const CATCH_UP_AT_ONCE = 64;
/** Jobs armed at start-up between two turns of the event loop (~10 ms of CPU on this machine). */
const ARM_SLICE = 5_000;

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
  /** cancel_run of a run another process of a fleet runs: asks it (see JobService.cancelRun). */
  remoteCancel?: { request(runId: string): Promise<void>; onRequest(listener: (runId: string) => void): void };
}

/**
 * The runtime: start and close, the fleet timer, firing, occurrences and their runs, recovery
 * at start-up and in a fleet, the self-audit's timer, health. The decisions live beside it
 * (planner: when; job-rules: state transitions; job-definitions: what a job may be); the
 * commands are the job service's (job-service.ts) and the answers the queries' (queries.ts).
 * This class applies the decisions: the writes in the order that keeps them safe.
 */
export class Runtime {
  readonly events: AppEventBus;
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
  private readonly writer: JobWriter;
  private readonly ledger: RecordIndexCache;

  private constructor(
    private readonly parts: AppParts,
    private readonly links: RuntimeLinks,
  ) {
    this.events = links.events;
    this.writer = links.writer;
    this.ledger = links.ledger;
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
      updateJob: (id, change) => this.writer.updateRecord(id, change),
      killProcessGroups: parts.killProcessGroups,
      exclusive: parts.exclusive,
      chainedAfter: (job, run) => chainedJobs(this.jobs.all(), job.id, run),
      runCheck: (executor, argv, req) => (executor.runCheck ? executor.runCheck(argv, req) : parts.runCheck(argv, req)),
      openRunTools: parts.runTools
        ? (job, run, said, dir) =>
            parts.runTools!.open({ runId: run.id, jobId: job.id, dir, tools: runToolsOf(job) }, (tool, args) =>
              links.runToolCall(job.id, run.id, said, tool as RunToolName, args),
            )
        : undefined,
      queue: parts.queue,
      armAfter: (job, at) => {
        this.reschedule(job, at);
        return this.scheduler.nextFor(job.id);
      },
      retryLater: (jobId) => this.retryLater(jobId),
      missedReason: (at, job) => this.missedReason(at, job),
      syncNextRun: (jobId) => this.syncNextRun(jobId),
      warn: (jobId, err) => this.warn(jobId, err),
      deliver: (run, given) => this.notifier.deliver(run, given),
      // A crash test kills the process at a named point (e.g. between a run's final record and
      // the start of its chained runs); nothing sets it outside tests.
      fault: (point) => {
        if (this.env.AGENT_CRON_FAULT === point) process.kill(process.pid, "SIGKILL");
      },
      waitBehind: parts.queue.waitBehind?.bind(parts.queue),
      fleetSlot: parts.queue.fleetSlot?.bind(parts.queue),
    });
    this.queue.consume((jobId, occ) => this.dispatcher.taken(jobId, occ));
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
      this.events.emit("run", run, run.status === "running" ? "started" : "finished", this.jobs.get(run.job_id), true);
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
  static async create(parts: AppParts, links: RuntimeLinks): Promise<Runtime> {
    const app = new Runtime(parts, links);
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
      // In a fleet this process wrote the ending of another's run: it is the one to log it and
      // tell its clients (the others hear it as elsewhere, and a process logs only its own runs).
      if (!this.parts.exclusive) this.events.emit("run", ended, "finished", job);
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
      // A backlog's newest occurrence, not started yet: start() runs it (resumeBacklogs).
      if (job.backlog_due.includes(at)) continue;
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
    // In slices, the event loop turning between them: a tool call that came during start-up is
    // answered meanwhile (the host serves calls once the store is loaded and runs left going
    // are recorded interrupted), instead of after arming 100,000 jobs. A call may change or
    // remove a job between slices, so each is looked up again; a job it added is armed by it.
    const ids = [...this.jobs.all()].map((job) => job.id);
    const behind: Job[] = [];
    for (let i = 0; i < ids.length; i += ARM_SLICE) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.closed) return;
      for (const id of ids.slice(i, i + ARM_SLICE)) {
        const job = this.jobs.get(id);
        if (job?.backlog_due.length && this.parts.exclusive) this.resumeBacklog(job);
        if (job?.state === "active" && !this.armStored(job)) behind.push(job);
      }
    }
    // Side by side, CATCH_UP_AT_ONCE at a time, so that their writes share syncs: one after
    // another, a restart after ten minutes down took 56 ms a job of every-minute jobs (a sync
    // for the job and one for each missed record), 65 s for 2,000. Each job's own records
    // still go in order; a wake from sleep catches every job up at once the same way (onDue).
    // After a failure none starts; those going finish, then start() fails with the first error.
    const limit = pLimit(CATCH_UP_AT_ONCE);
    let failed: unknown = null;
    const catchUpOne = async (stale: Job): Promise<void> => {
      const job = this.jobs.get(stale.id);
      if (failed !== null || job?.state !== "active") return;
      try {
        await this.catchUp(job, caughtUpTo);
      } catch (err) {
        failed ??= err;
        return;
      }
      this.reschedule(this.jobs.get(job.id));
    };
    await Promise.all(behind.map((job) => limit(catchUpOne, job)));
    if (failed !== null) throw failed;
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
    // Occurrences taken meanwhile, or waiting out their jitter, are handed over and recorded
    // skipped (the dispatcher no longer starts any): each was marked handled, so none is lost.
    this.dispatcher.stopAdmitting();
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

  /**
   * Arms a job at start-up from the next_run_at its file holds, when that is still ahead and
   * after the last occurrence handled: nothing was missed (catch-up would find nothing), and it
   * is the occurrence reschedule would compute, written with the change that last moved it (a
   * take, an update, a resume). Asking croner again for each of 100,000 jobs was a third of
   * start(). Jobs whose next occurrence also depends on expires_at or max_runs are computed.
   */
  private armStored(job: Job): boolean {
    // Not in a fleet: another process's syncNextRun may have stored the occurrence after one
    // whose take was still in flight and then failed (a Postgres restart); armed from it, that
    // one would never be taken (3 such were unaccounted in one chaos run).
    if (!this.parts.exclusive) return false;
    if (job.next_run_at === null || job.expires_at !== null || job.max_runs !== null) return false;
    const at = Date.parse(job.next_run_at);
    if (!(at > this.clock.now()) || at <= handledUntil(job)) return false;
    this.scheduler.set(job.id, at);
    return true;
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
    void this.dispatcher.take(job, at).catch((err) => this.warn(jobId, err));
  }

  /** Arms a job again in a second from what is handled then (a take or catch-up failed). */
  private retryLater(jobId: string): void {
    this.scheduler.set(jobId, null);
    this.clock.setTimer(() => {
      if (!this.dispatcher.isClosing) this.reschedule(this.jobs.get(jobId));
    }, 1000);
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
    // some of these occurrences (or caught up) since this copy was read. The same copy (jobs
    // are replaced, never changed in place) has the same plan: croner's steps are most of it.
    const first = plan;
    let named: string[] = [];
    const taken = await this.change(job.id, (j) => {
      plan = j === job ? first : planFor(j);
      if (!plan || handledUntil(j) >= plan.newest) return null;
      // A backlog lives in memory: named on the job with the same write, so that a kill -9
      // before its last run starts loses none of it (start() runs those left without a record).
      named = plan.run.length > 1 ? plan.run.map((t) => toIsoInZone(new Date(t), j.timezone)) : [];
      return { ...caughtUpFields(plan, j.timezone), ...(named.length ? { backlog_due: [...j.backlog_due, ...named] } : {}) };
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
    this.runBacklog(job.id, plan.run, named);
  }

  /**
   * A backlog (catch_up: all) is the job's own queue: its runs go one after another, oldest
   * first, whatever overlap says (each waits for the previous backlog run only, so live
   * occurrences under overlap allow cannot starve it), and in the background, so start-up and
   * the other jobs do not wait for it. Once each has its record the job stops naming them
   * (`named`, its entries in backlog_due).
   */
  private runBacklog(jobId: string, times: number[], named: readonly string[]): void {
    void this.dispatcher
      .backlog(jobId, times)
      .catch((err) => this.warn(jobId, err))
      .then(() => {
        if (this.dispatcher.isClosing) return;
        return this.updateRecord(jobId, (j) => ({ backlog_due: j.backlog_due.filter((t) => !named.includes(t)) }));
      })
      .catch((err) => this.warn(jobId, err));
  }

  /**
   * A backlog a stopped process left (kill -9 before its last run started): each occurrence
   * without a record runs now (or is recorded, if its job is no longer active); one that
   * started has its record (interrupted at open if it was going) and never runs again.
   */
  private resumeBacklog(job: Job): void {
    const recorded = new Set(this.runs.ofJob(job.id).map((r) => r.scheduled_for));
    const left = job.backlog_due.filter((t) => !recorded.has(t)).map((t) => Date.parse(t));
    this.runBacklog(job.id, left, job.backlog_due);
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
  warn(jobId: string, err: unknown): void {
    const why = errorMessage(err);
    const now = this.clock.now();
    const last = this.said.get(why);
    if (last !== undefined && now - last < 60_000) return;
    if (this.said.size > 1000) this.said.clear();
    this.said.set(why, now);
    this.events.emit("notice", "error", `Job ${jobId}: ${why}`, { job_id: jobId });
  }

  // The self-audit (SPEC §18)

  private auditTimer: unknown = null;
  /** Unaccounted occurrences already reported by the self-audit ("job id@time"), so each is said once. */
  private readonly reported = new Set<string>();

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
    const report = this.links.audit({ limit: 1000 });
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

  // What the job service and the queries ask of the running process

  /** A job added or changed: armed as it now is (once the timer runs); `schedule` is its parsed schedule, when known. */
  arm(job: Job, schedule?: ParsedSchedule): void {
    if (schedule) this.schedules.set(job.id, schedule);
    if (this.started) this.reschedule(job);
  }

  /** A job going away: nothing more is armed for it, and its runs are canceled. */
  async stopJob(jobId: string, reason: string): Promise<void> {
    this.scheduler.set(jobId, null);
    await this.dispatcher.cancelJob(jobId, reason);
  }

  /** A removed job's parsed schedule and audit index go with it. */
  forgetJob(jobId: string): void {
    this.schedules.delete(jobId);
    this.ledger.delete(jobId);
  }

  /** A run of the job now, whatever its overlap policy (run_now). */
  runNow(job: Job): Promise<Run> {
    return this.dispatcher.start(job, { scheduledFor: null, trigger: "manual" });
  }

  /** A run for an event (POST /hooks), under the job's overlap policy: null when queued behind the one going. */
  runEvent(job: Job, payload: string): Promise<Run | null> {
    return this.dispatcher.occur(job, { scheduledFor: null, trigger: "event", payload });
  }

  /** Cancels a run of this process; null when this process does not run it. */
  cancel(runId: string): Promise<Run | null> {
    return this.dispatcher.cancel(runId);
  }

  /** The run's end, while this process runs it; null otherwise. */
  whenDone(runId: string): Promise<Run> | null {
    return this.dispatcher.whenDone(runId);
  }

  /** Occurrences of the job waiting now (queued behind a run, waiting out jitter). */
  waiting(jobId: string): ReadonlySet<number> | undefined {
    return this.dispatcher.waiting(jobId);
  }

  executor(name: string): Executor {
    const e = this.executors.get(name);
    if (!e) throw new UserError(`Unknown executor "${name}"; the config defines: ${this.executors.names().join(", ") || "none"}.`);
    return e;
  }

  /**
   * The one way a stored job changes (job-writer.ts), shared with the job service; the runtime
   * makes a run's bookkeeping, catch-up and expiry through it.
   */
  private change(id: string, fn: (job: Job) => Partial<Job> | null): Promise<{ job: Job; changed: boolean } | undefined> {
    return this.writer.change(id, fn);
  }

  private updateRecord(id: string, fn: (job: Job) => Partial<Job>): Promise<Job | undefined> {
    return this.writer.updateRecord(id, fn);
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
