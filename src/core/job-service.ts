import { randomBytes, timingSafeEqual } from "node:crypto";
import { UnauthorizedError, UserError } from "../kernel/errors.js";
import { toIsoInZone } from "../kernel/time.js";
import type { AppParts, Runtime } from "./app.js";
import { addJobInput, updateJobInput } from "./job-input.js";
import {
  compileSchema,
  draftJob,
  hashToken,
  parseInput,
  patchedJob,
  sameDefinition,
  withApprovalEvent,
  type DefinitionContext,
  type DeliveryChecks,
} from "./job-definitions.js";
import { stopped, withDerivedFields } from "./job-rules.js";
import type { JobWriter } from "./job-writer.js";
import { maxRunsReached, type ApprovalChannel, type Job, type Run } from "./jobs.js";
import { forgetUnusedOutputSchemas, keptOutputSchemas } from "./output.js";
import { nextRuns } from "./planner.js";
import type { Queries } from "./queries.js";
import { parseRunToolArgs, withNote, type RunSaid, type RunToolName } from "./run-tools.js";

/** cancel_run of a run in another process waits this long for its record to end. */
const REMOTE_CANCEL_WAIT_MS = 15_000;

/** Who approved or rejected a job, and through what, as the edge that checked them says. */
export interface Approver {
  by: string;
  via: Extract<ApprovalChannel, "cli" | "dashboard">;
}

/** What the commands ask of the runtime: its stores and settings, the schedule, and the runs it starts and stops. */
export type JobRuntime = Pick<
  Runtime,
  | "config"
  | "clock"
  | "events"
  | "jobs"
  | "runs"
  | "executor"
  | "executorWarnings"
  | "nextRuns"
  | "arm"
  | "stopJob"
  | "forgetJob"
  | "runNow"
  | "runEvent"
  | "cancel"
>;

/** What the job service is built from besides the runtime (the composition root hands them in). */
export interface JobServiceParts {
  env: NodeJS.ProcessEnv;
  /** Paths a work_dir may not be, be inside, or hold (the data dir, the default work root). */
  forbiddenWorkDirs: string[];
  deliveryChecks: DeliveryChecks;
  /** cancel_run of a run another process of a fleet runs: asks it. */
  remoteCancel?: AppParts["remoteCancel"];
}

/**
 * The job commands every transport gives (add, update, pause, resume, approve, reject, remove,
 * run now, cancel, an event's trigger) and the job changes a run's own tools make. Each is
 * decided on the job's newest copy (job-writer.ts) by the rules in job-definitions.ts and
 * job-rules.ts, then handed to the runtime to schedule, start or stop. Errors meant for callers
 * are UserErrors with one clear sentence.
 */
export class JobService {
  private readonly definitions: DefinitionContext;

  constructor(
    private readonly rt: JobRuntime,
    private readonly queries: Queries,
    private readonly writer: JobWriter,
    private readonly parts: JobServiceParts,
  ) {
    const { rt: runtime } = this;
    this.definitions = {
      get config() {
        return runtime.config;
      },
      env: parts.env,
      checkExecutor: (name) => void runtime.executor(name),
      forbiddenWorkDirs: parts.forbiddenWorkDirs,
      resolveJob: (ref) => queries.resolveJob(ref),
      getJob: (id) => runtime.jobs.get(id),
      delivery: parts.deliveryChecks,
    };
  }

  /**
   * Adds a job. `origin` "cli" is a person at a terminal; anything else came through an MCP
   * client, and under config `approval` it may need a person's approval first (SPEC §13):
   * `approved` says the user accepted it through elicitation (honoured under `ask` only).
   * `dryRun` checks everything and stores nothing (to describe the job before asking).
   */
  async add(
    rawInput: unknown,
    createdBy: string,
    opts: { origin?: "cli" | "mcp"; approved?: boolean; dryRun?: boolean } = {},
  ): Promise<{ job: Job; created: boolean; warnings: string[]; triggerToken?: string }> {
    const { rt } = this;
    const input = parseInput(addJobInput(), rawInput);
    // Before anything is read: from here to the store, no await may let another change in.
    await compileSchema(input.output_schema);
    const now = rt.clock.now();
    const { job: draft, schedule } = draftJob(this.definitions, input, createdBy, now);
    if (draft.name) {
      const existing = rt.jobs.byName(draft.name);
      if (existing) {
        if (sameDefinition(existing, draft)) return { job: existing, created: false, warnings: [] };
        throw new UserError(`A job named "${draft.name}" already exists with a different definition; use update_cron to change it, or choose another name.`);
      }
    }
    const first = nextRuns({ ...draft, state: "active" }, schedule, 1, now)[0];
    if (!first) throw new UserError("The job would never run: its expires_at ends it before the first occurrence.");
    if (rt.jobs.size >= rt.config.max_jobs) {
      throw new UserError(
        `There are already ${rt.jobs.size} jobs, the limit set by max_jobs in the config; remove some (completed jobs count too) or ask the operator to raise max_jobs.`,
      );
    }
    if (opts.dryRun) return { job: draft, created: true, warnings: [] };
    const mode = rt.config.approval;
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
    await rt.jobs.insert(job);
    rt.events.emit("job", job, "added");
    rt.arm(job, schedule);
    // The executor a job that names none runs with is the config's default_executor at this moment.
    return { job, created: true, warnings: await rt.executorWarnings(job.executor ?? rt.config.default_executor), triggerToken };
  }

