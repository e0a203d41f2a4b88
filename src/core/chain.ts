import { createHash } from "node:crypto";
import { UserError } from "../kernel/errors.js";
import type { Job, Run } from "./jobs.js";
import { cutUtf8 } from "./output.js";

/**
 * Chained jobs (SPEC §21): a job with `after: {job, on}` runs once for each run of its
 * upstream job that ends that way. The decisions live here, pure; the App and the dispatcher
 * apply them. Once per upstream run, even when the process that finished the upstream run
 * dies before starting the downstream one, because:
 * - the upstream's final record names the jobs it still has to start (`chain_due`), in the
 *   same write as its ending;
 * - a chained run's id is derived from the upstream run's id and its job's, and is inserted
 *   only if absent (RunRepo.putNew, atomic on a shared store), so two processes that both
 *   start it (the finisher and a process recovering after it died) record it once;
 * - `chain_due` is emptied once its runs are recorded; start-up (and a fleet's sweep)
 *   starts what a final record still names.
 */

/** How much of the upstream run's output a chained run's prompt carries. */
export const CHAIN_OUTPUT_BYTES = 16 * 1024;

/** True when `run` ending as it did starts runs of jobs chained `on` that ending. */
export function endsAs(run: Pick<Run, "status">, on: "completed" | "failed" | "any"): boolean {
  const completed = run.status === "completed";
  const failed = run.status === "failed" || run.status === "timed_out";
  return on === "any" ? completed || failed : on === "completed" ? completed : failed;
}

/** The active jobs that `run` of `upstream` starts, in the order they were added. */
export function chainedJobs(jobs: Iterable<Job>, upstreamId: string, run: Pick<Run, "status" | "trigger">): string[] {
  const out: string[] = [];
  // Only a run that completed or failed (or timed out) starts chained jobs: a fleet records many
  // skipped, missed, canceled, interrupted or declined occurrences, and each would otherwise
  // walk every job.
  if (!endsAs(run, "any")) return out;
  for (const j of jobs) if (j.after?.job === upstreamId && j.state === "active" && endsAs(run, j.after.on)) out.push(j.id);
  return out;
}

/**
 * The id of the run of `jobId` that upstream run `upstreamRunId` starts: the same in every
 * process, shaped as a UUID v4 (version and variant bits set), so that it is recorded once.
 */
export function chainRunId(upstreamRunId: string, jobId: string): string {
  const h = createHash("sha256").update(`agent-cron after ${upstreamRunId} ${jobId}`).digest();
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/**
 * Refuses an `after` that would close a loop, naming it: `a → b → a`. `jobs` are the stored
 * jobs; `self` is the job being added or changed (its id, and its name for the message).
 */
export function refuseCycle(jobs: { get(id: string): Job | undefined }, self: Pick<Job, "id" | "name">, upstreamId: string): void {
  const label = (j: Pick<Job, "id" | "name">) => j.name ?? j.id.slice(0, 8);
  const path = [label(self)];
  const seen = new Set<string>();
  let at: string | undefined = upstreamId;
  while (at !== undefined) {
    if (at === self.id) {
      path.push(label(self));
      throw new UserError(
        `after would make a cycle: ${path.join(" → ")}; a job cannot end up waiting for itself. Chain it after another job, or remove after from one of these.`,
      );
    }
    if (seen.has(at)) return;
    seen.add(at);
    const job = jobs.get(at);
    if (!job) return;
    path.push(label(job));
    at = job.after?.job;
  }
}

/** The upstream run's output as a chained run's prompt carries it. */
export function upstreamSection(upstreamName: string, output: string): string {
  const cut = cutUtf8(output, CHAIN_OUTPUT_BYTES);
  return `Output of ${upstreamName}:\n${cut.text}${cut.cut ? "\n[… cut at 16 KiB]" : ""}`;
}
