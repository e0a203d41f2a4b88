import { z } from "zod";
import type { Job, Run } from "../../core/jobs.js";

export const jobRef = z.string().min(1).max(200).describe("Job id or name");
export const runRef = z.string().min(1).max(200).describe("Run id");
export const cursor = z.string().min(1).max(200).describe("next_cursor from the previous page");

export function jobLabel(job: Job): string {
  return job.name ? `"${job.name}"` : job.id;
}

export function runLine(run: Run): string {
  const when = run.scheduled_for ?? run.started_at ?? "";
  return `${run.id} ${run.status} ${when}${run.error ? ` — ${run.error}` : ""}`;
}

export function runLink(run: Run) {
  return {
    type: "resource_link" as const,
    uri: `cron://runs/${run.id}`,
    name: `run ${run.id}`,
    description: `${run.status} run of job ${run.job_id}`,
    mimeType: "application/json",
  };
}
