import { createHash, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import pLimit, { type LimitFunction } from "p-limit";
import type { Config } from "../config.js";
import { chainRunId, upstreamSection } from "./chain.js";
import {
  STORED,
  type CheckProcessResult,
  type Delivered,
  type Executor,
  type ExecutionRequest,
  type ExecutionResult,
  type Occurrence,
  type OccurrenceQueue,
  type PutOutcome,
  type RunRepo,
  type RunToolsHandle,
} from "./ports.js";
import type { RunSaid } from "./run-tools.js";
import { errorMessage } from "../kernel/errors.js";
import type { AppEventBus } from "./events.js";
import { CHECK_NOTHING_TO_DO, maxRunsReached, newRun, type Job, type Run, type RunStatus, type Usage } from "./jobs.js";
import { deliveryTargets } from "./delivery-plan.js";
import { afterNotRun, afterRun, whyNotRun } from "./job-rules.js";
import { contextLine, jitterDelayMs } from "./prompt-context.js";
import { checkOutput, cutUtf8 } from "./output.js";
import type { Clock } from "./scheduler.js";
import { startOfDayInZone, toIsoInZone } from "../kernel/time.js";
import { makePrivateDir, resolveWorkDir } from "./work-dirs.js";

/** What the dispatcher needs from the app: the job set and how to save a job. */
export interface DispatchHost {
  readonly config: Config;
  readonly dataDir: string;
  /** Where runs without a work_dir get their own folder (outside the data dir). */
  readonly workRoot: string;
  readonly runs: RunRepo;
  readonly events: AppEventBus;
  readonly clock: Clock;
  executor(name: string): Executor;
  getJob(id: string): Job | undefined;
  /** Applies a change to the newest copy of a job and stores it; undefined if the job is gone. */
  updateJob(id: string, change: (job: Job) => Partial<Job>): Promise<Job | undefined>;
  /** The App's own flag (AppParts.exclusive): false when other processes run this store's jobs too (postgres), so overlap counts their runs. */
  readonly exclusive: boolean;
  /** queue_one on a shared store: the store keeps the occurrence queued (see OccurrenceQueue.waitBehind). */
  waitBehind?(jobId: string, occ: Occurrence & { scheduledFor: number }): Promise<boolean>;
  /** fleet_max_concurrent: room in the fleet for one attempt (see OccurrenceQueue.fleetSlot). */
  fleetSlot?(run: Run, signal: AbortSignal): Promise<() => void>;
  /** Kills what is left of this App's runs at close (their process groups), and no other App's. */
  killProcessGroups(): void;
  /** The active jobs chained after `job` that `run`'s ending starts (see chain.ts). */
  chainedAfter(job: Job, run: Run): string[];
  /** Runs a gate check's program for a run, in that run's sandbox when its executor has one. */
  runCheck(executor: Executor, argv: string[], req: ExecutionRequest): Promise<CheckProcessResult>;
  /**
   * Opens a run's own tools channel (report_nothing, remember, …) in `dir`; `said` receives
   * what the agent says of its run. Null (or absent) when this App offers no run tools.
   */
  openRunTools?(job: Job, run: Run, said: RunSaid, dir: string): Promise<RunToolsHandle | null>;
  /** Where scheduled occurrences are taken for the fleet; the queue hands each back to `taken`. */
  readonly queue: Pick<OccurrenceQueue, "take">;
  /** Arms the job's next occurrence after `at` (the fleet timer); the time armed, or null. */
  armAfter(job: Job, at: number): number | null;
  /** A take failed: the job is armed again in a moment from what is handled then. */
  retryLater(jobId: string): void;
  /** Why an occurrence was missed: the gap it fell into (host asleep, clock changed) or the server not running. */
  missedReason(at: number, job: Job): string;
  /** Writes the job's next_run_at as the fleet timer now has it. */
  syncNextRun(jobId: string): Promise<void>;
  /** An occurrence that could not be taken or run (said at most once a minute per sentence). */
  warn(jobId: string, err: unknown): void;
  /**
   * The pipeline's last step: a run's final record, as just stored, goes to the Notifier
   * (channels, webhooks), which merges each target's attempts into the stored run.
   */
  deliver(run: Run, given: Delivered): void;
  /** Test seam for crash tests: named points where a fault may be injected (AGENT_CRON_FAULT). */
  fault?(point: string): void;
}

/**
 * The record stage's outcome, as the store decided it (nothing is guessed from identities):
 * `stored`, this record is the run's; `superseded`, another record stands (a fleet process took
 * the run over, or recorded this chained run first); `deferred`, the store refused the write,
 * so the record is kept and written again every few seconds, and what follows it waits.
 */
export type Recorded = { kind: "stored"; run: Run } | { kind: "superseded"; by: Run } | { kind: "deferred"; run: Run };

/**
 * The gate's outcome for an occurrence already taken: it runs, or it is recorded as not run
 * (missed, skipped, declined) with the reason; either way it ends in one record (SPEC §18).
 */
export type Admission = { kind: "run" } | { kind: "not_run"; status: RunStatus; why: string };

/** What follows a run's record once it is stored (the job's change, chained runs, delivery). */
type AfterRecord = (run: Run) => Promise<void>;

interface ActiveRun {
  run: Run;
  controller: AbortController;
  /** Why it was aborted, which decides its final status. */
  abortStatus: "canceled" | "interrupted" | null;
  abortReason: string | null;
  done: Promise<Run>;
  /**
   * Its program has ended (its output and final record are being written): it no
   * longer counts as going for the next occurrence's overlap decision, though it stays tracked
   * until that record is stored.
   */
  exited: boolean;
  /** Its ending pauses its job (pause_after_failures): set with `exited`. */
  pausesJob?: boolean;
}

/** How often run records that could not be written are tried again. */
const REWRITE_EVERY_MS = 5000;
/** Retries of one run wait at most this long in all. */
const MAX_TOTAL_BACKOFF_MS = 3_600_000;
/** sha256 of the empty string: most fleet runs (a `true`, a check with nothing to say) print nothing, and a hash object costs. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const sha256Hex = (text: string): string => (text === "" ? EMPTY_SHA256 : createHash("sha256").update(text).digest("hex"));

/**
 * One occurrence's life: overlap policy, the daily budget, the concurrency slots, attempts
 * with retries and timeouts, and the final record. Every status change is written before
 * it is announced.
 */
export class Dispatcher {
  private readonly limit: LimitFunction;
  private readonly heavy = pLimit(1);
  private readonly active = new Map<string, Set<ActiveRun>>();
  private readonly queued = new Map<string, Occurrence>();
  private readonly byRunId = new Map<string, ActiveRun>();
  private closing = false;
  private budget = { dayStart: 0, spent: 0, noticeSentFor: 0 };
  private spendSeeded = false;

  constructor(private readonly host: DispatchHost) {
    this.limit = pLimit(host.config.max_concurrent);
  }

  /** A new max_concurrent (config reload): runs waiting for a slot see it at once. */
  setConcurrency(n: number): void {
    this.limit.concurrency = n;
  }

  get activeCount(): number {
    return this.byRunId.size;
  }

  /** Runs going, runs waiting (for a concurrency slot, or behind their job's run), and records not yet written. */
  get load(): { running: number; queued: number; unwritten: number } {
    const waiting = this.limit.pendingCount;
    return { running: Math.max(0, this.byRunId.size - waiting), queued: waiting + this.queued.size, unwritten: this.unwritten.size };
  }

  // One occurrence, top to bottom: take → taken (admit) → occur (overlap) → start → execute
  // (gate check, attempts) → finish → record → ended (the job, chained runs) → settle (clients
  // hear, delivery). Each stage hands the next what it made; none reads a run back.

  /**
   * Take: one scheduled occurrence, marked handled for the fleet (so it never runs twice) and
   * queued to run after its share of the jitter; the queue hands it back to `taken`. Resolves to
   * the job as the take left it, or null when another process took the occurrence first.
   */
  async take(job: Job, at: number): Promise<Job | null> {
    // Jitter spreads recurring fleets; a one-shot runs at its time.
    const delay = job.run_at === null ? jitterDelayMs(job.id, at, job.jitter_seconds) : 0;
    // Past `at` even if the take fails (disk full): never spin on one occurrence. Armed first,
    // the job's next run is known and written with the take (see takenFields).
    const next = this.host.armAfter(job, at);
    const nextRunAt = next === null ? null : toIsoInZone(new Date(next), job.timezone);
    let taken: Job | null;
    try {
      taken = await this.host.queue.take(job, { scheduledFor: at, trigger: "schedule", nextRunAt }, delay);
    } catch (err) {
      // Not taken: armed again in a moment from what is handled then, so this occurrence is
      // tried again (or caught up) rather than passed over. (On files, a take written but not
      // confirmed is handled all the same, and the queue has handed it over: see LocalQueue.take.)
      this.host.retryLater(job.id);
      throw err;
    }
    if (taken) this.host.events.emit("job", taken, "updated");
    return taken;
  }

  /** A taken occurrence, handed back by the queue (after its jitter, or by a fleet worker). */
  taken(jobId: string, occ: Occurrence): Promise<void> {
    const handling = this.admitTaken(jobId, occ);
    this.handling.add(handling);
    void handling.finally(() => this.handling.delete(handling));
    return handling;
  }

  /** Taken occurrences being admitted, started or recorded: close() waits for them. */
  private readonly handling = new Set<Promise<void>>();

  private async admitTaken(jobId: string, occ: Occurrence): Promise<void> {
    try {
      let job = this.host.getJob(jobId);
      if (!job) return;
      // A run whose program has ended while its record is written no longer holds the next
      // occurrence back, unless that ending pauses the job (pause_after_failures): then the
      // occurrence waits for it (the record's sync) and is admitted against the paused job,
      // instead of starting the run one too many (pause_after_failures: 2 let a third start).
      const pausing = [...(this.active.get(jobId) ?? [])].filter((a) => a.exited && a.pausesJob);
      if (pausing.length) {
        await Promise.allSettled(pausing.map((a) => a.done));
        job = this.host.getJob(jobId);
        if (!job) return;
      }
      const admission = this.admit(job, occ);
      if (admission.kind === "not_run") {
        await this.recordNotRun(job, occ, admission.status, admission.why);
        return;
      }
      if (occ.backlog) await this.startOccurrence(job, occ);
      else await this.occur(job, occ);
      await this.host.syncNextRun(jobId);
    } catch (err) {
      this.host.warn(jobId, err);
    }
  }

  /**
   * Admit: whether a taken occurrence still runs. Missed (a fleet's catch-up queues what it only
   * records too, see OccurrenceQueue.takeCatchUp); its job paused, changed or sent back for
   * approval meanwhile, or the server closing: it was taken, so it gets its record without running.
   */
  private admit(job: Job, occ: Occurrence): Admission {
    if (occ.missed && occ.scheduledFor !== null) return { kind: "not_run", status: "missed", why: this.host.missedReason(occ.scheduledFor, job) };
    if (this.closing) return { kind: "not_run", status: "skipped", why: "The server stopped before this occurrence could start." };
    const not = whyNotRun(job, occ.scheduledFor);
    return not ? { kind: "not_run", status: not.status, why: not.why } : { kind: "run" };
  }

  /**
   * A catch-up backlog (catch_up: all) is the job's own queue: its runs go one after another,
   * oldest first, whatever overlap says (each waits for the previous backlog run only, so live
   * occurrences under overlap allow cannot starve it).
   */
  async backlog(jobId: string, times: number[]): Promise<void> {
    // What is left of it is pending (the audit says so) until each starts; a stop records the
    // rest (close), since the job's last_scheduled_for has already moved past them. Two
    // backlogs of one job (a restart's and a new catch-up's) never share an occurrence.
    const left = this.backlogs.get(jobId) ?? new Set<number>();
    this.backlogs.set(jobId, left);
    for (const t of times) left.add(t);
    try {
      for (const t of times) {
        const job = this.host.getJob(jobId);
        if (job?.state !== "active" || this.closing || this.pastMaxRuns(job)) return;
        // Out of `left` before the start's first await: a stop from then on finds it running, not left.
        left.delete(t);
        const run = await this.start(job, { scheduledFor: t, trigger: "catch_up" });
        await this.whenDone(run.id);
      }
    } finally {
      const given = times.filter((t) => left.delete(t));
      if (!left.size && this.backlogs.get(jobId) === left) this.backlogs.delete(jobId);
      // Given up (job paused or removed, a start refused): each still gets its one record.
      if (given.length && !this.closing) await this.recordBacklogLeft(jobId, given);
    }
  }

  /** Caught-up occurrences (catch_up: all) of each job not started yet. */
  private readonly backlogs = new Map<string, Set<number>>();

  private async recordBacklogLeft(jobId: string, left: Iterable<number>): Promise<void> {
    const job = this.host.getJob(jobId);
    if (!job) return;
    const why = this.closing
      ? "The server stopped before this caught-up occurrence could start (catch_up: all)."
      : `This caught-up occurrence did not start: its job ${job.state === "active" ? "reached max_runs" : `is ${job.state}`} (catch_up: all).`;
    for (const t of [...left].sort((a, b) => a - b)) await this.recordNotRun(job, { scheduledFor: t, trigger: "catch_up" }, "skipped", why);
  }

  /** Overlap: a scheduled, caught-up, event or chained occurrence of a job, under its overlap policy. */
  async occur(job: Job, occ: Occurrence): Promise<Run | null> {
    if (this.pastMaxRuns(job)) return null;
    const running = this.going(job.id);
    const here = running.length > 0;
    const elsewhere = job.overlap !== "allow" && this.runningElsewhere(job.id);
    if (job.overlap !== "allow" && (here || elsewhere)) {
      if (job.overlap === "queue_one") {
        const behind = "A run was already queued behind the one still going (overlap: queue_one).";
        if (occ.scheduledFor !== null && this.host.waitBehind) {
          // The store keeps it queued (a crash does not lose it) and hands it back when the run ends.
          let waits: boolean;
          try {
            waits = await this.host.waitBehind(job.id, { ...occ, scheduledFor: occ.scheduledFor });
          } catch (err) {
            // The store could not queue it (the server is stopping): it was taken, so it gets its record.
            return this.recordNotRun(job, occ, "skipped", `It could not be queued behind the run still going (overlap: queue_one): ${errorMessage(err)}`);
          }
          return waits ? null : this.recordNotRun(job, occ, "skipped", behind);
        }
        if (this.queued.has(job.id)) return this.recordNotRun(job, occ, "skipped", behind);
        if (here) {
          this.queued.set(job.id, occ);
          return null;
        }
      }
      // Another process's run cannot be queued behind or replaced from here.
      if (!here) return this.recordNotRun(job, occ, "skipped", `The previous run was still going on another agent-cron process (overlap: ${job.overlap}).`);
      if (job.overlap === "skip") return this.recordNotRun(job, occ, "skipped", "The previous run was still going (overlap: skip).");
      if (job.overlap === "replace") {
        await Promise.all(running.map((a) => this.abort(a, "canceled", "Replaced by a newer occurrence (overlap: replace).")));
      }
    }
    return this.start(job, occ);
  }

  private runningElsewhere(jobId: string): boolean {
    return !this.host.exclusive && this.host.runs.ofJob(jobId).some((r) => r.status === "running" && !this.byRunId.has(r.id));
  }

  /**
   * A scheduled occurrence that overlap does not govern (a catch-up backlog runs one after
   * another); null when the job has already started its last allowed run.
   */
  async startOccurrence(job: Job, occ: Occurrence): Promise<Run | null> {
    return this.pastMaxRuns(job) ? null : this.start(job, occ);
  }

  /**
   * With overlap allow, or a backlog, an occurrence armed before the job's last allowed run
   * started must not be one too many: checked on the newest copy of the job.
   */
  private pastMaxRuns(job: Job): boolean {
    return maxRunsReached(this.host.getJob(job.id) ?? job);
  }

  /** Starts a run and returns its `running` record once that is on disk; the run goes on. */
  async start(job: Job, occ: Occurrence): Promise<Run> {
    const overBudget = this.budgetExceeded();
    if (overBudget) return this.recordNotRun(job, occ, "skipped", overBudget);

    const now = this.host.clock.now();
    const run = newRun(job, occ, {
      started_at: toIsoInZone(new Date(now), job.timezone),
      executor: job.executor ?? this.host.config.default_executor,
      session_id: job.session === "persistent" && job.session_id ? job.session_id : randomUUID(),
      pid: process.pid,
    });
    run.work_dir = this.workDirOf(job, run.id);
    const active: ActiveRun = {
      run,
      controller: new AbortController(),
      abortStatus: null,
      abortReason: null,
      done: Promise.resolve(run),
      exited: false,
    };
    this.track(active);
    try {
      const first = await this.put(run, occ);
      if (first.kind === "superseded") {
        this.untrack(active);
        return first.by;
      }
    } catch (err) {
      // No agent starts without its record; the job must not stay "running" for ever either.
      this.untrack(active);
      const at = toIsoInZone(new Date(this.host.clock.now()), job.timezone);
      const failed: Run = {
        ...run,
        status: "failed",
        finished_at: at,
        duration_ms: 0,
        error: `The run did not start: its record could not be written (${errorMessage(err)}).`,
      };
      this.recordLater(failed, err, async (r) => this.settle(r, this.host.getJob(r.job_id)));
      throw err;
    }
    const jobNow = await this.host
      .updateJob(job.id, (j) => ({ run_count: j.run_count + 1, last_run_at: run.started_at }))
      .catch((err) => {
        this.writeFailed(`Job ${job.name ?? job.id}: its run count could not be saved`, err);
        return undefined;
      });
    this.host.events.emit("run", run, "started", jobNow ?? job);
    active.done = this.execute(jobNow ?? job, active)
      .catch((err) => {
        // execute records every ending itself; this is the last net, so that a failure here
        // is reported instead of ending the process as an unhandled rejection.
        this.writeFailed(`Run ${run.id}`, err);
        return active.run;
      })
      .finally(() => {
        this.untrack(active);
        this.releaseQueued(job.id);
      });
    return run;
  }

  /** Runs the attempts of a started run and records how it ended. */
  private async execute(job: Job, active: ActiveRun): Promise<Run> {
    const { run, controller } = active;
    const signal = controller.signal;
    let result: ExecutionResult | null = null;
    let checkedValue: unknown = null;
    let attempts = 0;
    let failure: string | null = null;
    let nothingToDo = false;
    let tools: RunToolsHandle | null = null;
    const said: RunSaid = { outcome: null, note: null };
    let executorType = "";
    try {
      const workDir = run.work_dir ?? this.workDirOf(job, run.id);
      if (!job.work_dir) {
        makePrivateDir(this.host.workRoot);
        // Synchronous: one mkdir is microseconds, while the async one queued behind a fleet's
        // fdatasyncs on libuv's pool (fs round trips of 0.2-1.3 s) and held the run's start.
        mkdirSync(workDir, { recursive: true, mode: 0o700 });
      }
      // This process's slot first, then the fleet's: a run waiting here holds no room in the fleet.
      const inFleet =
        <T>(fn: () => Promise<T>) =>
        async (): Promise<T> => {
          const release = (await this.host.fleetSlot?.(run, signal)) ?? (() => {});
          try {
            return await fn();
          } finally {
            release();
          }
        };
      const slot = <T>(fn: () => Promise<T>): Promise<T> =>
        job.type === "resource-intensive" ? this.heavy(() => this.limit(inFleet(fn))) : this.limit(inFleet(fn));
      const executor = this.host.executor(run.executor ?? this.host.config.default_executor);
      executorType = executor.type;
      // Command scripts may parse their input: they get the context line only when asked.
      const withContext = job.prompt_context ?? executor.type !== "command";
      const sections = [job.prompt];
      if (run.event_payload !== null) sections.push(`Event payload:\n${run.event_payload}`);
      if (run.after_run !== null) sections.push(await this.upstreamOutput(run.after_run));
      if (job.notes.length) sections.push(`Notes from earlier runs:\n${job.notes.map((n) => `- ${n.at}: ${n.text}`).join("\n")}`);
      if (job.check) {
        const gate = await this.gate(job, run, executor, workDir, signal);
        if (gate.kind === "skip") {
          nothingToDo = true;
          throw new GateClosed();
        }
        if (gate.kind === "fail") {
          failure = gate.error;
          throw new GateClosed();
        }
        sections.push(`Check output:\n${gate.stdout}`);
      }
      const base = sections.join("\n\n");
      const prompt = withContext
        ? `${contextLine(
            job,
            run,
            newest(this.host.runs.ofJob(job.id), run.id, (r) => r.status !== "running"),
          )}\n\n${base}`
        : base;
      // Agent CLIs that take MCP servers get their run's own tools.
      if ((executor.type === "claude-code" || executor.type === "codex") && this.host.openRunTools) {
        tools = await this.host.openRunTools(job, run, said, workDir).catch((err) => {
          this.writeFailed(`Run ${run.id}: its run tools could not be opened, so it runs without them`, err);
          return null;
        });
      }
      let waited = 0;
      for (let attempt = 0; attempt <= job.retries; attempt++) {
        if (signal.aborted) break;
        if (attempt > 0) {
          // The back-off is spent outside any concurrency slot, so a job waiting to retry
          // never holds up other jobs; its total is capped.
          const delay = job.retry_delay_seconds * 1000 * 2 ** (attempt - 1);
          if (waited + delay > MAX_TOTAL_BACKOFF_MS) {
            if (result)
              result = {
                ...result,
                error: `${result.error ?? "Failed"} (not retried further: the retries would wait more than ${MAX_TOTAL_BACKOFF_MS / 3_600_000} h in all)`,
              };
            break;
          }
          waited += delay;
          await sleep(delay, signal, this.host.clock);
          if (signal.aborted) break;
        }
        // A work_dir is checked again before each attempt: a link may have been repointed, or
        // the operator may have narrowed work_dir_roots, since the job was made.
        if (job.work_dir) {
          try {
            resolveWorkDir(job.work_dir, this.host.config.work_dir_roots, [this.host.dataDir, this.host.workRoot]);
          } catch (err) {
            failure = `The run did not start: ${errorMessage(err)}`;
            break;
          }
        }
        attempts = attempt + 1;
        // What an attempt that failed said does not hold for the next one.
        said.outcome = null;
        said.note = null;
        let last = await slot(() =>
          executor.execute({
            runId: run.id,
            jobId: job.id,
            sessionId: run.session_id ?? randomUUID(),
            session: job.session,
            resume: job.session === "persistent" && job.session_id !== null,
            scheduledFor: run.scheduled_for ?? "",
            prompt,
            workDir,
            timeoutMs: job.timeout_seconds * 1000,
            outputFormat: job.output_format,
            outputSchema: job.output_schema,
            maxCostUsd: job.max_cost_usd,
            signal,
            scratchDir: workDir,
            maxOutputBytes: this.host.config.max_output_bytes,
            onPermissionDenied: job.on_permission_denied,
            requiresMcp: job.requires_mcp,
            runTools: tools?.server ?? null,
          }),
        );
        if (last.status === "completed") {
          const checked = await checkOutput(job.output_format, job.output_schema, last.output, last.structured);
          if (checked.ok) {
            checkedValue = checked.value;
            result = last;
            break;
          }
          last = { ...last, status: "failed", error: checked.error };
        }
        result = last;
        // A missing program or an unknown executor fails the same way every time.
        if (last.status === "canceled" || last.permanent) break;
      }
    } catch (err) {
      if (!(err instanceof GateClosed)) failure = `The run could not start: ${errorMessage(err)}`;
    } finally {
      // From here on the run's token is useless.
      await tools?.close().catch(() => {});
    }

    let status: RunStatus;
    let error: string | null;
    if (nothingToDo && !active.abortStatus) {
      status = "skipped";
      error = CHECK_NOTHING_TO_DO;
    } else if (active.abortStatus) {
      status = active.abortStatus;
      error = active.abortReason;
    } else if (failure) {
      status = "failed";
      error = failure;
    } else if (!result) {
      status = "failed";
      error = failure ?? "The run ended before any attempt was made.";
    } else {
      status = result.status;
      error = result.error;
    }
    // A run whose agent said there was nothing to do (report_nothing) is quiet, not empty.
    const empty = status === "completed" && result && said.outcome !== "quiet" && !nothingToDo ? emptyRun(result, checkedValue, executorType) : null;
    if (empty && job.on_empty === "fail") {
      status = "failed";
      error = `empty: ${empty} (on_empty: fail).`;
    } else if (empty && result) {
      result = { ...result, warnings: [...(result.warnings ?? []), `empty: ${empty}; check the job (on_empty: "fail" fails such runs).`] };
    }
    return this.finish(job, active, status, error, attempts, result, checkedValue, said);
  }

  private async finish(
    job: Job,
    active: ActiveRun,
    status: RunStatus,
    error: string | null,
    attempts: number,
    result: ExecutionResult | null,
    value: unknown,
    said: RunSaid = { outcome: null, note: null },
  ): Promise<Run> {
    // The program is over: under load writing its output and syncing its record can take
    // longer than a second, and an every-second job's next occurrence must not be skipped
    // (overlap) or wait (queue_one) for that. The acknowledgement still waits for the sync.
    active.pausesJob = afterRun(this.host.getJob(job.id) ?? job, { ...active.run, status, error }).state === "paused";
    this.programEnded(active);
    const now = this.host.clock.now();
    const outputText = result ? (status === "completed" && typeof value !== "string" && value !== null ? JSON.stringify(value, null, 2) : result.output) : "";
    const response = cutUtf8(outputText);
    const started = Date.parse(active.run.started_at ?? "") || now;
    const run: Run = {
      ...active.run,
      status,
      finished_at: toIsoInZone(new Date(now), job.timezone),
      duration_ms: now - started,
      attempts,
      session_id: result?.sessionId ?? active.run.session_id,
      exit_code: result?.exitCode ?? null,
      error,
      response: response.text,
      output_truncated: result?.outputTruncated ?? false,
      usage: result?.usage ?? null,
      warnings: result?.warnings ?? [],
      // What the agent said of its run stands only for a run that completed.
      outcome: status === "completed" ? said.outcome : null,
      outcome_note: status === "completed" ? said.note : null,
      // Evidence of what happened (SPEC §18).
      executor_version: result?.version ?? null,
      signal: result?.signal ?? null,
      tool_calls: result?.toolCalls ?? null,
      output_sha256: result ? sha256Hex(outputText) : null,
    };
    // What this ending owes people is decided now and written with it (see deliveryTargets).
    const current = this.host.getJob(job.id) ?? job;
    const paused = current.state === "active" && afterRun(current, run).state === "paused";
    // Only a job that delivers `changed` needs its answers told apart (hashing a large output costs).
    const watchesChanges = status === "completed" && current.deliver_to.length > 0 && current.deliver_on.includes("changed");
    if (watchesChanges) run.output_hash = run.output_sha256!.slice(0, 32);
    const previous = watchesChanges ? newest(this.host.runs.ofJob(job.id), run.id, (r) => r.status === "completed") : undefined;
    run.delivery_due = deliveryTargets(current, run, { paused, changed: watchesChanges && previous?.output_hash !== run.output_hash });
    run.delivery = run.delivery_due.length ? "pending" : null;
    // Which chained jobs this ending starts is written with it: a restart starts what is left.
    run.chain_due = this.host.chainedAfter(current, run);
    active.run = run;
    // The whole output as saved, handed down to delivery (which would otherwise read it back).
    let output: string | undefined;
    try {
      // Nothing to keep for an empty answer (a file per run adds up at 200 runs a second).
      if (result && (outputText || result.raw)) await this.host.runs.writeOutput(run.id, outputText, result.raw);
      output = outputText;
    } catch (err) {
      run.error = `${run.error ?? ""} The output could not be saved: ${errorMessage(err)}`.trim();
    }
    // Deferred: the job learns how its run ended once the record is stored. Superseded: on a
    // shared store another process took this run over (this one had gone quiet) and recorded it
    // interrupted, with its own deliveries and job change: that record stands.
    const recorded = await this.record(run, {}, (r) => this.ended(job, r, result, output));
    if (recorded.kind !== "stored") return recorded.kind === "superseded" ? recorded.by : run;
    if (run.chain_due.length) this.host.fault?.("after-chain-intent");
    await this.ended(job, run, result, output);
    return run;
  }

  /**
   * The record stage: stores a run's final record and says what became of it. A write the
   * store refuses is kept and tried again (`then` follows once it is stored).
   */
  private async record(run: Run, occ: Pick<Occurrence, "runId">, then: AfterRecord): Promise<Recorded> {
    let outcome: PutOutcome;
    try {
      outcome = await this.put(run, occ);
    } catch (err) {
      this.recordLater(run, err, then);
      return { kind: "deferred", run };
    }
    return outcome.kind === "superseded" ? outcome : { kind: "stored", run };
  }

  /** A chained run is recorded once, whoever writes it first (chain.ts): a record already there stands. */
  private async put(run: Run, occ: Pick<Occurrence, "runId">): Promise<PutOutcome> {
    if (!occ.runId) return this.host.runs.put(run);
    if (await this.host.runs.putNew(run)) return STORED;
    return { kind: "superseded", by: this.host.runs.get(run.id) ?? run };
  }

  /** A run's final record is stored: the job follows (counts, state, session) and listeners hear. */
  private async ended(job: Job, run: Run, result: ExecutionResult | null, output: string | undefined): Promise<void> {
    const status = run.status;
    this.addSpend(run.usage);
    // A persistent job resumes the session its agent reported (Codex picks its own id), or
    // ours once a run has completed in it.
    const session = job.session === "persistent" && (result?.sessionId || (status === "completed" && run.session_id));
    // Whether this ending paused the job, as the change applied to its newest copy decided.
    let pausedNow = false;
    const updated = await this.host
      .updateJob(job.id, (j) => {
        const change = afterRun(j, run);
        pausedNow = j.state === "active" && change.state === "paused";
        return { ...change, ...(session && j.session === "persistent" ? { session_id: session } : {}) };
      })
      .catch((err) => {
        this.writeFailed(`Job ${job.name ?? job.id}: how its run ended could not be saved`, err);
        return undefined;
      });
    // Before the ending is announced (and delivered): the record's last change is then this
    // one, and its delivery's writes never cross it.
    if (run.chain_due.length) await this.startChained(run);
    this.settle(run, updated ?? job, output);
    if (updated && pausedNow) {
      this.host.events.emit("notice", "warning", `Job ${updated.name ?? updated.id} paused itself: ${updated.last_error}`, { job_id: updated.id });
    }
  }

  /** A final record is stored and its job has followed: clients hear of it, and it is delivered, as stored. */
  private settle(run: Run, job: Job | undefined, output?: string): void {
    this.host.events.emit("run", run, "finished", job);
    this.host.deliver(run, { job, output });
  }

  /** Records an occurrence that did not run (skipped, missed, declined, interrupted) as a finished run. */
  async recordNotRun(job: Job, occ: Occurrence, status: RunStatus, error: string): Promise<Run> {
    const at = toIsoInZone(new Date(this.host.clock.now()), job.timezone);
    const run = newRun(job, occ, { status, started_at: at, finished_at: at, duration_ms: 0, error, pid: process.pid });
    const ended = async (r: Run) => this.settle(r, await this.host.updateJob(job.id, (j) => afterNotRun(j, occ.trigger, status)));
    const recorded = await this.record(run, occ, ended);
    if (recorded.kind === "stored") await ended(run);
    return recorded.kind === "superseded" ? recorded.by : run;
  }

  /**
   * Starts the runs a finished run owes its chained jobs (`chain_due`), each once (its id is
   * derived from the upstream run's), then empties `chain_due`. Called when the run ends and,
   * for what a process that died left, at start-up. What could not start stays due.
   */
  async startChained(upstream: Run): Promise<void> {
    const left: string[] = [];
    for (const jobId of upstream.chain_due) {
      const job = this.host.getJob(jobId);
      if (job?.state !== "active") continue;
      if (this.closing) {
        left.push(jobId);
        continue;
      }
      try {
        await this.occur(job, { scheduledFor: null, trigger: "after", afterRun: upstream.id, runId: chainRunId(upstream.id, jobId) });
        // Queued behind the job's run (overlap: queue_one), it lives only in memory: it stays due
        // until it has its record, so a kill -9 meanwhile does not lose it (the restart starts it).
        // A fleet's sweep would start a run left due by a live process elsewhere, so there the
        // queued run is the only copy, as before.
        if (this.host.exclusive && this.queued.get(jobId)?.afterRun === upstream.id) left.push(jobId);
      } catch (err) {
        left.push(jobId);
        this.writeFailed(`Job ${job.name ?? job.id}: its run after run ${upstream.id} could not start`, err);
      }
    }
    // The other worst moment: the chained runs are recorded, chain_due still names them.
    if (upstream.chain_due.length > left.length) this.host.fault?.("after-chain-started");
    // On the newest copy, atomically: its deliveries may be recording their attempts meanwhile.
    const done = (r: Run) => (r.chain_due.length === left.length && r.chain_due.every((id) => left.includes(id)) ? null : { ...r, chain_due: left });
    await this.host.runs
      .update(upstream.id, done)
      .catch((err) => this.writeFailed(`Run ${upstream.id}: its chained runs are started but this could not be recorded`, err));
  }

  /** The upstream run's output under "Output of <name>:". */
  private async upstreamOutput(runId: string): Promise<string> {
    const upstream = this.host.runs.get(runId);
    const job = upstream ? this.host.getJob(upstream.job_id) : undefined;
    const output = (await this.host.runs.readOutput(runId).catch(() => null)) ?? upstream?.response ?? "";
    return upstreamSection(job?.name ?? upstream?.job_id ?? runId, output);
  }

  /**
   * The job's gate check, in the run's sandbox and work dir under its timeout: exit 0 lets the
   * agent run with the check's stdout; exit 1 says there is nothing to do; anything else fails.
   */
  private async gate(
    job: Job,
    run: Run,
    executor: Executor,
    workDir: string,
    signal: AbortSignal,
  ): Promise<{ kind: "run"; stdout: string } | { kind: "skip" } | { kind: "fail"; error: string }> {
    const name = job.check!;
    const cfg = this.host.config.checks[name];
    if (!cfg)
      return {
        kind: "fail",
        error: `The check "${name}" is no longer in the config (checks.${name}); ask the operator to restore it, or clear the job's check.`,
      };
    const vars: Record<string, string> = { work_dir: workDir, run_id: run.id, job_id: job.id };
    const argv = [cfg.program, ...cfg.args.map((a) => a.replace(/\{(work_dir|run_id|job_id)\}/g, (_, k: string) => vars[k]))];
    const proc = await this.host.runCheck(executor, argv, {
      runId: run.id,
      jobId: job.id,
      sessionId: run.session_id ?? "",
      resume: false,
      scheduledFor: run.scheduled_for ?? "",
      prompt: "",
      workDir,
      timeoutMs: cfg.timeout_seconds * 1000,
      outputFormat: "text",
      outputSchema: null,
      maxCostUsd: null,
      signal,
      scratchDir: workDir,
      maxOutputBytes: CHECK_OUTPUT_BYTES,
    });
    const what = `The check "${name}"`;
    if (proc.sandboxError) return { kind: "fail", error: `${what} could not start: ${proc.sandboxError}` };
    if (proc.spawnError) return { kind: "fail", error: `${what} could not start: ${proc.spawnError}. Fix checks.${name}.program in the config.` };
    if (proc.canceled) return { kind: "fail", error: `${what} was canceled.` };
    if (proc.timedOut)
      return { kind: "fail", error: `${what} timed out after ${cfg.timeout_seconds} s (checks.${name}.timeout_seconds)${tailOf(proc.stderrTail)}` };
    if (proc.exitCode === 0) return { kind: "run", stdout: cutUtf8(proc.stdout, CHECK_OUTPUT_BYTES).text };
    if (proc.exitCode === 1) return { kind: "skip" };
    const how = proc.exitCode === null ? `was killed by ${proc.signal}` : `exited with code ${proc.exitCode}`;
    return { kind: "fail", error: `${what} ${how} (0 runs the agent, 1 skips)${tailOf(proc.stderrTail)}` };
  }

  /**
   * Run records that could not be written (disk full, a permission lost): kept in memory and
   * written again every few seconds, so that once the disk is back each occurrence has its
   * record. They are lost only if the process stops before that.
   */
  private readonly unwritten = new Map<string, { run: Run; then: AfterRecord }>();
  private rewriteTimer: unknown = null;

  /** `then` follows once the record is stored (the job's change, the "finished" event, delivery). */
  private recordLater(run: Run, err: unknown, then: AfterRecord): void {
    const first = this.unwritten.size === 0;
    this.unwritten.set(run.id, { run, then });
    if (first) this.writeFailed(`Run ${run.id} (${run.status}) could not be recorded; it is kept and written again once the disk takes it`, err);
    this.rewriteTimer ??= this.host.clock.setTimer(() => void this.rewrite(), REWRITE_EVERY_MS);
  }

  private async rewrite(): Promise<void> {
    this.rewriteTimer = null;
    for (const { run, then } of [...this.unwritten.values()]) {
      let outcome: PutOutcome;
      try {
        outcome = await this.host.runs.put(run);
      } catch {
        break;
      }
      this.unwritten.delete(run.id);
      if (outcome.kind === "superseded") continue;
      await then(run).catch((err) => this.writeFailed(`Run ${run.id}: what follows its record`, err));
    }
    if (this.unwritten.size && !this.closing) this.rewriteTimer = this.host.clock.setTimer(() => void this.rewrite(), REWRITE_EVERY_MS);
    else if (!this.unwritten.size) this.host.events.emit("notice", "info", "The run records that could not be written are written now.", {});
  }

  private writeFailed(what: string, err: unknown): void {
    this.host.events.emit("notice", "error", `${what}: ${errorMessage(err)}`, {});
  }

  /** A job's runs whose program is still going (see ActiveRun.exited). */
  private going(jobId: string): ActiveRun[] {
    const set = this.active.get(jobId);
    return set ? [...set].filter((a) => !a.exited) : [];
  }

  private programEnded(a: ActiveRun): void {
    if (a.exited) return;
    a.exited = true;
    this.releaseQueued(a.run.job_id);
  }

  private releaseQueued(jobId: string): void {
    const next = this.queued.get(jobId);
    if (!next || this.going(jobId).length) return;
    this.queued.delete(jobId);
    const job = this.host.getJob(jobId);
    if (!job) return;
    // Its job changed while it waited: it was taken, so it gets its record (SPEC §18).
    const not = whyNotRun(job, next.scheduledFor);
    const starting = not ? this.recordNotRun(job, next, not.status, not.why) : this.start(job, next);
    void starting
      .then(() => this.chainSettled(next, jobId))
      .catch((err) => this.host.events.emit("notice", "error", `A queued run of job ${jobId} could not start: ${errorMessage(err)}`, { job_id: jobId }));
  }

  /** A chained run that waited in memory now has its record: its upstream no longer owes it. */
  private async chainSettled(occ: Occurrence, jobId: string): Promise<void> {
    if (occ.afterRun === undefined || !this.host.exclusive) return;
    await this.host.runs.update(occ.afterRun, (r) => (r.chain_due.includes(jobId) ? { ...r, chain_due: r.chain_due.filter((id) => id !== jobId) } : null));
  }

  /** Cancels a run in flight; resolves with its final record. */
  async cancel(runId: string, reason = "Canceled on request."): Promise<Run | null> {
    const a = this.byRunId.get(runId);
    if (!a) return null;
    return this.abort(a, "canceled", reason);
  }

  /** Cancels every run of a job (removal) and drops its queued occurrence. */
  async cancelJob(jobId: string, reason: string): Promise<void> {
    this.queued.delete(jobId);
    await Promise.all([...(this.active.get(jobId) ?? [])].map((a) => this.abort(a, "canceled", reason)));
  }

  /** Occurrences of a job waiting here to start (queued behind its run, or in a catch-up backlog), for the audit's "pending". */
  waiting(jobId: string): ReadonlySet<number> | undefined {
    const t = this.queued.get(jobId)?.scheduledFor;
    const backlog = this.backlogs.get(jobId);
    if (t === undefined || t === null) return backlog;
    return backlog ? new Set([...backlog, t]) : new Set([t]);
  }

  /** Waits for a run in flight to end. */
  whenDone(runId: string): Promise<Run> | null {
    return this.byRunId.get(runId)?.done ?? null;
  }

  private abort(a: ActiveRun, status: "canceled" | "interrupted", reason: string): Promise<Run> {
    if (!a.abortStatus) {
      a.abortStatus = status;
      a.abortReason = reason;
      a.controller.abort(new Error(reason));
    }
    return a.done;
  }

  /** From now on a taken occurrence is recorded, not started (the queue hands over what it took while closing). */
  stopAdmitting(): void {
    this.closing = true;
  }

  /**
   * Shutdown: lets runs go on for up to `graceMs`, then interrupts the rest (their process
   * groups are killed by the executors) and waits until every record is written.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.handling]);
    // An occurrence queued behind a run (overlap: queue_one) will not start: it gets its record
    // now, instead of living only in memory (on a shared store its row is already settled).
    // A chained one stays due on its upstream run instead (startChained): the next start runs it.
    const queued = [...this.queued].filter(([, occ]) => occ.afterRun === undefined || !this.host.exclusive);
    this.queued.clear();
    const backlogs = [...this.backlogs].map(([jobId, left]) => [jobId, [...left]] as const);
    this.backlogs.clear();
    await Promise.allSettled([
      ...queued.map(([jobId, occ]) => {
        const job = this.host.getJob(jobId);
        return job ? this.recordNotRun(job, occ, "skipped", "The server stopped before this queued occurrence could start (overlap: queue_one).") : undefined;
      }),
      ...backlogs.map(([jobId, left]) => this.recordBacklogLeft(jobId, left)),
    ]);
    if (this.rewriteTimer !== null) this.host.clock.clearTimer(this.rewriteTimer);
    const all = () => [...this.byRunId.values()];
    if (graceMs > 0 && all().length) {
      await Promise.race([Promise.allSettled(all().map((a) => a.done)), sleep(graceMs)]);
    }
    const ending = all().map((a) => this.abort(a, "interrupted", "The server stopped while the run was going."));
    // Their grace (if any) is spent: no SIGTERM courtesy period, so the server exits promptly.
    this.host.killProcessGroups();
    await Promise.allSettled(ending);
    // A last try for records the disk refused.
    if (this.unwritten.size) await this.rewrite();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  private track(a: ActiveRun): void {
    let set = this.active.get(a.run.job_id);
    if (!set) this.active.set(a.run.job_id, (set = new Set()));
    set.add(a);
    this.byRunId.set(a.run.id, a);
  }

  private untrack(a: ActiveRun): void {
    const set = this.active.get(a.run.job_id);
    set?.delete(a);
    if (set && !set.size) this.active.delete(a.run.job_id);
    this.byRunId.delete(a.run.id);
  }

  /**
   * A fresh folder per run by default; a persistent job keeps one folder so that its
   * agent's session (which CLIs key by directory) can be resumed.
   */
  private workDirOf(job: Job, runId: string): string {
    return job.work_dir ?? path.join(this.host.workRoot, job.session === "persistent" ? job.id : runId);
  }

  // Daily budget, in the server's timezone.

  /**
   * Today's spend is read from the history the first time a budget is checked, not at start:
   * with no daily_budget_usd the history is never read for it. Until then, spend lives only
   * in the records (addSpend adds nothing), so nothing is counted twice.
   */
  private seedSpend(): void {
    this.spendSeeded = true;
    this.rollBudgetDay();
    for (const r of this.host.runs.all()) {
      if (r.usage?.cost_usd && r.finished_at && Date.parse(r.finished_at) >= this.budget.dayStart) this.budget.spent += r.usage.cost_usd;
    }
  }

  private rollBudgetDay(): void {
    const dayStart = startOfDayInZone(new Date(this.host.clock.now()), this.host.config.timezone).getTime();
    if (dayStart !== this.budget.dayStart) this.budget = { dayStart, spent: 0, noticeSentFor: 0 };
  }

  private addSpend(usage: Usage | null): void {
    if (!this.spendSeeded) return;
    this.rollBudgetDay();
    if (usage?.cost_usd) this.budget.spent += usage.cost_usd;
  }

  private budgetExceeded(): string | null {
    const limit = this.host.config.daily_budget_usd;
    if (!limit) return null;
    if (!this.spendSeeded) this.seedSpend();
    this.rollBudgetDay();
    if (this.budget.spent < limit) return null;
    const reason = `The daily budget of $${limit} is spent ($${this.budget.spent.toFixed(2)} today in ${this.host.config.timezone}); runs resume tomorrow.`;
    if (this.budget.noticeSentFor !== this.budget.dayStart) {
      this.budget.noticeSentFor = this.budget.dayStart;
      this.host.events.emit("notice", "warning", reason, { daily_budget_usd: limit, spent_usd: this.budget.spent });
    }
    return reason;
  }
}

function sleep(ms: number, signal?: AbortSignal, clock?: Clock): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = clock ? clock.setTimer(done, ms) : setTimeout(done, ms);
    function done() {
      if (clock) clock.clearTimer(t);
      else clearTimeout(t as NodeJS.Timeout);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A gate check's stdout given to the agent, at most. */
const CHECK_OUTPUT_BYTES = 16 * 1024;

/** Thrown inside execute when the gate check decides the run (no agent starts). */
class GateClosed extends Error {}

function tailOf(tail: string): string {
  return tail ? `: ${tail}` : ".";
}

/** The newest run of a history (oldest first), other than `except`, that `matches`. */
function newest(runs: readonly Run[], except: string, matches: (r: Run) => boolean): Run | undefined {
  for (let i = runs.length - 1; i >= 0; i--) if (runs[i].id !== except && matches(runs[i])) return runs[i];
  return undefined;
}

/**
 * Why a run that "succeeded" did nothing, or null when it did something: no output at all,
 * or (for agent executors) a reported turn count or output token count of zero.
 */
function emptyRun(result: ExecutionResult, value: unknown, executorType: string): string | null {
  const text = typeof value === "string" ? value : value === null || value === undefined ? result.output : JSON.stringify(value);
  if (!text.trim()) return "the run succeeded with no output";
  if (executorType !== "command" && result.noTurn) return "the agent reported no turn and no output tokens";
  return null;
}