  /** `by` names the client that asks, for the record when the change sends the job back for approval. */
  async update(ref: string, rawPatch: unknown, opts: { origin?: "cli" | "mcp"; by?: string } = {}): Promise<Job> {
    const { rt } = this;
    const patch = parseInput(updateJobInput(), rawPatch);
    // Before the job is read: from here to the store, no await may let another change in.
    await compileSchema(patch.output_schema);
    const { id } = this.queries.resolveJob(ref);
    const now = rt.clock.now();
    const result = await rt.jobs.update(id, (current) =>
      withDerivedFields(
        patchedJob(this.definitions, current, patch, now, (candidate) => rt.nextRuns(candidate, 1, now)[0], {
          origin: opts.origin,
          by: opts.by,
          nameTaken: (name) => rt.jobs.byName(name) !== undefined,
        }).job,
      ),
    );
    if (!result) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
    if (patch.output_schema !== undefined) this.releaseUnusedSchemas();
    rt.events.emit("job", result.job, "updated");
    rt.arm(result.job);
    return result.job;
  }

  // pause, resume and approve decide on the copy they are handed by update(): in a fleet the
  // mirror may be a moment behind (another process sent the job back for approval), and a
  // decision made on it would overwrite that change.

  async pause(ref: string): Promise<Job> {
    return this.changeJob(ref, (j) => (j.state === "active" ? stopped("paused") : null));
  }

  async resume(ref: string): Promise<Job> {
    const now = this.rt.clock.now();
    return this.changeJob(ref, (j) => {
      refusePending(j, "be resumed");
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
    const now = this.rt.clock.now();
    return this.changeJob(ref, (j) => {
      if (j.state !== "pending_approval") throw new UserError(`Job "${j.name ?? j.id}" is not waiting for approval (it is ${j.state}).`);
      const at = toIsoInZone(new Date(now), j.timezone);
      return { ...this.activatedFromNow(j, now).fields, last_error: null, approvals: withApprovalEvent(j.approvals, { event: "approved", at, ...actor }) };
    });
  }

  /**
   * A person turns down a job waiting for approval: it is removed, with nothing run. The job
   * record goes with it, so who rejected it is said as a notice (clients' log, stderr).
   */
  async reject(ref: string, actor: Approver = { by: "a person", via: "cli" }): Promise<string> {
    const job = this.queries.resolveJob(ref);
    if (job.state !== "pending_approval")
      throw new UserError(`Job "${job.name ?? job.id}" is not waiting for approval (it is ${job.state}); remove it instead.`);
    const id = await this.remove(job.id);
    const at = toIsoInZone(new Date(this.rt.clock.now()), job.timezone);
    this.rt.events.emit(
      "notice",
      "info",
      `Job ${job.name ? `"${job.name}" (${job.id})` : job.id} was rejected by ${actor.by} through ${actor.via} at ${at}, and removed.`,
      { job_id: job.id, rejected_by: actor.by, via: actor.via, at },
    );
    return id;
  }

  async remove(ref: string, keepRuns = false): Promise<string> {
    const { rt } = this;
    const job = this.queries.resolveJob(ref);
    await rt.stopJob(job.id, "Canceled because its job was removed.");
    await rt.jobs.delete(job.id);
    rt.forgetJob(job.id);
    if (job.output_schema) this.releaseUnusedSchemas();
    if (!keepRuns) await rt.runs.removeJob(job.id);
    rt.events.emit("job", job, "removed");
    return job.id;
  }

  async runNow(ref: string): Promise<Run> {
    const job = this.queries.resolveJob(ref);
    refusePending(job, "run");
    return this.rt.runNow(job);
  }

  /**
   * An event for a job with trigger "http" (POST /hooks/{job_id}): the token must match the
   * job's, compared as hashes in constant time. Runs under the job's overlap policy, with the
   * body appended to the prompt. The same answer for an unknown job as for a wrong token.
   */
  async triggerEvent(jobId: string, token: string, payload: string): Promise<Run | null> {
    const job = this.rt.jobs.get(jobId);
    const expected = job?.trigger === "http" ? job.trigger_token_hash : null;
    // Both are SHA-256 hex digests, so equal lengths: compared without an early exit.
    const ok = expected !== null && /^[0-9a-f]{64}$/.test(expected) && timingSafeEqual(Buffer.from(hashToken(token), "hex"), Buffer.from(expected, "hex"));
    if (!job || !ok) throw new UnauthorizedError("The token does not match this job's event trigger.");
    refusePending(job, "run");
    if (job.state !== "active") throw new UserError(`Job "${job.name ?? job.id}" is ${job.state}; resume it to take events.`);
    if (maxRunsReached(job))
      throw new UserError(`Job "${job.name ?? job.id}" has made its max_runs (${job.max_runs}); raise it with update_cron to take more events.`);
    return this.rt.runEvent(job, payload);
  }

  async cancelRun(runId: string): Promise<Run> {
    const run = this.queries.getRunRecord(runId);
    if (run.status !== "running") return run;
    const ended = await this.rt.cancel(run.id);
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
        const now = this.rt.runs.get(run.id);
        if (now && now.status !== "running") return now;
      }
      if (Date.now() > deadline) {
        throw new UserError(
          `Run ${run.id} is going in another agent-cron process (pid ${run.pid}), which was asked to cancel it and has not ended it within ${REMOTE_CANCEL_WAIT_MS / 1000} s; its record will say canceled when it does (or interrupted, if that process is gone).`,
        );
      }
    }
  }

