import path from "node:path";
import type { Fence } from "../../kernel/errors.js";
import type { JobRepo, OccurrenceQueue, OrphanFinder, RunRepo } from "../../core/ports.js";
import type { Clock } from "../../core/scheduler.js";
import { LocalQueue, OwnerOrphans } from "../local.js";
import { JobStore } from "./store/jobs-store.js";
import { RunStore } from "./store/runs-store.js";

/**
 * The files backend: one data dir, owned by one process at a time (the data-dir lock and the
 * local socket in share/ make every other process a follower of that owner). Jobs in
 * `jobs.json` plus its journal, runs in `runs/`, outputs in `outputs/`.
 */
export interface FilesBackend {
  jobs: JobRepo;
  runs: RunRepo;
  queue: OccurrenceQueue;
  orphans: OrphanFinder;
  jobsLocation: string;
}

export async function openFilesBackend(opts: {
  dataDir: string;
  runsPerJob: number;
  fence?: Fence;
  workRoot: string;
  clock: Clock;
  /** A run log found damaged after start-up (read in the background): where to say so. */
  onProblem?: (message: string) => void;
  durability?: "fsync" | "os";
}): Promise<FilesBackend> {
  const jobs = await JobStore.open(opts.dataDir, opts.fence, opts.durability);
  const runs = new RunStore(opts.dataDir, opts.runsPerJob, {
    fence: opts.fence,
    workRoot: opts.workRoot,
    onProblem: opts.onProblem,
    durability: opts.durability,
  });
  runs.load();
  return {
    jobs,
    runs,
    queue: new LocalQueue(jobs, opts.clock),
    orphans: new OwnerOrphans(runs),
    jobsLocation: path.join(opts.dataDir, "jobs.json"),
  };
}
