import { z } from "zod";
import { JobSchema, RunSchema } from "../../core/jobs.js";
import { defineTool, ok } from "../tool.js";
import { jobLabel, jobRef, runLine } from "./shared.js";

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
    const view = await ctx.api.getCron({ job: ref });
    const { job, recent_runs, description } = view;
    const summary = `Job ${jobLabel(job)} (${job.state}): ${description}. Next: ${view.next_runs[0] ?? "none"}.${recent_runs.length ? "\nRecent runs:\n" + recent_runs.map((r) => `- ${runLine(r)}`).join("\n") : ""}`;
    return ok({ ...view }, summary);
  },
});
