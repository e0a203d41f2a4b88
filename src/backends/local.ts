import { UserError } from "../kernel/errors.js";
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
  /** Occurrences waiting out their jitter: timer → its job. */
  private readonly waits = new Set<unknown>();
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
    const at = occ.scheduledFor;
    const result = await this.jobs.update(job.id, (j) => (!takeable(j, at) ? null : takenFields(j, at, this.clock.now(), job, occ.nextRunAt)));
    if (!result?.changed || this.closed) return null;
    const run = this.runner;
    // scheduled_for stays the nominal time; the start waits its stable share of the jitter,
    // counted from that time, not from when the take's write was done (a slow disk's sync).
    const wait = delayMs <= 0 ? 0 : at + delayMs - this.clock.now();
    if (wait <= 0) {
      void run(job.id, occ);
    } else {
      const timer = this.clock.setTimer(() => {
        this.waits.delete(timer);
        if (!this.closed) void run(job.id, occ);
      }, wait);
      this.waits.add(timer);
    }
    return result.job;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.waits) this.clock.clearTimer(timer);
    this.waits.clear();
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
