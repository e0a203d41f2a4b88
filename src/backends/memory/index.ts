import type { Job, Run } from "../../core/jobs.js";
import { STORED, type JobRepo, type PutOutcome, type RunRepo } from "../../core/ports.js";
import { recentBySorting } from "../../core/queries.js";
import type { Clock } from "../../core/scheduler.js";
import { LocalQueue, OwnerOrphans } from "../local.js";

/**
 * Jobs and runs in memory, for the core's tests (no data dir) and for trying a config. A
 * store outlives the App that used it, so a test "restarts" by opening a new App on the same
 * store: what a process that died left behind (a `running` run) is still there.
 */
export class MemoryStore {
  readonly jobs = new Map<string, Job>();
  /** Each job's runs, oldest first. */
  readonly runs = new Map<string, Run[]>();
  readonly outputs = new Map<string, string>();
  /** Set to make every write fail with this error (a full disk, a lost connection). */
  failWrites: Error | null = null;
}

class MemoryJobs implements JobRepo {
  constructor(private readonly store: MemoryStore) {}

  get size(): number {
    return this.store.jobs.size;
  }

  all(): IterableIterator<Job> {
    return this.store.jobs.values();
  }

  get(id: string): Job | undefined {
    return this.store.jobs.get(id);
  }

  byName(name: string): Job | undefined {
    for (const job of this.store.jobs.values()) if (job.name === name) return job;
    return undefined;
  }

  async insert(job: Job): Promise<void> {
    this.check();
    this.store.jobs.set(job.id, job);
  }

  async update(id: string, change: (job: Job) => Job | null): Promise<{ job: Job; changed: boolean } | undefined> {
    const current = this.store.jobs.get(id);
    if (!current) return undefined;
    const next = change(current);
    if (!next) return { job: current, changed: false };
    this.check();
    this.store.jobs.set(id, next);
    return { job: next, changed: true };
  }

  async delete(id: string): Promise<void> {
    this.check();
    this.store.jobs.delete(id);
  }

  async idle(): Promise<void> {}

  close(): void {}

  private check(): void {
    if (this.store.failWrites) throw this.store.failWrites;
  }
}

class MemoryRuns implements RunRepo {
  private readonly byId = new Map<string, Run>();

  constructor(
    private readonly store: MemoryStore,
    private readonly runsPerJob: number,
  ) {
    for (const runs of store.runs.values()) for (const r of runs) this.byId.set(r.id, r);
  }

  get(id: string): Run | undefined {
    return this.byId.get(id);
  }

  ofJob(jobId: string): readonly Run[] {
    return this.store.runs.get(jobId) ?? [];
  }

  *all(): IterableIterator<Run> {
    for (const runs of this.store.runs.values()) yield* runs;
  }

  recent(opts: { limit: number; after?: string; filter?: (run: Run) => boolean }) {
    return recentBySorting(this.all(), opts);
  }

  async putNew(run: Run): Promise<boolean> {
    if (this.byId.has(run.id)) return false;
    await this.put(run);
    return true;
  }

  async put(run: Run): Promise<PutOutcome> {
    if (this.store.failWrites) throw this.store.failWrites;
    let runs = this.store.runs.get(run.job_id);
    if (!runs) this.store.runs.set(run.job_id, (runs = []));
    const known = this.byId.get(run.id);
    if (known) runs[runs.indexOf(known)] = run;
    else runs.push(run);
    this.byId.set(run.id, run);
    // The newest runs_per_job are kept, never evicting a run still going.
    while (runs.length > this.runsPerJob) {
      const i = runs.findIndex((r) => r.status !== "running");
      if (i < 0) break;
      const [gone] = runs.splice(i, 1);
      this.byId.delete(gone.id);
      this.store.outputs.delete(gone.id);
    }
    return STORED;
  }

  async update(id: string, change: (run: Run) => Run | null): Promise<Run | undefined> {
    const current = this.byId.get(id);
    if (!current) return undefined;
    const next = change(current);
    if (!next) return current;
    await this.put(next);
    return next;
  }

  async removeJob(jobId: string): Promise<void> {
    for (const r of this.store.runs.get(jobId) ?? []) {
      this.byId.delete(r.id);
      this.store.outputs.delete(r.id);
    }
    this.store.runs.delete(jobId);
  }

  async writeOutput(runId: string, output: string): Promise<void> {
    if (this.store.failWrites) throw this.store.failWrites;
    this.store.outputs.set(runId, output);
  }

  async readOutput(runId: string): Promise<string | null> {
    return this.store.outputs.get(runId) ?? null;
  }
}

export function openMemoryBackend(opts: { store?: MemoryStore; runsPerJob: number; clock: Clock }) {
  const store = opts.store ?? new MemoryStore();
  const jobs = new MemoryJobs(store);
  const runs = new MemoryRuns(store, opts.runsPerJob);
  return { store, jobs, runs, queue: new LocalQueue(jobs, opts.clock), orphans: new OwnerOrphans(runs), jobsLocation: "memory" };
}
