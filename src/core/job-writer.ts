import { toIsoInZone } from "../kernel/time.js";
import type { AppEventBus } from "./events.js";
import { withDerivedFields } from "./job-rules.js";
import type { Job } from "./jobs.js";
import type { JobRepo } from "./ports.js";
import type { Clock } from "./scheduler.js";

/**
 * The one way a stored job changes, shared by the runtime (a run's bookkeeping, catch-up,
 * expiry) and the job service (the commands): every change is decided on the newest copy and
 * announced as a job event once it is stored.
 */
export class JobWriter {
  constructor(
    private readonly jobs: JobRepo,
    private readonly clock: Clock,
    private readonly events: AppEventBus,
  ) {}

  /**
   * `fn` is applied to the newest copy (in a fleet, the stored row, under its lock) and returns
   * the fields to change, or null for none; `enabled` and `updated_at` follow.
   */
  async change(id: string, fn: (job: Job) => Partial<Job> | null): Promise<{ job: Job; changed: boolean } | undefined> {
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
  async updateRecord(id: string, fn: (job: Job) => Partial<Job>): Promise<Job | undefined> {
    return (
      await this.change(id, (job) => {
        const fields = fn(job);
        const same = (Object.keys(fields) as (keyof Job)[]).every((k) => Object.is(job[k], fields[k]) || JSON.stringify(job[k]) === JSON.stringify(fields[k]));
        return same ? null : fields;
      })
    )?.job;
  }
}
