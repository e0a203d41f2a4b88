import { randomUUID } from "node:crypto";
import { type Job, JobSchema } from "../../src/core/jobs.js";

/** The time every stored-job fixture is made at, unless a test says otherwise. */
export const STORED_AT = "2026-01-01T00:00:00.000+00:00";

/**
 * A job as the store writes it, field by field, before zod has seen it: every field the store
 * keeps, at a plain value, with a fresh id. Tests that read or write stored jobs (the files and
 * Postgres repos, the exact check) start from this one record and change what they test.
 */
export function storedJobFields(over: Partial<Job> = {}): Record<string, unknown> {
  return {
    id: randomUUID(),
    name: null,
    schedule: "@daily",
    run_at: null,
    timezone: "UTC",
    prompt: "p",
    executor: null,
    work_dir: null,
    session: "isolated",
    session_id: null,
    type: "medium",
    timeout_seconds: 60,
    retries: 0,
    retry_delay_seconds: 1,
    output_format: "text",
    output_schema: null,
    overlap: "skip",
    catch_up: "latest",
    max_runs: null,
    expires_at: null,
    max_cost_usd: null,
    pause_after_failures: 5,
    enabled: true,
    state: "active",
    silent: false,
    notify_on: ["completed"],
    on_complete: null,
    on_fail: null,
    created_by: "test",
    created_at: STORED_AT,
    updated_at: STORED_AT,
    last_run_at: null,
    last_status: null,
    last_error: null,
    last_scheduled_for: null,
    next_run_at: null,
    run_count: 0,
    consecutive_failures: 0,
    ...over,
  };
}

/** {@link storedJobFields} read through the job schema, as the store hands it out. */
export const storedJob = (over: Partial<Job> = {}): Job => JobSchema.parse(storedJobFields(over));
