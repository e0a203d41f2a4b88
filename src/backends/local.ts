import { UserError, codeOf } from "../kernel/errors.js";
import { takenFields } from "../core/job-rules.js";
import type { Job, Run } from "../core/jobs.js";
import { takeable } from "../core/planner.js";
import type { JobRepo, Occurrence, OccurrenceQueue, OrphanFinder, RunRepo } from "../core/ports.js";
import type { Clock } from "../core/scheduler.js";
import { killOrphanedRuns } from "../executors/orphans.js";

/** The parts of a backend with one process on its store (files, memory): it takes every occurrence itself. */

/**
 * The only process takes every occurrence: marking it handled is one journal line, then its
 * run starts here after its jitter.
 */
export class LocalQueue implements OccurrenceQueue {
  private runner: ((jobId: string, occ: Occurrence) => Promise<void>) | null = null;
  /** Occurrences waiting out their jitter: timer → its hand-over. */
  private readonly waits = new Map<unknown, () => void>();
  /** Takes whose write is not done yet: close() waits for them. */
  private readonly writing = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly jobs: JobRepo,
    private readonly clock: Clock,
  ) {}

  consume(runner: (jobId: string, occ: Occurrence) => Promise<void>): void {
    this.runner = runner;
  }

  async take(job: Job, occ: Occurrence & { scheduledFor: number; nextRunAt?: string | null }, delayMs: number): Promise<Job | null> {
    if (!this.runner) throw new UserError("The occurrence queue has no runner yet.");
    if (this.closed) return null;
    const at = occ.scheduledFor;
    const write = this.jobs.update(job.id, (j) => (!takeable(j, at) ? null : takenFields(j, at, this.clock.now(), job, occ.nextRunAt)));
    this.writing.add(write);
    let result: Awaited<typeof write>;
    try {
      result = await write.finally(() => this.writing.delete(write));
    } catch (err) {
      // Written but not confirmed (fdatasync failed): memory, and the journal the next start
      // replays, hold the occurrence as taken and next_run_at past it, so neither a retry nor
      // catch-up would ever see it again. It runs (or gets its record) all the same, and the
      // failure is still said. A write that failed outright left memory as it was: not taken.
      if (codeOf(err) === "AC_NOT_CONFIRMED") this.handOver(job.id, occ, delayMs);
      throw err;
    }
    if (!result?.changed) return null;
    this.handOver(job.id, occ, delayMs);
    return result.job;
  }

  /** Hands a taken occurrence to the runner once its share of the jitter has passed. */
  private handOver(jobId: string, occ: Occurrence & { scheduledFor: number }, delayMs: number): void {
    const run = this.runner;
    if (!run) return;
    const at = occ.scheduledFor;
    // scheduled_for stays the nominal time; the start waits its stable share of the jitter,
    // counted from that time, not from when the take's write was done (a slow disk's sync).
    // Taken while the queue closed, it is handed over at once: the runner records it.
    const wait = delayMs <= 0 || this.closed ? 0 : at + delayMs - this.clock.now();
    if (wait <= 0) {
      void run(jobId, occ);
    } else {
      const handOver = () => {
        this.waits.delete(timer);
        void run(jobId, occ);
      };
      const timer = this.clock.setTimer(handOver, wait);
      this.waits.set(timer, handOver);
    }
  }

  /** Waits for the takes being written, then hands over every taken occurrence still waiting: none is dropped unrecorded. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.writing]);
    for (const [timer, handOver] of [...this.waits]) {
      this.clock.clearTimer(timer);
      handOver();
    }
  }
}

/**
 * Only the owner of the store opens it, so a run still `running` at open belongs to a
 * process that has gone (exited mid-run or was killed); its agents, if any outlived it, are
 * killed (found by the run id in their environment).
 */
export class OwnerOrphans implements OrphanFinder {
  readonly everyMs = null;
  private claimed = false;

  constructor(private readonly runs: RunRepo) {}

  async claimOrphans(): Promise<Run[]> {
    if (this.claimed) return [];
    this.claimed = true;
    const orphans = this.runs.running?.() ?? [...this.runs.all()].filter((r) => r.status === "running");
    killOrphanedRuns(orphans.map((r) => r.id));
    return orphans;
  }
}
