import { z } from "zod";
import { JobSchema, RunSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel, jobRef, nextRunsOf, runLine } from "./shared.js";

export const getCronTool = defineTool({
  name: "get_cron",
  config: {
    title: "Show a job",
    description: 'Show one job with its next runs and its 10 most recent runs. Example: {"job": "log-audit"}.',
    inputSchema: z.strictObject({ job: jobRef }),
    outputSchema: z.object({
      job: JobSchema,
      description: z.string(),
      next_runs: z.array(z.string()),
      next_runs_utc: z.array(z.string()),
      recent_runs: z.array(RunSchema),
    }),
    annotations: { title: "Show a job", readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  handler: (ctx) => async ({ job: ref }) => {
    const job = ctx.app.resolveJob(ref);
    const recent_runs = ctx.app.recentRuns(job.id, 10);
    const description = ctx.app.describe(job);
    const next = nextRunsOf(ctx.app, job);
    const summary = `Job ${jobLabel(job)} (${job.state}): ${description}. Next: ${next.next_runs[0] ?? "none"}.${recent_runs.length ? "\nRecent runs:\n" + recent_runs.map((r) => `- ${runLine(r)}`).join("\n") : ""}`;
    return ok({ job, description, ...next, recent_runs }, summary);
  },
});