  /**
   * A call from inside a run (agent-cron run-tools), already matched to its run by the
   * channel's token: the run's own outcome, its job's notes, and (self_service) its own
   * pause and schedule. Nothing else of the server is reachable from here.
   */
  async runToolCall(jobId: string, runId: string, said: RunSaid, tool: RunToolName, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
    const args = parseRunToolArgs(tool, raw);
    const job = this.rt.jobs.get(jobId);
    if (!job) throw new UserError("This run's job has been removed.");
    const at = toIsoInZone(new Date(this.rt.clock.now()), job.timezone);
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
        const updated = await this.writer.updateRecord(jobId, (j) => ({ notes: withNote(j.notes, { at, run_id: runId, text: args.note }) }));
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
        const updated = await this.update(jobId, { schedule: args.schedule }, { origin: "mcp", by: `its own run ${runId}` });
        const when = updated.state === "active" ? `next run ${updated.next_run_at}` : `it is ${updated.state}`;
        return {
          summary: `Job ${updated.name ?? updated.id} now runs on "${updated.schedule}"; ${when}.`,
          state: updated.state,
          next_run_at: updated.next_run_at,
        };
      }
    }
  }

  /** A job made active with scheduling restarting from now: completed instead when nothing is left to run. */
  private activatedFromNow(j: Job, now: number): { fields: Partial<Job>; first: Date | undefined } {
    const schedule_from = toIsoInZone(new Date(now), j.timezone);
    const first = this.rt.nextRuns({ ...j, state: "active", schedule_from }, 1, now)[0];
    const state = first ? { state: "active" as const, next_run_at: toIsoInZone(first, j.timezone) } : stopped("completed");
    return { fields: { ...state, schedule_from }, first };
  }

  /** A change decided on the job's newest copy (`fn` returns null for none), then scheduled as it now is. */
  private async changeJob(ref: string, fn: (job: Job) => Partial<Job> | null): Promise<Job> {
    const { id } = this.queries.resolveJob(ref);
    const result = await this.writer.change(id, fn);
    if (!result) throw new UserError(`No job with id or name "${ref}"; list_crons shows the jobs.`);
    if (result.changed) this.rt.arm(result.job);
    return result.job;
  }

  /** Frees the compiled output_schemas no job uses any more (two jobs may share one). */
  private releaseUnusedSchemas(): void {
    if (keptOutputSchemas() === 0) return;
    const used = new Set<string>();
    for (const j of this.rt.jobs.all()) if (j.output_schema) used.add(JSON.stringify(j.output_schema));
    forgetUnusedOutputSchemas(used);
  }
}

function refusePending(job: Job, what: string): void {
  if (job.state === "pending_approval") {
    throw new UserError(
      `Job "${job.name ?? job.id}" is waiting for a person's approval, so it cannot ${what}; they approve it with: agent-cron approve ${job.name ?? job.id}.`,
    );
  }
}
